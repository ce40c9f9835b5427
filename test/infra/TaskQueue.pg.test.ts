import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Redacted, Schedule, Stream } from "effect"
import type { NodeKind } from "../../src/domain/Task.js"
import * as PgPool from "../../src/infra/internal/pgPool.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as SqlTaskQueue from "../../src/infra/SqlTaskQueue.js"
import { TaskQueue } from "../../src/infra/TaskQueue.js"
import { endListening, freshPgDatabase, pgStoreRecordingPrepared } from "./fixtures/databases.js"
import {
  job,
  sqlTaskQueueContract,
  type TaskQueueTarget,
  taskQueueContract,
  untilAsleep,
  within,
  withQueue
} from "./TaskQueueContract.js"

const pgTarget: TaskQueueTarget<string, SqlClient.SqlClient> = {
  freshDatabase: freshPgDatabase,
  // The event store's layer runs the migrations; each instance has its own pool and its own LISTEN connection.
  layer: (url) => SqlTaskQueue.layer().pipe(Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) }))),
  wakesOtherInstances: true
}

taskQueueContract("SqlTaskQueue on PostgreSQL", pgTarget)
sqlTaskQueueContract("SqlTaskQueue on PostgreSQL", pgTarget)

/** The queue the event store's layer provides: its takes run as prepared statements on the store's pool. */
const preparedTarget: TaskQueueTarget<string, SqlClient.SqlClient> = {
  ...pgTarget,
  layer: (url) => PgEventStore.layer({ url: Redacted.make(url) })
}

taskQueueContract("SqlTaskQueue on PostgreSQL, takes prepared", preparedTarget)

describe("SqlTaskQueue on PostgreSQL", () => {
  it.effect("another process's waiter is woken by the commit of a transaction that enqueued, through NOTIFY", () =>
    withQueue(pgTarget, (queue, { context, second }) =>
      Effect.gen(function* () {
        const sql = Context.get(context, SqlClient.SqlClient)
        const other = yield* second
        yield* queue.enqueue([job("later", 1, { runAt: 3_600_000 })])
        const waiting = yield* Effect.fork(other.awaitWork())
        yield* untilAsleep()
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* queue.enqueue([job("s1", 1)])
            // Not committed: nobody else can see or take it yet.
            // (This fiber runs in the transaction; the other instance's take runs outside it, as another process.)
            const outside = other
              .take({ workerId: "w", limit: 10, leaseMs: 1_000 })
              .pipe(
                Effect.mapInputContext((context: Context.Context<never>) =>
                  Context.omit(SqlClient.TransactionConnection)(context)
                )
              )
            expect(yield* outside).toEqual([])
          })
        )
        yield* Fiber.join(waiting).pipe(within(10))
        const taken = yield* other.take({ workerId: "w", limit: 10, leaseMs: 1_000 })
        expect(taken.map((taken) => taken.taskId)).toEqual([1])
      })
    )
  )
})

describe("SqlTaskQueue on PostgreSQL, losing LISTEN", () => {
  it.live(
    "a waiter whose LISTEN connection the server ends is woken by what is enqueued elsewhere, not at its poll",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const elsewhere = Context.get(yield* Layer.build(pgTarget.layer(url)), TaskQueue)
          // This process's queue, on a pool of its own and the LISTEN it makes itself from the client's settings,
          // polls once a minute: what wakes it within seconds came through LISTEN.
          const pool = yield* PgPool.open({ url: Redacted.make(url) })
          const client = yield* Layer.build(PgClient.layerFromPool({ acquire: Effect.succeed(pool) }))
          const here = yield* SqlTaskQueue.make({ pollInterval: "1 minute" }).pipe(Effect.provide(client))
          const sql = Context.get(client, SqlClient.SqlClient)
          const asleep = Effect.sleep("300 millis")
          /** A waiter for `kind` that went to sleep, then `between`, then a job of that kind enqueued elsewhere. */
          const wokenBy = (kind: NodeKind, taskId: number, between: Effect.Effect<unknown, unknown> = Effect.void) =>
            Effect.gen(function* () {
              const waiting = yield* Effect.fork(here.awaitWork([kind]))
              yield* asleep
              yield* between
              yield* elsewhere.enqueue([job("s", taskId, { kind })])
              yield* Fiber.join(waiting).pipe(within(10))
            })
          yield* wokenBy("Processing", 1)
          // The server ends every LISTEN connection of the database while a waiter sleeps, and the job comes before
          // LISTEN is back (a second later): its notification reaches nobody here, so the waiter looks once it is back.
          const ended = Effect.flatMap(endListening(sql), (count) =>
            Effect.sync(() => expect(count).toBeGreaterThan(0))
          )
          yield* wokenBy("Analysis", 2, ended)
          // Later jobs wake it through LISTEN again.
          yield* wokenBy("ToolCall", 3)
        })
      )
  )
})

