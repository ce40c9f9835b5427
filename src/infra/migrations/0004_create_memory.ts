/**
 * The memory index (`MemoryIndexSql`): one row per remembered task or finished session, with its searchable text, the
 * record as JSON and, when embeddings are configured, its vector as JSON. Full-text search is the engine's own:
 * SQLite's FTS5 (porter stemming, ranked by bm25) in `memory_fts`, whose rowid is the document's id; PostgreSQL's
 * `tsvector` (English configuration) in a generated column under a GIN index, ranked by `ts_rank`.
 *
 * Released: never edit; add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    pg: () =>
      Effect.zipRight(
        sql`
          CREATE TABLE memory_docs (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            doc_key TEXT NOT NULL UNIQUE,
            session_id TEXT NOT NULL,
            doc_type TEXT NOT NULL,
            kind TEXT NOT NULL,
            ok INTEGER NOT NULL,
            finished_at BIGINT NOT NULL,
            body TEXT NOT NULL,
            record TEXT NOT NULL,
            embedding TEXT,
            body_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED
          )`,
        sql`CREATE INDEX memory_docs_tsv ON memory_docs USING GIN (body_tsv)`
      ),
    orElse: () =>
      Effect.zipRight(
        sql`
          CREATE TABLE memory_docs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            doc_key TEXT NOT NULL UNIQUE,
            session_id TEXT NOT NULL,
            doc_type TEXT NOT NULL,
            kind TEXT NOT NULL,
            ok INTEGER NOT NULL,
            finished_at INTEGER NOT NULL,
            body TEXT NOT NULL,
            record TEXT NOT NULL,
            embedding TEXT
          )`,
        sql`CREATE VIRTUAL TABLE memory_fts USING fts5(body, tokenize = 'porter unicode61')`
      )
  })
  yield* sql`CREATE INDEX memory_docs_session ON memory_docs (session_id)`
})
