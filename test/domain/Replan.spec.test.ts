/**
 * Given/when/then for replanning after a failure (`onFailure: "replan"`): the decider records that a revised plan is
 * wanted, takes the revision (`ReviseAfterFailure`) or the fallback (`SkipReplan`), and holds the bound.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import {
  Continue,
  HandleExecutorEvent,
  ReviseAfterFailure,
  SkipReplan,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import { InvalidPlan, InvalidTransition, SessionFinished, UnknownTask } from "../../src/domain/Errors.js"
import {
  decodeEvent,
  encodeEvent,
  PlanningCompleted,
  ReplanRequested,
  ReplanSkipped,
  TaskDispatched,
  TaskReplanned,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"
import * as Memory from "../../src/domain/Memory.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { given, tasks } from "../support/DeciderSpec.js"

const T0 = 1_700_000_000_000
const model = { _tag: "Llm" as const, model: "test-model" }

const planned = (plan: ReadonlyArray<TaskPlan>, overrides: Partial<PlannerConfig> = {}) =>
  new TasksPlanned({
    request: "a request",
    attachments: [],
    tasks: plan,
    config: { ...defaultConfig, maxAttempts: 1, onFailure: "replan", ...overrides },
    source: { _tag: "Parser" },
    at: T0
  })

const dispatched = (taskId: number, description: string, attempt = 1, at = T0) =>
  new TaskDispatched({ taskId, attempt, kind: "Processing", description, clarifications: [], at })
const completed = (taskId: number, result: string, at = T0) =>
  new TaskStatusUpdated({ taskId, status: "Completed", attempt: 1, result, at })
const failed = (taskId: number, error: string, at = T0) =>
  new TaskStatusUpdated({ taskId, status: "Failed", attempt: 1, error, at })
const report = (event: HandleExecutorEvent["event"], at = T0) => new HandleExecutorEvent({ event, at })

/** 1 fetch, 2 parse (after 1), 3 report (after 2), 4 independent. */
const plan = tasks(["fetch", []], ["parse", [1]], ["report", [2]], ["notify", []])
/** 2 failed for good, 1 and 4 completed, 3 waits on 2. */
const failedAtTwo = [
  planned(plan),
  dispatched(1, "fetch"),
  dispatched(4, "notify"),
  completed(1, "fetched"),
  completed(4, "notified"),
  dispatched(2, "parse")
]
const pendingAtTwo = [
  ...failedAtTwo,
  failed(2, "parser crashed", T0 + 1),
  new ReplanRequested({ taskId: 2, error: "parser crashed", at: T0 + 1 })
]

/** The revision: 5 parses another way (after 1, which the plan keeps), 6 reports (after 5). */
const revision = [
  { id: 5, description: "parse with the other parser", kind: "Processing" as const, dependsOn: [1], attachments: [] },
  { id: 6, description: "report", kind: "Processing" as const, dependsOn: [5], attachments: [] }
]

describe("a task that fails for good under the replan policy", () => {
  it("is recorded as failed and a replan is requested; what depends on it waits instead of being skipped", () => {
    const state = given(failedAtTwo)
      .when(report(new TaskFailed({ taskId: 2, error: "parser crashed" }), T0 + 1))
      .then(
        failed(2, "parser crashed", T0 + 1),
        new ReplanRequested({ taskId: 2, error: "parser crashed", at: T0 + 1 })
      )
    expect(Planner.pendingReplans(state)).toEqual([2])
    expect(Planner.task(state, 3)?.status).toBe("Planned")
    // Nothing runs and nobody is asked anything, but the plan is not over: the replan may add tasks.
    expect(state.status).toBe("Running")
    expect(Planner.isWaiting(state)).toBe(false)
  })

  it("does not end the plan while the replan is pending, even when every task is final", () => {
    const single = tasks(["only", []])
    given(planned(single), dispatched(1, "only"))
      .when(report(new TaskFailed({ taskId: 1, error: "boom" })))
      .then(failed(1, "boom"), new ReplanRequested({ taskId: 1, error: "boom", at: T0 }))
    given(
      planned(single),
      dispatched(1, "only"),
      failed(1, "boom"),
      new ReplanRequested({ taskId: 1, error: "boom", at: T0 })
    )
      .when(new Continue({ at: T0 + 5 }))
      .thenNothing()
  })

  it("retries first: a replan is asked for only when the attempts run out", () => {
    given(planned(plan, { maxAttempts: 2 }), dispatched(1, "fetch"), dispatched(4, "notify"))
      .when(report(new TaskFailed({ taskId: 1, error: "flaky" })))
      .then(
        expect.objectContaining({ _tag: "TaskRetryScheduled", taskId: 1 }) as never,
        expect.objectContaining({ _tag: "TaskDispatched", taskId: 1, attempt: 2 }) as never
      )
  })
})

