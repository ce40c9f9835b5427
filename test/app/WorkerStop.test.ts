/**
 * A worker stopped at the moment its take commits gives every job it took back at once, on every store: the jobs go
 * back to the queue (nothing of their attempts is on record yet), and another worker runs them straight away rather
 * than when their leases run out (a minute by default). Before, a take cut off after it committed, or an attempt
 * whose fiber the stop interrupted before it ever ran, left its job under the stopped worker's name for a lease, with
 * nobody running it: a plan stalled for a minute (the CI failure of "the writer stops mid-plan" on PostgreSQL).
 * A worker stopped just as the writer hands it a task (claimed for it in the dispatch's append) gives that task
 * back too. And a run of the session finishes what a stopped worker serving every session left: on PostgreSQL the
 * outcomes it reported, which no writer records once it stopped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Deferred, Duration, Effect, Fiber, Layer, Redacted, type Scope } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Worker from "../../src/app/Worker.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import type { EventStore } from "../../src/infra/EventStore.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { TaskQueue } from "../../src/infra/TaskQueue.js"
import { within } from "../infra/EventStoreContract.js"
import { freshPgDatabase, freshSqliteFile } from "../infra/fixtures/databases.js"
import { independentTasks } from "./fixtures/plans.js"

/**
 * The store, its queue's take made to stop the worker once (`stop`): right after the first take that got jobs has
 * committed, and then lingering a moment inside the take, so that the stop lands while the take is still under way.
 */
const stoppingAfterTake = (store: Layer.Layer<EventStore | TaskQueue, unknown>, stop: Effect.Effect<void>) => {
  let armed = true
  return Layer.map(store, (context) => {
    const queue = Context.get(context, TaskQueue)
    return Context.add(context, TaskQueue, {
      ...queue,
      take: (options) =>
        Effect.tap(queue.take(options), (jobs) => {
          if (!armed || jobs.length === 0) return Effect.void
          armed = false
          return Effect.zipRight(stop, Effect.sleep(Duration.millis(50)))
        })
    })
  })
}

/** Records a plan of `count` independent steps, all dispatched at once: their jobs wait in the queue. */
const plan = (service: Context.Tag.Service<PlannerService>, sessionId: string, count: number) =>
  Effect.flatMap(Clock.currentTimeMillis, (at) =>
    service.execute(
      sessionId,
      new Initialize({
        request: `${count} steps`,
        tasks: independentTasks(count),
        config: { ...defaultConfig, maxParallel: count },
        at
      })
    )
  )

