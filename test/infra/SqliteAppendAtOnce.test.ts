/**
 * SQLite: an append whose alongside carries its work as statements (the task queue's `changesDirect`) runs them in
 * the append's own transaction, at once on the connection, and keeps the guarantees of the transaction way: a refused
 * append changes nothing, an alongside that throws rolls the events back, and inside a caller's transaction the
 * effect runs instead. The queue's statements do what its effects do, over random changes.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import { Chunk, Context, Deferred, Effect, Fiber, FastCheck as fc, Layer, Stream } from "effect"
import { type AlongsideDirect, type AppendAlongside, EventStore, EventStoreError } from "../../src/infra/EventStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import {
  type Job,
  type QueueChanges,
  type TakenJob,
  TaskQueue,
  type TaskQueueService
} from "../../src/infra/TaskQueue.js"
import { newEvent } from "./EventStoreContract.js"
import { freshSqliteFile } from "./fixtures/databases.js"
import { job, untilAsleep, within } from "./TaskQueueContract.js"

/** A fresh SQLite file's store, its queue and its client. */
const storeAndQueue = Effect.gen(function* () {
  const filename = yield* freshSqliteFile
  const context = yield* Layer.build(SqliteEventStore.layer({ filename }))
  return {
    store: Context.get(context, EventStore),
    queue: Context.get(context, TaskQueue),
    sql: Context.get(context, SqlClient.SqlClient)
  }
})

/** The queue's own effects for `changes`, in the order the planner's writer runs them. */
const effectWay = (queue: TaskQueueService, changes: QueueChanges) =>
  Effect.gen(function* () {
    if (changes.ended.length > 0) yield* queue.complete(changes.ended)
    if (changes.dispatched.length > 0) yield* queue.enqueue(changes.dispatched)
    for (const taken of changes.taken) {
      yield* queue.enqueue([taken], {
        takenBy: { workerId: taken.workerId, leaseExpiresAt: taken.leaseExpiresAt }
      })
    }
  }).pipe(Effect.mapError((error) => new EventStoreError({ operation: "append", reason: error.message })))

/** An alongside with both forms, counting how often each ran. */
const counted = (queue: TaskQueueService, changes: QueueChanges) => {
  const runs = { effect: 0, direct: 0 }
  const direct = queue.changesDirect?.(changes)
  if (direct === undefined) throw new Error("the SQLite queue has statements for these changes")
  const alongside: AppendAlongside = Object.assign(
    () =>
      Effect.suspend(() => {
        runs.effect += 1
        return effectWay(queue, changes)
      }),
    {
      direct: ((run) => {
        runs.direct += 1
        return direct(run)
      }) satisfies AlongsideDirect
    }
  )
  return { alongside, runs }
}

const taken = (sessionId: string, taskId: number, workerId: string, leaseExpiresAt: number): TakenJob => ({
  ...job(sessionId, taskId),
  workerId,
  leaseExpiresAt,
  takes: 1
})

const nothing: QueueChanges = { ended: [], dispatched: [], taken: [] }

