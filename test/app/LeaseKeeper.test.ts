/**
 * A job the queue has under a worker's name that the worker does not know of, as a take whose answer was lost leaves
 * it (the statement committed, its rows never came back), is given back by the worker's lease keeper at its next beat
 * but one, and runs as its attempt. Before, the keeper renewed its lease while the worker had other jobs; once the
 * lease ran out the job was taken again as a lost attempt, and the task failed an attempt it never ran.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, FiberId, Layer, Logger, Schedule, TestClock } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Worker from "../../src/app/Worker.js"
import { keepLeases } from "../../src/app/worker/LeaseKeeper.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import { type JobKey, jobKeyString, TaskQueue, type TaskQueueService } from "../../src/infra/TaskQueue.js"
import { independentTasks } from "./fixtures/plans.js"
import { fast } from "./runnerSuite.js"

/** Ends the first task when the test opens the gate, any other at once. */
const firstTaskGate = Deferred.unsafeMake<void>(FiberId.none)
const gated: ExecutorService = {
  name: "gated",
  execute: (context) =>
    Effect.as(context.taskId === 1 ? Deferred.await(firstTaskGate) : Effect.void, Outcome.Completed({ result: "done" }))
}

describe("a worker's lease keeper, a job it ran and lost", () => {
  // A job the worker started and no longer runs, still under its name: its attempt died, or a server crash lost its
  // report (reports commit without waiting for the disk). The keeper renewed it with the worker's other jobs for as
  // long as it had any; now it ends its lease after a whole lease, and the attempt counts as lost.
  const lease = 900
  const beats = (count: number) =>
    Effect.gen(function* () {
      for (let beat = 0; beat < count; beat++) {
        yield* TestClock.adjust(lease / 3)
        yield* Effect.yieldNow()
      }
    })
  const keeping = (queue: TaskQueueService) =>
    Effect.gen(function* () {
      yield* queue.enqueue(
        [1, 2].map((taskId) => ({
          sessionId: "s",
          taskId,
          attempt: 1,
          kind: "Processing" as const,
          runAt: 0,
          payload: {}
        }))
      )
      yield* queue.take({ workerId: "w", limit: 2, leaseMs: lease })
      // Task 1 runs here; task 2 ran here and ended, its outcome lost on the way to the queue.
      return yield* Effect.fork(
        keepLeases({
          queue,
          workerId: "w",
          leaseMs: lease,
          held: () => [{ key: { sessionId: "s", taskId: 1, attempt: 1 }, drop: Effect.void }],
          startedHere: (key) => key === "s/2/1"
        })
      )
    })

  it.effect("ends its lease after a whole lease, its take counted, and keeps renewing the jobs it runs", () =>
    Effect.gen(function* () {
      const queue = yield* MemoryTaskQueue.makeFresh
      const keeper = yield* keeping(queue)
      yield* beats(3)
      expect(yield* queue.take({ workerId: "other", limit: 10, leaseMs: lease })).toEqual([])
      yield* beats(2)
      const retaken = yield* queue.take({ workerId: "other", limit: 10, leaseMs: lease })
      expect(retaken.map((job) => [job.taskId, job.takes])).toEqual([[2, 2]])
      expect(yield* queue.heldBy?.("w") ?? Effect.succeed(undefined)).toEqual([
        { sessionId: "s", taskId: 1, attempt: 1 }
      ])
      yield* Fiber.interrupt(keeper)
    })
  )

  it.effect("finds it though the counts hide it: a job it holds has left the queue while the lost one is renewed", () =>
    Effect.gen(function* () {
      const queue = yield* MemoryTaskQueue.makeFresh
      const keeper = yield* keeping(queue)
      // Task 1's job ends in the queue while the worker still holds its attempt: one held, one renewed (task 2's).
      yield* queue.complete({ sessionId: "s", taskId: 1, attempt: 1 })
      expect(yield* queue.extendLeases("w", lease)).toBe(1)
      // The keeper looks at the jobs under its name once a lease, and ends the lost one's lease a lease after.
      yield* beats(8)
      const retaken = yield* queue.take({ workerId: "other", limit: 10, leaseMs: lease })
      expect(retaken.map((job) => [job.taskId, job.takes])).toEqual([[2, 2]])
      yield* Fiber.interrupt(keeper)
    })
  )

  it.effect("leaves it renewed on a queue of one's own that cannot end a lease", () =>
    Effect.gen(function* () {
      const { lapse: _, ...queue } = yield* MemoryTaskQueue.makeFresh
      const keeper = yield* keeping(queue)
      yield* beats(10)
      expect(yield* queue.take({ workerId: "other", limit: 10, leaseMs: lease })).toEqual([])
      yield* Fiber.interrupt(keeper)
    })
  )
})

/** Records a plan of two independent tasks, both dispatched at once. */
const startTwoTasks = (sessionId: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    yield* service.execute(
      sessionId,
      new Initialize({
        request: "two tasks",
        tasks: independentTasks(2),
        config: { ...defaultConfig, ...fast, maxParallel: 2 },
        at: yield* Clock.currentTimeMillis
      })
    )
  })

