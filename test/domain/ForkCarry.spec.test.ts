/**
 * What an incremental fork carries over from its source at the fork point (issue #16: "a fork starts with what its
 * origin had spent at the fork point"; sub-plans stay sub-plans): given a source log, when `ForkSession` arrives, then
 * exactly these events, and folding them gives the spend, the limits, the compacted context and the expansions.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import type * as Budget from "../../src/domain/Budget.js"
import { ForkSession, HandleExecutorEvent, Initialize, TaskFailed } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import {
  BudgetRaised,
  ContextCompacted,
  ModelUsageRecorded,
  PlanEdited,
  type PlannerEvent,
  PlanningCompleted,
  SessionForked,
  TaskDispatched,
  TaskExpanded,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"
import { SetTask } from "../../src/domain/PlanEdit.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { given, tasks } from "../support/DeciderSpec.js"

const T0 = 1_700_000_000_000
const T1 = T0 + 1_000

const planned = (plan: ReadonlyArray<TaskPlan>, budgetTokens?: number) =>
  new TasksPlanned({
    request: "a request",
    attachments: [],
    tasks: plan,
    config: { ...defaultConfig, maxParallel: 4, ...(budgetTokens === undefined ? {} : { budgetTokens }) },
    source: { _tag: "Parser" },
    at: T0
  })
const dispatched = (taskId: number, description: string) =>
  new TaskDispatched({ taskId, attempt: 1, kind: "Processing", description, clarifications: [], at: T0 })
const completed = (taskId: number, result: string) =>
  new TaskStatusUpdated({ taskId, status: "Completed", attempt: 1, result, at: T0 })
const call = (input: number, output: number, extra: Partial<Budget.ModelUsage> = {}): Budget.ModelUsage => ({
  purpose: "execution",
  model: "m",
  inputTokens: input,
  outputTokens: output,
  counted: "api",
  ...extra
})

const fork = (source: ReadonlyArray<PlannerEvent>, options: Partial<ForkSession> = {}) =>
  new ForkSession({ fromSessionId: "source", atSequence: source.length, sourceEvents: source, at: T1, ...options })
const forkedPlan = (source: ReadonlyArray<PlannerEvent>) => new TasksPlanned({ ...(source[0] as TasksPlanned), at: T1 })

/** 1 -> 2 -> 3 under a budget of 1,000 tokens raised to 1,500, with model calls for tasks 1 and 2. */
const chain = tasks(["One"], ["Two"], ["Three"])
const spent: ReadonlyArray<PlannerEvent> = [
  planned(chain, 1_000),
  new ModelUsageRecorded({ usage: [call(100, 20, { purpose: "planning", usd: 0.001 })], at: T0 }),
  dispatched(1, "One"),
  new ModelUsageRecorded({ usage: [call(300, 50, { taskId: 1, attempt: 1, usd: 0.002 })], at: T0 }),
  completed(1, "one"),
  dispatched(2, "Two"),
  new BudgetRaised({ unit: "tokens", limit: 1_500, by: 500, taskId: 2, at: T0 }),
  new ModelUsageRecorded({ usage: [call(400, 80, { taskId: 2, attempt: 1, usd: 0.003 })], at: T0 })
]

