/**
 * A connection lost in the middle of a transaction (a restarted server, an administrator's `pg_terminate_backend`, a cut
 * network) fails the operation with its own typed error, never with a defect. `@effect/sql` makes a failed ROLLBACK
 * die, past every caller's error handling; `internal/transaction.ts` turns it back into a failure. The event store's
 * append has its own test (`PgEventStore.test.ts`); these cover the other stores' transactions.
 *
 * Each test holds a lock the operation's transaction needs from a second connection, ends the operation's backend while
 * it waits there, and expects the operation's typed error, with nothing written; then the same operation succeeds on a
 * fresh connection.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Redacted, Schedule } from "effect"
import pg from "pg"
import * as Runner from "../../src/app/Runner.js"
import * as BudgetHolds from "../../src/infra/BudgetHolds.js"
import * as EchoExecutor from "../../src/infra/EchoExecutor.js"
import { EventStore } from "../../src/infra/EventStore.js"
import { MemoryIndex } from "../../src/infra/MemoryIndex.js"
import * as MemoryIndexSql from "../../src/infra/MemoryIndexSql.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as SessionSnapshots from "../../src/infra/SessionSnapshots.js"
import { TaskQueue } from "../../src/infra/TaskQueue.js"
import { plannerRuntime } from "../app/fixtures/runtime.js"
import { hold } from "./BudgetHoldsContract.js"
import { freshPgDatabase } from "./fixtures/databases.js"
import { job } from "./TaskQueueContract.js"

/** A second connection on `url`, closed with the scope. */
const connection = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

/**
 * Runs `operation` while another connection holds `table` locked, ends the operation's backend once it waits for that
 * lock, then lets go of the lock: the operation's exit.
 */
const endedWhileWaiting = <A, E, R>(url: string, table: string, operation: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const blocker = yield* connection(url)
    yield* Effect.promise(() => blocker.query(`BEGIN; LOCK TABLE ${table} IN EXCLUSIVE MODE`))
    const running = yield* Effect.fork(Effect.exit(operation))
    const waiting = Effect.promise(() =>
      blocker.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`
      )
    ).pipe(
      Effect.flatMap((result) =>
        result.rows[0] === undefined ? Effect.fail("not waiting yet" as const) : Effect.succeed(result.rows[0].pid)
      ),
      Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("20 seconds")))
    )
    const pid = yield* waiting
    yield* Effect.promise(() => blocker.query("SELECT pg_terminate_backend($1)", [pid]))
    yield* Effect.promise(() => blocker.query("COMMIT"))
    return yield* Fiber.join(running)
  })

/** The exit is the failure `tag`, not a defect. */
const expectTypedFailure = (exit: Exit.Exit<unknown, unknown>, tag: string) => {
  expect(Exit.isFailure(exit) && Cause.isDie(exit.cause), String(exit)).toBe(false)
  expect(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()).toMatchObject(
    Option.some({ _tag: tag })
  )
}

/** The store's services on a fresh database, with the memory index beside them. */
const services = Effect.gen(function* () {
  const url = yield* freshPgDatabase
  const layer = MemoryIndexSql.layer().pipe(Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) })))
  const context = yield* Layer.build(layer)
  return { url, context }
})

describe("a connection lost mid-transaction on PostgreSQL", () => {
  it.scopedLive("replacing a session's jobs fails with TaskQueueError and replaces nothing", () =>
    Effect.gen(function* () {
      const { url, context } = yield* services
      const queue = Context.get(context, TaskQueue)
      yield* queue.enqueue([job("s", 1)])
      const exit = yield* endedWhileWaiting(url, "planner_jobs", queue.replace("s", [job("s", 2)]))
      expectTypedFailure(exit, "TaskQueueError")
      expect((yield* queue.list()).map((one) => one.taskId)).toEqual([1])
      yield* queue.replace("s", [job("s", 2)])
      expect((yield* queue.list()).map((one) => one.taskId)).toEqual([2])
    })
  )

  it.scopedLive("admitting a budget hold fails with BudgetHoldsError and stores no hold", () =>
    Effect.gen(function* () {
      const { url, context } = yield* services
      const holds = Context.get(context, BudgetHolds.BudgetHolds)
      const seen: Array<number> = []
      const admit = (id: string) =>
        holds.admit("root", 1_000, (live) => {
          seen.push(live.length)
          return hold(id)
        })
      const exit = yield* endedWhileWaiting(url, "planner_budget_holds", admit("lost"))
      expectTypedFailure(exit, "BudgetHoldsError")
      expect(yield* admit("kept")).toBe(true)
      // The lost hold was never stored: the second admission saw no live hold.
      expect(seen).toEqual([0])
    })
  )

  it.scopedLive("clearing the memory index fails with MemoryIndexError and clears nothing", () =>
    Effect.gen(function* () {
      const { url, context } = yield* services
      const index = Context.get(context, MemoryIndex)
      yield* index.put([
        {
          _tag: "Session",
          sessionId: "s",
          request: "Write the login page",
          outcome: "Succeeded",
          summary: "",
          plan: [],
          durationMs: 1,
          finishedAt: 1
        }
      ])
      const exit = yield* endedWhileWaiting(url, "memory_docs", index.clear)
      expectTypedFailure(exit, "MemoryIndexError")
      expect(yield* index.all).toHaveLength(1)
      yield* index.clear
      expect(yield* index.all).toEqual([])
    })
  )

  it.scopedLive("pruning a finished session fails with EventStoreError and keeps its events", () =>
    Effect.gen(function* () {
      const url = yield* freshPgDatabase
      const context = yield* Layer.build(
        plannerRuntime(PgEventStore.layer({ url: Redacted.make(url) }), EchoExecutor.echo)
      )
      const finished = yield* Effect.gen(function* () {
        const { sessionId } = yield* Runner.start("Write the login page. Then test it.")
        expect((yield* Runner.run(sessionId)).state.status).toBe("Succeeded")
        return sessionId
      }).pipe(Effect.provide(context))
      const events = () =>
        Effect.map(
          Effect.flatMap(EventStore, (store) =>
            store.load({ streamId: PlannerStore.plannerStreamId, aggregateId: finished })
          ),
          (loaded) => loaded.length
        ).pipe(Effect.provide(context))
      const before = yield* events()
      expect(before).toBeGreaterThan(0)
      const prune = SessionSnapshots.prune(Number.MAX_SAFE_INTEGER).pipe(Effect.provide(context))
      const exit = yield* endedWhileWaiting(url, "session_snapshots", prune)
      expectTypedFailure(exit, "EventStoreError")
      expect(yield* events()).toBe(before)
      expect((yield* prune).pruned.map((one) => one.sessionId)).toEqual([finished])
      expect(yield* events()).toBe(0)
    })
  )
})
