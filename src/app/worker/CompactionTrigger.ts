/**
 * After a completion, when the rolling context of the session is over the plan's token budget, asks the `Compactor`
 * to fold results into the summary and records `ContextCompacted` through the writer.
 *
 * The completion that takes the context over its budget folds it; the completions recorded after it, while that
 * compaction is under way, leave it alone, and once it is recorded the one that folded folds again what they added if
 * that keeps the context over its budget. With several workers on a session (or one worker running several tasks),
 * each would otherwise fold the same results, every one of them but the first be refused, and a model compactor be
 * paid for each. A completion that finds the context at twice its budget folds it whatever came before: the one that
 * should have may have failed, or died with its process.
 */
import { Clock, Effect } from "effect"
import { CompactContext } from "../../domain/Commands.js"
import * as Planner from "../../domain/Planner.js"
import type { TaskState } from "../../domain/Task.js"
import { Compactor } from "../../infra/Compactor.js"
import * as Tokenizer from "../../infra/Tokenizer.js"
import { hotSpanWith } from "../../infra/Tracing.js"
import * as AppBudget from "../Budget.js"
import { PlannerService } from "../PlannerService.js"

const entryTexts = new WeakMap<TaskState, string>()
const entrySizes = new WeakMap<TaskState, number>()

/**
 * A completed task's entry in the rolling context. Each task's context and each completion's budget check go over every
 * entry; a completed task's state stays the same object until it is compacted, so its entry is made once, by the task.
 */
export const entryText = (task: TaskState): string => {
  let text = entryTexts.get(task)
  if (text === undefined) {
    text = `Task ${task.id} (${task.description}): ${task.result ?? ""}`
    entryTexts.set(task, text)
  }
  return text
}
/** An entry's size in UTF-8 bytes, made once per task like its text. */
const entryBytes = (task: TaskState): number => {
  let bytes = entrySizes.get(task)
  if (bytes === undefined) {
    bytes = Buffer.byteLength(entryText(task))
    entrySizes.set(task, bytes)
  }
  return bytes
}

/** Over this many times its budget, the rolling context is folded by any completion, not only the one that crossed. */
export const overdueFactor = 2

/** How many times in a row one completion folds the context (see below). */
const maxRounds = 3

/** Makes the trigger: `compactIfOverBudget(sessionId, state, completed, causationId)` after task `completed`'s completion. */
export const make = Effect.gen(function* () {
  const service = yield* PlannerService
  const compactor = yield* Compactor
  const prices = yield* AppBudget.pricesOrWarn
  const counter = Tokenizer.memoized(Tokenizer.fallback)
  // The budget is checked after every completion, over every entry of the rolling context. A completed task's state
  // stays the same object until it is compacted, so each entry is counted once, by the task it is made from.
  const entryCounts = new WeakMap<TaskState, number>()
  const entryTokens = (task: TaskState) => {
    let tokens = entryCounts.get(task)
    if (tokens === undefined) {
      tokens = counter.count(entryText(task))
      entryCounts.set(task, tokens)
    }
    return tokens
  }

  // The summary changes only when the context is compacted: one count per summary, not one lookup of it (a few
  // kilobytes of text) in the memo at every completion.
  let lastSummary: string | undefined
  let lastSummaryTokens = 0
  const summaryTokens = (summary: string): number => {
    if (summary !== lastSummary) {
      lastSummaryTokens = counter.count(summary)
      lastSummary = summary
    }
    return lastSummaryTokens
  }

  /** The tokens the rolling context of `state` uses when they are over its budget; undefined when they fit. */
  const overBudget = (state: Planner.PlannerState): number | undefined => {
    const rolling = Planner.rollingTasks(state)
    const { tokenBudget } = state.config
    if (rolling.length === 0) return undefined
    // A token is at least one UTF-8 byte: a context whose bytes fit the budget fits it without counting. Counting
    // loads the tokenizer's tables, most of a second, which a short run never needs.
    let bytes = Buffer.byteLength(state.contextSummary)
    for (const task of rolling) bytes += entryBytes(task)
    if (bytes <= tokenBudget) return undefined
    let used = summaryTokens(state.contextSummary)
    for (const task of rolling) used += entryTokens(task)
    return used <= tokenBudget ? undefined : used
  }

  /** Folds the rolling context of `state` and records it: the state after, or undefined if it was refused. */
  const compact = (sessionId: string, state: Planner.PlannerState, causationId: string | undefined) =>
    Effect.gen(function* () {
      const { tokenBudget, profile, systemPrompt } = state.config
      const entries = Planner.rollingTasks(state).map((task) => ({ taskId: task.id, text: entryText(task) }))
      // #16: a summary by the model is checked against the session's budget (over it, the heuristic compactor folds
      // the results instead) and its usage recorded.
      const { value: result, usage } = yield* AppBudget.meteredValue(
        compactor.compact({ summary: state.contextSummary, entries, budget: tokenBudget, profile, systemPrompt }),
        { ...(yield* AppBudget.budgetFor(service, sessionId, state)), prices, purpose: "compaction" }
      )
      yield* AppBudget.record(service, sessionId, usage, causationId)
      const at = yield* Clock.currentTimeMillis
      return yield* service
        .execute(
          sessionId,
          new CompactContext({
            maxTokens: tokenBudget,
            summary: result.summary,
            removedTaskIds: result.removedTaskIds,
            at
          }),
          causationId === undefined ? {} : { causationId }
        )
        .pipe(
          // Another worker compacted these results first.
          Effect.catchTag("InvalidCompaction", () => Effect.succeed(undefined))
        )
    })

  return (sessionId: string, state: Planner.PlannerState, completed: number, causationId: string | undefined) =>
    Effect.gen(function* () {
      if (state.status !== "Running") return
      const used = overBudget(state)
      if (used === undefined) return
      const own = Planner.rollingTasks(state).find((task) => task.id === completed)
      const before = own === undefined ? used : used - entryTokens(own)
      if (before > state.config.tokenBudget && used < overdueFactor * state.config.tokenBudget) return
      // The completions recorded while this one compacted left it to this one: while what they added keeps the
      // context over its budget, it is folded again (each round folds everything rolling, so a few rounds suffice).
      let handled = yield* compact(sessionId, state, causationId)
      for (let round = 1; round < maxRounds && handled !== undefined; round++) {
        if (handled.state.status !== "Running" || overBudget(handled.state) === undefined) return
        handled = yield* compact(sessionId, handled.state, handled.eventIds[0])
      }
    }).pipe(
      Effect.catchAll((error) => Effect.logWarning(`context compaction skipped: ${error.message}`)),
      (effect) => hotSpanWith(effect, "Worker.compact", () => ({ sessionId }))
    )
})