describe("ReviseAfterFailure", () => {
  it("replaces the failed task and what depends on it, skips the replaced ones and runs the new tasks", () => {
    const state = given(pendingAtTwo)
      .when(new ReviseAfterFailure({ taskId: 2, tasks: revision, source: model, at: T0 + 2 }))
      .then(
        new TaskReplanned({ taskId: 2, supersededTaskIds: [3], tasks: revision, source: model, at: T0 + 2 }),
        new TaskStatusUpdated({
          taskId: 3,
          status: "Skipped",
          attempt: 0,
          error: "replaced by tasks 5 to 6 after task 2 failed",
          at: T0 + 2
        }),
        dispatched(5, "parse with the other parser", 1, T0 + 2)
      )
    expect(state.tasks.map((task) => task.status)).toEqual([
      "Completed",
      "Failed",
      "Skipped",
      "Completed",
      "Dispatched",
      "Planned"
    ])
    expect(state.replans).toEqual([{ taskId: 2, outcome: "Revised" }])
    // The index follows the new graph: 6 is a dependent of 5.
    expect(state.index).toEqual(Planner.indexTasks(state.tasks))
  })

  it("ends the plan as succeeded once the revised tasks complete: the replaced failure no longer counts", () => {
    const revised = [
      ...pendingAtTwo,
      new TaskReplanned({ taskId: 2, supersededTaskIds: [3], tasks: revision, source: model, at: T0 + 2 }),
      new TaskStatusUpdated({ taskId: 3, status: "Skipped", attempt: 0, error: "replaced", at: T0 + 2 }),
      dispatched(5, "parse with the other parser", 1, T0 + 2),
      completed(5, "parsed", T0 + 3),
      dispatched(6, "report", 1, T0 + 3)
    ]
    given(revised)
      .when(report(new TaskCompleted({ taskId: 6, result: "reported" }), T0 + 4))
      .then(
        new TaskStatusUpdated({ taskId: 6, status: "Completed", attempt: 1, result: "reported", at: T0 + 4 }),
        new PlanningCompleted({
          outcome: "Succeeded",
          summary: "4 of 6 tasks completed; task 2 failed and was replanned: parser crashed; 1 skipped.",
          at: T0 + 4
        })
      )
  })

  it("changes nothing when the replan was already settled (the same revision again, as after a restart)", () => {
    const settled = [
      ...pendingAtTwo,
      new TaskReplanned({ taskId: 2, supersededTaskIds: [3], tasks: revision, source: model, at: T0 + 2 })
    ]
    given(settled)
      .when(new ReviseAfterFailure({ taskId: 2, tasks: revision, source: model, at: T0 + 3 }))
      .thenNothing()
    given(settled)
      .when(new SkipReplan({ taskId: 2, reason: "late", at: T0 + 3 }))
      .thenNothing()
  })

  it("refuses a revision nobody asked for", () => {
    given(failedAtTwo)
      .when(new ReviseAfterFailure({ taskId: 2, tasks: revision, source: model, at: T0 }))
      .thenFails(
        new InvalidTransition({ taskId: 2, status: "Dispatched", action: "be replanned: no replan is pending for it" })
      )
    given(pendingAtTwo)
      .when(new ReviseAfterFailure({ taskId: 9, tasks: revision, source: model, at: T0 }))
      .thenFails(new UnknownTask({ taskId: 9 }))
  })

  it("refuses a revision without tasks", () => {
    given(pendingAtTwo)
      .when(new ReviseAfterFailure({ taskId: 2, tasks: [], source: model, at: T0 }))
      .thenFails(new InvalidPlan({ reason: "the revised plan for task 2 has no tasks" }))
  })

  it("refuses revised tasks that depend on a task the revision replaces", () => {
    const onReplaced = [{ ...revision[0], dependsOn: [3] }, revision[1]] as ReadonlyArray<TaskPlan>
    given(pendingAtTwo)
      .when(new ReviseAfterFailure({ taskId: 2, tasks: onReplaced, source: model, at: T0 }))
      .thenFails(new InvalidPlan({ reason: "revised task 5 depends on task 3, which the revision replaces" }))
  })

  it("refuses ids that do not follow the plan's last id, unknown dependencies and cycles", () => {
    const renumbered = revision.map((task) => ({ ...task, id: task.id + 1, dependsOn: [] }))
    given(pendingAtTwo)
      .when(new ReviseAfterFailure({ taskId: 2, tasks: renumbered, source: model, at: T0 }))
      .thenFails(new InvalidPlan({ reason: "task ids must be 1..6 in order, found 6 at position 5" }))
    const unknown = [{ ...revision[0], dependsOn: [12] }, revision[1]] as ReadonlyArray<TaskPlan>
    given(pendingAtTwo)
      .when(new ReviseAfterFailure({ taskId: 2, tasks: unknown, source: model, at: T0 }))
      .thenFails(new InvalidPlan({ reason: "task 5 depends on unknown task 12" }))
    const cycle = [{ ...revision[0], dependsOn: [6] }, revision[1]] as ReadonlyArray<TaskPlan>
    given(pendingAtTwo)
      .when(new ReviseAfterFailure({ taskId: 2, tasks: cycle, source: model, at: T0 }))
      .thenFails(new InvalidPlan({ reason: "tasks 5 -> 6 -> 5 form a cycle" }))
  })

  it("refuses a revision after the plan ended", () => {
    given(pendingAtTwo, new PlanningCompleted({ outcome: "Cancelled", summary: "stopped", at: T0 + 5 }))
      .when(new ReviseAfterFailure({ taskId: 2, tasks: revision, source: model, at: T0 + 6 }))
      .thenFails(new SessionFinished({ outcome: "Cancelled" }))
  })
})

