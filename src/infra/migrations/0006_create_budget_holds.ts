/**
 * Budget holds (`BudgetHolds`): what model calls in flight take from a budget, shared by every process on the store.
 * One row per call; rows end by expiring. Times are epoch milliseconds from the application's `Clock`.
 *
 * Released: never edit; add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    pg: () => sql`
      CREATE TABLE planner_budget_holds (
        id TEXT PRIMARY KEY,
        root_session_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        tokens BIGINT NOT NULL,
        usd DOUBLE PRECISION,
        recorded_version BIGINT,
        expires_at BIGINT NOT NULL
      )`,
    orElse: () => sql`
      CREATE TABLE planner_budget_holds (
        id TEXT PRIMARY KEY,
        root_session_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        usd REAL,
        recorded_version INTEGER,
        expires_at INTEGER NOT NULL
      )`
  })
  yield* sql`CREATE INDEX planner_budget_holds_root ON planner_budget_holds (root_session_id)`
  yield* sql`CREATE INDEX planner_budget_holds_expiry ON planner_budget_holds (expires_at)`
})
