/**
 * The `TaskQueue` contract, run unchanged against every layer (like `EventStoreContract.ts`). Each test gets a fresh
 * database from the target; building `target.layer` twice over one database gives two queue instances over the same
 * jobs, as two worker processes have.
 *
 * Time is the TestClock (`it.effect`): leases, backoff and `awaitWork`'s own sleeps only move when a test adjusts it,
 * so "not yet" and "now" are exact, and a wait that resolves without an adjustment was woken by a signal. Layers are
 * built and real waits bounded with the live clock (`TestServices.provideLive`).
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Fiber, Layer, type Scope, TestClock, TestServices } from "effect"
import type { NodeKind } from "../../src/domain/Task.js"
import {
  type Job,
  jobKeyString,
  type TakenJob,
  TaskQueue,
  TaskQueueError,
  type TaskQueueService
} from "../../src/infra/TaskQueue.js"

export interface TaskQueueTarget<Db, Extra = never> {
  /** A new, empty database, removed when the scope closes. */
  readonly freshDatabase: Effect.Effect<Db, unknown, Scope.Scope>
  /** A queue instance over `db` (with the event store's migrations run). */
  readonly layer: (db: Db) => Layer.Layer<TaskQueue | Extra, unknown>
  /** Whether an enqueue through one instance wakes another instance's `awaitWork` without its poll. */
  readonly wakesOtherInstances: boolean
}

// --- Helpers --------------------------------------------------------------------------------------------------------

export const job = (sessionId: string, taskId: number, overrides: Partial<Job> = {}): Job => ({
  sessionId,
  taskId,
  attempt: 1,
  kind: "Processing",
  runAt: 0,
  payload: { description: `task ${taskId} of ${sessionId}`, nested: { list: [1, "two", null], ok: true } },
  ...overrides
})

const keys = (jobs: ReadonlyArray<Pick<Job, "sessionId" | "taskId" | "attempt">>) => jobs.map(jobKeyString)

/** Runs with the live clock: building layers, and bounding real waits. */
const live = TestServices.provideLive

/** Fails after `seconds` of real time instead of letting a lost wake-up hang the test until vitest's timeout. */
export const within =
  (seconds: number) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    live(
      Effect.timeoutFail(effect, {
        duration: `${seconds} seconds`,
        onTimeout: () => new Error(`timed out after ${seconds} s`)
      })
    )

export const instance = <Db, Extra>(target: TaskQueueTarget<Db, Extra>, db: Db) =>
  Effect.map(live(Layer.build(target.layer(db))), (context) => ({ queue: Context.get(context, TaskQueue), context }))

/** Runs `body` against a queue on a fresh database; `second` builds another instance over the same database. */
export const withQueue = <Db, Extra, A, E>(
  target: TaskQueueTarget<Db, Extra>,
  body: (
    queue: TaskQueueService,
    tools: {
      readonly db: Db
      readonly context: Context.Context<TaskQueue | Extra>
      readonly second: Effect.Effect<TaskQueueService, unknown, Scope.Scope>
    }
  ) => Effect.Effect<A, E, Scope.Scope>
): Effect.Effect<A, unknown> =>
  Effect.scoped(
    Effect.gen(function* () {
      const db = yield* live(target.freshDatabase)
      const { queue, context } = yield* instance(target, db)
      const second = Effect.map(instance(target, db), (built) => built.queue)
      return yield* body(queue, { db, context, second })
    })
  )

/** Waits (in real time, briefly) until a fiber sleeps on the TestClock: it has looked, found nothing, and waits. */
export const untilAsleep = (count = 1) =>
  Effect.gen(function* () {
    for (let round = 0; round < 2_000; round++) {
      if ((yield* TestClock.sleeps()).length >= count) return
      yield* live(Effect.sleep("5 millis"))
    }
    return yield* Effect.fail(new Error("the waiter never went to sleep"))
  })

const lease = 10_000

// --- The contract ---------------------------------------------------------------------------------------------------