describe("SkipReplan (no LLM, or its answer unusable)", () => {
  it("falls back to continue: records why, skips what depends on the failed task and ends the plan", () => {
    const state = given(pendingAtTwo)
      .when(new SkipReplan({ taskId: 2, reason: "no LLM is configured", at: T0 + 2 }))
      .then(
        new ReplanSkipped({ taskId: 2, reason: "no LLM is configured", at: T0 + 2 }),
        new TaskStatusUpdated({
          taskId: 3,
          status: "Skipped",
          attempt: 0,
          error: "skipped because task 2 failed",
          at: T0 + 2
        }),
        new PlanningCompleted({
          outcome: "Failed",
          summary: "2 of 4 tasks completed; task 2 failed: parser crashed; 1 skipped.",
          at: T0 + 2
        })
      )
    expect(state.replans).toEqual([{ taskId: 2, outcome: "Skipped" }])
  })
})

describe("the bound on replans", () => {
  it("with max replans 0, a failure is handled as under continue at once, and the log says why", () => {
    given(failedAtTwo.map((event) => (event._tag === "TasksPlanned" ? planned(plan, { maxReplans: 0 }) : event)))
      .when(report(new TaskFailed({ taskId: 2, error: "parser crashed" }), T0 + 1))
      .then(
        failed(2, "parser crashed", T0 + 1),
        new ReplanSkipped({
          taskId: 2,
          reason: "the session has asked for 0 replans, the most it may (max replans 0)",
          at: T0 + 1
        }),
        new TaskStatusUpdated({
          taskId: 3,
          status: "Skipped",
          attempt: 0,
          error: "skipped because task 2 failed",
          at: T0 + 1
        }),
        new PlanningCompleted({
          outcome: "Failed",
          summary: "2 of 4 tasks completed; task 2 failed: parser crashed; 1 skipped.",
          at: T0 + 1
        })
      )
  })

  it("counts every replan asked for: the revised task failing again is not replanned beyond the bound", () => {
    const once = [
      planned(plan, { maxReplans: 1 }),
      ...pendingAtTwo.slice(1),
      new TaskReplanned({ taskId: 2, supersededTaskIds: [3], tasks: revision, source: model, at: T0 + 2 }),
      new TaskStatusUpdated({ taskId: 3, status: "Skipped", attempt: 0, error: "replaced", at: T0 + 2 }),
      dispatched(5, "parse with the other parser", 1, T0 + 2)
    ]
    given(once)
      .when(report(new TaskFailed({ taskId: 5, error: "still broken" }), T0 + 3))
      .then(
        failed(5, "still broken", T0 + 3),
        new ReplanSkipped({
          taskId: 5,
          reason: "the session has asked for 1 replan, the most it may (max replans 1)",
          at: T0 + 3
        }),
        new TaskStatusUpdated({
          taskId: 6,
          status: "Skipped",
          attempt: 0,
          error: "skipped because task 5 failed",
          at: T0 + 3
        }),
        new PlanningCompleted({
          outcome: "Failed",
          summary:
            "2 of 6 tasks completed; task 2 failed and was replanned: parser crashed; task 5 failed: still broken; 2 skipped.",
          at: T0 + 3
        })
      )
  })

  it("defaults to 2 for a plan that does not say (plans recorded before the bound existed)", () => {
    const twice = [
      ...pendingAtTwo,
      new TaskReplanned({ taskId: 2, supersededTaskIds: [3], tasks: revision, source: model, at: T0 + 2 }),
      new TaskStatusUpdated({ taskId: 3, status: "Skipped", attempt: 0, error: "replaced", at: T0 + 2 }),
      dispatched(5, "parse with the other parser", 1, T0 + 2)
    ]
    expect(planned(plan).config.maxReplans).toBeUndefined()
    given(twice)
      .when(report(new TaskFailed({ taskId: 5, error: "still broken" }), T0 + 3))
      .then(failed(5, "still broken", T0 + 3), new ReplanRequested({ taskId: 5, error: "still broken", at: T0 + 3 }))
  })
})