const suite = (
  name: string,
  storeOf: Effect.Effect<Layer.Layer<EventStore | TaskQueue, unknown>, unknown, Scope.Scope>
) =>
  describe(`a worker stopped, on ${name}`, () => {
    for (const serving of ["every session", "one session"] as const) {
      it.live(
        `as its take commits, serving ${serving}: the jobs it took go back at once, and another worker runs them`,
        () =>
          Effect.scoped(
            Effect.gen(function* () {
              const store = yield* storeOf
              const executor = ScriptExecutor.make({ rules: [], default: { complete: "done" } })
              const stopping = yield* Deferred.make<Fiber.RuntimeFiber<void, unknown>>()
              const stop = Effect.flatMap(Deferred.await(stopping), (fiber) => Fiber.interruptFork(fiber))
              const context = yield* Layer.build(PlannerRuntime.layer(stoppingAfterTake(store, stop), { executor }))
              const service = Context.get(context, PlannerService)
              const sessionId = `stopped-${serving.replace(" ", "-")}`
              yield* plan(service, sessionId, 4)
              // Every job waits in the queue; the worker's first take gets two of them, and the worker is stopped then.
              const worker = yield* Effect.fork(
                Worker.run({
                  workerId: "stopped",
                  concurrency: 2,
                  checkAttachments: false,
                  warmTokenizer: false,
                  ...(serving === "one session" ? { sessionId } : {})
                }).pipe(Effect.provide(context))
              )
              yield* Deferred.succeed(stopping, worker)
              yield* Fiber.await(worker).pipe(within(10, "the worker to stop"))

              // Nothing is left under its name: the leases (a minute) need not run out.
              const jobs = yield* service.queue.list(sessionId)
              expect(jobs).toHaveLength(4)
              expect(jobs.filter((job) => job.workerId !== undefined)).toEqual([])

              const result = yield* Runner.run(sessionId).pipe(Effect.provide(context), within(20, "the run"))
              expect(result.state.status).toBe("Succeeded")
              // Given back before they started: the same attempts run, none counted as lost.
              expect(result.state.tasks.map((task) => task.attempt)).toEqual([1, 1, 1, 1])
            })
          )
      )
    }

    it.live("after its first outcome: nothing is left under its name, and a run of the session finishes the plan", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* storeOf
          const executor = ScriptExecutor.make({ rules: [], default: { complete: "done" } })
          const context = yield* Layer.build(PlannerRuntime.layer(store, { executor }))
          const service = Context.get(context, PlannerService)
          const sessionId = "stopped-after-outcome"
          yield* plan(service, sessionId, 3)
          // One slot: the first outcome's statement takes the next job for it, and the worker stops as it is told. On
          // PostgreSQL it serves every session, so it reported its outcomes, for a writer nobody is once it stopped: the
          // run of the session records them (`worker/LeftReports`).
          const stopping = yield* Deferred.make<Fiber.RuntimeFiber<void, unknown>>()
          const worker = yield* Effect.fork(
            Worker.run({
              workerId: "stopped",
              concurrency: 1,
              checkAttachments: false,
              warmTokenizer: false,
              onAttempt: (report) =>
                report._tag === "Finished"
                  ? Effect.flatMap(Deferred.await(stopping), (fiber) => Fiber.interruptFork(fiber))
                  : Effect.void
            }).pipe(Effect.provide(context))
          )
          yield* Deferred.succeed(stopping, worker)
          yield* Fiber.await(worker).pipe(within(10, "the worker to stop"))

          // Reported outcomes wait in their jobs' rows for the session's writer (PostgreSQL); nothing else is held.
          const held = (yield* service.queue.list(sessionId)).filter(
            (job) => job.workerId !== undefined && job.reported !== true
          )
          expect(held).toEqual([])
          const result = yield* Runner.run(sessionId).pipe(Effect.provide(context), within(20, "the run"))
          expect(result.state.status).toBe("Succeeded")
          // Each task completed once: what was reported was recorded, not run again.
          const completed = (yield* Context.get(context, PlannerStore).load(sessionId)).flatMap(({ event }) =>
            event._tag === "TaskStatusUpdated" && event.status === "Completed" ? [event.taskId] : []
          )
          expect(completed.toSorted()).toEqual([1, 2, 3])
        })
      )
    )

    for (const when of ["as task 1 is told finished", "from task 1's executor"] as const) {
      it.live(`stopped ${when}, with task 2 handed over: the task goes back through the log, and a run finishes`, () =>
        Effect.scoped(
          Effect.gen(function* () {
            const store = yield* storeOf
            const stopping = yield* Deferred.make<Fiber.RuntimeFiber<void, unknown>>()
            const stop = Effect.flatMap(Deferred.await(stopping), (fiber) => Fiber.interruptFork(fiber))
            // Task 2 of the stopped worker never ends: only the stop ends its attempt. Task 1 may stop the worker.
            let stoppedWorker = true
            const executor: ExecutorService = {
              name: "stopping",
              execute: (task) =>
                task.taskId === 2 && stoppedWorker
                  ? Effect.never
                  : Effect.as(
                      task.taskId === 1 && when === "from task 1's executor" ? stop : Effect.void,
                      Outcome.Completed({ result: "done" })
                    )
            }
            const context = yield* Layer.build(PlannerRuntime.layer(store, { executor }))
            const service = Context.get(context, PlannerService)
            const sessionId = "stopped-handed"
            const chain: ReadonlyArray<TaskPlan> = [
              { id: 1, description: "first", kind: "Processing", dependsOn: [], attachments: [] },
              { id: 2, description: "then", kind: "Processing", dependsOn: [1], attachments: [] }
            ]
            yield* service.execute(
              sessionId,
              new Initialize({
                request: "two steps",
                tasks: chain,
                config: defaultConfig,
                at: yield* Clock.currentTimeMillis
              })
            )
            // A worker of this session: task 1's outcome dispatches task 2 and hands it over, claimed for it in the
            // same append.
            const worker = yield* Effect.fork(
              Worker.run({
                workerId: "stopped",
                sessionId,
                concurrency: 2,
                checkAttachments: false,
                warmTokenizer: false,
                onAttempt: (report) =>
                  report._tag === "Finished" && report.taskId === 1 && when === "as task 1 is told finished"
                    ? stop
                    : Effect.void
              }).pipe(Effect.provide(context))
            )
            yield* Deferred.succeed(stopping, worker)
            yield* Fiber.await(worker).pipe(within(10, "the worker to stop"))
            stoppedWorker = false

            // Task 2's attempt was given back (through the log, or to the queue when the hand-off came too late).
            const held = (yield* service.queue.list(sessionId)).filter((job) => job.workerId !== undefined)
            expect(held).toEqual([])
            const result = yield* Runner.run(sessionId).pipe(Effect.provide(context), within(20, "the run"))
            expect(result.state.status).toBe("Succeeded")
            const completed = (yield* Context.get(context, PlannerStore).load(sessionId)).flatMap(({ event }) =>
              event._tag === "TaskStatusUpdated" && event.status === "Completed" ? [event.taskId] : []
            )
            expect(completed).toEqual([1, 2])
          })
        )
      )
    }
  })

