/**
 * The task queue's jobs (`SqlTaskQueue`): one row per attempt of a task, with its lease as columns. Times are epoch
 * milliseconds from the application's `Clock`, so tests drive lease expiry and backoff with a test clock.
 *
 * The table holds unfinished jobs only: completing a job deletes its row, so every scan stays as small as the work in
 * flight, however long the log grows.
 *
 * Released: never edit; add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    pg: () => sql`
      CREATE TABLE planner_jobs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        session_id TEXT NOT NULL,
        task_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        kind TEXT NOT NULL,
        run_at BIGINT NOT NULL,
        payload TEXT NOT NULL,
        worker_id TEXT,
        lease_expires_at BIGINT,
        takes INTEGER NOT NULL DEFAULT 0,
        CONSTRAINT planner_jobs_key UNIQUE (session_id, task_id, attempt)
      )`,
    orElse: () => sql`
      CREATE TABLE planner_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        task_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        kind TEXT NOT NULL,
        run_at INTEGER NOT NULL,
        payload TEXT NOT NULL,
        worker_id TEXT,
        lease_expires_at INTEGER,
        takes INTEGER NOT NULL DEFAULT 0,
        CONSTRAINT planner_jobs_key UNIQUE (session_id, task_id, attempt)
      )`
  })
  yield* sql`CREATE INDEX planner_jobs_due ON planner_jobs (run_at, id)`
  yield* sql`CREATE INDEX planner_jobs_worker ON planner_jobs (worker_id)`
})