describe("SQLite: an append and its alongside statements", () => {
  it.effect("commit with the events in one transaction, the effect not run, and wake the queue's waiters", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { store, queue } = yield* storeAndQueue
        yield* queue.enqueue([job("s", 1), job("later", 1, { runAt: 3_600_000 })])
        // Job 1 runs (a worker holds it): nothing of session s is left to take, and the waiter waits.
        yield* queue.take({ workerId: "holder", limit: 1, leaseMs: 60_000, sessionId: "s" })
        const waiting = yield* Effect.fork(
          Effect.zipRight(
            queue.awaitWork(["Processing"], "s"),
            queue.take({ workerId: "w", limit: 10, leaseMs: 60_000, sessionId: "s" })
          )
        )
        yield* untilAsleep()
        // Job 1's outcome: it ends, job 3 is dispatched for anybody and job 4 handed to a worker of this process.
        const { alongside, runs } = counted(queue, {
          ended: [{ sessionId: "s", taskId: 1, attempt: 1 }],
          dispatched: [job("s", 3)],
          taken: [taken("s", 4, "local", 9_000_000)]
        })
        const result = yield* store.append("planner", "s", [newEvent("Completed", { n: 1 })], 0, alongside)
        expect(result.lastSequence).toBe(1)
        expect(runs).toEqual({ effect: 0, direct: 1 })
        const woken = yield* Fiber.join(waiting).pipe(within(10))
        expect(woken.map((job) => job.taskId)).toEqual([3])
        const listed = yield* queue.list("s")
        expect(listed.map((job) => [job.taskId, job.workerId, job.leaseExpiresAt ?? null])).toEqual([
          [3, "w", 60_000],
          [4, "local", 9_000_000]
        ])
      })
    )
  )

  it.effect("wake this process's subscribers at once (the clock stands still: no poll comes)", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { store, queue } = yield* storeAndQueue
        const heard = yield* Effect.fork(
          store.subscribe({ streamId: "planner", aggregateId: "s" }).pipe(Stream.take(1), Stream.runCollect)
        )
        yield* untilAsleep()
        const { alongside, runs } = counted(queue, { ...nothing, dispatched: [job("s", 1)] })
        yield* store.append("planner", "s", [newEvent("Dispatched", {})], 0, alongside)
        expect(runs.direct).toBe(1)
        const events = yield* Fiber.join(heard).pipe(within(10))
        expect(Chunk.toReadonlyArray(events).map((event) => event.type)).toEqual(["Dispatched"])
      })
    )
  )

  it.live("a refused append runs no statement of its alongside: the queue is as it was", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { store, queue } = yield* storeAndQueue
        yield* queue.enqueue([job("s", 1)])
        yield* store.append("planner", "s", [newEvent("Started", {})], 0)
        const { alongside, runs } = counted(queue, {
          ended: [{ sessionId: "s", taskId: 1, attempt: 1 }],
          dispatched: [job("s", 2)],
          taken: []
        })
        const refused = yield* store.append("planner", "s", [newEvent("Late", {})], 0, alongside).pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "SequenceConflict", expected: 0, actual: 1 })
        expect(runs).toEqual({ effect: 0, direct: 0 })
        expect((yield* queue.list("s")).map((job) => job.taskId)).toEqual([1])
        expect(yield* store.lastSequence("planner", "s")).toBe(1)
      })
    )
  )

  it.live("an alongside that throws rolls the events back and fails the append saying why", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { store, queue } = yield* storeAndQueue
        yield* queue.enqueue([job("s", 1)])
        const direct = queue.changesDirect?.({ ...nothing, ended: [{ sessionId: "s", taskId: 1, attempt: 1 }] })
        if (direct === undefined) throw new Error("the SQLite queue has statements for these changes")
        const failing: AppendAlongside = Object.assign(() => Effect.void, {
          direct: ((run) => {
            direct(run)
            throw new Error("the disk is full")
          }) satisfies AlongsideDirect
        })
        const error = yield* store.append("planner", "s", [newEvent("Completed", {})], 0, failing).pipe(Effect.flip)
        expect(error).toBeInstanceOf(EventStoreError)
        expect(error.message).toContain("the disk is full")
        expect(yield* store.lastSequence("planner", "s")).toBe(0)
        // The DELETE ran before the throw and was rolled back with the insert.
        expect((yield* queue.list("s")).map((job) => job.taskId)).toEqual([1])
        // The connection is usable afterwards: no transaction was left open.
        yield* store.append("planner", "s", [newEvent("Completed", {})], 0)
        expect(yield* store.lastSequence("planner", "s")).toBe(1)
      })
    )
  )

  it.live("inside a caller's transaction the effect runs instead, and commits with the caller", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { store, queue, sql } = yield* storeAndQueue
        const { alongside, runs } = counted(queue, { ...nothing, dispatched: [job("s", 1)] })
        yield* sql.withTransaction(store.append("planner", "s", [newEvent("Dispatched", {})], 0, alongside))
        expect(runs).toEqual({ effect: 1, direct: 0 })
        expect((yield* queue.list("s")).map((job) => job.taskId)).toEqual([1])
        expect(yield* store.lastSequence("planner", "s")).toBe(1)
      })
    )
  )

  it.live("while another fiber's transaction holds the connection, the append waits its turn the effect way", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { store, queue, sql } = yield* storeAndQueue
        const release = yield* Deferred.make<void>()
        const begun = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(
          sql.withTransaction(
            Effect.zipRight(Effect.zipRight(sql`SELECT 1`, Deferred.succeed(begun, undefined)), Deferred.await(release))
          )
        )
        yield* Deferred.await(begun)
        const { alongside, runs } = counted(queue, { ...nothing, dispatched: [job("s", 1)] })
        const appending = yield* Effect.fork(store.append("planner", "s", [newEvent("Dispatched", {})], 0, alongside))
        yield* Effect.sleep("50 millis")
        expect(appending.unsafePoll()).toBeNull()
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        yield* Fiber.join(appending).pipe(within(10))
        expect(runs).toEqual({ effect: 1, direct: 0 })
        expect((yield* queue.list("s")).map((job) => job.taskId)).toEqual([1])
      })
    )
  )

  it.live("behind another process's write lock the append is tried again until the lock is gone", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        const context = yield* Layer.build(SqliteEventStore.layer({ filename, busyTimeout: "20 millis" }))
        const store = Context.get(context, EventStore)
        const queue = Context.get(context, TaskQueue)
        // Another process: a connection of its own holding the write lock.
        const other = yield* Effect.acquireRelease(
          Effect.sync(() => new Sqlite(filename)),
          (db) => Effect.sync(() => db.close())
        )
        other.exec("BEGIN IMMEDIATE")
        const { alongside, runs } = counted(queue, { ...nothing, dispatched: [job("s", 1)] })
        const appending = yield* Effect.fork(store.append("planner", "s", [newEvent("Dispatched", {})], 0, alongside))
        yield* Effect.sleep("200 millis")
        expect(appending.unsafePoll()).toBeNull()
        other.exec("COMMIT")
        yield* Fiber.join(appending).pipe(within(10))
        // Tried at once and refused while the lock was held, then again until it went through.
        expect(runs.effect).toBe(0)
        expect(runs.direct).toBe(1)
        expect(yield* store.lastSequence("planner", "s")).toBe(1)
        expect((yield* queue.list("s")).map((job) => job.taskId)).toEqual([1])
      })
    )
  )

  it.live("a payload that is not JSON has no statements: the effect way says what is wrong", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { store, queue } = yield* storeAndQueue
        const bad: Job = job("s", 1, { payload: { size: 10n } as unknown as Job["payload"] })
        const changes: QueueChanges = { ...nothing, dispatched: [bad] }
        expect(queue.changesDirect?.(changes)).toBeUndefined()
        const error = yield* store
          .append("planner", "s", [newEvent("Dispatched", {})], 0, () => effectWay(queue, changes))
          .pipe(Effect.flip)
        expect(error.message).toContain("cannot be stored as JSON")
        expect(yield* store.lastSequence("planner", "s")).toBe(0)
      })
    )
  )
})

