/**
 * What a recorded command means for a tree is not lost with the command's caller: a worker whose report of a child's
 * last task went in, but which was interrupted before it could carry the child's outcome to the parent (its run saw
 * the plan end and stopped it), still has the outcome reported. Over the in-memory store, with its append held open
 * so the interruption lands exactly while the report is being recorded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Fiber, Layer, Option, Schedule } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { ClaimTask, HandleExecutorEvent, Initialize, TaskCompleted } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import { EventStore } from "../../src/infra/EventStore.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"

/** The in-memory store, whose next append (once `arm` is called) waits for `release` after saying it started. */
const gatedStore = Effect.gen(function* () {
  const started = yield* Deferred.make<void>()
  const release = yield* Deferred.make<void>()
  let armed = false
  const layer = Layer.map(MemoryEventStore.layer(), (context) => {
    const store = Context.get(context, EventStore)
    return Context.add(context, EventStore, {
      ...store,
      append: (...args: Parameters<typeof store.append>) =>
        Effect.suspend(() => {
          if (!armed) return store.append(...args)
          armed = false
          return Effect.zipRight(
            Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(release)),
            store.append(...args)
          )
        })
    })
  })
  return { layer, arm: () => (armed = true), started, release }
})

describe("sub-plan reactions", () => {
  it.live("a child's outcome reaches its parent even when the report's caller is interrupted as it is recorded", () =>
    Effect.gen(function* () {
      const gate = yield* gatedStore
      const executor = ScriptExecutor.make({ rules: [], default: { complete: "done" } })
      const runtime = yield* Layer.build(PlannerRuntime.layer(gate.layer, { executor }))
      yield* Effect.gen(function* () {
        const service = yield* PlannerService
        const at = yield* Clock.currentTimeMillis
        const root = Runner.newSessionId(at)
        const child = childSessionId(root, 1)
        yield* service.execute(
          root,
          new Initialize({
            request: "Release it",
            tasks: [
              {
                id: 1,
                description: "Build the release. Then publish it.",
                kind: "Processing",
                dependsOn: [],
                attachments: []
              }
            ],
            config: defaultConfig,
            expand: [{ taskId: 1, childSessionId: child }],
            at
          })
        )
        // The writer started the child when it recorded the dispatch of task 1.
        const started = yield* service.state(child)
        expect(started.tasks.map((task) => task.status)).toEqual(["Dispatched", "Planned"])
        const finish = (taskId: number) =>
          Effect.zipRight(
            service.execute(child, new ClaimTask({ taskId, attempt: 1, workerId: "w", at })),
            service.execute(
              child,
              new HandleExecutorEvent({ event: new TaskCompleted({ taskId, result: `step ${taskId} done` }), at })
            )
          )
        yield* finish(1)
        yield* service.execute(child, new ClaimTask({ taskId: 2, attempt: 1, workerId: "w", at }))
        // The last report: held in its append, and its caller interrupted meanwhile.
        gate.arm()
        const report = yield* Effect.fork(
          service.execute(
            child,
            new HandleExecutorEvent({ event: new TaskCompleted({ taskId: 2, result: "step 2 done" }), at })
          )
        )
        yield* Deferred.await(gate.started)
        const interrupted = yield* Effect.fork(Fiber.interrupt(report))
        yield* Deferred.succeed(gate.release, undefined)
        yield* Fiber.join(interrupted)
        expect((yield* service.state(child)).status).toBe("Succeeded")
        // The child's outcome reaches the root's task all the same.
        const rootTask = yield* service.state(root).pipe(
          Effect.map((state) => Planner.task(state, 1)),
          Effect.filterOrFail((task) => task?.status === "Completed"),
          Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds"))),
          Effect.option
        )
        expect(Option.map(rootTask, (task) => task?.status)).toEqual(Option.some("Completed"))
        expect((yield* service.state(root)).status).toBe("Succeeded")
      }).pipe(Effect.provide(runtime))
    }).pipe(Effect.scoped)
  )
})
