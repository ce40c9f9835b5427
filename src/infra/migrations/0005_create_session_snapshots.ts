/**
 * Final snapshots of pruned sessions (`planner prune`, `SessionSnapshots`): a finished session whose events were
 * removed keeps its final state (the encoded `PlannerState`) and its memory records, so `show`, `recall`, `stats` and
 * `memory rebuild` still know it.
 *
 * Released: never edit; add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    pg: () => sql`
      CREATE TABLE session_snapshots (
        session_id TEXT PRIMARY KEY,
        last_sequence BIGINT NOT NULL,
        finished_at BIGINT NOT NULL,
        pruned_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        records TEXT NOT NULL
      )`,
    orElse: () => sql`
      CREATE TABLE session_snapshots (
        session_id TEXT PRIMARY KEY,
        last_sequence INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        pruned_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        records TEXT NOT NULL
      )`
  })
})
