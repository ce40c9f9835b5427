/**
 * A session's budget on what it may spend on models, and its spend. Pure: what a model call used arrives in a command
 * (`RecordUsage`, `Initialize.usage`), is recorded as `ModelUsageRecorded`, and the spend in the state is the sum of
 * those events, so it survives restarts, and a fork (which copies its origin's first events) starts with what its
 * origin had spent at the fork point.
 *
 * - The limit is recorded with the plan (`PlannerConfig.budgetTokens`, `budgetUsd`) and raised only by `BudgetRaised`.
 * - Before a model call the app asks `wouldCross(budget, need)`. When the call would take the spend over a limit, the
 *   call is not made: the task asks the budget question (`ClarificationRequested` with `budget`), answered like any
 *   clarification. "yes" (or "yes 20000") raises the limit by an event before the call is tried again; "no" fails the
 *   task for good. So a limit is never crossed without an approval recorded before the crossing call.
 * - Money is counted only when the user gave prices (`usd` on each usage, computed by the app from its price table);
 *   a dollar limit without prices cannot be checked, and the app refuses it.
 */
import { Schema } from "effect"
import { TaskId } from "./Task.js"

/** What a model call was for. */
export const UsagePurpose = Schema.Literal("planning", "compaction", "execution", "replanning").annotations({
  identifier: "UsagePurpose"
})
export type UsagePurpose = typeof UsagePurpose.Type

const Count = Schema.Int.pipe(Schema.nonNegative())
/** An amount of tokens or dollars: finite, so it survives JSON. */
const Amount = Schema.Number.pipe(Schema.finite(), Schema.nonNegative())

/** One model call's usage, as the API reported it (`counted: "api"`) or counted with the tokenizer. */
export const ModelUsage = Schema.Struct({
  purpose: UsagePurpose,
  model: Schema.String,
  inputTokens: Count,
  outputTokens: Count,
  counted: Schema.Literal("api", "tokenizer"),
  /** What the call was estimated to need before it was made (prompt plus output allowance), when a limit was checked. */
  estimatedTokens: Schema.optionalWith(Count, { exact: true }),
  /** Its price from the user's price table; absent without one. */
  usd: Schema.optionalWith(Amount, { exact: true }),
  taskId: Schema.optionalWith(TaskId, { exact: true }),
  attempt: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true })
}).annotations({ identifier: "ModelUsage" })
export type ModelUsage = typeof ModelUsage.Type

export const BudgetUnit = Schema.Literal("tokens", "usd").annotations({ identifier: "BudgetUnit" })
export type BudgetUnit = typeof BudgetUnit.Type

/** What the next call needs, as the app estimated it (tokenizer count of the prompt plus an output allowance). */
export const BudgetNeed = Schema.Struct({
  tokens: Count,
  usd: Schema.optionalWith(Amount, { exact: true }),
  /**
   * For a session in a tree of sub-plans, whose calls count against the tree's budget (see `treeBudget`): the tree's
   * spend and limit in tokens as the worker saw them, which the question states instead of the session's own.
   */
  spent: Schema.optionalWith(Amount, { exact: true }),
  limit: Schema.optionalWith(Amount, { exact: true })
}).annotations({ identifier: "BudgetNeed" })
export type BudgetNeed = typeof BudgetNeed.Type

/** The budget question's figures, recorded with the question so it reads the same on replay. */
export const BudgetAsk = Schema.Struct({
  unit: BudgetUnit,
  spent: Amount,
  limit: Amount,
  needed: Amount,
  /** What "yes" alone raises the limit by. */
  suggested: Amount
}).annotations({ identifier: "BudgetAsk" })
export type BudgetAsk = typeof BudgetAsk.Type

export const Spend = Schema.Struct({
  inputTokens: Count,
  outputTokens: Count,
  /** How many model calls were recorded. */
  calls: Count,
  /** Present once a call was priced. */
  usd: Schema.optionalWith(Amount, { exact: true })
}).annotations({ identifier: "Spend" })
export type Spend = typeof Spend.Type