// --- The statements do what the effects do --------------------------------------------------------------------------

const keyArb = fc.record({ taskId: fc.integer({ min: 1, max: 5 }), attempt: fc.integer({ min: 1, max: 2 }) })
const jobArb = fc.record({
  key: keyArb,
  kind: fc.constantFrom("Processing" as const, "Retrieval" as const),
  runAt: fc.constantFrom(0, 5_000),
  text: fc.string({ maxLength: 6 })
})
const changesArb = fc.record({
  ended: fc.array(keyArb, { maxLength: 3 }),
  dispatched: fc.array(jobArb, { maxLength: 3 }),
  taken: fc.array(
    fc.record({ job: jobArb, worker: fc.constantFrom("a", "b"), lease: fc.integer({ min: 1, max: 9 }) }),
    { maxLength: 2 }
  )
})
type ChangesShape = typeof changesArb extends fc.Arbitrary<infer A> ? A : never

/** The generated changes, for session `sessionId`. */
const changesFor = (sessionId: string, shape: ChangesShape): QueueChanges => {
  const asJob = (generated: ChangesShape["dispatched"][number]): Job => ({
    sessionId,
    ...generated.key,
    kind: generated.kind,
    runAt: generated.runAt,
    payload: { text: generated.text }
  })
  return {
    ended: shape.ended.map((key) => ({ sessionId, ...key })),
    dispatched: shape.dispatched.map(asJob),
    taken: shape.taken.map(({ job, worker, lease }) => ({
      ...asJob(job),
      workerId: worker,
      leaseExpiresAt: lease * 1_000,
      takes: 1
    }))
  }
}

/** A session's job rows as stored, every column but the row's id and session, in key order. */
const rows = (sql: SqlClient.SqlClient, sessionId: string) =>
  sql`SELECT task_id, attempt, kind, run_at, payload, worker_id, lease_expires_at, takes, report, reported_at
      FROM planner_jobs WHERE session_id = ${sessionId} ORDER BY task_id, attempt`

describe("SQLite: the queue's alongside statements", () => {
  it.live("leave the queue as its effects do, after any sequence of appends (property)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(fc.array(changesArb, { minLength: 1, maxLength: 6 }), (steps) =>
          Effect.runPromise(
            Effect.scoped(
              Effect.gen(function* () {
                const { store, queue, sql } = yield* storeAndQueue
                // Session "direct" goes the statements' way, session "effect" the effects' way, in the same store.
                for (const [index, shape] of steps.entries()) {
                  const viaStatements = changesFor("direct", shape)
                  const { alongside, runs } = counted(queue, viaStatements)
                  yield* store.append("planner", "direct", [newEvent("Step", { index })], index, alongside)
                  expect(runs.direct).toBe(1)
                  const viaEffects = changesFor("effect", shape)
                  yield* store.append("planner", "effect", [newEvent("Step", { index })], index, () =>
                    effectWay(queue, viaEffects)
                  )
                }
                const direct = yield* rows(sql, "direct")
                expect(direct).toEqual(yield* rows(sql, "effect"))
              })
            )
          )
        ),
        { numRuns: 40 }
      )
    )
  )
})