describe("SqlTaskQueue on PostgreSQL, starting LISTEN", () => {
  // A run's worker that waited first and was stopped while LISTEN was still coming up (its run ended: a sub-plan
  // waiting for an answer) used to leave the start memoized as an interruption: every later waiter of the queue was
  // interrupted at once, its worker's take loop never woke, and a forked sub-plan's job sat untaken forever.
  it.live("a waiter interrupted while LISTEN comes up leaves the queue's later waiters working", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const context = yield* Layer.build(PgEventStore.layer({ url: Redacted.make(url) }))
        const client = Context.get(context, SqlClient.SqlClient) as SqlClient.SqlClient & {
          readonly listen: (channel: string) => Stream.Stream<string, never>
        }
        const listenCalled = yield* Deferred.make<void>()
        // LISTEN that takes a second to come up, and says when it was asked for.
        const slowListen = (channel: string) =>
          Stream.unwrap(
            Effect.as(
              Effect.zipRight(Deferred.succeed(listenCalled, undefined), Effect.sleep("1 second")),
              client.listen(channel)
            )
          )
        const queue = yield* SqlTaskQueue.make({ listen: slowListen }).pipe(Effect.provide(context))
        const first = yield* Effect.fork(queue.awaitWork())
        yield* Deferred.await(listenCalled)
        yield* Fiber.interrupt(first)
        yield* queue.enqueue([job("s1", 1)])
        const later = yield* queue.awaitWork().pipe(Effect.timeout("20 seconds"), Effect.exit)
        expect(Exit.isSuccess(later)).toBe(true)
        const taken = yield* queue.take({ workerId: "w", limit: 1, leaseMs: 1_000 })
        expect(taken.map((taken) => taken.taskId)).toEqual([1])
      })
    )
  )
})

describe("SqlTaskQueue on PostgreSQL, lease commits", () => {
  // One connection, so that every statement below runs on the one whose setting is looked at.
  const oneConnection: TaskQueueTarget<string, SqlClient.SqlClient> = {
    ...pgTarget,
    layer: (url) =>
      SqlTaskQueue.layer().pipe(
        Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url), client: { maxConnections: 1 } }))
      )
  }
  it.effect(
    "a take, an extension or a report relaxes only its own commit; inside a caller's transaction nothing does",
    () =>
      withQueue(oneConnection, (queue, { context }) =>
        Effect.gen(function* () {
          const sql = Context.get(context, SqlClient.SqlClient)
          const reports = queue.reports
          if (reports === undefined) throw new Error("the PostgreSQL queue takes reports")
          yield* queue.enqueue([job("s1", 1), job("s1", 2), job("s1", 3)])
          const setting = Effect.map(
            sql<{ synchronous_commit: string }>`SHOW synchronous_commit`,
            (rows) => rows[0]?.synchronous_commit
          )
          // The test server runs with synchronous_commit off: the connection asks for durable commits, so that a
          // relaxed setting that outlived its statement's transaction would show.
          yield* sql`SET synchronous_commit = on`
          expect(yield* setting).toBe("on")
          const inside = yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* queue.take({ workerId: "w", limit: 1, leaseMs: 1_000 })
              yield* queue.extendLeases("w", 1_000)
              yield* reports.report({ sessionId: "s1", taskId: 1, attempt: 1 }, "w", "done")
              return yield* setting
            })
          )
          expect(inside).toBe("on")
          expect((yield* queue.take({ workerId: "w", limit: 2, leaseMs: 1_000 })).map((taken) => taken.taskId)).toEqual(
            [2, 3]
          )
          expect(yield* queue.extendLeases("w", 1_000)).toBe(2)
          expect((yield* reports.report({ sessionId: "s1", taskId: 2, attempt: 1 }, "w", "done")).stored).toBe(true)
          // The relaxed setting was local to those statements' own transactions.
          expect(yield* setting).toBe("on")
        })
      )
  )
})