/** A session's budget as the state holds it: present once a limit is set or a call is recorded. */
export const BudgetState = Schema.Struct({
  /** The limit in tokens (input plus output), with every raise. */
  tokens: Schema.optionalWith(Count, { exact: true }),
  usd: Schema.optionalWith(Amount, { exact: true }),
  spent: Spend,
  /** Budget questions waiting for an answer, by task. */
  questions: Schema.Array(Schema.Struct({ taskId: TaskId, ask: BudgetAsk }))
}).annotations({ identifier: "BudgetState" })
export type BudgetState = typeof BudgetState.Type

const noSpend: Spend = { inputTokens: 0, outputTokens: 0, calls: 0 }

export const totalTokens = (spend: Spend): number => spend.inputTokens + spend.outputTokens

/** The budget a plan starts with, from its config: undefined when it sets no limit. */
export const fromLimits = (limits: {
  readonly budgetTokens?: number | undefined
  readonly budgetUsd?: number | undefined
}): BudgetState | undefined => {
  if (limits.budgetTokens === undefined && limits.budgetUsd === undefined) return undefined
  return {
    ...(limits.budgetTokens === undefined ? {} : { tokens: limits.budgetTokens }),
    ...(limits.budgetUsd === undefined ? {} : { usd: limits.budgetUsd }),
    spent: noSpend,
    questions: []
  }
}

/** Cents are added as integers of a millionth of a dollar, so a sum of prices does not drift with the order. */
const addUsd = (a: number, b: number): number => Math.round((a + b) * 1e6) / 1e6

/** The spend after some more calls. */
export const addUsage = (budget: BudgetState | undefined, usage: ReadonlyArray<ModelUsage>): BudgetState => {
  const from = budget ?? { spent: noSpend, questions: [] }
  let { inputTokens, outputTokens, calls } = from.spent
  let usd = from.spent.usd
  for (const call of usage) {
    inputTokens += call.inputTokens
    outputTokens += call.outputTokens
    calls += 1
    if (call.usd !== undefined) usd = addUsd(usd ?? 0, call.usd)
  }
  return { ...from, spent: { inputTokens, outputTokens, calls, ...(usd === undefined ? {} : { usd }) } }
}

/** The budget after a raise: the new limit in `unit`; the task's question answered. */
export const raise = (
  budget: BudgetState | undefined,
  unit: BudgetUnit,
  limit: number,
  taskId?: TaskId
): BudgetState => {
  const from = budget ?? { spent: noSpend, questions: [] }
  const raised = unit === "tokens" ? { ...from, tokens: limit } : { ...from, usd: limit }
  return taskId === undefined ? raised : answered(raised, taskId)
}

export const asked = (budget: BudgetState | undefined, taskId: TaskId, ask: BudgetAsk): BudgetState => {
  const from = budget ?? { spent: noSpend, questions: [] }
  return { ...from, questions: [...from.questions.filter((q) => q.taskId !== taskId), { taskId, ask }] }
}

/** The budget without the task's pending question (answered, or the task ended). */
export const answered = (budget: BudgetState, taskId: TaskId): BudgetState =>
  budget.questions.some((q) => q.taskId === taskId)
    ? { ...budget, questions: budget.questions.filter((q) => q.taskId !== taskId) }
    : budget

export const questionOf = (budget: BudgetState | undefined, taskId: TaskId): BudgetAsk | undefined =>
  budget?.questions.find((q) => q.taskId === taskId)?.ask

/** Rounds a suggested raise up to a readable figure. */
const roundUp = (value: number, unit: BudgetUnit): number => {
  if (unit === "usd") return Math.ceil(value * 100) / 100
  const step = value >= 10_000 ? 1_000 : value >= 1_000 ? 100 : 10
  return Math.ceil(value / step) * step
}

/**
 * What "yes" alone raises a limit by: 40% of the limit, or what the next call lacks if that is more. Enough for
 * several more calls, so the question is not asked at every step.
 */
