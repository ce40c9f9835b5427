/**
 * Sub-plans end to end, run unchanged over each store: a task expanded into a child session run by a real worker with
 * the script executor, its question answered, its outcome carried to the parent, a cancel carried down, and the
 * repairs `resume` makes after a process died between a child's steps and its parent's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Option } from "effect"
import * as Fork from "../../src/app/Fork.js"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as SubPlanRun from "../../src/app/SubPlanRun.js"
import * as SubPlans from "../../src/app/SubPlans.js"
import { ClaimTask, HandleExecutorEvent, Initialize, TaskCompleted } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import type { EventStore } from "../../src/infra/EventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const config = { ...defaultConfig, backoff: { initialDelayMs: 20, factor: 2, maxDelayMs: 100 }, leaseMs: 2_000 }

/** The child's "ask the date" step asks, then completes with the answer; everything else completes at once. */
const script = {
  rules: [{ match: "ask the date", outcomes: [{ ask: "Which date?" }, { complete: "date is {answer}" }] }],
  default: { complete: "done" }
}

const plan: ReadonlyArray<TaskPlan> = [
  { id: 1, description: "Write the notes", kind: "Processing", dependsOn: [], attachments: [] },
  {
    id: 2,
    description: "Build the release. Then ask the date. Then publish it.",
    kind: "Processing",
    dependsOn: [1],
    attachments: []
  },
  { id: 3, description: "Tell the team", kind: "Processing", dependsOn: [2], attachments: [] }
]

/** Records the plan with task 2 expanded, through whichever writer is provided. */
const startTree = Effect.gen(function* () {
  const service = yield* PlannerService.PlannerService
  const at = yield* Clock.currentTimeMillis
  const sessionId = Runner.newSessionId(at)
  yield* service.execute(
    sessionId,
    new Initialize({
      request: "Release it",
      tasks: plan,
      config,
      expand: [{ taskId: 2, childSessionId: childSessionId(sessionId, 2) }],
      at
    }),
    { correlationId: sessionId }
  )
  return sessionId
})

const state = (sessionId: string) =>
  Effect.flatMap(PlannerService.PlannerService, (service) => service.state(sessionId))

