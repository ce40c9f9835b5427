/**
 * A worker's queue upkeep: every interval in which the worker was busy it lets the queue reclaim what ended jobs left
 * behind (`TaskQueue.reclaim`); an idle worker asks nothing; a failure to reclaim is logged without stopping the upkeep
 * or the worker.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Layer, Logger, TestClock } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Worker from "../../src/app/Worker.js"
import { keepQueueTidy } from "../../src/app/worker/QueueUpkeep.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { TaskQueue, TaskQueueError } from "../../src/infra/TaskQueue.js"
import { independentTasks } from "./fixtures/plans.js"

describe("the queue upkeep", () => {
  it.effect(
    "asks the queue to reclaim every interval the worker was busy, and goes on after a failure, which it logs",
    () =>
      Effect.gen(function* () {
        let calls = 0
        let busy = true
        const logged: Array<string> = []
        const reclaim = Effect.suspend(() => {
          calls += 1
          return calls === 2
            ? Effect.fail(new TaskQueueError({ operation: "vacuum the job table", reason: "connection lost" }))
            : Effect.succeed(calls === 3)
        })
        const logger = Logger.make(({ message }) => {
          logged.push(Array.isArray(message) ? message.join(" ") : String(message))
        })
        const upkeep = yield* Effect.fork(
          keepQueueTidy({ reclaim }, "1 second", () => busy).pipe(
            Effect.provide(Logger.replace(Logger.defaultLogger, logger))
          )
        )
        yield* TestClock.adjust("999 millis")
        expect(calls).toBe(0)
        yield* TestClock.adjust("1 millis")
        expect(calls).toBe(1)
        yield* TestClock.adjust("3 seconds")
        expect(calls).toBe(4)
        // Idle: it left nothing behind, and asks nothing.
        busy = false
        yield* TestClock.adjust("5 seconds")
        expect(calls).toBe(4)
        busy = true
        yield* TestClock.adjust("1 second")
        expect(calls).toBe(5)
        expect(logged).toEqual([
          "could not reclaim the task queue's space: The task queue failed to vacuum the job table: connection lost"
        ])
        yield* Fiber.interrupt(upkeep)
      })
  )

  it.effect("a queue with nothing to reclaim gets no upkeep", () =>
    Effect.gen(function* () {
      // It ends at once instead of sleeping for ever.
      yield* keepQueueTidy({}, "1 second", () => true)
    })
  )

  it.live("a worker keeps its queue tidy while it works, and asks nothing while it is idle", () =>
    Effect.gen(function* () {
      const asked = yield* Deferred.make<void>()
      let calls = 0
      const queue = Layer.effect(
        TaskQueue,
        Effect.map(MemoryTaskQueue.makeFresh, (inner) => ({
          ...inner,
          reclaim: Effect.suspend(() => {
            calls += 1
            return Effect.as(Deferred.succeed(asked, undefined), false)
          })
        }))
      )
      const executor = ScriptExecutor.make({ rules: [], default: { complete: "done" } })
      const runtime = PlannerRuntime.layer(MemoryEventStore.layer(), { executor }).pipe(Layer.provide(queue))
      yield* Effect.gen(function* () {
        const worker = yield* Effect.fork(Worker.run({ livenessCheckInterval: "20 millis", warmTokenizer: false }))
        // Ten intervals with nothing to do: not one question.
        yield* Effect.sleep("200 millis")
        expect(calls).toBe(0)
        const service = yield* PlannerService
        const at = yield* Clock.currentTimeMillis
        const sessionId = Runner.newSessionId(at)
        yield* service.execute(
          sessionId,
          new Initialize({ request: "tidy up", tasks: independentTasks(3), config: defaultConfig, at })
        )
        yield* Deferred.await(asked).pipe(Effect.timeout("10 seconds"))
        yield* Fiber.interrupt(worker)
        expect(calls).toBeGreaterThanOrEqual(1)
      }).pipe(Effect.provide(runtime))
    })
  )
})