export const suggestedRaise = (unit: BudgetUnit, spent: number, limit: number, needed: number): number =>
  roundUp(Math.max(limit * 0.4, spent + needed - limit), unit)

/**
 * Whether a call needing `need` would take the spend over a limit: the question to ask (tokens first), or undefined
 * when it fits. A dollar limit is checked only when the need has a price.
 */
export const wouldCross = (budget: BudgetState | undefined, need: BudgetNeed): BudgetAsk | undefined => {
  if (budget === undefined) return undefined
  const spentTokens = totalTokens(budget.spent)
  if (budget.tokens !== undefined && spentTokens + need.tokens > budget.tokens) {
    return {
      unit: "tokens",
      spent: spentTokens,
      limit: budget.tokens,
      needed: need.tokens,
      suggested: suggestedRaise("tokens", spentTokens, budget.tokens, need.tokens)
    }
  }
  const spentUsd = budget.spent.usd ?? 0
  if (budget.usd !== undefined && need.usd !== undefined && addUsd(spentUsd, need.usd) > budget.usd) {
    return {
      unit: "usd",
      spent: spentUsd,
      limit: budget.usd,
      needed: need.usd,
      suggested: suggestedRaise("usd", spentUsd, budget.usd, need.usd)
    }
  }
  return undefined
}

/** 48200 as "48,200": written out, so the question reads the same whatever the machine's locale. */
export const formatTokens = (value: number): string => {
  const digits = String(Math.round(value))
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",")
}

export const formatUsd = (value: number): string => `$${value < 1 ? value.toFixed(4) : value.toFixed(2)}`

export const formatAmount = (unit: BudgetUnit, value: number): string =>
  unit === "tokens" ? `${formatTokens(value)} tokens` : formatUsd(value)

/** "This plan has used 48,200 of 50,000 tokens; the next step needs about 3,000. Allow 20,000 more?" */
export const questionText = (ask: BudgetAsk): string => {
  const figure = (value: number) => (ask.unit === "tokens" ? formatTokens(value) : formatUsd(value))
  const of =
    ask.unit === "tokens"
      ? `${figure(ask.spent)} of ${figure(ask.limit)} tokens`
      : `${figure(ask.spent)} of ${figure(ask.limit)}`
  return `This plan has used ${of}; the next step needs about ${figure(ask.needed)}. Allow ${figure(ask.suggested)} more? (answer yes, yes AMOUNT, or no)`
}

/** Whether a task's question is the budget question (`questionText`): the planner's own, not about the step. */
export const isBudgetQuestion = (question: string): boolean =>
  question.startsWith("This plan has used ") && question.endsWith("more? (answer yes, yes AMOUNT, or no)")

export type BudgetAnswer = { readonly _tag: "Allow"; readonly amount: number } | { readonly _tag: "Refuse" }

/**
 * Reads an answer to the budget question: "yes" (the suggested amount), "yes 20000", "yes 20,000", "20000", "allow
 * $1.50", or "no". Undefined when it is neither.
 */
export const parseAnswer = (text: string, ask: BudgetAsk): BudgetAnswer | undefined => {
  const answer = text.trim().toLowerCase()
  if (/^(no|n|refuse|deny|stop)\b/.test(answer)) return { _tag: "Refuse" }
  const match =
    /^(?:(?:yes|y|ok|allow|raise)\b[\s,:]*)?(?:by\s+)?\$?([\d][\d,_]*(?:\.\d+)?)?\s*(?:more|tokens|usd|dollars)?\s*[.!]?$/.exec(
      answer
    )
  if (match === null) return undefined
  const figure = match[1]
  const saidYes = /^(yes|y|ok|allow|raise)\b/.test(answer)
  if (figure === undefined) return saidYes ? { _tag: "Allow", amount: ask.suggested } : undefined
  const amount = Number(figure.replace(/[,_]/g, ""))
  if (!Number.isFinite(amount) || amount <= 0) return undefined
  return { _tag: "Allow", amount: ask.unit === "tokens" ? Math.ceil(amount) : amount }
}

