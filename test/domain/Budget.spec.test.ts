/**
 * Given/when/then for the budget (see `Budget`): usage recorded as events, the budget question a crossing call leads
 * to, and both answers.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Budget from "../../src/domain/Budget.js"
import {
  Cancel,
  ClarificationProvided,
  HandleExecutorEvent,
  Initialize,
  NeedsClarification,
  RecordUsage
} from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import { InvalidTransition, SessionFinished, SessionNotStarted } from "../../src/domain/Errors.js"
import {
  BudgetRaised,
  ClarificationReceived,
  ClarificationRequested,
  decodeEvent,
  encodeEvent,
  ModelUsageRecorded,
  PlanningCompleted,
  TaskDispatched,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { given, tasks } from "../support/DeciderSpec.js"

const T0 = 1_700_000_000_000

/** A plan of `plan` with a budget of 50,000 tokens unless `overrides` say otherwise (`undefined`: no such limit). */
const planned = (
  plan: ReadonlyArray<TaskPlan>,
  overrides: { readonly [K in keyof PlannerConfig]?: PlannerConfig[K] | undefined } = {}
) => {
  const config: Record<string, unknown> = { ...defaultConfig, maxAttempts: 3, budgetTokens: 50_000, ...overrides }
  for (const key of Object.keys(config)) if (config[key] === undefined) delete config[key]
  return new TasksPlanned({
    request: "a request",
    attachments: [],
    tasks: plan,
    config: config as unknown as PlannerConfig,
    source: { _tag: "Parser" },
    at: T0
  })
}

const dispatched = (
  taskId: number,
  description: string,
  attempt = 1,
  at = T0,
  clarifications: TaskDispatched["clarifications"] = []
) => new TaskDispatched({ taskId, attempt, kind: "Processing", description, clarifications, at })

const call = (
  inputTokens: number,
  outputTokens: number,
  extra: Partial<Budget.ModelUsage> = {}
): Budget.ModelUsage => ({
  purpose: "execution",
  model: "test-model",
  inputTokens,
  outputTokens,
  counted: "api",
  ...extra
})

const used = (usage: Budget.ModelUsage, at = T0) => new ModelUsageRecorded({ usage: [usage], at })
const report = (event: HandleExecutorEvent["event"], at = T0) => new HandleExecutorEvent({ event, at })

const plan = tasks(["Summarise the report"], ["Write the memo"])
/** 48,200 of 50,000 tokens used; task 1 running. */
const nearlySpent = [planned(plan), dispatched(1, "Summarise the report"), used(call(40_000, 8_200))]

const ask: Budget.BudgetAsk = { unit: "tokens", spent: 48_200, limit: 50_000, needed: 3_000, suggested: 20_000 }
const question =
  "This plan has used 48,200 of 50,000 tokens; the next step needs about 3,000. Allow 20,000 more? (answer yes, yes AMOUNT, or no)"
const asking = [...nearlySpent, new ClarificationRequested({ taskId: 1, question, budget: ask, at: T0 })]

