/**
 * Transactions whose end can fail as everything else does. `@effect/sql`'s `withTransaction` turns a COMMIT or ROLLBACK
 * that fails into a defect (`Effect.orDie`): with the connection lost mid-way (a restarted server, an administrator's
 * `pg_terminate_backend`, a network cut), the body's statement fails, the ROLLBACK after it fails too, and the whole
 * transaction dies, past every caller's `catchAll`. A stopping worker whose last append died that way said nothing of
 * the task it could not give back, and claimed to have given everything back.
 *
 * A failed COMMIT leaves the outcome unknown, like any statement whose answer was lost, so it fails with the
 * `SqlError` as those do; callers already map that to their typed error, and a retry decides again on what the store
 * holds. Every transaction in `src/infra` goes through here; `test/infra/LostConnection.pg.test.ts` ends one of each
 * mid-way.
 */
import type { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"

/** `effect` (a transaction) with an `SqlError` defect, a failed COMMIT or ROLLBACK, turned back into a failure. */
export const commitFailuresTyped = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
  Effect.catchSomeDefect(effect, (defect) =>
    defect instanceof SqlError ? Option.some(Effect.fail(defect)) : Option.none()
  )

/** `sql.withTransaction`, its COMMIT and ROLLBACK failing with their `SqlError` rather than dying. */
export const withTransaction =
  (sql: SqlClient.SqlClient) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    commitFailuresTyped(sql.withTransaction(effect))
