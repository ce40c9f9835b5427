/**
 * The event log. The seed's columns, plus a global `position`, drawn when a row is inserted (on PostgreSQL appends
 * may commit out of that order: readers that need global order read up to the store's high-water mark, see
 * `SqlEventStore`); `sequence` is per aggregate and the unique constraint on it is the final guard against two
 * writers taking the same sequence.
 *
 * Released: never edit its statements (this comment was corrected later); add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    pg: () => sql`
      CREATE TABLE events (
        position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        stream_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        sequence BIGINT NOT NULL CHECK (sequence > 0),
        event_version TEXT NOT NULL,
        data JSONB NOT NULL,
        metadata JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT events_stream_aggregate_sequence UNIQUE (stream_id, aggregate_id, sequence)
      )`,
    // AUTOINCREMENT: a position is never handed out twice, even after the newest rows are deleted.
    orElse: () => sql`
      CREATE TABLE events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        sequence INTEGER NOT NULL CHECK (sequence > 0),
        event_version TEXT NOT NULL,
        data TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        CONSTRAINT events_stream_aggregate_sequence UNIQUE (stream_id, aggregate_id, sequence)
      )`
  })
  // Per-aggregate loads use the unique constraint's index; these serve stream-wide reads and type filters.
  yield* sql`CREATE INDEX events_stream_position ON events (stream_id, position)`
  yield* sql`CREATE INDEX events_type_position ON events (event_type, position)`
})