describe("usage events", () => {
  it("a model call's usage is recorded, and the spend is its sum", () => {
    const state = given(planned(plan), dispatched(1, "Summarise the report"))
      .when(new RecordUsage({ usage: [call(1_000, 200, { taskId: 1, attempt: 1 })], at: T0 }))
      .then(used(call(1_000, 200, { taskId: 1, attempt: 1 })))
    expect(state.budget?.spent).toEqual({ inputTokens: 1_000, outputTokens: 200, calls: 1 })
    expect(state.budget?.tokens).toBe(50_000)
  })

  it("nothing to record records nothing", () => {
    given(planned(plan))
      .when(new RecordUsage({ usage: [], at: T0 }))
      .thenNothing()
  })

  it("usage after the plan ended is refused: a log ends with its PlanningCompleted", () => {
    const ended = [planned(plan), new PlanningCompleted({ outcome: "Cancelled", summary: "cancelled", at: T0 })]
    given(ended)
      .when(new RecordUsage({ usage: [call(10, 5)], at: T0 }))
      .thenFails(new SessionFinished({ outcome: "Cancelled" }))
  })

  it("usage before a plan exists is refused (the planning call comes with Initialize)", () => {
    given()
      .when(new RecordUsage({ usage: [call(10, 5)], at: T0 }))
      .thenFails(new SessionNotStarted())
  })

  it("the planning call's usage is recorded with the plan", () => {
    const planning = call(900, 150, { purpose: "planning" })
    const state = given()
      .when(
        new Initialize({
          request: "Summarise the report",
          tasks: tasks(["Summarise the report"]),
          config: { ...defaultConfig, budgetTokens: 10_000 },
          usage: [planning],
          at: T0
        })
      )
      .then(
        new TasksPlanned({
          request: "Summarise the report",
          attachments: [],
          tasks: tasks(["Summarise the report"]),
          config: { ...defaultConfig, budgetTokens: 10_000 },
          source: { _tag: "Parser" },
          at: T0
        }),
        used(planning),
        dispatched(1, "Summarise the report")
      )
    expect(state.budget).toEqual({
      tokens: 10_000,
      spent: { inputTokens: 900, outputTokens: 150, calls: 1 },
      questions: []
    })
  })

  it("a plan without a budget and without calls has no budget in its state (old states encode as before)", () => {
    const state = Planner.fold([planned(plan, { budgetTokens: undefined })])
    expect("budget" in state).toBe(false)
  })

  it("priced calls add up in dollars without drifting", () => {
    const state = Planner.fold([
      planned(plan),
      used(call(1, 1, { usd: 0.1 })),
      used(call(1, 1, { usd: 0.2 })),
      used(call(1, 1))
    ])
    expect(state.budget?.spent).toEqual({ inputTokens: 3, outputTokens: 3, calls: 3, usd: 0.3 })
  })

  it("a fork starts with what its origin had spent at the fork point, and its own calls add to that", () => {
    const origin = [...nearlySpent, used(call(100, 50)), used(call(7, 3))]
    const atFour = origin.slice(0, 4)
    const forked = Planner.fold(
      Planner.forkEvents(atFour, { fromSessionId: "origin", atSequence: 4, reason: "forked" }, T0 + 1)
    )
    expect(forked.budget?.spent).toEqual({ inputTokens: 40_100, outputTokens: 8_250, calls: 2 })
    expect(forked.budget?.tokens).toBe(50_000)
    const after = Planner.fold([used(call(1, 1))], forked)
    expect(after.budget?.spent.calls).toBe(3)
  })

  it("the new events round-trip through the stored format", () => {
    for (const event of [
      used(call(3, 4, { usd: 0.5, taskId: 2, attempt: 1, estimatedTokens: 9, counted: "tokenizer" })),
      new BudgetRaised({ unit: "tokens", limit: 70_000, by: 20_000, taskId: 1, at: T0 }),
      new ClarificationRequested({ taskId: 1, question, budget: ask, at: T0 })
    ]) {
      const stored = encodeEvent(event)
      const back = decodeEvent(stored.type, stored.version, JSON.parse(JSON.stringify(stored.data)))
      expect(Either.getOrThrow(back)).toEqual(event)
    }
  })
})

