/**
 * The memory index on the event store's `SqlClient` (tables of migration 0004, run by the store's `migrate`).
 *
 * SQLite: the text goes into the FTS5 table `memory_fts` (porter stemming, unicode61 tokens) under the document's id,
 * and a search is `MATCH '"w1" OR "w2" ...'` ranked by `bm25`. PostgreSQL: the generated `tsvector` column under a
 * GIN index, queried with `to_tsquery('english', 'w1 | w2 ...')` and ranked by `ts_rank`. Query words reach both
 * engines only as letters and digits, so no query syntax of either can be injected.
 *
 * Writes go through the client, so a durable consumer's handler that puts records commits them with its checkpoint.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Layer, Schema } from "effect"
import type { MemoryRecord } from "../domain/Memory.js"
import { withTransaction } from "./internal/transaction.js"
import {
  type DocFilter,
  type Embedder,
  type MemoryBackend,
  type MemoryDoc,
  MemoryIndex,
  MemoryIndexError,
  type MemoryIndexService,
  makeIndex
} from "./MemoryIndex.js"

const failWith =
  (operation: string) =>
  (error: SqlError): MemoryIndexError =>
    new MemoryIndexError({ operation, reason: error.message })

/**
 * A stored row's JSON. A row that is not (a hand edit, a damaged file) fails the read with how to mend the index,
 * which is a projection of the log: it used to throw out of the command, past the callers that take memory as advice
 * only (a `run` offering a past plan) and go on without it.
 */
const stored = <A>(
  key: string,
  what: string,
  text: string,
  isShaped: (value: unknown) => boolean
): Effect.Effect<A, MemoryIndexError> => {
  const unreadable = new MemoryIndexError({
    operation: "read records",
    reason: `the stored ${what} of ${key} cannot be read; rebuild the index from the log with \`planner memory rebuild\``
  })
  try {
    const value: unknown = JSON.parse(text)
    return isShaped(value) ? Effect.succeed(value as A) : Effect.fail(unreadable)
  } catch {
    return Effect.fail(unreadable)
  }
}

/** The fields of a record that its readers read (`domain/Memory`), each of its type; other fields are let be. */
const PlanStepShape = Schema.Struct({
  id: Schema.Number,
  description: Schema.String,
  kind: Schema.String,
  dependsOn: Schema.Array(Schema.Number)
})
const RecordShape = Schema.Union(
  Schema.Struct({
    _tag: Schema.Literal("Task"),
    sessionId: Schema.String,
    taskId: Schema.Number,
    description: Schema.String,
    kind: Schema.String,
    status: Schema.String,
    result: Schema.String,
    attempts: Schema.Number,
    durationMs: Schema.Number,
    questions: Schema.Array(Schema.String),
    finishedAt: Schema.Number
  }),
  Schema.Struct({
    _tag: Schema.Literal("Session"),
    sessionId: Schema.String,
    request: Schema.String,
    outcome: Schema.String,
    summary: Schema.String,
    plan: Schema.Array(PlanStepShape),
    durationMs: Schema.Number,
    finishedAt: Schema.Number
  })
)
const isRecord = Schema.is(RecordShape)

const isEmbedding = (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === "number")

const record = (row: { readonly key: string; readonly record: string }) =>
  stored<MemoryRecord>(row.key, "record", row.record, isRecord)

/** Only letters and digits reach the engines' query languages. */
const safeTerms = (terms: ReadonlyArray<string>): ReadonlyArray<string> =>
  [...new Set(terms.map((term) => term.replace(/[^\p{L}\p{N}]/gu, "")).filter((term) => term.length > 0))].slice(0, 64)