describe("ForkSession carries the spend", () => {
  it("records the source's calls as one usage event and its raises, so the fork starts with the same spend and limit", () => {
    const state = given()
      .when(fork(spent))
      .then(
        forkedPlan(spent),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 8,
          reused: [{ taskId: 1, result: "one", attempt: 1, sequence: 5 }],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new ModelUsageRecorded({
          usage: [
            call(100, 20, { purpose: "planning", usd: 0.001 }),
            call(300, 50, { taskId: 1, attempt: 1, usd: 0.002 }),
            call(400, 80, { taskId: 2, attempt: 1, usd: 0.003 })
          ],
          at: T1
        }),
        new BudgetRaised({ unit: "tokens", limit: 1_500, by: 500, at: T1 }),
        new TaskDispatched({
          taskId: 2,
          attempt: 1,
          kind: "Processing",
          description: "Two",
          clarifications: [],
          at: T1
        })
      )
    const source = Planner.fold(spent)
    expect(state.budget).toEqual({ ...source.budget, questions: [] })
    expect(state.budget?.spent).toEqual({ inputTokens: 800, outputTokens: 150, calls: 3, usd: 0.006 })
    expect(state.budget?.tokens).toBe(1_500)
  })

  it("at an earlier event carries only what was spent by then", () => {
    const state = given()
      .when(fork(spent.slice(0, 4)))
      .then(
        forkedPlan(spent),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 4,
          reused: [],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new ModelUsageRecorded({
          usage: [
            call(100, 20, { purpose: "planning", usd: 0.001 }),
            call(300, 50, { taskId: 1, attempt: 1, usd: 0.002 })
          ],
          at: T1
        }),
        new TaskDispatched({
          taskId: 1,
          attempt: 1,
          kind: "Processing",
          description: "One",
          clarifications: [],
          at: T1
        })
      )
    expect(state.budget?.spent).toEqual({ inputTokens: 400, outputTokens: 70, calls: 2, usd: 0.003 })
    expect(state.budget?.tokens).toBe(1_000)
  })

  it("records nothing more for a source that spent nothing", () => {
    const source = [planned(chain), dispatched(1, "One"), completed(1, "one")]
    const state = given()
      .when(fork(source))
      .then(
        forkedPlan(source),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 3,
          reused: [{ taskId: 1, result: "one", attempt: 1, sequence: 3 }],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new TaskDispatched({
          taskId: 2,
          attempt: 1,
          kind: "Processing",
          description: "Two",
          clarifications: [],
          at: T1
        })
      )
    expect(state.budget).toBeUndefined()
  })
})

describe("ForkSession carries the compacted context", () => {
  const compactedSource: ReadonlyArray<PlannerEvent> = [
    planned(chain),
    dispatched(1, "One"),
    completed(1, "one"),
    new ContextCompacted({ summary: "one was done", removedTaskIds: [1], tokenBudget: 500, at: T0 }),
    dispatched(2, "Two"),
    completed(2, "two")
  ]

  it("when every compacted task is reused", () => {
    const state = given()
      .when(fork(compactedSource))
      .then(
        forkedPlan(compactedSource),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 6,
          reused: [
            { taskId: 1, result: "one", attempt: 1, sequence: 3 },
            { taskId: 2, result: "two", attempt: 1, sequence: 6 }
          ],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new ContextCompacted({ summary: "one was done", removedTaskIds: [1], tokenBudget: 500, at: T1 }),
        new TaskDispatched({
          taskId: 3,
          attempt: 1,
          kind: "Processing",
          description: "Three",
          clarifications: [],
          at: T1
        })
      )
    expect(state.contextSummary).toBe("one was done")
    expect(Planner.task(state, 1)?.compacted).toBe(true)
  })

  it("not when a compacted task runs again (the summary would speak of its old result)", () => {
    const state = given()
      .when(fork(compactedSource, { rerun: [1] }))
      .then(
        forkedPlan(compactedSource),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 6,
          reused: [],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new TaskDispatched({
          taskId: 1,
          attempt: 1,
          kind: "Processing",
          description: "One",
          clarifications: [],
          at: T1
        })
      )
    expect(state.contextSummary).toBe("")
  })
})

