/**
 * Durable consumers' checkpoints: the position of the last event each named consumer finished.
 *
 * Released: never edit; add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    pg: () => sql`
      CREATE TABLE event_checkpoints (
        consumer TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`,
    orElse: () => sql`
      CREATE TABLE event_checkpoints (
        consumer TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      )`
  })
})
