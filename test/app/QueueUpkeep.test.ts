/**
 * A worker's queue upkeep: every interval it lets the queue reclaim what ended jobs left behind
 * (`TaskQueue.reclaim`), and a failure to do so is logged without stopping the upkeep or the worker.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Logger, TestClock } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import * as Worker from "../../src/app/Worker.js"
import { keepQueueTidy } from "../../src/app/worker/QueueUpkeep.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { TaskQueue, TaskQueueError } from "../../src/infra/TaskQueue.js"

describe("the queue upkeep", () => {
  it.effect("asks the queue to reclaim every interval, and goes on after a failure, which it logs", () =>
    Effect.gen(function* () {
      let calls = 0
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
        keepQueueTidy({ reclaim }, "1 second").pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      )
      yield* TestClock.adjust("999 millis")
      expect(calls).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(calls).toBe(1)
      yield* TestClock.adjust("3 seconds")
      expect(calls).toBe(4)
      expect(logged).toEqual([
        "could not reclaim the task queue's space: The task queue failed to vacuum the job table: connection lost"
      ])
      yield* Fiber.interrupt(upkeep)
    })
  )

  it.effect("a queue with nothing to reclaim gets no upkeep", () =>
    Effect.gen(function* () {
      // It ends at once instead of sleeping for ever.
      yield* keepQueueTidy({}, "1 second")
    })
  )

  it.live("a worker keeps its queue tidy while it serves", () =>
    Effect.gen(function* () {
      const asked = yield* Deferred.make<void>()
      let calls = 0
      const queue = Layer.effect(
        TaskQueue,
        Effect.map(MemoryTaskQueue.makeFresh, (inner) => ({
          ...inner,
          reclaim: Effect.suspend(() => {
            calls += 1
            return Effect.as(calls >= 3 ? Deferred.succeed(asked, undefined) : Effect.void, false)
          })
        }))
      )
      const executor = ScriptExecutor.make({ rules: [], default: { complete: "done" } })
      const runtime = PlannerRuntime.layer(MemoryEventStore.layer(), { executor }).pipe(Layer.provide(queue))
      const worker = yield* Effect.fork(
        Worker.run({ livenessCheckInterval: "20 millis", warmTokenizer: false }).pipe(Effect.provide(runtime))
      )
      yield* Deferred.await(asked).pipe(Effect.timeout("10 seconds"))
      yield* Fiber.interrupt(worker)
      expect(calls).toBeGreaterThanOrEqual(3)
    })
  )
})
