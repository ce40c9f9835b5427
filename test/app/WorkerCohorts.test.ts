/**
 * A worker's attempts started together have their outcomes recorded together (`worker/Cohorts`, the writer's `gather`):
 * four attempts one take started, whose executors end at the same moment, make one append, not one for the first to
 * end and another for the rest.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer } from "effect"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Worker from "../../src/app/Worker.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { EventStore } from "../../src/infra/EventStore.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import { within } from "../infra/EventStoreContract.js"
import { independentTasks } from "./fixtures/plans.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const tasks = independentTasks(4)

describe("a worker's attempts started together", () => {
  it.live("have their outcomes recorded in one append", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const appends = { count: 0 }
        const store = Layer.effect(
          EventStore,
          Effect.map(MemoryEventStore.makeStorage, (storage) => {
            const inner = MemoryEventStore.make(storage)
            return {
              ...inner,
              append: (...args: Parameters<typeof inner.append>) =>
                Effect.zipRight(
                  Effect.sync(() => {
                    appends.count += 1
                  }),
                  inner.append(...args)
                )
            }
          })
        )
        // The executors end together: each waits until all four have started.
        const allStarted = yield* Deferred.make<number>()
        let started = 0
        const executor: ExecutorService = {
          name: "together",
          execute: (context) =>
            Effect.suspend(() => {
              started += 1
              if (started === tasks.length) Deferred.unsafeDone(allStarted, Effect.succeed(appends.count))
              return Effect.as(Deferred.await(allStarted), Outcome.Completed({ result: context.description }))
            })
        }
        // A long bound for the wait, so that a loaded machine cannot split the four; the wait ends when the last is in.
        const runtime = yield* Layer.build(plannerRuntime(store, executor, { gatherMs: 1_000 }))
        const service = Context.get(runtime, PlannerService)
        yield* service.execute(
          "together",
          new Initialize({ request: "four tasks", tasks, config: { ...defaultConfig, maxParallel: 4 }, at: 1 })
        )
        const serving = yield* Effect.fork(
          Worker.run({ concurrency: 4, checkAttachments: false, warmTokenizer: false }).pipe(Effect.provide(runtime))
        )
        const before = yield* Deferred.await(allStarted).pipe(within(30, "the four attempts"))
        const finished = yield* Effect.gen(function* () {
          const state = yield* service.state("together")
          if (!Planner.isFinished(state)) return yield* Effect.fail("not yet")
          return state
        }).pipe(Effect.retry({ times: 3_000 }), Effect.delay("5 millis"), Effect.eventually, within(30, "the plan"))
        yield* Fiber.interrupt(serving)
        expect(finished.status).toBe("Succeeded")
        // The four outcomes (each with its attempt's start) and the plan's end: one append.
        expect(appends.count - before).toBe(1)
      })
    )
  )
})