describe("the budget question", () => {
  it("a step whose next call would cross the budget pauses its task with the question", () => {
    const state = given(nearlySpent)
      .when(
        report(new NeedsClarification({ taskId: 1, attempt: 1, question: "over budget", budget: { tokens: 3_000 } }))
      )
      .then(new ClarificationRequested({ taskId: 1, question, budget: ask, at: T0 }))
    expect(Planner.task(state, 1)?.status).toBe("NeedsClarification")
    expect(state.budget?.questions).toEqual([{ taskId: 1, ask }])
    expect(Planner.isWaiting(state)).toBe(true)
  })

  it("yes raises the budget by the suggested amount, by an event, and the task runs again", () => {
    const state = given(asking)
      .when(report(new ClarificationProvided({ taskId: 1, answer: "yes" })))
      .then(
        new BudgetRaised({ unit: "tokens", limit: 70_000, by: 20_000, taskId: 1, at: T0 }),
        new ClarificationReceived({ taskId: 1, answer: "yes", at: T0 }),
        dispatched(1, "Summarise the report", 2, T0, [{ question, answer: "yes" }])
      )
    expect(state.budget?.tokens).toBe(70_000)
    expect(state.budget?.questions).toEqual([])
    expect(Budget.wouldCross(state.budget, { tokens: 3_000 })).toBeUndefined()
  })

  it("yes with an amount raises the budget by that amount", () => {
    const state = given(asking)
      .when(report(new ClarificationProvided({ taskId: 1, answer: "yes 5,000" })))
      .then(
        new BudgetRaised({ unit: "tokens", limit: 55_000, by: 5_000, taskId: 1, at: T0 }),
        new ClarificationReceived({ taskId: 1, answer: "yes 5,000", at: T0 }),
        dispatched(1, "Summarise the report", 2, T0, [{ question, answer: "yes 5,000" }])
      )
    expect(state.budget?.tokens).toBe(55_000)
  })

  it("no fails the task for good, whatever attempts are left, and what depends on it is skipped", () => {
    const error =
      "the budget was not raised: 48,200 tokens of 50,000 tokens used, the next step needed about 3,000 tokens"
    const state = given(asking)
      .when(report(new ClarificationProvided({ taskId: 1, answer: "no" })))
      .then(
        new ClarificationReceived({ taskId: 1, answer: "no", at: T0 }),
        new TaskStatusUpdated({ taskId: 1, status: "Failed", attempt: 1, error, at: T0 }),
        new TaskStatusUpdated({
          taskId: 2,
          status: "Skipped",
          attempt: 0,
          error: "skipped because task 1 failed",
          at: T0
        }),
        new PlanningCompleted({
          outcome: "Failed",
          summary: `0 of 2 tasks completed; task 1 failed: ${error}; 1 skipped.`,
          at: T0
        })
      )
    expect(state.budget?.tokens).toBe(50_000)
    expect(state.budget?.questions).toEqual([])
  })

  it("an answer that is neither yes nor no is refused with what to answer", () => {
    given(asking)
      .when(report(new ClarificationProvided({ taskId: 1, answer: "maybe later" })))
      .thenFails(
        new InvalidTransition({
          taskId: 1,
          status: "NeedsClarification",
          action:
            'take "maybe later" as the answer to its budget question: answer yes, yes AMOUNT (for example yes 20,000) or no'
        })
      )
  })

  it("an ordinary question is answered as before, even with a budget", () => {
    const waiting = [...nearlySpent, new ClarificationRequested({ taskId: 1, question: "Which report?", at: T0 })]
    given(waiting)
      .when(report(new ClarificationProvided({ taskId: 1, answer: "the Q3 one" })))
      .then(
        new ClarificationReceived({ taskId: 1, answer: "the Q3 one", at: T0 }),
        dispatched(1, "Summarise the report", 2, T0, [{ question: "Which report?", answer: "the Q3 one" }])
      )
  })

  it("cancelling the plan drops the pending question", () => {
    const state = given(asking)
      .when(new Cancel({ at: T0 }))
      .then(
        new TaskStatusUpdated({
          taskId: 1,
          status: "Cancelled",
          attempt: 1,
          error: "cancelled by the user",
          at: T0
        }),
        new TaskStatusUpdated({ taskId: 2, status: "Cancelled", attempt: 0, error: "cancelled by the user", at: T0 }),
        new PlanningCompleted({
          outcome: "Cancelled",
          summary: "0 of 2 tasks completed; 2 cancelled. Cancelled by the user.",
          at: T0
        })
      )
    expect(state.budget?.questions).toEqual([])
  })

  it("a dollar limit asks in dollars when the call is priced", () => {
    const history = [
      planned(plan, { budgetTokens: undefined, budgetUsd: 0.5 }),
      dispatched(1, "Summarise the report"),
      used(call(1_000, 100, { usd: 0.48 }))
    ]
    const state = given(history)
      .when(
        report(new NeedsClarification({ taskId: 1, attempt: 1, question: "over", budget: { tokens: 900, usd: 0.03 } }))
      )
      .then(
        new ClarificationRequested({
          taskId: 1,
          question:
            "This plan has used $0.4800 of $0.5000; the next step needs about $0.0300. Allow $0.2000 more? (answer yes, yes AMOUNT, or no)",
          budget: { unit: "usd", spent: 0.48, limit: 0.5, needed: 0.03, suggested: 0.2 },
          at: T0
        })
      )
    const raised = Planner.fold(
      [report(new ClarificationProvided({ taskId: 1, answer: "yes $1" }))].flatMap((command) =>
        Either.getOrThrow(Planner.decideEither(state, command))
      ),
      state
    )
    expect(raised.budget?.usd).toBe(1.5)
  })
})