/** The session once it has finished, looked at every 20 ms for up to 20 s. */
const finishedState = (sessionId: string) =>
  Effect.flatMap(PlannerService, (service) =>
    service.state(sessionId).pipe(
      Effect.filterOrFail(Planner.isFinished, () => "not yet"),
      Effect.retry(Schedule.spaced("20 millis")),
      Effect.timeout("20 seconds")
    )
  )

/** Task 1 waits for its gate, keeping the worker busy; any other task completes at once. */
const busyGate = Deferred.unsafeMake<void>(FiberId.none)
const busy: ExecutorService = {
  name: "busy",
  execute: (context) =>
    Effect.as(context.taskId === 1 ? Deferred.await(busyGate) : Effect.void, Outcome.Completed({ result: "done" }))
}

/** The in-memory queue, except that the first completion of `lost`'s job is lost, as a report lost in a crash is. */
const losingOne = (lost: string) =>
  Layer.effect(
    TaskQueue,
    Effect.map(MemoryTaskQueue.makeFresh, (queue): TaskQueueService => {
      let dropped = false
      return {
        ...queue,
        complete: (keys) => {
          const all = Array.isArray(keys) ? keys : [keys as JobKey]
          const kept = all.filter((key) => dropped || jobKeyString(key) !== lost)
          if (kept.length < all.length) dropped = true
          return queue.complete(kept)
        }
      }
    })
  )

describe("a worker's lease keeper, an attempt of its own whose end the queue lost", () => {
  it.live("counts it as lost: the worker knows it started it, so it does not give it back as never run", () =>
    Effect.gen(function* () {
      const workerId = "here/1/lost-end"
      const sessionId = "lost-end"
      const warnings: Array<string> = []
      yield* startTwoTasks(sessionId)
      // Task 1 keeps the worker busy, so its keeper beats (a lease of 1 s); task 2 runs and ends, its job left under
      // the worker's name.
      const worker = yield* Effect.fork(
        Worker.run({ workerId, concurrency: 2, leaseMs: 1_000, checkAttachments: false, warmTokenizer: false }).pipe(
          Effect.provide(
            Logger.replace(
              Logger.defaultLogger,
              Logger.make(({ message }) => {
                warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
              })
            )
          )
        )
      )
      const said = (words: string) =>
        Effect.sync(() => warnings.find((line) => line.includes("task 2 attempt 1") && line.includes(words))).pipe(
          Effect.filterOrFail(
            (line) => line !== undefined,
            () => `not yet: ${words}`
          ),
          Effect.retry(Schedule.spaced("20 millis")),
          Effect.timeout("20 seconds")
        )
      yield* said("counts as lost")
      expect(warnings.filter((line) => line.includes("task 2 attempt 1") && line.includes("given back"))).toEqual([])
      yield* Deferred.succeed(busyGate, undefined)
      const state = yield* finishedState(sessionId)
      yield* Fiber.interrupt(worker)
      expect(state.status).toBe("Succeeded")
    }).pipe(
      Effect.provide(
        PlannerRuntime.layer(Layer.merge(MemoryEventStore.layer(), losingOne("lost-end/2/1")), { executor: busy })
      )
    )
  )
})

describe("a worker's lease keeper", () => {
  it.live("gives back a job held under the worker's name that the worker does not know of, and it runs", () =>
    Effect.gen(function* () {
      const workerId = "here/1/lost-answer"
      const service = yield* PlannerService
      const queue = service.queue
      const sessionId = "lost-answer"
      yield* startTwoTasks(sessionId)
      // The worker runs the first task until the test lets it end: several beats of its keeper (a lease of 1 s: one
      // beat every 333 ms; a stall of the machine shorter than the lease lets none run out).
      const worker = yield* Effect.fork(
        Worker.run({ workerId, concurrency: 1, leaseMs: 1_000, checkAttachments: false, warmTokenizer: false })
      )
      yield* queue.list(sessionId).pipe(
        Effect.filterOrFail(
          (jobs) => jobs.some((job) => job.taskId === 1 && job.workerId === workerId),
          () => "not taken yet"
        ),
        Effect.retry(Schedule.spaced("5 millis"))
      )
      // Meanwhile the second task's job is taken under the worker's name by a take whose answer never reached it.
      const [lost] = yield* queue.take({ workerId, limit: 1, leaseMs: 60_000 })
      expect(lost?.taskId).toBe(2)
      // Unknown to the worker for a whole lease (1 s), it is given back: nobody holds it; then the first task ends.
      yield* queue.list(sessionId).pipe(
        Effect.filterOrFail(
          (jobs) => jobs.some((job) => job.taskId === 2 && job.workerId === undefined),
          () => "not given back yet"
        ),
        Effect.retry(Schedule.spaced("20 millis")),
        Effect.timeout("20 seconds")
      )
      yield* Deferred.succeed(firstTaskGate, undefined)
      const state = yield* finishedState(sessionId)
      yield* Fiber.interrupt(worker)
      expect(state.status).toBe("Succeeded")
      // Both ran once: the job given back was taken again as a first take, not abandoned as a lost attempt.
      expect(state.tasks.map((task) => [task.id, task.status, task.attempt])).toEqual([
        [1, "Completed", 1],
        [2, "Completed", 1]
      ])
    }).pipe(
      Effect.provide(
        PlannerRuntime.layer(MemoryEventStore.layer(), {
          executor: gated
        })
      )
    )
  )
})