describe("ForkSession keeps sub-plans", () => {
  /** 1 and 2 in parallel, both expanded; 1's child finished, 2's still running. */
  const pair = tasks(["First: a. Then b.", []], ["Second: c. Then d.", []], ["Join", [1, 2]])
  const expandedSource: ReadonlyArray<PlannerEvent> = [
    planned(pair),
    new TaskExpanded({ taskId: 1, childSessionId: "source~1", at: T0 }),
    new TaskExpanded({ taskId: 2, childSessionId: "source~2", at: T0 }),
    dispatched(1, "First: a. Then b."),
    dispatched(2, "Second: c. Then d."),
    completed(1, "first done")
  ]
  const dispatchedAt = (taskId: number, description: string) =>
    new TaskDispatched({ taskId, attempt: 1, kind: "Processing", description, clarifications: [], at: T1 })

  it("expands the unfinished expanded task again, into the fork's child, so it is not run on a plain executor", () => {
    const state = given()
      .when(fork(expandedSource, { intoSessionId: "into" }))
      .then(
        forkedPlan(expandedSource),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 6,
          reused: [{ taskId: 1, result: "first done", attempt: 1, sequence: 6 }],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new TaskExpanded({ taskId: 2, childSessionId: "into~2", at: T1 }),
        dispatchedAt(2, "Second: c. Then d.")
      )
    expect(Planner.task(state, 2)?.childSessionId).toBe("into~2")
    // The reused task keeps its result and names no child: the source's child stays the source's.
    expect(Planner.task(state, 1)?.childSessionId).toBeUndefined()
    const waiting = Planner.task(state, 2)
    expect(waiting !== undefined && Planner.hasJob(waiting)).toBe(false)
  })

  it("expands an edited expanded task after the edit, so its child plans the new description", () => {
    given()
      .when(
        fork(expandedSource, {
          intoSessionId: "into",
          edits: [SetTask.make({ taskId: 1, description: "First: x. Then y." })]
        })
      )
      .then(
        forkedPlan(expandedSource),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 6,
          reused: [],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new PlanEdited({
          edits: [SetTask.make({ taskId: 1, description: "First: x. Then y." })],
          source: { _tag: "User" },
          at: T1
        }),
        new TaskExpanded({ taskId: 1, childSessionId: "into~1", at: T1 }),
        new TaskExpanded({ taskId: 2, childSessionId: "into~2", at: T1 }),
        dispatchedAt(1, "First: x. Then y."),
        dispatchedAt(2, "Second: c. Then d.")
      )
  })

  it("without the fork's id expands nothing (the command of an older caller)", () => {
    const state = given()
      .when(fork(expandedSource))
      .then(
        forkedPlan(expandedSource),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 6,
          reused: [{ taskId: 1, result: "first done", attempt: 1, sequence: 6 }],
          removed: [],
          clarifications: [],
          at: T1
        }),
        dispatchedAt(2, "Second: c. Then d.")
      )
    expect(Planner.task(state, 2)?.childSessionId).toBeUndefined()
  })

  it("a fork that ends at once records no expansion", () => {
    const done = [...expandedSource, completed(2, "second done"), dispatched(3, "Join"), completed(3, "joined")]
    given()
      .when(fork(done, { intoSessionId: "into" }))
      .then(
        forkedPlan(done),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 9,
          reused: [
            { taskId: 1, result: "first done", attempt: 1, sequence: 6 },
            { taskId: 2, result: "second done", attempt: 1, sequence: 7 },
            { taskId: 3, result: "joined", attempt: 1, sequence: 9 }
          ],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new PlanningCompleted({ outcome: "Succeeded", summary: "3 of 3 tasks completed.", at: T1 })
      )
  })
})

describe("ForkSession and a pending replan", () => {
  it("does not carry it: the failed task runs again in the fork, which may replan it if it fails again", () => {
    const source: Array<PlannerEvent> = []
    for (const command of [
      new Initialize({
        request: "One. Then two.",
        tasks: tasks(["One"], ["Two"]),
        config: { ...defaultConfig, onFailure: "replan", maxAttempts: 1 },
        at: T0
      }),
      new HandleExecutorEvent({ event: new TaskFailed({ taskId: 1, error: "boom", retryable: false }), at: T0 })
    ]) {
      source.push(...Either.getOrThrow(Planner.decideEither(Planner.fold(source), command)))
    }
    expect(Planner.pendingReplans(Planner.fold(source))).toEqual([1])
    const state = given()
      .when(fork(source))
      .then(
        forkedPlan(source),
        new SessionForked({
          fromSessionId: "source",
          atSequence: source.length,
          reused: [],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new TaskDispatched({
          taskId: 1,
          attempt: 1,
          kind: "Processing",
          description: "One",
          clarifications: [],
          at: T1
        })
      )
    expect(Planner.pendingReplans(state)).toEqual([])
    expect(state.config.onFailure).toBe("replan")
  })
})