export const taskQueueContract = <Db, Extra>(name: string, target: TaskQueueTarget<Db, Extra>) =>
  describe(`${name}: the TaskQueue contract`, () => {
    it.effect(
      "workers announce what they serve; another instance sees the live ones, not those withdrawn or run out",
      () =>
        withQueue(target, (queue, { second }) =>
          Effect.gen(function* () {
            const registry = queue.workers
            if (registry === undefined) throw new Error("this queue keeps the workers' announcements")
            const a = { workerId: "host/1/a", kinds: ["Processing" as const], expiresAt: 2_000 }
            const b = {
              workerId: "host/2/b",
              kinds: ["ToolCall" as const, "Analysis" as const],
              sessionId: "s1",
              expiresAt: 5_000
            }
            yield* registry.announce(a)
            yield* registry.announce(b)
            expect(yield* registry.live(1_000)).toEqual([a, b])
            // Renewed, with other kinds and for every session.
            const renewed = {
              workerId: "host/1/a",
              kinds: ["Processing" as const, "ToolCall" as const],
              expiresAt: 6_000
            }
            yield* registry.announce(renewed)
            const other = (yield* second).workers
            expect(yield* other?.live(3_000) ?? Effect.succeed(undefined)).toEqual([renewed, b])
            yield* registry.withdraw(b.workerId)
            expect(yield* registry.live(3_000)).toEqual([renewed])
            // Run out: not listed, and removed as a live worker announces itself.
            expect(yield* registry.live(6_000)).toEqual([])
            yield* TestClock.adjust(7_000)
            const later = { workerId: "host/3/c", kinds: ["UnitTest" as const], expiresAt: 20_000 }
            yield* registry.announce(later)
            expect(yield* other?.live(0) ?? Effect.succeed(undefined)).toEqual([later])
          })
        )
    )

    it.effect("an enqueued job is listed and taken back with its payload, kind and run time", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const first = job("s1", 1, { kind: "UnitTest", payload: { text: "quotes ' \" and unicode ✓ 漢字", n: 1.5 } })
          const second = job("s1", 2, { attempt: 3, runAt: 0 })
          yield* queue.enqueue([first, second])
          expect(yield* queue.list()).toEqual([first, second])
          const taken = yield* queue.take({ workerId: "w1", limit: 10, leaseMs: lease })
          expect(taken).toEqual([
            { ...first, workerId: "w1", leaseExpiresAt: lease, takes: 1 },
            { ...second, workerId: "w1", leaseExpiresAt: lease, takes: 1 }
          ])
          expect(yield* queue.list("s1")).toEqual([
            { ...first, workerId: "w1", leaseExpiresAt: lease },
            { ...second, workerId: "w1", leaseExpiresAt: lease }
          ])
        })
      )
    )

    it.effect("enqueue is idempotent on (session, task, attempt): a repeat changes nothing", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const original = job("s1", 1)
          yield* queue.enqueue([original])
          const [taken] = yield* queue.take({ workerId: "w1", limit: 1, leaseMs: lease })
          expect(taken?.takes).toBe(1)
          // The same key again, even with other fields: the job keeps its payload and stays with its holder.
          yield* queue.enqueue([{ ...original, payload: "other", runAt: 5, kind: "Analysis" }, original])
          expect(yield* queue.list()).toEqual([{ ...original, workerId: "w1", leaseExpiresAt: lease }])
          expect(yield* queue.take({ workerId: "w2", limit: 10, leaseMs: lease })).toEqual([])
          // Another attempt of the same task is another job.
          yield* queue.enqueue([{ ...original, attempt: 2 }])
          expect(keys(yield* queue.take({ workerId: "w2", limit: 10, leaseMs: lease }))).toEqual(["s1/1/2"])
        })
      )
    )

    it.effect("8 concurrent takers over two instances: every job is taken by exactly one of them", () =>
      withQueue(target, (queue, { second }) =>
        Effect.gen(function* () {
          const other = yield* second
          const jobs = Array.from({ length: 60 }, (_, index) => job(`s${index % 3}`, index + 1))
          yield* queue.enqueue(jobs)
          const taker = (index: number) =>
            Effect.gen(function* () {
              const instance = index % 2 === 0 ? queue : other
              const mine: Array<TakenJob> = []
              while (true) {
                const taken = yield* instance.take({ workerId: `w${index}`, limit: 1 + (index % 3), leaseMs: lease })
                if (taken.length === 0) return mine
                mine.push(...taken)
              }
            })
          const results = yield* Effect.all(
            Array.from({ length: 8 }, (_, index) => taker(index)),
            { concurrency: "unbounded" }
          ).pipe(within(60))
          const all = results.flat()
          expect(all.map((taken) => taken.takes)).toEqual(all.map(() => 1))
          expect(keys(all).sort()).toEqual(keys(jobs).sort())
          for (const [index, mine] of results.entries()) {
            expect(mine.every((taken) => taken.workerId === `w${index}`)).toBe(true)
          }
          const listed = yield* queue.list()
          expect(listed).toHaveLength(60)
          for (const row of listed) {
            const holder = results.findIndex((mine) => keys(mine).includes(jobKeyString(row)))
            expect(row.workerId).toBe(`w${holder}`)
          }
        })
      )
    )

    it.effect("an expired lease makes the job takeable again, by the Clock", () =>
      withQueue(target, (queue, { second }) =>
        Effect.gen(function* () {
          const other = yield* second
          yield* queue.enqueue([job("s1", 1)])
          const [first] = yield* queue.take({ workerId: "w1", limit: 5, leaseMs: 1_000 })
          expect(first).toMatchObject({ workerId: "w1", leaseExpiresAt: 1_000, takes: 1 })
          yield* TestClock.adjust(999)
          expect(yield* other.take({ workerId: "w2", limit: 5, leaseMs: 1_000 })).toEqual([])
          yield* TestClock.adjust(1)
          const [again] = yield* other.take({ workerId: "w2", limit: 5, leaseMs: 1_000 })
          expect(again).toMatchObject({ sessionId: "s1", taskId: 1, workerId: "w2", leaseExpiresAt: 2_000, takes: 2 })
          // The first worker's lease is gone: it can no longer extend it, nor give the job back.
          expect(yield* queue.extendLeases("w1", 1_000)).toBe(0)
          yield* queue.release({ sessionId: "s1", taskId: 1, attempt: 1 }, "w1")
          expect(yield* queue.list()).toEqual([{ ...job("s1", 1), workerId: "w2", leaseExpiresAt: 2_000 }])
        })
      )
    )

    it.effect("a job enqueued as taken by a worker is that worker's until its lease runs out, and wakes nobody", () =>
      withQueue(target, (queue, { second }) =>
        Effect.gen(function* () {
          const other = yield* second
          const key = { sessionId: "s1", taskId: 1, attempt: 1 }
          // Something for later, so every layer's waiter sleeps on the TestClock until this test advances it.
          yield* queue.enqueue([job("later", 1, { runAt: 3_600_000 })])
          const waiting = yield* Effect.fork(queue.awaitWork())
          yield* untilAsleep()
          yield* queue.enqueue([job("s1", 1)], { takenBy: { workerId: "w1", leaseExpiresAt: 1_000 } })
          // Idempotent like any enqueue: a repeat neither moves the lease nor gives the job to another worker.
          yield* queue.enqueue([job("s1", 1)], { takenBy: { workerId: "w9", leaseExpiresAt: 9_000 } })
          yield* untilAsleep()
          expect(waiting.unsafePoll()).toBeNull()
          expect(yield* queue.list("s1")).toEqual([{ ...job("s1", 1), workerId: "w1", leaseExpiresAt: 1_000 }])
          expect(yield* other.take({ workerId: "w2", limit: 5, leaseMs: 1_000 })).toEqual([])
          // Its holder renews it like a job it took itself.
          expect(yield* queue.extendLeases("w1", 500)).toBe(1)
          expect((yield* queue.list("s1"))[0]?.leaseExpiresAt).toBe(500)
          // A waiter for the session sleeps until the lease runs out, then the job is takeable again.
          const forSession = yield* Effect.fork(queue.awaitWork(undefined, "s1"))
          yield* untilAsleep(2)
          expect(forSession.unsafePoll()).toBeNull()
          yield* TestClock.adjust(500)
          yield* Fiber.join(forSession).pipe(within(10))
          const [again] = yield* other.take({ workerId: "w2", limit: 5, leaseMs: 1_000 })
          expect(again).toMatchObject({ ...key, workerId: "w2", takes: 2 })
          yield* queue.complete(key)
          expect(keys(yield* queue.list())).toEqual(["later/1/1"])
          yield* Fiber.interrupt(waiting)
        })
      )
    )

    it.effect("a job is not taken before its runAt; due jobs come oldest runAt first", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          yield* queue.enqueue([
            job("s1", 1, { runAt: 5_000 }),
            job("s1", 2, { runAt: 3_000 }),
            job("s1", 3, { runAt: 3_000 }),
            job("s1", 4, { runAt: 0 })
          ])
          expect(keys(yield* queue.take({ workerId: "w", limit: 10, leaseMs: lease }))).toEqual(["s1/4/1"])
          yield* TestClock.adjust(2_999)
          expect(yield* queue.take({ workerId: "w", limit: 10, leaseMs: lease })).toEqual([])
          yield* TestClock.adjust(1)
          expect(keys(yield* queue.take({ workerId: "w", limit: 1, leaseMs: lease }))).toEqual(["s1/2/1"])
          yield* TestClock.adjust(5_000)
          expect(keys(yield* queue.take({ workerId: "w", limit: 10, leaseMs: lease }))).toEqual(["s1/3/1", "s1/1/1"])
        })
      )
    )

    it.effect("a completed job is never handed out again, not after its lease or a release", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const done = job("s1", 1)
          yield* queue.enqueue([done, job("s1", 2)])
          yield* queue.take({ workerId: "w1", limit: 1, leaseMs: 1_000 })
          yield* queue.complete(done)
          yield* queue.complete(done)
          yield* queue.release(done, "w1")
          yield* TestClock.adjust(5_000)
          expect(keys(yield* queue.list())).toEqual(["s1/2/1"])
          expect(keys(yield* queue.take({ workerId: "w2", limit: 10, leaseMs: 1_000 }))).toEqual(["s1/2/1"])
          yield* TestClock.adjust(5_000)
          expect(keys(yield* queue.take({ workerId: "w3", limit: 10, leaseMs: 1_000 }))).toEqual(["s1/2/1"])
          // Completing a job nobody holds (or that does not exist) is fine: the outcome is what counts.
          yield* queue.complete({ sessionId: "s1", taskId: 2, attempt: 1 })
          yield* queue.complete({ sessionId: "nope", taskId: 9, attempt: 9 })
          expect(yield* queue.list()).toEqual([])
          expect(yield* queue.take({ workerId: "w4", limit: 10, leaseMs: 1_000 })).toEqual([])
        })
      )
    )

    it.effect("completing several jobs at once removes exactly those, across sessions and attempts", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const jobs = [
            ...Array.from({ length: 700 }, (_, index) => job("s1", index + 1)),
            job("s2", 1),
            job("s2", 1, { attempt: 2 })
          ]
          yield* queue.enqueue(jobs)
          yield* queue.take({ workerId: "w1", limit: 5, leaseMs: 1_000 })
          // More keys than one statement takes, held and waiting ones, another session, an attempt that differs, a key
          // that does not exist.
          const done = [
            ...jobs.filter((candidate) => candidate.sessionId === "s1" && candidate.taskId % 2 === 1),
            { sessionId: "s2", taskId: 1, attempt: 2 },
            { sessionId: "s3", taskId: 1, attempt: 1 }
          ]
          yield* queue.complete(done)
          yield* queue.complete(done)
          yield* queue.complete([])
          const wanted = [
            ...jobs.filter((candidate) => candidate.sessionId === "s1" && candidate.taskId % 2 === 0),
            job("s2", 1)
          ]
          expect(keys(yield* queue.list()).sort()).toEqual(keys(wanted).sort())
        })
      )
    )

    it.effect("release gives a job back at once, and only its holder can", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const key = { sessionId: "s1", taskId: 1, attempt: 1 }
          yield* queue.enqueue([job("s1", 1), job("s1", 2, { runAt: 1_000 })])
          yield* queue.take({ workerId: "w1", limit: 1, leaseMs: lease })
          yield* queue.release(key, "w2")
          expect(yield* queue.take({ workerId: "w2", limit: 10, leaseMs: lease })).toEqual([])
          yield* queue.release(key, "w1")
          expect(yield* queue.list("s1")).toEqual([job("s1", 1), job("s1", 2, { runAt: 1_000 })])
          // A job given back does not count as a take whose lease ran out.
          const [again] = yield* queue.take({ workerId: "w2", limit: 10, leaseMs: lease })
          expect(again).toMatchObject({ ...key, workerId: "w2", takes: 1 })
          // A released job that is not due yet waits for its runAt.
          yield* TestClock.adjust(1_000)
          const [later] = yield* queue.take({ workerId: "w3", limit: 1, leaseMs: lease })
          yield* queue.release(later ?? key, "w3")
          expect(keys(yield* queue.take({ workerId: "w4", limit: 10, leaseMs: lease }))).toEqual(["s1/2/1"])
        })
      )
    )

    it.effect("lapse ends its holder's lease at once: the job is takeable again and its take counts", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const lapse = queue.lapse
          if (lapse === undefined) throw new Error("the queue ends leases")
          const key = { sessionId: "s1", taskId: 1, attempt: 1 }
          yield* queue.enqueue([job("s1", 1), job("s1", 2)])
          yield* queue.take({ workerId: "w1", limit: 2, leaseMs: lease })
          // Only its holder can.
          yield* lapse(key, "w2")
          expect(yield* queue.take({ workerId: "w2", limit: 10, leaseMs: lease })).toEqual([])
          yield* lapse(key, "w1")
          // Still named for its worker, as a lease that ran out is, and no longer renewed with the worker's others.
          expect((yield* queue.list("s1")).find((listed) => listed.taskId === 1)?.workerId).toBe("w1")
          expect(yield* queue.extendLeases("w1", lease)).toBe(1)
          // Its take counts: the next one finds the attempt lost, as after a lease that ran out.
          const again = yield* queue.take({ workerId: "w2", limit: 10, leaseMs: lease })
          expect(again).toEqual([expect.objectContaining({ ...key, workerId: "w2", takes: 2 })])
          // Its former holder cannot end the new holder's lease.
          yield* lapse(key, "w1")
          expect(yield* queue.extendLeases("w2", lease)).toBe(1)
        })
      )
    )

    it.effect("remove drops a session's unfinished jobs, or some of its tasks', and nothing else", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          yield* queue.enqueue([job("s1", 1), job("s1", 2), job("s1", 3), job("s1", 3, { attempt: 2 }), job("s2", 1)])
          yield* queue.take({ workerId: "w1", limit: 1, leaseMs: lease })
          yield* queue.complete({ sessionId: "s1", taskId: 2, attempt: 1 })
          yield* queue.remove("s1", [3])
          expect(keys(yield* queue.list())).toEqual(["s1/1/1", "s2/1/1"])
          yield* queue.remove("s1", [])
          expect(keys(yield* queue.list())).toEqual(["s1/1/1", "s2/1/1"])
          yield* queue.remove("s1")
          expect(keys(yield* queue.list())).toEqual(["s2/1/1"])
          expect(keys(yield* queue.take({ workerId: "w2", limit: 10, leaseMs: lease }))).toEqual(["s2/1/1"])
        })
      )
    )

    it.effect("extendLeases renews only that worker's live leases, in one call", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          yield* queue.enqueue([job("s1", 1), job("s1", 2), job("s2", 1)])
          yield* queue.take({ workerId: "a", limit: 1, leaseMs: 1_000, sessionId: "s2" })
          yield* queue.take({ workerId: "b", limit: 2, leaseMs: 1_000 })
          yield* TestClock.adjust(900)
          expect(yield* queue.extendLeases("b", 1_000)).toBe(2)
          expect(yield* queue.extendLeases("nobody", 1_000)).toBe(0)
          yield* TestClock.adjust(500)
          // a's lease ran out at 1,000; b's now run to 1,900.
          expect(keys(yield* queue.take({ workerId: "c", limit: 10, leaseMs: 1_000 }))).toEqual(["s2/1/1"])
          expect(yield* queue.extendLeases("a", 1_000)).toBe(0)
          yield* TestClock.adjust(500)
          expect(keys(yield* queue.take({ workerId: "c", limit: 10, leaseMs: 1_000 }))).toEqual(["s1/1/1", "s1/2/1"])
        })
      )
    )

    it.effect("heldBy names the jobs extendLeases would renew for a worker: its live leases, nothing else", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const heldBy = queue.heldBy
          if (heldBy === undefined) return expect.fail("every built-in queue says which jobs a worker holds")
          yield* queue.enqueue([job("s1", 1), job("s1", 2), job("s2", 1), job("s2", 2)])
          yield* queue.take({ workerId: "a", limit: 1, leaseMs: 1_000, sessionId: "s2" })
          yield* queue.take({ workerId: "b", limit: 2, leaseMs: 1_000, sessionId: "s1" })
          yield* queue.take({ workerId: "b", limit: 1, leaseMs: 5_000, sessionId: "s2" })
          expect((yield* heldBy("b")).map(jobKeyString)).toEqual(["s1/1/1", "s1/2/1", "s2/2/1"])
          expect((yield* heldBy("a")).map(jobKeyString)).toEqual(["s2/1/1"])
          expect(yield* heldBy("nobody")).toEqual([])
          // Leases that ran out are no longer held; a released job is nobody's.
          yield* TestClock.adjust(1_000)
          expect((yield* heldBy("b")).map(jobKeyString)).toEqual(["s2/2/1"])
          yield* queue.release({ sessionId: "s2", taskId: 2, attempt: 1 }, "b")
          expect(yield* heldBy("b")).toEqual([])
          expect(yield* heldBy("a")).toEqual([])
        })
      )
    )

    it.effect("holders names each worker on an unfinished job once, leases run out or not, as list does", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const holders = queue.holders
          if (holders === undefined) return expect.fail("every built-in queue names its holders")
          expect(yield* holders()).toEqual([])
          yield* queue.enqueue([job("s1", 1), job("s1", 2), job("s2", 1), job("s2", 2), job("s3", 1)])
          yield* queue.take({ workerId: "b", limit: 2, leaseMs: 1_000, sessionId: "s1" })
          yield* queue.take({ workerId: "a", limit: 1, leaseMs: 1_000, sessionId: "s2" })
          yield* queue.take({ workerId: "b", limit: 1, leaseMs: 5_000, sessionId: "s2" })
          expect(yield* holders()).toEqual(["a", "b"])
          expect(yield* holders("s1")).toEqual(["b"])
          expect(yield* holders("s3")).toEqual([])
          // A lease that ran out still names its worker (as list does, for the sweep of dead workers); a released or
          // completed job names nobody.
          yield* TestClock.adjust(1_000)
          expect(yield* holders("s1")).toEqual(["b"])
          const listed = (yield* queue.list()).flatMap((listed) =>
            listed.workerId === undefined ? [] : [listed.workerId]
          )
          expect(yield* holders()).toEqual([...new Set(listed)].sort())
          yield* queue.release({ sessionId: "s2", taskId: 1, attempt: 1 }, "a")
          yield* queue.complete([
            { sessionId: "s1", taskId: 1, attempt: 1 },
            { sessionId: "s1", taskId: 2, attempt: 1 }
          ])
          expect(yield* holders()).toEqual(["b"])
          expect(yield* holders("s1")).toEqual([])
        })
      )
    )

    it.effect("take filters by kinds and by session", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const kinds: ReadonlyArray<NodeKind> = ["UnitTest", "Retrieval"]
          yield* queue.enqueue([
            job("s1", 1, { kind: "UnitTest" }),
            job("s1", 2, { kind: "Processing" }),
            job("s2", 1, { kind: "Retrieval" }),
            job("s2", 2, { kind: "UnitTest" })
          ])
          expect(yield* queue.take({ workerId: "w", kinds: [], limit: 10, leaseMs: lease })).toEqual([])
          expect(keys(yield* queue.take({ workerId: "w", kinds, sessionId: "s2", limit: 1, leaseMs: lease }))).toEqual([
            "s2/1/1"
          ])
          expect(keys(yield* queue.take({ workerId: "w", kinds, limit: 10, leaseMs: lease }))).toEqual([
            "s1/1/1",
            "s2/2/1"
          ])
          expect(keys(yield* queue.take({ workerId: "w", sessionId: "s2", limit: 10, leaseMs: lease }))).toEqual([])
          expect(keys(yield* queue.take({ workerId: "w", limit: 10, leaseMs: lease }))).toEqual(["s1/2/1"])
        })
      )
    )

    it.effect(
      "replace makes a session's unfinished jobs exactly the given ones, keeping leases of those it keeps",
      () =>
        withQueue(target, (queue) =>
          Effect.gen(function* () {
            yield* queue.enqueue([job("s1", 1), job("s1", 2), job("s1", 3), job("s2", 1)])
            yield* queue.take({ workerId: "w1", limit: 1, leaseMs: lease })
            yield* queue.complete({ sessionId: "s1", taskId: 3, attempt: 1 })
            // Keep 1 (held by w1), drop 2, reopen 3 (the log says it is unfinished), add 4 with a later runAt.
            const wanted = [job("s1", 1), job("s1", 3), job("s1", 4, { runAt: 500, kind: "Analysis" })]
            yield* queue.replace("s1", wanted)
            expect(yield* queue.list()).toEqual([
              { ...job("s1", 1), workerId: "w1", leaseExpiresAt: lease },
              job("s1", 3),
              job("s1", 4, { runAt: 500, kind: "Analysis" }),
              job("s2", 1)
            ])
            expect(keys(yield* queue.take({ workerId: "w2", limit: 10, leaseMs: lease, sessionId: "s1" }))).toEqual([
              "s1/3/1"
            ])
            yield* queue.replace("s1", [])
            expect(keys(yield* queue.list())).toEqual(["s2/1/1"])
            const refused = yield* Effect.either(queue.replace("s1", [job("s2", 9)]))
            expect(Either.isLeft(refused) && refused.left).toBeInstanceOf(TaskQueueError)
            expect(Either.isLeft(refused) && refused.left.message).toMatch(/s2\/9\/1 is not of session s1/)
          })
        )
    )

    it.effect("a payload that is not JSON is refused with a clear error, and nothing is enqueued", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const refused = yield* Effect.either(queue.enqueue([job("s1", 1), job("s1", 2, { payload: 10n })]))
          expect(Either.isLeft(refused) && refused.left.message).toMatch(/payload of job s1\/2\/1 cannot be stored/)
          expect(yield* queue.list()).toEqual([])
        })
      )
    )

    it.effect("awaitWork returns at once when a job is due, and otherwise sleeps until the next runAt", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          yield* queue.enqueue([job("s1", 1)])
          yield* queue.awaitWork().pipe(within(10))
          yield* queue.take({ workerId: "w", limit: 1, leaseMs: 60_000 })
          yield* queue.enqueue([job("s1", 2, { runAt: 2_000, kind: "UnitTest" })])
          const waiting = yield* Effect.fork(queue.awaitWork(["UnitTest"]))
          yield* untilAsleep()
          expect(waiting.unsafePoll()).toBeNull()
          yield* TestClock.adjust(2_000)
          yield* Fiber.join(waiting).pipe(within(10))
          expect(keys(yield* queue.take({ workerId: "w", limit: 1, leaseMs: lease }))).toEqual(["s1/2/1"])
        })
      )
    )

    it.effect("awaitWork looks only at jobs of the kinds and session asked for", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          yield* queue.enqueue([
            job("other", 1, { kind: "UnitTest" }),
            job("mine", 1, { kind: "Analysis" }),
            job("mine", 2, { kind: "UnitTest", runAt: 1_000 })
          ])
          const waiting = yield* Effect.fork(queue.awaitWork(["UnitTest"], "mine"))
          yield* untilAsleep()
          expect(waiting.unsafePoll()).toBeNull()
          yield* TestClock.adjust(1_000)
          yield* Fiber.join(waiting).pipe(within(10))
          yield* queue.awaitWork(["Analysis"], "mine").pipe(within(10))
          yield* queue.awaitWork(undefined, "other").pipe(within(10))
        })
      )
    )

    it.effect("awaitWork is woken by an enqueue, not by its poll", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          // Something for later, so every layer's waiter sleeps on the TestClock, which this test never advances.
          yield* queue.enqueue([job("later", 1, { runAt: 3_600_000 })])
          const waiting = yield* Effect.fork(queue.awaitWork())
          yield* untilAsleep()
          expect(waiting.unsafePoll()).toBeNull()
          yield* queue.enqueue([job("s1", 1)])
          yield* Fiber.join(waiting).pipe(within(10))
          expect(keys(yield* queue.take({ workerId: "w", limit: 10, leaseMs: lease }))).toEqual(["s1/1/1"])
        })
      )
    )

    const givingBack: ReadonlyArray<
      readonly [string, (queue: TaskQueueService, key: TakenJob) => Effect.Effect<void, TaskQueueError>]
    > = [
      ["release", (queue, key) => queue.release(key, "w1")],
      ["lapse", (queue, key) => queue.lapse?.(key, "w1") ?? Effect.void]
    ]
    for (const [name, giveBack] of givingBack) {
      it.effect(`awaitWork is woken by a ${name}`, () =>
        withQueue(target, (queue) =>
          Effect.gen(function* () {
            yield* queue.enqueue([job("s1", 1)])
            const [taken] = yield* queue.take({ workerId: "w1", limit: 1, leaseMs: 3_600_000 })
            if (taken === undefined) throw new Error("nothing taken")
            const waiting = yield* Effect.fork(queue.awaitWork())
            yield* untilAsleep()
            expect(waiting.unsafePoll()).toBeNull()
            yield* giveBack(queue, taken)
            yield* Fiber.join(waiting).pipe(within(10))
          })
        )
      )
    }

    if (target.wakesOtherInstances) {
      it.effect("awaitWork in another instance (another process) is woken by an enqueue, not by its poll", () =>
        withQueue(target, (queue, { second }) =>
          Effect.gen(function* () {
            const other = yield* second
            yield* queue.enqueue([job("later", 1, { runAt: 3_600_000 })])
            const waiting = yield* Effect.fork(other.awaitWork())
            yield* untilAsleep()
            expect(waiting.unsafePoll()).toBeNull()
            yield* queue.enqueue([job("s1", 1)])
            yield* Fiber.join(waiting).pipe(within(10))
            expect(keys(yield* other.take({ workerId: "w", limit: 10, leaseMs: lease }))).toEqual(["s1/1/1"])
          })
        )
      )
    }
  })

