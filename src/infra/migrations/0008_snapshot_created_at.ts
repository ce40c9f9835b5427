/**
 * When each pruned session began (`session_snapshots.created_at`, the time of its first event), kept with its final
 * snapshot: its state cannot say, because a fork's state starts with its origin's plan and its origin's start time,
 * and the session list and lineages order sessions by when they began. Snapshots taken before this migration have
 * none; they fall back to their state's start time (`SessionSnapshots`).
 *
 * Released: never edit; add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE session_snapshots ADD COLUMN created_at BIGINT`
})
