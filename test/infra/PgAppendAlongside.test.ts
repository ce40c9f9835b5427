/**
 * PostgreSQL: an append whose alongside carries its work as a statement (the task queue's `completeAlongside`) sends
 * both in one statement, and keeps the guarantees of the transaction way: nothing changes when the append is refused,
 * and behind a busy lock the append goes the transaction way and runs the effect instead.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Redacted } from "effect"
import pg from "pg"
import { type AppendAlongside, EventStore, EventStoreError } from "../../src/infra/EventStore.js"
import { appendLockSeed } from "../../src/infra/internal/appendStatement.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as SqlTaskQueue from "../../src/infra/SqlTaskQueue.js"
import { type JobKey, jobKeyString, type TakenJob, TaskQueue } from "../../src/infra/TaskQueue.js"
import { newEvent, within } from "./EventStoreContract.js"
import { freshPgDatabase, pgStoreRecordingPrepared } from "./fixtures/databases.js"
import { job } from "./TaskQueueContract.js"

const key = (taskId: number): JobKey => ({ sessionId: "s", taskId, attempt: 1 })

/** A fresh database's store, its prepared statements recorded by name, and the queue over it. */
const recordedStoreAndQueue = Effect.gen(function* () {
  const url = yield* freshPgDatabase
  const { names, layer } = yield* pgStoreRecordingPrepared(url)
  const context = yield* Layer.build(SqlTaskQueue.layer().pipe(Layer.provideMerge(layer)))
  return { url, names, store: Context.get(context, EventStore), queue: Context.get(context, TaskQueue) }
})

