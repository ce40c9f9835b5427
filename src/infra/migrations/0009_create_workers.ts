/**
 * The workers serving a store, as each announces itself (`TaskQueue.workers`): the kinds it takes, the one session it
 * serves if any, and until when its announcement holds (it renews it while it runs and removes it when it stops). Read
 * to tell a session nobody will serve (a kind no live worker takes) from one waiting for a busy worker.
 *
 * Released: never edit; add a new numbered migration instead.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE planner_workers (
      worker_id TEXT PRIMARY KEY,
      kinds TEXT NOT NULL,
      session_id TEXT,
      expires_at BIGINT NOT NULL
    )`
})
