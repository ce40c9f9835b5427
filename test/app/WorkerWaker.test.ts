/**
 * A worker's take loop keeps its waker whatever the queue's wait dies of: here the in-memory queue's `awaitWork` fails
 * its first two waits with an interruption that is not the worker's (as a shared LISTEN start cut short by another
 * fiber did on PostgreSQL, the #16 hang). The retry of a failed task, due after its backoff and so never handed over,
 * is still taken, and the plan finishes. And a slot freed by an attempt's end wakes the take loop while the queue
 * still has jobs for it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Effect, FiberId, Layer } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { TaskQueue } from "../../src/infra/TaskQueue.js"
import { independentTasks } from "./fixtures/plans.js"
import { fast } from "./runnerSuite.js"

/** Records a plan over `runtime`, every task dispatched at once, then runs it with a worker of this process. */
const planAndRun = (
  runtime: Layer.Layer<PlannerRuntime.Services, unknown>,
  request: string,
  tasks: ReadonlyArray<TaskPlan>,
  config: Partial<PlannerConfig> = {},
  options: Runner.RunOptions = {}
) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const at = yield* Clock.currentTimeMillis
    const sessionId = Runner.newSessionId(at)
    yield* service.execute(
      sessionId,
      new Initialize({ request, tasks, config: { ...defaultConfig, ...fast, ...config }, at })
    )
    return yield* Runner.run(sessionId, options)
  }).pipe(Effect.provide(runtime), Effect.timeout("30 seconds"))

describe("the worker's waker", () => {
  it.live("survives waits that die of somebody else's interruption", () =>
    Effect.gen(function* () {
      let broken = 2
      const queue = Layer.effect(
        TaskQueue,
        Effect.map(MemoryTaskQueue.makeFresh, (inner) => ({
          ...inner,
          awaitWork: (...args: Parameters<typeof inner.awaitWork>) =>
            Effect.suspend(() => {
              if (broken > 0) {
                broken -= 1
                return Effect.failCause(Cause.interrupt(FiberId.make(-1, 0)))
              }
              return inner.awaitWork(...args)
            })
        }))
      )
      const executor = ScriptExecutor.make({
        rules: [
          {
            match: "fetch",
            delayMs: 0,
            outcomes: [{ fail: "upstream timed out", retryable: true }, { complete: "fetched" }]
          }
        ],
        default: { complete: "done" }
      })
      const runtime = PlannerRuntime.layer(MemoryEventStore.layer(), { executor }).pipe(Layer.provide(queue))
      const result = yield* planAndRun(runtime, "Fetch the data", [
        { id: 1, description: "fetch the data", kind: "Retrieval", dependsOn: [], attachments: [] }
      ])
      expect(result.state.status).toBe("Succeeded")
      expect(result.state.tasks[0]?.attempt).toBe(2)
      // At least one wait died under the worker (the take loop then came back to the queue on its own).
      expect(broken).toBeLessThan(2)
    })
  )
  it.live("a slot freed by an attempt's end takes the next job the queue already has", () =>
    Effect.gen(function* () {
      const executor = ScriptExecutor.make({ rules: [], default: { complete: "done" } })
      const runtime = PlannerRuntime.layer(MemoryEventStore.layer(), { executor })
      // Every task is dispatched before the worker starts: their jobs wait in the queue, none handed over, and a
      // worker of one slot takes them one at a time, each when the attempt before it has ended.
      const result = yield* planAndRun(
        runtime,
        "Three steps",
        independentTasks(3),
        { maxParallel: 3 },
        { concurrency: 1 }
      )
      expect(result.state.status).toBe("Succeeded")
      expect(result.state.tasks.map((task) => task.attempt)).toEqual([1, 1, 1])
    })
  )
})