suite(
  "the in-memory store",
  Effect.succeed(Layer.merge(MemoryEventStore.layer(), Layer.effect(TaskQueue, MemoryTaskQueue.makeFresh)))
)
suite(
  "SQLite",
  Effect.map(freshSqliteFile, (filename) => SqliteEventStore.layer({ filename }))
)
suite(
  "PostgreSQL",
  Effect.map(freshPgDatabase, (url) => PgEventStore.layer({ url: Redacted.make(url) }))
)

/**
 * The store, its queue's report statement made to stop the worker once (`stop`) when it goes out, and linger a moment
 * before it is sent: the stop lands while the attempts in the group wait for its answer. Giving a job back takes a
 * while too (a distant database), so a give-back that the stop does not wait for is still under way once it is over.
 */
const stoppingAsReportGoesOut = (store: Layer.Layer<EventStore | TaskQueue, unknown>, stop: Effect.Effect<void>) => {
  let armed = true
  return Layer.map(store, (context) => {
    const queue = Context.get(context, TaskQueue)
    const reports = queue.reports
    if (reports === undefined) return context
    return Context.add(context, TaskQueue, {
      ...queue,
      release: (key, workerId) => Effect.zipRight(Effect.sleep(Duration.millis(200)), queue.release(key, workerId)),
      reports: {
        ...reports,
        reportAll: (outcomes, workerId, take) =>
          Effect.suspend(() => {
            if (!armed) return reports.reportAll(outcomes, workerId, take)
            armed = false
            return Effect.zipRight(
              Effect.zipRight(stop, Effect.sleep(Duration.millis(50))),
              reports.reportAll(outcomes, workerId, take)
            )
          })
      }
    })
  })
}

describe("a worker stopped while its report's statement is out, on PostgreSQL", () => {
  it.live(
    "the outcome stays its attempt's: nothing is given back, and a run records it instead of running the task again",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const runs = new Map<number, number>()
          const executor: ExecutorService = {
            name: "counting",
            execute: (task) =>
              Effect.sync(() => {
                runs.set(task.taskId, (runs.get(task.taskId) ?? 0) + 1)
                return Outcome.Completed({ result: "done" })
              })
          }
          const stopping = yield* Deferred.make<Fiber.RuntimeFiber<void, unknown>>()
          const stop = Effect.flatMap(Deferred.await(stopping), (fiber) => Fiber.interruptFork(fiber))
          const store = stoppingAsReportGoesOut(PgEventStore.layer({ url: Redacted.make(url) }), stop)
          const context = yield* Layer.build(PlannerRuntime.layer(store, { executor }))
          const service = Context.get(context, PlannerService)
          const sessionId = "stopped-reporting"
          yield* plan(service, sessionId, 2)
          // One slot, serving every session: task 1's outcome is reported (the worker writes no session yet), and its
          // statement takes task 2's job for the slot it frees. The worker stops while that statement is out.
          const worker = yield* Effect.fork(
            Worker.run({ workerId: "stopped", concurrency: 1, checkAttachments: false, warmTokenizer: false }).pipe(
              Effect.provide(context)
            )
          )
          yield* Deferred.succeed(stopping, worker)
          yield* Fiber.await(worker).pipe(within(10, "the worker to stop"))

          // Task 1's report is stored and nothing else is held: task 2's job, taken with it, went back.
          const jobs = yield* service.queue.list(sessionId)
          expect(jobs.filter((job) => job.workerId !== undefined && job.reported !== true)).toEqual([])
          expect(jobs.filter((job) => job.reported === true).map((job) => job.taskId)).toEqual([1])

          const result = yield* Runner.run(sessionId).pipe(Effect.provide(context), within(20, "the run"))
          expect(result.state.status).toBe("Succeeded")
          // Task 1's reported outcome was recorded as its first attempt's, not given back and run again.
          expect(result.state.tasks.map((task) => task.attempt)).toEqual([1, 1])
          expect([...runs.entries()].toSorted()).toEqual([
            [1, 1],
            [2, 1]
          ])
        })
      )
  )
})