describe("SqlTaskQueue on PostgreSQL, relaxed takes", () => {
  // The other half of "lease commits": outside a caller's transaction a take does ask for a relaxed commit.
  let names: ReadonlyArray<string> = []
  const recording: TaskQueueTarget<string, never> = {
    ...pgTarget,
    layer: (url) =>
      Layer.unwrapScoped(
        Effect.map(pgStoreRecordingPrepared(url), (recorded) => {
          names = recorded.names
          return recorded.layer
        })
      )
  }
  it.effect("a take outside a caller's transaction runs as the relaxed statement", () =>
    withQueue(recording, (queue) =>
      Effect.gen(function* () {
        yield* queue.enqueue([job("s1", 1)])
        expect((yield* queue.take({ workerId: "w", limit: 1, leaseMs: 1_000 })).map((taken) => taken.taskId)).toEqual([
          1
        ])
        const takes = names.filter((name) => name.startsWith("planner_jobs_take"))
        expect(takes.length).toBeGreaterThan(0)
        expect(takes.every((name) => name.endsWith("_relaxed"))).toBe(true)
      })
    )
  )
})

describe("SqlTaskQueue on PostgreSQL, reclaiming ended jobs' space", () => {
  // Every ended job leaves dead row versions (and their index entries) that each take walks past until a vacuum; the
  // workers' upkeep calls `reclaim`, which vacuums once enough have gathered, never for a few among many live jobs.
  const reclaimTarget: TaskQueueTarget<string, SqlClient.SqlClient> = {
    ...pgTarget,
    layer: (url) =>
      SqlTaskQueue.layer({ reclaimAfter: 50 }).pipe(Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) })))
  }
  const jobKeys = (sessionId: string, count: number) =>
    Array.from({ length: count }, (_, index) => ({ sessionId, taskId: index + 1, attempt: 1 }))

  it.live("vacuums the job table once its dead versions pass the bound and a quarter of its live rows", () =>
    withQueue(reclaimTarget, (queue, { context }) =>
      Effect.gen(function* () {
        const sql = Context.get(context, SqlClient.SqlClient)
        const reclaim = queue.reclaim
        if (reclaim === undefined) throw new Error("the PostgreSQL queue reclaims")
        const stats = Effect.map(
          sql<{ readonly dead: string; readonly live: string; readonly vacuums: string }>`
            SELECT n_dead_tup AS dead, n_live_tup AS live, vacuum_count AS vacuums FROM pg_stat_user_tables
            WHERE relid = to_regclass('planner_jobs')`,
          (rows) => ({
            dead: Number(rows[0]?.dead ?? 0),
            live: Number(rows[0]?.live ?? 0),
            vacuums: Number(rows[0]?.vacuums ?? 0)
          })
        )
        // The server's statistics lag the writes by up to a second or so: wait until they show what was done.
        const until = (check: (seen: { dead: number; live: number }) => boolean) =>
          stats.pipe(
            Effect.repeat({ until: check, schedule: Schedule.spaced("50 millis") }),
            Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("statistics never caught up") })
          )

        // Autovacuum stays out of it (it may visit this database at any moment of a long test run).
        yield* sql`ALTER TABLE planner_jobs SET (autovacuum_enabled = false)`
        // 40 ended jobs: under the bound of 50, nothing is done.
        yield* queue.enqueue(jobKeys("few", 40).map((key) => job(key.sessionId, key.taskId)))
        yield* queue.complete(jobKeys("few", 40))
        yield* until((seen) => seen.dead >= 40)
        expect(yield* reclaim).toBe(false)

        // 400 live jobs and 60 ended: over the bound, but dead versions are not yet a quarter of the live rows.
        yield* queue.enqueue(jobKeys("many", 400).map((key) => job(key.sessionId, key.taskId)))
        yield* queue.enqueue(jobKeys("more", 20).map((key) => job(key.sessionId, key.taskId)))
        yield* queue.complete(jobKeys("more", 20))
        yield* until((seen) => seen.dead >= 60 && seen.live >= 400)
        expect(yield* reclaim).toBe(false)
        expect((yield* stats).vacuums).toBe(0)

        // The 400 end too: now it vacuums, and the dead versions are gone.
        yield* queue.complete(jobKeys("many", 400))
        yield* until((seen) => seen.dead >= 460)
        expect(yield* reclaim).toBe(true)
        const after = yield* stats
        expect(after.vacuums).toBe(1)
        expect(after.dead).toBe(0)
        expect(yield* queue.list()).toEqual([])
      })
    )
  )
})