describe("PostgreSQL: an append and its alongside statement", () => {
  it.live("commit in one statement; a refused append changes nothing; behind a busy lock the effect runs instead", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { url, names, store, queue } = yield* recordedStoreAndQueue
        const held = async () => (await Effect.runPromise(queue.list("s"))).map(jobKeyString)
        yield* queue.enqueue([job("s", 1), job("s", 2), job("s", 3), job("other", 1)])
        let effects = 0
        const completing = (keys: ReadonlyArray<JobKey>): AppendAlongside => {
          const statement = queue.completeAlongside?.(keys)
          if (statement === undefined) throw new Error("the PostgreSQL queue has a statement for a few jobs")
          const effect = () =>
            Effect.sync(() => {
              effects += 1
            }).pipe(
              Effect.zipRight(queue.complete(keys)),
              Effect.mapError((error) => new EventStoreError({ operation: "append", reason: error.message }))
            )
          return Object.assign(effect, { statement })
        }

        // One statement: the append and the DELETE, the effect not run.
        yield* store.append("planner", "s", [newEvent("Completed", { n: 1 })], 0, completing([key(1), key(2)]))
        expect(names).toEqual(["event_store_append_1_checked_standalone_with_jobs_complete_2"])
        expect(effects).toBe(0)
        expect(yield* Effect.promise(held)).toEqual(["s/3/1"])

        // Refused (the session is at 1, not 0): the job stays.
        const refused = yield* store
          .append("planner", "s", [newEvent("Late", {})], 0, completing([key(3)]))
          .pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "SequenceConflict", expected: 0, actual: 1 })
        expect(yield* Effect.promise(held)).toEqual(["s/3/1"])
        expect(effects).toBe(0)

        // Another transaction holds the session's append lock: the statement finds it busy and writes nothing, the
        // append waits in the transaction way and runs the effect once the lock is free.
        const blocker = new pg.Client({ connectionString: url })
        yield* Effect.acquireRelease(
          Effect.promise(() => blocker.connect()),
          () => Effect.promise(() => blocker.end())
        )
        yield* Effect.promise(async () => {
          await blocker.query("BEGIN")
          await blocker.query(`SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2::text, $3))`, [
            "planner",
            "s",
            appendLockSeed
          ])
        })
        const waiting = yield* Effect.fork(
          store.append("planner", "s", [newEvent("Completed", { n: 3 })], 1, completing([key(3)]))
        )
        // Waiting behind the lock: the statement was sent and wrote nothing.
        while (names.length < 2) yield* Effect.sleep("10 millis").pipe(within(10))
        yield* Effect.sleep("100 millis")
        expect(waiting.unsafePoll()).toBeNull()
        expect(yield* Effect.promise(held)).toEqual(["s/3/1"])
        yield* Effect.promise(() => blocker.query("COMMIT"))
        const appended = yield* Fiber.join(waiting).pipe(within(10))
        expect(appended.lastSequence).toBe(2)
        expect(effects).toBe(1)
        expect(yield* Effect.promise(held)).toEqual([])
        // Another session's job was never touched.
        expect((yield* queue.list()).map(jobKeyString)).toEqual(["other/1/1"])
        const stored = yield* store.load({ streamId: "planner", aggregateId: "s" })
        expect(stored.map((event) => event.type)).toEqual(["Completed", "Completed"])
      })
    )
  )

  it.live("an append that completes a worker's job can take its next ones in the same statement, once it commits", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { names, store, queue } = yield* recordedStoreAndQueue
        yield* queue.enqueue([
          job("s", 1),
          job("s", 2),
          job("s", 3, { runAt: 5_000 }),
          job("s", 4, { kind: "Retrieval" }),
          job("other", 1)
        ])
        // The worker holds task 1, whose outcome the append records.
        yield* queue.take({ workerId: "w", limit: 1, leaseMs: 60_000 })
        const taking = (keys: ReadonlyArray<JobKey>, limit: number) => {
          const got: Array<TakenJob> = []
          const statement = queue.completeAlongside?.(keys, {
            options: { workerId: "w", limit, leaseMs: 1_000, kinds: ["Processing"], sessionId: "s" },
            now: 1_000,
            taken: (jobs) => got.push(...jobs)
          })
          if (statement === undefined) throw new Error("the PostgreSQL queue has a statement for a few jobs")
          const effect = () =>
            Effect.mapError(
              queue.complete(keys),
              (error) => new EventStoreError({ operation: "append", reason: error.message })
            )
          return { alongside: Object.assign(effect, { statement }) as AppendAlongside, got }
        }

        // Refused: nothing completed, nothing taken, nobody told.
        const refused = taking([key(1)], 5)
        const conflict = yield* store
          .append("planner", "s", [newEvent("Completed", { n: 1 })], 3, refused.alongside)
          .pipe(Effect.flip)
        expect(conflict._tag).toBe("SequenceConflict")
        expect(refused.got).toEqual([])
        expect((yield* queue.list("s")).filter((listed) => listed.workerId !== undefined).map(jobKeyString)).toEqual([
          "s/1/1"
        ])

        // Written: task 1's job is gone, and the worker holds the due Processing jobs of the session (not task 3, due
        // later; not task 4, of another kind; not the other session's), taken as of `now`, and told which.
        const written = taking([key(1)], 5)
        yield* store.append("planner", "s", [newEvent("Completed", { n: 1 })], 0, written.alongside)
        expect(names.at(-1)).toBe(
          "event_store_append_1_checked_standalone_with_jobs_complete_1_take_by_kind_by_session"
        )
        expect(
          written.got.map((taken) => [jobKeyString(taken), taken.workerId, taken.leaseExpiresAt, taken.takes])
        ).toEqual([["s/2/1", "w", 2_000, 1]])
        expect(written.got[0]?.payload).toEqual(job("s", 2).payload)
        const listed = yield* queue.list()
        expect(
          listed
            .map((one) => [jobKeyString(one), one.workerId ?? null])
            .sort((a, b) => String(a[0]).localeCompare(String(b[0])))
        ).toEqual([
          ["other/1/1", null],
          ["s/2/1", "w"],
          ["s/3/1", null],
          ["s/4/1", null]
        ])
      })
    )
  )

  it.live("the queue offers a statement for a few jobs only, and none on SQLite", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const context = yield* Layer.build(
          SqlTaskQueue.layer().pipe(Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) })))
        )
        const queue = Context.get(context, TaskQueue)
        const keys = Array.from({ length: 17 }, (_, index) => key(index + 1))
        expect(queue.completeAlongside?.([])).toBeUndefined()
        expect(queue.completeAlongside?.(keys.slice(0, 16))?.params).toHaveLength(48)
        expect(queue.completeAlongside?.(keys)).toBeUndefined()
      })
    )
  )
})
