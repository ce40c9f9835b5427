/**
 * A worker's attempts started together have their outcomes recorded together (`worker/Cohorts`, the writer's `gather`):
 * four attempts one take started, whose executors end at the same moment, make one append, not one for the first to
 * end and another for the rest.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Fiber, Layer, TestClock } from "effect"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Worker from "../../src/app/Worker.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { EventStore } from "../../src/infra/EventStore.js"
import { type ExecutorService, Outcome, type TaskContext } from "../../src/infra/Executor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import { within } from "../infra/EventStoreContract.js"
import { independentTasks } from "./fixtures/plans.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const tasks = independentTasks(4)

/** A memory store that counts its appends. */
const countingStore = (appends: { count: number }) =>
  Layer.effect(
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

/**
 * An executor for the plan's tasks that completes each with its description once `end` has run, and `allStarted`,
 * which tells once every task has started how many appends `appends` had counted by then.
 */
const startingTogether = (
  name: string,
  appends: { readonly count: number },
  end: (context: TaskContext, allStarted: Deferred.Deferred<number>) => Effect.Effect<unknown>
) =>
  Effect.map(Deferred.make<number>(), (allStarted) => {
    let started = 0
    const executor: ExecutorService = {
      name,
      execute: (context) =>
        Effect.suspend(() => {
          started += 1
          if (started === tasks.length) Deferred.unsafeDone(allStarted, Effect.succeed(appends.count))
          return Effect.as(end(context, allStarted), Outcome.Completed({ result: context.description }))
        })
    }
    return { allStarted, executor }
  })

/**
 * On the test clock: four attempts one take starts, whose executors end 1, 2, 3 and 4 ms later. How many appends record
 * them (and the plan's end), with the worker's `gatherMs` as given and the writer's default.
 */
const staggeredAppends = (gatherMs: number | undefined) =>
  Effect.scoped(
    Effect.gen(function* () {
      const appends = { count: 0 }
      const { allStarted, executor } = yield* startingTogether("staggered", appends, (context) =>
        Effect.sleep(Duration.millis(context.taskId))
      )
      const runtime = yield* Layer.build(plannerRuntime(countingStore(appends), executor))
      const service = Context.get(runtime, PlannerService)
      yield* service.execute(
        "staggered",
        new Initialize({ request: "four tasks", tasks, config: { ...defaultConfig, maxParallel: 4 }, at: 1 })
      )
      const serving = yield* Effect.fork(
        Worker.run({
          concurrency: 4,
          checkAttachments: false,
          warmTokenizer: false,
          ...(gatherMs === undefined ? {} : { gatherMs })
        }).pipe(Effect.provide(runtime))
      )
      const before = yield* Deferred.await(allStarted)
      // A millisecond at a time, each given every turn it needs, until the plan has ended (10 ms at most).
      for (let ms = 0; ms < 10 && !Planner.isFinished(yield* service.state("staggered")); ms++) {
        yield* TestClock.adjust("1 millis")
        for (let turn = 0; turn < 200; turn++) yield* Effect.yieldNow()
      }
      const finished = yield* service.state("staggered")
      yield* Fiber.interrupt(serving)
      expect(finished.status).toBe("Succeeded")
      return appends.count - before
    })
  )

describe("a worker's gatherMs", () => {
  it.effect("by default, outcomes of attempts started together and ending within it go in one append", () =>
    Effect.map(staggeredAppends(undefined), (count) => expect(count).toBe(1))
  )

  it.effect("0 records each outcome as it comes", () =>
    Effect.map(staggeredAppends(0), (count) => expect(count).toBe(4))
  )
})

describe("a worker's attempts started together", () => {
  it.live("have their outcomes recorded in one append", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const appends = { count: 0 }
        const store = countingStore(appends)
        // The executors end together: each waits until all four have started.
        const { allStarted, executor } = yield* startingTogether("together", appends, (_, allStarted) =>
          Deferred.await(allStarted)
        )
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