describe("SqlTaskQueue on PostgreSQL, a take's limit", () => {
  // With `id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` PostgreSQL may run the sub-select again for each row it
  // considers, and each run skips the rows already updated and picks the next n: one take took every due job (a
  // worker of concurrency 4 started 400 attempts at once). The planner is steered here to that plan (no hash or merge
  // join, no materialising or sorting), which it may also choose by itself from the table's statistics.
  for (const [variant, prepared] of [
    ["statements unnamed", false],
    ["statements prepared", true]
  ] as const) {
    it.live(`${variant}: a take, alone or with a report, takes at most its limit, whatever the plan`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const name = new URL(url).pathname.slice(1)
          const admin = yield* Layer.build(PgEventStore.layer({ url: Redacted.make(url) }))
          const sql = Context.get(admin, SqlClient.SqlClient)
          for (const setting of [
            "enable_hashjoin",
            "enable_mergejoin",
            "enable_material",
            "enable_hashagg",
            "enable_sort"
          ]) {
            yield* sql.unsafe(`ALTER DATABASE "${name}" SET ${setting} = off`)
          }
          const layer = prepared
            ? PgEventStore.layer({ url: Redacted.make(url) })
            : SqlTaskQueue.layer().pipe(Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) })))
          const context = yield* Layer.build(layer)
          const queue = Context.get(context, TaskQueue)
          yield* queue.enqueue(Array.from({ length: 60 }, (_, index) => job("many", index + 1)))
          const taken = yield* queue.take({ workerId: "w", limit: 4, leaseMs: 60_000 })
          expect(taken.length).toBe(4)
          // A report's statement takes the reporter's next jobs too: at most the limit it asked for.
          const reports = queue.reports
          if (reports === undefined) throw new Error("the PostgreSQL queue takes reports")
          let alongside: ReadonlyArray<unknown> = []
          const [first] = taken
          if (first === undefined) throw new Error("nothing taken")
          yield* reports.report(first, "w", ["done"], {
            options: { workerId: "w", limit: 3, leaseMs: 60_000 },
            now: Date.now(),
            taken: (jobs) => {
              alongside = jobs
            }
          })
          expect(alongside.length).toBe(3)
          const held = yield* sql<{ readonly count: string }>`
            SELECT count(*) AS count FROM planner_jobs WHERE worker_id = 'w'`
          expect(Number(held[0]?.count)).toBe(7)
        })
      )
    )
  }
})
