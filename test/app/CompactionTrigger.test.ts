/**
 * Which completion folds the rolling context: the one that took it over its budget, not every one recorded while that
 * compaction is under way (several workers on a session would each fold the same results, and all but one be
 * refused); and any one that finds it at twice its budget, in case the one that crossed never did.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as CompactionTrigger from "../../src/app/worker/CompactionTrigger.js"
import { ClaimTask, HandleExecutorEvent, Initialize, TaskCompleted } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import type * as Planner from "../../src/domain/Planner.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as Tokenizer from "../../src/infra/Tokenizer.js"
import { independentTasks } from "./fixtures/plans.js"

const result = "word ".repeat(20).trim()
/** What one completed task's entry costs: every task's entry has the same shape and length (ids 1 to 9). */
const entryTokens = Tokenizer.fallback.count(`Task 1 (${independentTasks(1)[0]?.description}): ${result}`)
/** Two entries fit, three do not; five are at twice the budget. */
const tokenBudget = Math.floor(2.5 * entryTokens)

const runtime = PlannerRuntime.layer(MemoryEventStore.layer(), {
  executor: ScriptExecutor.make({ rules: [], default: { complete: "unused" } })
})

/** A session of `count` independent tasks, all dispatched, whose tasks 1..`completed` have completed in turn. */
const sessionWithCompletions = (sessionId: string, count: number, completed: number) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    yield* service.execute(
      sessionId,
      new Initialize({
        request: "many small tasks",
        tasks: independentTasks(count),
        config: { ...defaultConfig, maxParallel: count, tokenBudget },
        at: 1
      })
    )
    const after: Array<{ readonly state: Planner.PlannerState; readonly eventId: string | undefined }> = []
    for (let taskId = 1; taskId <= completed; taskId++) {
      yield* service.execute(sessionId, new ClaimTask({ taskId, attempt: 1, workerId: "w", at: 2 }))
      const handled = yield* service.execute(
        sessionId,
        new HandleExecutorEvent({ event: new TaskCompleted({ taskId, attempt: 1, result }), at: 3 })
      )
      after.push({ state: handled.state, eventId: handled.eventIds[0] })
    }
    return after
  })

const compactions = (sessionId: string) =>
  Effect.gen(function* () {
    const records = yield* (yield* PlannerStore).load(sessionId)
    return records.flatMap((record) =>
      record.event._tag === "ContextCompacted" ? [{ removed: record.event.removedTaskIds }] : []
    )
  })

describe("CompactionTrigger", () => {
  it.effect(
    "the completion that takes the context over its budget folds it, then what came meanwhile; no other one folds",
    () =>
      Effect.gen(function* () {
        const compactIfOverBudget = yield* CompactionTrigger.make
        // Given tasks 3 and 4 completed one after the other, before either's compaction check ran
        const after = yield* sessionWithCompletions("crossing", 6, 4)
        const [third, fourth] = [after[2], after[3]]
        if (third === undefined || fourth === undefined) return expect.unreachable()
        // When task 4's check runs first: the context was already over its budget before task 4
        yield* compactIfOverBudget("crossing", fourth.state, 4, fourth.eventId)
        // Then nothing is folded
        expect(yield* compactions("crossing")).toEqual([])
        // When task 3's check runs: task 3 took the context over its budget
        yield* compactIfOverBudget("crossing", third.state, 3, third.eventId)
        // Then task 3's completion folds tasks 1 to 3, then task 4, which still kept the context over its budget
        expect(yield* compactions("crossing")).toEqual([{ removed: [1, 2, 3] }, { removed: [4] }])
      }).pipe(Effect.provide(runtime))
  )

  it.effect("a completion that finds the context at twice its budget folds it, whoever took it over", () =>
    Effect.gen(function* () {
      const compactIfOverBudget = yield* CompactionTrigger.make
      // Given five completions whose checks never ran (the process that crossed died)
      const after = yield* sessionWithCompletions("overdue", 6, 5)
      const fifth = after[4]
      if (fifth === undefined) return expect.unreachable()
      expect(5 * entryTokens).toBeGreaterThanOrEqual(CompactionTrigger.overdueFactor * tokenBudget)
      // When task 5's check runs
      yield* compactIfOverBudget("overdue", fifth.state, 5, fifth.eventId)
      // Then the whole rolling context is folded
      expect(yield* compactions("overdue")).toEqual([{ removed: [1, 2, 3, 4, 5] }])
    }).pipe(Effect.provide(runtime))
  )
})