export const makeBackend: Effect.Effect<MemoryBackend, never, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const isPg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  const transaction = withTransaction(sql)

  const writeOne = (doc: MemoryDoc) => {
    const embedding = doc.embedding === undefined ? null : JSON.stringify(doc.embedding)
    const record = JSON.stringify(doc.record)
    const ok = doc.ok ? 1 : 0
    return isPg
      ? sql`INSERT INTO memory_docs (doc_key, session_id, doc_type, kind, ok, finished_at, body, record, embedding)
            VALUES (${doc.key}, ${doc.sessionId}, ${doc.type}, ${doc.kind}, ${ok}, ${doc.finishedAt}, ${doc.body}, ${record}, ${embedding})
            ON CONFLICT (doc_key) DO UPDATE SET session_id = excluded.session_id, doc_type = excluded.doc_type,
              kind = excluded.kind, ok = excluded.ok, finished_at = excluded.finished_at, body = excluded.body,
              record = excluded.record, embedding = excluded.embedding`.pipe(Effect.asVoid)
      : Effect.gen(function* () {
          const rows = yield* sql<{ id: number }>`
            INSERT INTO memory_docs (doc_key, session_id, doc_type, kind, ok, finished_at, body, record, embedding)
            VALUES (${doc.key}, ${doc.sessionId}, ${doc.type}, ${doc.kind}, ${ok}, ${doc.finishedAt}, ${doc.body}, ${record}, ${embedding})
            ON CONFLICT (doc_key) DO UPDATE SET session_id = excluded.session_id, doc_type = excluded.doc_type,
              kind = excluded.kind, ok = excluded.ok, finished_at = excluded.finished_at, body = excluded.body,
              record = excluded.record, embedding = excluded.embedding
            RETURNING id`
          const id = rows[0]?.id
          if (id === undefined) return
          yield* sql`DELETE FROM memory_fts WHERE rowid = ${id}`
          yield* sql`INSERT INTO memory_fts (rowid, body) VALUES (${id}, ${doc.body})`
        })
  }

  const where = (filter: DocFilter) =>
    sql`(${filter.type} = '' OR doc_type = ${filter.type}) AND (${filter.kind} = '' OR kind = ${filter.kind}) AND (${filter.okOnly ? 1 : 0} = 0 OR ok = 1)`

  const backend: MemoryBackend = {
    write: (docs) =>
      transaction(Effect.forEach(docs, writeOne, { discard: true })).pipe(Effect.mapError(failWith("store records"))),
    textSearch: (terms, filter, limit) => {
      const words = safeTerms(terms)
      if (words.length === 0) return Effect.succeed([])
      const rows = isPg
        ? sql<{ key: string }>`
            SELECT doc_key AS key FROM memory_docs, to_tsquery('english', ${words.join(" | ")}) AS query
            WHERE body_tsv @@ query AND ${where(filter)}
            ORDER BY ts_rank(body_tsv, query) DESC, doc_key LIMIT ${limit}`
        : sql<{ key: string }>`
            SELECT memory_docs.doc_key AS key FROM memory_fts JOIN memory_docs ON memory_docs.id = memory_fts.rowid
            WHERE memory_fts MATCH ${words.map((word) => `"${word}"`).join(" OR ")} AND ${where(filter)}
            ORDER BY bm25(memory_fts), memory_docs.doc_key LIMIT ${limit}`
      return rows.pipe(
        Effect.map((found) => found.map((row) => row.key)),
        Effect.mapError(failWith("search"))
      )
    },
    vectors: (filter) =>
      sql<{ key: string; embedding: string }>`
        SELECT doc_key AS key, embedding FROM memory_docs WHERE embedding IS NOT NULL AND ${where(filter)}`.pipe(
        Effect.mapError(failWith("read embeddings")),
        Effect.flatMap((rows) =>
          Effect.forEach(rows, (row) =>
            Effect.map(
              stored<ReadonlyArray<number>>(row.key, "embedding", row.embedding, isEmbedding),
              (embedding) => ({ key: row.key, embedding })
            )
          )
        )
      ),
    records: (keys) =>
      keys.length === 0
        ? Effect.succeed(new Map())
        : sql<{ key: string; record: string }>`
            SELECT doc_key AS key, record FROM memory_docs WHERE ${sql.in("doc_key", keys)}`.pipe(
            Effect.mapError(failWith("read records")),
            Effect.flatMap((rows) =>
              Effect.forEach(rows, (row) => Effect.map(record(row), (one) => [row.key, one] as const))
            ),
            Effect.map((entries) => new Map(entries))
          ),
    removeSession: (sessionId) =>
      transaction(
        isPg
          ? sql`DELETE FROM memory_docs WHERE session_id = ${sessionId}`.pipe(Effect.asVoid)
          : Effect.zipRight(
              sql`DELETE FROM memory_fts WHERE rowid IN (SELECT id FROM memory_docs WHERE session_id = ${sessionId})`,
              sql`DELETE FROM memory_docs WHERE session_id = ${sessionId}`
            ).pipe(Effect.asVoid)
      ).pipe(Effect.mapError(failWith("remove a session"))),
    all: sql<{ key: string; record: string }>`SELECT doc_key AS key, record FROM memory_docs ORDER BY doc_key`.pipe(
      Effect.mapError(failWith("read records")),
      Effect.flatMap((rows) => Effect.forEach(rows, record))
    ),
    clear: transaction(
      isPg
        ? sql`DELETE FROM memory_docs`.pipe(Effect.asVoid)
        : Effect.zipRight(sql`DELETE FROM memory_fts`, sql`DELETE FROM memory_docs`).pipe(Effect.asVoid)
    ).pipe(Effect.mapError(failWith("clear")))
  }
  return backend
})

export const make = (embedder?: Embedder): Effect.Effect<MemoryIndexService, never, SqlClient.SqlClient> =>
  Effect.map(makeBackend, (backend) => makeIndex(backend, embedder))

/** The index on the store's client (`SqliteEventStore.layer` / `PgEventStore.layer` provide it and run 0004). */
export const layer = (embedder?: Embedder): Layer.Layer<MemoryIndex, never, SqlClient.SqlClient> =>
  Layer.effect(MemoryIndex, make(embedder))
