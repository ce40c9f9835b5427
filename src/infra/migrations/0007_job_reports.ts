/**
 * Outcomes reported into job rows, and the writer of each session (`TaskQueue.reports`, PostgreSQL): a worker that
 * is not its session's writer stores its attempt's outcome in the job's row (`report`, with `reported_at`), and the
 * session's writer, the worker holding the session's row in `planner_session_writers` under a live lease, records
 * it in the log. A reported job is never taken again; it ends when the writer records its outcome.
 *
 * Released: never edit; add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE planner_jobs ADD COLUMN report TEXT`
  yield* sql`ALTER TABLE planner_jobs ADD COLUMN reported_at BIGINT`
  yield* sql`CREATE INDEX planner_jobs_reported ON planner_jobs (session_id, reported_at) WHERE report IS NOT NULL`
  yield* sql`
    CREATE TABLE planner_session_writers (
      session_id TEXT PRIMARY KEY,
      worker_id TEXT NOT NULL,
      lease_expires_at BIGINT NOT NULL
    )`
})