/** What only the SQL layers promise: an enqueue in the caller's transaction commits or rolls back with it. */
export const sqlTaskQueueContract = <Db>(name: string, target: TaskQueueTarget<Db, SqlClient.SqlClient>) =>
  describe(`${name}: enqueue in the caller's transaction`, () => {
    it.effect("a rolled-back transaction leaves no job behind", () =>
      withQueue(target, (queue, { context }) =>
        Effect.gen(function* () {
          const sql = Context.get(context, SqlClient.SqlClient)
          const failed = yield* Effect.either(
            sql.withTransaction(Effect.zipRight(queue.enqueue([job("s1", 1)]), Effect.fail("the append was refused")))
          )
          expect(failed).toEqual(Either.left("the append was refused"))
          expect(yield* queue.list()).toEqual([])
          yield* sql.withTransaction(queue.enqueue([job("s1", 2)]))
          expect(keys(yield* queue.list())).toEqual(["s1/2/1"])
        })
      )
    )

    it.effect("a waiter in the same process is woken once the transaction has committed, and finds the job", () =>
      withQueue(target, (queue, { context }) =>
        Effect.gen(function* () {
          const sql = Context.get(context, SqlClient.SqlClient)
          yield* queue.enqueue([job("later", 1, { runAt: 3_600_000 })])
          const waiting = yield* Effect.fork(
            Effect.zipRight(queue.awaitWork(), queue.take({ workerId: "w", limit: 10, leaseMs: lease }))
          )
          yield* untilAsleep()
          yield* sql.withTransaction(queue.enqueue([job("s1", 1)]))
          expect(keys(yield* Fiber.join(waiting).pipe(within(10)))).toEqual(["s1/1/1"])
        })
      )
    )
  })