describe("Budget helpers", () => {
  it("reads answers", () => {
    expect(Budget.parseAnswer("yes", ask)).toEqual({ _tag: "Allow", amount: 20_000 })
    expect(Budget.parseAnswer("Yes, 30000 more", ask)).toEqual({ _tag: "Allow", amount: 30_000 })
    expect(Budget.parseAnswer("allow 12_500 tokens", ask)).toEqual({ _tag: "Allow", amount: 12_500 })
    expect(Budget.parseAnswer("40000", ask)).toEqual({ _tag: "Allow", amount: 40_000 })
    expect(Budget.parseAnswer("No.", ask)).toEqual({ _tag: "Refuse" })
    expect(Budget.parseAnswer("yes 0", ask)).toBeUndefined()
    expect(Budget.parseAnswer("sure thing", ask)).toBeUndefined()
  })

  it("checks the limit with what the next call needs", () => {
    const budget = Budget.addUsage(Budget.fromLimits({ budgetTokens: 1_000 }), [call(600, 100)])
    expect(Budget.wouldCross(budget, { tokens: 300 })).toBeUndefined()
    expect(Budget.wouldCross(budget, { tokens: 301 })).toEqual({
      unit: "tokens",
      spent: 700,
      limit: 1_000,
      needed: 301,
      suggested: 400
    })
    expect(Budget.wouldCross(Budget.addUsage(undefined, [call(600, 100)]), { tokens: 10_000 })).toBeUndefined()
  })

  it("describes the spend", () => {
    const budget = Budget.addUsage(Budget.fromLimits({ budgetTokens: 50_000 }), [call(9_100, 3_300, { usd: 0.021 })])
    expect(Budget.describe(budget)).toBe("12,400 tokens (9,100 in, 3,300 out) in 1 call, $0.0210; budget 50,000 tokens")
  })

  it("gives a tree the root's limits plus every raise answered in a child, in tokens and in dollars", () => {
    const root = Budget.addUsage(Budget.fromLimits({ budgetTokens: 10_000, budgetUsd: 1 }), [
      call(1_000, 200, { usd: 0.1 })
    ])
    // The child copied the config's limits and was raised by yes answers: 3,000 tokens and $0.50.
    const child = Budget.raise(
      Budget.raise(
        Budget.addUsage(Budget.fromLimits({ budgetTokens: 10_000, budgetUsd: 1 }), [call(500, 100)]),
        "tokens",
        13_000
      ),
      "usd",
      1.5
    )
    const tree = Budget.treeBudget(root, [{ budget: child, configTokens: 10_000, configUsd: 1 }])
    expect(tree?.tokens).toBe(13_000)
    expect(tree?.usd).toBe(1.5)
    expect(tree?.spent).toMatchObject({ inputTokens: 1_500, outputTokens: 300, calls: 2 })
    // A caller that does not give the child's dollar limit (older ones) counts only token raises.
    expect(Budget.treeBudget(root, [{ budget: child, configTokens: 10_000 }])?.usd).toBe(1)
  })
})
