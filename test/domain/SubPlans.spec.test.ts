/**
 * Given/when/then for sub-plans: a task expanded into a child session waits for it, with no job in the task queue,
 * and takes the child's outcome as its own; cancelling the parent leaves the child's tasks to stop.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Cancel,
  ClaimTask,
  ExpandTask,
  HandleExecutorEvent,
  Initialize,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import { DepthExceeded, InvalidTransition, SessionFinished, UnknownTask } from "../../src/domain/Errors.js"
import {
  PlanningCompleted,
  TaskDispatched,
  TaskExpanded,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import * as SubPlans from "../../src/domain/SubPlans.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import * as Jobs from "../../src/infra/Jobs.js"
import { given, tasks } from "../support/DeciderSpec.js"

const T0 = 1_700_000_000_000
const config = (overrides: Partial<PlannerConfig> = {}): PlannerConfig => ({ ...defaultConfig, ...overrides })

const planned = (
  plan: ReadonlyArray<TaskPlan>,
  overrides: Partial<PlannerConfig> = {},
  subPlanOf?: SubPlans.SubPlanOf
) =>
  new TasksPlanned({
    request: "a request",
    attachments: [],
    tasks: plan,
    config: config(overrides),
    source: { _tag: "Parser" },
    ...(subPlanOf === undefined ? {} : { subPlanOf }),
    at: T0
  })

const dispatched = (taskId: number, description: string, attempt = 1, at = T0) =>
  new TaskDispatched({ taskId, attempt, kind: "Processing", description, clarifications: [], at })

const report = (event: HandleExecutorEvent["event"], at = T0) => new HandleExecutorEvent({ event, at })

const chain = tasks(["Write the code"], ["Build the release. Then publish it."])
const child = SubPlans.childSessionId("root", 2)
const chainStarted = [planned(chain), dispatched(1, "Write the code")]

describe("Expanding a task", () => {
  it("records the child of a planned task; the task is dispatched when ready, with no job in the queue", () => {
    const state = given(chainStarted)
      .when(new ExpandTask({ taskId: 2, childSessionId: child, at: T0 + 1 }))
      .then(new TaskExpanded({ taskId: 2, childSessionId: child, at: T0 + 1 }))
    expect(state.tasks[1]?.childSessionId).toBe("root~2")
    const after = given(chainStarted, new TaskExpanded({ taskId: 2, childSessionId: child, at: T0 + 1 }))
      .when(report(new TaskCompleted({ taskId: 1, result: "done" }), T0 + 2))
      .then(
        new TaskStatusUpdated({ taskId: 1, status: "Completed", attempt: 1, result: "done", at: T0 + 2 }),
        dispatched(2, "Build the release. Then publish it.", 1, T0 + 2)
      )
    // It waits, in flight, for its child: no job for any worker to take.
    expect(after.tasks[1]?.status).toBe("Dispatched")
    expect(Planner.hasJob(after.tasks[1] ?? (undefined as never))).toBe(false)
    expect(Jobs.jobsFromState("root", after)).toEqual([])
    expect(SubPlans.childrenInFlight(after).map((task) => task.id)).toEqual([2])
  })

  it("expands a ready task and dispatches it in the same decision", () => {
    const plan = tasks(["Plan the trip. Then book it."])
    given(planned(plan, { maxParallel: 1 }))
      .when(new ExpandTask({ taskId: 1, childSessionId: "root~1", at: T0 }))
      .then(
        new TaskExpanded({ taskId: 1, childSessionId: "root~1", at: T0 }),
        dispatched(1, "Plan the trip. Then book it.")
      )
  })

  it("expands tasks as the plan is recorded (run --expand), before anything is dispatched", () => {
    const plan = tasks(["Plan the trip. Then book it."], ["Pack"])
    given()
      .when(
        new Initialize({
          request: "x",
          tasks: plan,
          expand: [{ taskId: 1, childSessionId: "root~1" }],
          at: T0
        })
      )
      .then(
        new TasksPlanned({
          request: "x",
          attachments: [],
          tasks: plan,
          config: defaultConfig,
          source: { _tag: "Parser" },
          at: T0
        }),
        new TaskExpanded({ taskId: 1, childSessionId: "root~1", at: T0 }),
        dispatched(1, "Plan the trip. Then book it.")
      )
  })

  it("the same expansion twice changes nothing; another child for the same task is refused", () => {
    const expanded = [...chainStarted, new TaskExpanded({ taskId: 2, childSessionId: child, at: T0 })]
    given(expanded)
      .when(new ExpandTask({ taskId: 2, childSessionId: child, at: T0 + 1 }))
      .thenNothing()
    given(expanded)
      .when(new ExpandTask({ taskId: 2, childSessionId: "other", at: T0 + 1 }))
      .thenFails(
        new InvalidTransition({
          taskId: 2,
          status: "Planned",
          action: "be expanded into other: it is expanded into root~2 already"
        })
      )
  })

  it("refuses a task that has started, an unknown task, and a finished session", () => {
    given(chainStarted)
      .when(new ExpandTask({ taskId: 1, childSessionId: "root~1", at: T0 }))
      .thenFails(
        new InvalidTransition({ taskId: 1, status: "Dispatched", action: "be expanded: only a planned task can be" })
      )
    given(chainStarted)
      .when(new ExpandTask({ taskId: 9, childSessionId: "root~9", at: T0 }))
      .thenFails(new UnknownTask({ taskId: 9 }))
    given(chainStarted, new PlanningCompleted({ outcome: "Cancelled", summary: "x", at: T0 }))
      .when(new ExpandTask({ taskId: 2, childSessionId: child, at: T0 }))
      .thenFails(new SessionFinished({ outcome: "Cancelled" }))
  })

  it("refuses to expand past the tree's depth bound, which every child inherits", () => {
    const deep = planned(chain, {}, { sessionId: "p", taskId: 1, rootSessionId: "r", depth: 2, maxDepth: 2 })
    given(deep, dispatched(1, "Write the code"))
      .when(new ExpandTask({ taskId: 2, childSessionId: "c", maxDepth: 10, at: T0 }))
      .thenFails(new DepthExceeded({ taskId: 2, depth: 3, maxDepth: 2 }))
    given(chainStarted)
      .when(new ExpandTask({ taskId: 2, childSessionId: child, maxDepth: 1, at: T0 }))
      .then(new TaskExpanded({ taskId: 2, childSessionId: child, at: T0 }))
    const rootWithZeroRoom = planned(
      chain,
      {},
      { sessionId: "p", taskId: 1, rootSessionId: "r", depth: 3, maxDepth: 3 }
    )
    given(rootWithZeroRoom, dispatched(1, "Write the code"))
      .when(new ExpandTask({ taskId: 2, childSessionId: "c", at: T0 }))
      .thenFails(new DepthExceeded({ taskId: 2, depth: 4, maxDepth: 3 }))
  })

  it("a child's plan records where it hangs, and its own children go one level deeper", () => {
    const parent = Planner.fold(chainStarted)
    const link = SubPlans.childLink("root", parent, 2)
    expect(link).toEqual({ sessionId: "root", taskId: 2, rootSessionId: "root", depth: 1, maxDepth: 3 })
    const childPlan = tasks(["Build the release"], ["Publish it"])
    const childState = given()
      .when(
        new Initialize({ request: "Build the release. Then publish it.", tasks: childPlan, subPlanOf: link, at: T0 })
      )
      .then(
        new TasksPlanned({
          request: "Build the release. Then publish it.",
          attachments: [],
          tasks: childPlan,
          config: defaultConfig,
          source: { _tag: "Parser" },
          subPlanOf: link,
          at: T0
        }),
        dispatched(1, "Build the release")
      )
    expect(childState.subPlanOf).toEqual(link)
    expect(SubPlans.childLink("root~2", childState, 1)).toEqual({
      sessionId: "root~2",
      taskId: 1,
      rootSessionId: "root",
      depth: 2,
      maxDepth: 3
    })
  })
})

describe("The parent's wait and the child's outcome", () => {
  const waiting = [
    planned(chain),
    new TaskExpanded({ taskId: 1, childSessionId: "root~1", at: T0 }),
    dispatched(1, "Write the code")
  ]

  it("a worker cannot claim an expanded task: it has no job", () => {
    const state = Planner.fold(waiting)
    expect(Jobs.jobsFromState("root", state)).toEqual([])
    // Nobody can claim it either (a writer handing freshly dispatched tasks to a local worker asks the decider).
    expect(state.tasks[0]?.status).toBe("Dispatched")
    given(waiting)
      .when(new ClaimTask({ taskId: 1, attempt: 1, workerId: "w", at: T0 }))
      .thenFails(new InvalidTransition({ taskId: 1, status: "Dispatched", action: "be claimed: its sub-plan does it" }))
  })

  it("a child that succeeded completes the task with its summary, and the plan goes on", () => {
    const childState = Planner.fold([
      planned(tasks(["a"]), {}, { sessionId: "root", taskId: 1, rootSessionId: "root", depth: 1, maxDepth: 3 }),
      new PlanningCompleted({ outcome: "Succeeded", summary: "1 of 1 tasks completed.", at: T0 })
    ])
    const outcome = SubPlans.outcomeForParent(childState)
    expect(outcome).toEqual(new TaskCompleted({ taskId: 1, result: "1 of 1 tasks completed." }))
    given(waiting)
      .when(report(outcome ?? (undefined as never), T0 + 5))
      .then(
        new TaskStatusUpdated({
          taskId: 1,
          status: "Completed",
          attempt: 1,
          result: "1 of 1 tasks completed.",
          at: T0 + 5
        }),
        dispatched(2, "Build the release. Then publish it.", 1, T0 + 5)
      )
  })

  it("a child that failed fails the task for good, even with retries left, and the failure policy applies", () => {
    const childState = Planner.fold([
      planned(tasks(["a"]), {}, { sessionId: "root", taskId: 1, rootSessionId: "root", depth: 1, maxDepth: 3 }),
      new PlanningCompleted({ outcome: "Failed", summary: "0 of 1 tasks completed; task 1 failed: boom.", at: T0 })
    ])
    const outcome = SubPlans.outcomeForParent(childState)
    expect(outcome).toEqual(
      new TaskFailed({
        taskId: 1,
        error: "sub-plan failed: 0 of 1 tasks completed; task 1 failed: boom.",
        retryable: false
      })
    )
    const retrying = [
      planned(chain, { maxAttempts: 3, onFailure: "abort" }),
      new TaskExpanded({ taskId: 1, childSessionId: "root~1", at: T0 }),
      dispatched(1, "Write the code")
    ]
    const error = "sub-plan failed: 0 of 1 tasks completed; task 1 failed: boom."
    given(retrying)
      .when(report(outcome ?? (undefined as never), T0 + 5))
      .then(
        new TaskStatusUpdated({ taskId: 1, status: "Failed", attempt: 1, error, at: T0 + 5 }),
        new TaskStatusUpdated({
          taskId: 2,
          status: "Cancelled",
          attempt: 0,
          error: "the plan was aborted because task 1 failed",
          at: T0 + 5
        }),
        new PlanningCompleted({
          outcome: "Failed",
          summary: `0 of 2 tasks completed; task 1 failed: ${error}; 1 cancelled. The plan was aborted because task 1 failed.`,
          at: T0 + 5
        })
      )
  })

  it("the same outcome twice changes nothing (a crash between the child's end and the parent's update)", () => {
    const done = [
      ...waiting,
      new TaskStatusUpdated({ taskId: 1, status: "Completed", attempt: 1, result: "ok", at: T0 }),
      dispatched(2, "Build the release. Then publish it.")
    ]
    given(done)
      .when(report(new TaskCompleted({ taskId: 1, result: "ok" })))
      .thenNothing()
  })

  it("a child that is still running has no outcome yet", () => {
    const running = Planner.fold([
      planned(tasks(["a"]), {}, { sessionId: "root", taskId: 1, rootSessionId: "root", depth: 1, maxDepth: 3 })
    ])
    expect(SubPlans.outcomeForParent(running)).toBeUndefined()
    expect(SubPlans.outcomeForParent(Planner.fold(chainStarted))).toBeUndefined()
  })
})

describe("Cascading cancel", () => {
  it("cancelling the parent cancels the waiting task, which names the child to stop", () => {
    const waiting = [
      planned(chain),
      new TaskExpanded({ taskId: 1, childSessionId: "root~1", at: T0 }),
      dispatched(1, "Write the code")
    ]
    const state = given(waiting)
      .when(new Cancel({ at: T0 + 1 }))
      .then(
        new TaskStatusUpdated({
          taskId: 1,
          status: "Cancelled",
          attempt: 1,
          error: "cancelled by the user",
          at: T0 + 1
        }),
        new TaskStatusUpdated({
          taskId: 2,
          status: "Cancelled",
          attempt: 0,
          error: "cancelled by the user",
          at: T0 + 1
        }),
        new PlanningCompleted({
          outcome: "Cancelled",
          summary: "0 of 2 tasks completed; 2 cancelled. Cancelled by the user.",
          at: T0 + 1
        })
      )
    expect(SubPlans.childrenToStop(state).map((task) => task.childSessionId)).toEqual(["root~1"])
    expect(SubPlans.childrenInFlight(state)).toEqual([])
  })

  it("a skipped expanded task (its dependency failed) names its child to stop too", () => {
    const state = Planner.fold([
      ...chainStarted,
      new TaskExpanded({ taskId: 2, childSessionId: child, at: T0 }),
      new TaskStatusUpdated({ taskId: 1, status: "Failed", attempt: 1, error: "x", at: T0 }),
      new TaskStatusUpdated({ taskId: 2, status: "Skipped", attempt: 0, error: "skipped", at: T0 })
    ])
    expect(SubPlans.childrenToStop(state).map((task) => task.id)).toEqual([2])
  })
})