/** The new limit after "yes" to `ask`: raised from the limit in force by the amount allowed. */
export const raisedLimit = (ask: BudgetAsk, budget: BudgetState | undefined, amount: number): number => {
  const current = (ask.unit === "tokens" ? budget?.tokens : budget?.usd) ?? ask.limit
  return ask.unit === "tokens" ? current + amount : addUsd(current, amount)
}

/** One line: "12,400 tokens (9,100 in, 3,300 out) in 4 calls, $0.0210; budget 50,000 tokens". */
export const describe = (budget: BudgetState): string => {
  const { spent } = budget
  const parts = [
    `${formatTokens(totalTokens(spent))} tokens (${formatTokens(spent.inputTokens)} in, ${formatTokens(spent.outputTokens)} out) in ${spent.calls} call${spent.calls === 1 ? "" : "s"}`
  ]
  if (spent.usd !== undefined) parts.push(formatUsd(spent.usd))
  const limits = [
    ...(budget.tokens === undefined ? [] : [`${formatTokens(budget.tokens)} tokens`]),
    ...(budget.usd === undefined ? [] : [formatUsd(budget.usd)])
  ]
  return `${parts.join(", ")}${limits.length > 0 ? `; budget ${limits.join(" and ")}` : ""}`
}

/** One line for a usage event: "execution call to gpt-4o-mini (task 2): 1,200 in, 300 out". */
export const usageGist = (usage: ReadonlyArray<ModelUsage>): string =>
  usage
    .map(
      (call) =>
        `${call.purpose} call to ${call.model}${call.taskId === undefined ? "" : ` (task ${call.taskId})`}: ${formatTokens(call.inputTokens)} in, ${formatTokens(call.outputTokens)} out${call.counted === "tokenizer" ? " (counted)" : ""}${call.usd === undefined ? "" : `, ${formatUsd(call.usd)}`}`
    )
    .join("; ")

/** A session of a tree of sub-plans, as `treeBudget` needs it. */
export interface TreeMember {
  readonly budget: BudgetState | undefined
  /** The token limit its plan was recorded with (a child copies its parent's config). */
  readonly configTokens: number | undefined
  /** The dollar limit its plan was recorded with; absent in callers from before dollar raises counted. */
  readonly configUsd?: number | undefined
}

/**
 * The budget of a tree of sub-plans: a child session's spend counts against its root's budget. Each limit (tokens,
 * dollars) is the root's (with its raises) plus every raise answered in a child (a child's own limit is its copy of the
 * config's, raised by the yes answers to its questions); the spend is the sum of every session's. Questions are left out: each session
 * keeps its own.
 */
export const treeBudget = (
  root: BudgetState | undefined,
  children: ReadonlyArray<TreeMember>
): BudgetState | undefined => {
  if (root === undefined && children.every((child) => child.budget === undefined)) return undefined
  let inputTokens = root?.spent.inputTokens ?? 0
  let outputTokens = root?.spent.outputTokens ?? 0
  let calls = root?.spent.calls ?? 0
  let usd = root?.spent.usd
  let raised = 0
  let raisedUsd = 0
  for (const child of children) {
    const budget = child.budget
    if (budget === undefined) continue
    inputTokens += budget.spent.inputTokens
    outputTokens += budget.spent.outputTokens
    calls += budget.spent.calls
    if (budget.spent.usd !== undefined) usd = addUsd(usd ?? 0, budget.spent.usd)
    if (budget.tokens !== undefined && child.configTokens !== undefined)
      raised += Math.max(0, budget.tokens - child.configTokens)
    if (budget.usd !== undefined && child.configUsd !== undefined)
      raisedUsd = addUsd(raisedUsd, Math.max(0, budget.usd - child.configUsd))
  }
  const spent = { inputTokens, outputTokens, calls, ...(usd === undefined ? {} : { usd }) }
  return {
    ...(root?.tokens === undefined ? {} : { tokens: root.tokens + raised }),
    ...(root?.usd === undefined ? {} : { usd: addUsd(root.usd, raisedUsd) }),
    spent,
    questions: []
  }
}