describe("the replan events in the log", () => {
  it("round-trip through the stored form", () => {
    const events = [
      new ReplanRequested({ taskId: 2, error: "parser crashed", at: T0 }),
      new TaskReplanned({ taskId: 2, supersededTaskIds: [3], tasks: revision, source: model, at: T0 }),
      new ReplanSkipped({ taskId: 5, reason: "no LLM", at: T0 })
    ]
    for (const event of events) {
      const stored = JSON.parse(JSON.stringify(encodeEvent(event)))
      const decoded = decodeEvent(stored.type, stored.version, stored.data)
      expect(Either.getOrThrow(decoded)).toEqual(event)
    }
  })

  it("a plan recorded without maxReplans encodes and decodes without it", () => {
    const stored = JSON.parse(JSON.stringify(encodeEvent(planned(plan))))
    expect(stored.data.config).not.toHaveProperty("maxReplans")
    expect(Either.getOrThrow(decodeEvent(stored.type, stored.version, stored.data))).toEqual(planned(plan))
  })
})

describe("memory of a replanned session", () => {
  it("remembers the revised tasks and their results, and the plan with them", () => {
    const log = [
      ...pendingAtTwo,
      new TaskReplanned({ taskId: 2, supersededTaskIds: [3], tasks: revision, source: model, at: T0 + 2 }),
      new TaskStatusUpdated({ taskId: 3, status: "Skipped", attempt: 0, error: "replaced", at: T0 + 2 }),
      dispatched(5, "parse with the other parser", 1, T0 + 2),
      completed(5, "parsed", T0 + 3),
      dispatched(6, "report", 1, T0 + 3),
      completed(6, "reported", T0 + 4),
      new PlanningCompleted({ outcome: "Succeeded", summary: "done", at: T0 + 4 })
    ]
    const records = Memory.recordsOf("s", log)
    const tasks = records.flatMap((record) =>
      record._tag === "Task" ? [[record.taskId, record.status, record.result]] : []
    )
    expect(tasks).toEqual([
      [1, "Completed", "fetched"],
      [2, "Failed", "parser crashed"],
      [4, "Completed", "notified"],
      [5, "Completed", "parsed"],
      [6, "Completed", "reported"]
    ])
    const session = records.find((record) => record._tag === "Session")
    expect(session?._tag === "Session" ? session.plan.map((step) => step.id) : []).toEqual([1, 2, 3, 4, 5, 6])
  })
})

describe("a revision in a foreign log", () => {
  it("adds only the tasks that take the plan's next ids, so every task stays at its id and the index stays whole", () => {
    // Found by the planner's index property: a revision whose new task reused id 1 put a second task 1 in the plan.
    const state = Planner.fold([
      planned(plan),
      new TaskReplanned({
        taskId: 1,
        supersededTaskIds: [],
        tasks: [
          { ...(revision[0] as TaskPlan), id: 1 },
          { ...(revision[0] as TaskPlan), id: 5 }
        ],
        source: model,
        at: T0 + 1
      })
    ])
    expect(state.tasks.map((task) => task.id)).toEqual([1, 2, 3, 4, 5])
    expect(state.index).toEqual(Planner.indexTasks(state.tasks))
  })
})