export const subPlanSuite = (name: string, makeStore: () => Layer.Layer<EventStore, unknown>) => {
  const withRuntime = <A, E, R>(store: Layer.Layer<EventStore, unknown>, body: Effect.Effect<A, E, R>) =>
    Effect.flatMap(
      ScriptExecutor.parse(JSON.stringify(script), "script.json").pipe(Effect.map(ScriptExecutor.make)),
      (executor) => Effect.provide(body, plannerRuntime(store, executor))
    )

  describe(`sub-plans on ${name}`, () => {
    it.live("a two-level plan: the child's question is answered, its summary becomes the task's result", () =>
      Effect.gen(function* () {
        const store = yield* Layer.memoize(makeStore())
        yield* withRuntime(
          store,
          Effect.gen(function* () {
            const root = yield* startTree
            const child = childSessionId(root, 2)
            const asked: Array<string> = []
            const result = yield* SubPlanRun.runTree(root, {
              onClarification: (task, question) =>
                Effect.sync(() => {
                  asked.push(`${task.id}: ${question}`)
                  return Option.some("Friday")
                })
            })
            expect(result.waiting).toBe(false)
            expect(result.state.status).toBe("Succeeded")
            expect(asked).toEqual([`2: (sub-plan ${child} of task 2) Which date?`])
            const childState = yield* state(child)
            expect(childState.status).toBe("Succeeded")
            expect(childState.subPlanOf).toEqual({
              sessionId: root,
              taskId: 2,
              rootSessionId: root,
              depth: 1,
              maxDepth: 3
            })
            expect(childState.tasks.map((task) => task.result)).toEqual(["done", "date is Friday", "done"])
            expect(result.state.tasks[1]?.childSessionId).toBe(child)
            expect(result.state.tasks[1]?.result).toBe(childState.summary)
            expect(result.state.tasks[2]?.status).toBe("Completed")
            // One trace covers the tree: every event of the child is correlated with the root, and its plan names the
            // root's dispatch of task 2 as its cause.
            const store = yield* PlannerStore.PlannerStore
            const childLog = yield* store.load(child)
            expect(
              childLog.filter((record) => record.metadata.correlationId !== root).map((record) => record.event._tag)
            ).toEqual([])
            expect(childLog.filter((record) => record.metadata.correlationId === root).length).toBeGreaterThan(5)
            const rootLog = yield* store.load(root)
            const dispatch = rootLog.find(
              (record) => record.event._tag === "TaskDispatched" && record.event.taskId === 2
            )
            expect(childLog[0]?.metadata.causationId).toBe(dispatch?.metadata.eventId)
            const completion = rootLog.find(
              (record) =>
                record.event._tag === "TaskStatusUpdated" &&
                record.event.taskId === 2 &&
                record.event.status === "Completed"
            )
            const childEnd = childLog.find((record) => record.event._tag === "PlanningCompleted")
            expect(completion?.metadata.causationId).toBe(childEnd?.metadata.eventId)
            // Time travel on the tree: at the root's first event the child did not exist; at its last, it had ended.
            expect((yield* SubPlans.treeAt(root, 1)).children.size).toBe(0)
            const last = yield* SubPlans.treeAt(root, rootLog.length)
            expect(last.children.get(2)?.state.status).toBe("Succeeded")
            expect(last.children.get(2)?.state).toEqual(childState)
            // The queue never held a job for the expanded task.
            expect(rootLog.some((record) => record.event._tag === "TaskClaimed" && record.event.taskId === 2)).toBe(
              false
            )
          })
        )
      }).pipe(Effect.scoped)
    )

    it.live("the tree waits for an answer nobody here gives; it is found from the root and the run goes on", () =>
      Effect.gen(function* () {
        const store = yield* Layer.memoize(makeStore())
        yield* withRuntime(
          store,
          Effect.gen(function* () {
            const root = yield* startTree
            const child = childSessionId(root, 2)
            const first = yield* SubPlanRun.runTree(root, { onClarification: () => Effect.succeed(Option.none()) })
            expect(first.waiting).toBe(true)
            expect(first.state.status).toBe("Running")
            expect(Planner.task(yield* state(child), 2)?.status).toBe("NeedsClarification")
            // Answering needs no knowledge of the tree: the root and the task id the question showed find it.
            expect(yield* SubPlans.findQuestion(root, 2)).toEqual(Option.some(child))
            expect(yield* SubPlans.findQuestion(root, 3)).toEqual(Option.none())
            yield* Runner.answer(child, 2, "Monday")
            const second = yield* SubPlanRun.runTree(root)
            expect(second.waiting).toBe(false)
            expect(second.state.status).toBe("Succeeded")
            expect((yield* state(child)).tasks[1]?.result).toBe("date is Monday")
          })
        )
      }).pipe(Effect.scoped)
    )

    it.live("a fork of the root copies its waiting child into a child of its own, and runs apart from the origin", () =>
      Effect.gen(function* () {
        const store = yield* Layer.memoize(makeStore())
        yield* withRuntime(
          store,
          Effect.gen(function* () {
            const root = yield* startTree
            const child = childSessionId(root, 2)
            const first = yield* SubPlanRun.runTree(root, { onClarification: () => Effect.succeed(Option.none()) })
            expect(first.waiting).toBe(true)
            const { sessionId: forked } = yield* Fork.fork(root, first.state.version)
            const forkedState = yield* state(forked)
            expect(forkedState.tasks[1]?.childSessionId).toBe(childSessionId(forked, 2))
            const forkedChild = yield* state(childSessionId(forked, 2))
            expect(forkedChild.subPlanOf).toMatchObject({ sessionId: forked, taskId: 2, rootSessionId: forked })
            expect(forkedChild.tasks.map((task) => task.status)).toEqual(
              (yield* state(child)).tasks.map((task) => task.status)
            )
            // The fork's tree runs to its end; the origin's child still waits.
            const done = yield* SubPlanRun.runTree(forked, {
              onClarification: () => Effect.succeed(Option.some("Tuesday"))
            })
            expect(done.state.status).toBe("Succeeded")
            expect((yield* state(childSessionId(forked, 2))).tasks[1]?.result).toBe("date is Tuesday")
            expect(Planner.task(yield* state(child), 2)?.status).toBe("NeedsClarification")
            expect((yield* state(root)).status).toBe("Running")
          })
        )
      }).pipe(Effect.scoped)
    )

    it.live("cancelling the root cancels its waiting child", () =>
      Effect.gen(function* () {
        const store = yield* Layer.memoize(makeStore())
        yield* withRuntime(
          store,
          Effect.gen(function* () {
            const root = yield* startTree
            const child = childSessionId(root, 2)
            const first = yield* SubPlanRun.runTree(root, { onClarification: () => Effect.succeed(Option.none()) })
            expect(first.waiting).toBe(true)
            yield* Runner.cancel(root)
            expect((yield* state(root)).status).toBe("Cancelled")
            const childState = yield* state(child)
            expect(childState.status).toBe("Cancelled")
            expect(childState.tasks.map((task) => task.status)).toEqual(["Completed", "Cancelled", "Cancelled"])
            expect(childState.summary).toContain(`Task 2 of session ${root} was cancelled`)
          })
        )
      }).pipe(Effect.scoped)
    )

    it.live(
      "resume repairs a crash between a dispatch and the child's start, and between the child's end and the parent",
      () =>
        Effect.gen(function* () {
          const store = yield* Layer.memoize(makeStore())
          // A process whose writer knew nothing of sub-plans (or died before its reactions) recorded the dispatch of
          // task 2 without starting its child, then the child's whole run without telling the parent.
          const bare = PlannerService.layer().pipe(Layer.provideMerge(PlannerStore.layer), Layer.provideMerge(store))
          const { root, child } = yield* Effect.gen(function* () {
            const service = yield* PlannerService.PlannerService
            const root = yield* startTree
            const at = yield* Clock.currentTimeMillis
            const complete = (sessionId: string, taskId: number, result: string) =>
              Effect.zipRight(
                service.execute(sessionId, new ClaimTask({ taskId, attempt: 1, workerId: "crashed", at })),
                service.execute(
                  sessionId,
                  new HandleExecutorEvent({ event: new TaskCompleted({ taskId, result }), at })
                )
              )
            yield* complete(root, 1, "notes written")
            const dispatched = yield* service.state(root)
            expect(dispatched.tasks[1]?.status).toBe("Dispatched")
            const child = childSessionId(root, 2)
            expect((yield* service.state(child)).status).toBe("NotStarted")
            return { root, child }
          }).pipe(Effect.provide(bare))
          // Resume of the root starts the child and runs the tree to its end.
          yield* withRuntime(
            store,
            Effect.gen(function* () {
              const result = yield* SubPlanRun.runTree(root, {
                onClarification: () => Effect.succeed(Option.some("Sunday"))
              })
              expect(result.state.status).toBe("Succeeded")
              expect((yield* state(child)).status).toBe("Succeeded")
            })
          )
          // The second crash: a child that ended while its parent was not told.
          const { root: root2, child: child2 } = yield* Effect.gen(function* () {
            const service = yield* PlannerService.PlannerService
            const root = yield* startTree
            const at = yield* Clock.currentTimeMillis
            const complete = (sessionId: string, taskId: number, result: string) =>
              Effect.zipRight(
                service.execute(sessionId, new ClaimTask({ taskId, attempt: 1, workerId: "crashed", at })),
                service.execute(
                  sessionId,
                  new HandleExecutorEvent({ event: new TaskCompleted({ taskId, result }), at })
                )
              )
            yield* complete(root, 1, "notes written")
            const parent = yield* service.state(root)
            const child = childSessionId(root, 2)
            yield* service.execute(
              child,
              SubPlans.childInitialize(root, parent, parent.tasks[1] ?? (undefined as never), at)
            )
            for (const taskId of [1, 2, 3]) yield* complete(child, taskId, `step ${taskId}`)
            expect((yield* service.state(child)).status).toBe("Succeeded")
            expect((yield* service.state(root)).tasks[1]?.status).toBe("Dispatched")
            return { root, child }
          }).pipe(Effect.provide(bare))
          yield* withRuntime(
            store,
            Effect.gen(function* () {
              const result = yield* SubPlanRun.runTree(root2)
              expect(result.state.status).toBe("Succeeded")
              expect(result.state.tasks[1]?.result).toBe((yield* state(child2)).summary)
            })
          )
        }).pipe(Effect.scoped)
    )
  })
}
