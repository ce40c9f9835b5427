/**
 * A worker whose takes fail (the store away: restarted, failed over, cut off). A worker serving every session tries
 * again, 250 ms doubling up to 8 s, for as long as it takes, and serves on once the queue answers; the worker of one
 * run tries `runTakeTries` times and then fails the run, which tells how to go on. On the test's clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Worker from "../../src/app/Worker.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { TaskQueue, TaskQueueError } from "../../src/infra/TaskQueue.js"
import { byTheClock } from "../support/clock.js"
import { independentTasks } from "./fixtures/plans.js"
import { fast } from "./runnerSuite.js"

/** A runtime whose queue fails its first `failures` takes, counting every take. */
const withFailingTakes = (failures: number) => {
  const takes = { calls: 0, failed: 0 }
  const queue = Layer.effect(
    TaskQueue,
    Effect.map(MemoryTaskQueue.makeFresh, (inner) => ({
      ...inner,
      take: (...args: Parameters<typeof inner.take>) =>
        Effect.suspend(() => {
          takes.calls += 1
          if (takes.failed >= failures) return inner.take(...args)
          takes.failed += 1
          return Effect.fail(new TaskQueueError({ operation: "take jobs", reason: "connection refused" }))
        })
    }))
  )
  const executor = ScriptExecutor.make({ rules: [], default: { complete: "done" } })
  return { takes, runtime: PlannerRuntime.layer(MemoryEventStore.layer(), { executor }).pipe(Layer.provide(queue)) }
}

/** Three tasks dispatched before any worker runs: their jobs wait in the queue, so a worker must take them. */
const recordPlan = Effect.gen(function* () {
  const service = yield* PlannerService
  const at = yield* Clock.currentTimeMillis
  const sessionId = Runner.newSessionId(at)
  yield* service.execute(
    sessionId,
    new Initialize({
      request: "Three steps",
      tasks: independentTasks(3),
      config: { ...defaultConfig, ...fast, maxParallel: 3 },
      at
    })
  )
  return sessionId
})

describe("a worker whose takes fail", () => {
  it.scoped("serving every session, it tries again past the run's bound and serves on once the queue answers", () => {
    const { takes, runtime } = withFailingTakes(Worker.runTakeTries + 2)
    return Effect.gen(function* () {
      const sessionId = yield* recordPlan
      yield* Effect.forkScoped(Worker.run({ checkAttachments: false }))
      const service = yield* PlannerService
      const finished = Effect.gen(function* () {
        for (;;) {
          const state = yield* service.state(sessionId)
          if (Planner.isFinished(state)) return state
          yield* Effect.sleep("50 millis")
        }
      })
      const state = yield* byTheClock(yield* Effect.fork(finished))
      expect(state.status).toBe("Succeeded")
      expect(state.tasks.map((task) => task.attempt)).toEqual([1, 1, 1])
      expect(takes.failed).toBe(Worker.runTakeTries + 2)
      expect(takes.calls).toBeGreaterThan(takes.failed)
    }).pipe(Effect.provide(runtime))
  })

  it.effect("the worker of one run gives up after runTakeTries failed takes, failing the run", () => {
    const { takes, runtime } = withFailingTakes(Number.POSITIVE_INFINITY)
    return Effect.gen(function* () {
      const sessionId = yield* recordPlan
      const ended = yield* Effect.either(byTheClock(yield* Effect.fork(Runner.run(sessionId))))
      expect(ended._tag).toBe("Left")
      if (ended._tag === "Left") expect(ended.left).toBeInstanceOf(TaskQueueError)
      expect(takes.calls).toBe(Worker.runTakeTries)
    }).pipe(Effect.provide(runtime))
  })

  it("waits 250 ms after the first failure, doubling up to 8 s", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(Worker.takeRetryMs)).toEqual([
      250, 500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000
    ])
  })
})
