/**
 * SQLite across processes: a statement or transaction that finds the database locked waits `busy_timeout` (blocking),
 * then is tried again with backoff (not blocking). Used by the event store, the task queue and the budget holds.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Schedule } from "effect"

/** What better-sqlite3 threw says another connection (maybe another process) holds the lock it needed. */
export const isBusyCause = (cause: unknown): boolean => {
  if (typeof cause !== "object" || cause === null) return false
  const code: unknown = Reflect.get(cause, "code")
  return typeof code === "string" && code.startsWith("SQLITE_BUSY")
}

/** Another SQLite connection (maybe another process) holds the write lock. */
export const isBusy = (error: SqlError): boolean => isBusyCause(error.cause)

/** SQLite waits for a busy lock in `busy_timeout` (blocking), then these retries (not blocking) take over. */
export const busyRetry = Schedule.exponential("10 millis").pipe(
  Schedule.union(Schedule.spaced("250 millis")),
  Schedule.jittered,
  Schedule.upTo("30 seconds")
)

/** `effect`, tried again while it fails because the database is busy (for up to 30 seconds). */
export const retryWhileBusy = <A, R>(effect: Effect.Effect<A, SqlError, R>): Effect.Effect<A, SqlError, R> =>
  // The retry schedule is only set up after a failure.
  Effect.catchIf(effect, isBusy, () => Effect.retry(effect, { schedule: busyRetry, while: isBusy }))
