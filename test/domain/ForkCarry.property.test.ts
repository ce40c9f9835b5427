/**
 * Properties of what an incremental fork carries over, over random plans and random logs with model calls recorded
 * among the commands: whatever the fork point, the fork starts with the spend and the limits its source had there, the
 * spend in its state is the sum of its own usage events, and folding its events gives the state it was decided with.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import type * as Budget from "../../src/domain/Budget.js"
import { ForkSession, Initialize, type PlannerCommand, RecordUsage } from "../../src/domain/Commands.js"
import type { PlannerConfig } from "../../src/domain/Config.js"
import type { PlannerEvent } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { configArb, type Intent, intentArb, planArb, resolve, T0 } from "./plannerArbitraries.js"

const usageArb: fc.Arbitrary<Budget.ModelUsage> = fc.record({
  purpose: fc.constantFrom("planning", "compaction", "execution", "replanning" as const),
  model: fc.constantFrom("a", "b"),
  inputTokens: fc.nat({ max: 5_000 }),
  outputTokens: fc.nat({ max: 2_000 }),
  counted: fc.constantFrom("api", "tokenizer" as const)
})

/** A step of a random run: a planner intent, or a model call recorded. */
type Step =
  | { readonly _tag: "intent"; readonly intent: Intent }
  | { readonly _tag: "usage"; readonly usage: ReadonlyArray<Budget.ModelUsage> }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: intentArb.map((intent): Step => ({ _tag: "intent", intent })) },
  {
    weight: 1,
    arbitrary: fc.array(usageArb, { minLength: 1, maxLength: 3 }).map((usage): Step => ({ _tag: "usage", usage }))
  }
)

const logArb = fc.tuple(
  planArb,
  configArb.map((config) => ({ ...config, maxParallel: 3 })),
  fc.option(fc.integer({ min: 1, max: 100_000 }), { nil: undefined }),
  fc.array(stepArb, { maxLength: 40, size: "max" }),
  fc.nat()
)

const runLog = (
  plan: ReadonlyArray<TaskPlan>,
  config: PlannerConfig,
  steps: ReadonlyArray<Step>
): ReadonlyArray<PlannerEvent> => {
  const log: Array<PlannerEvent> = []
  let live = Planner.initialState
  let at = T0
  const apply = (command: PlannerCommand) => {
    const outcome = Planner.decideAndEvolve(live, command)
    if (Either.isLeft(outcome)) return
    log.push(...outcome.right.events)
    live = outcome.right.state
  }
  apply(new Initialize({ request: "random plan", tasks: plan, config, at }))
  for (const step of steps) {
    if (step._tag === "usage") {
      apply(new RecordUsage({ usage: step.usage, at }))
      continue
    }
    at += step.intent._tag === "continue" ? step.intent.advance : 10
    const command = resolve(live, step.intent, at)
    if (command !== undefined) apply(command)
  }
  return log
}

const usageSum = (events: ReadonlyArray<PlannerEvent>) => {
  let inputTokens = 0
  let outputTokens = 0
  let calls = 0
  for (const event of events) {
    if (event._tag !== "ModelUsageRecorded") continue
    for (const call of event.usage) {
      inputTokens += call.inputTokens
      outputTokens += call.outputTokens
      calls += 1
    }
  }
  return { inputTokens, outputTokens, calls }
}

describe("an incremental fork carries the spend", () => {
  it("starts with its source's spend and limits at any fork point; its spend is the sum of its usage events", () => {
    fc.assert(
      fc.property(logArb, ([plan, config, budgetTokens, steps, pick]) => {
        const log = runLog(plan, { ...config, ...(budgetTokens === undefined ? {} : { budgetTokens }) }, steps)
        const atSequence = 1 + (pick % log.length)
        const prefix = log.slice(0, atSequence)
        const source = Planner.fold(prefix)
        const decided = Planner.decideAndEvolve(
          Planner.initialState,
          new ForkSession({ fromSessionId: "source", atSequence, sourceEvents: prefix, at: T0 + 1_000_000 })
        )
        if (Either.isLeft(decided)) throw new Error(`fork refused: ${decided.left.message}`)
        const { events, state } = decided.right
        expect(Planner.fold(events)).toEqual(state)
        expect(state.budget?.spent).toEqual(source.budget?.spent)
        expect(state.budget?.tokens).toEqual(source.budget?.tokens)
        const { inputTokens, outputTokens, calls } = usageSum(events)
        expect({ inputTokens, outputTokens, calls }).toEqual(
          state.budget === undefined
            ? { inputTokens: 0, outputTokens: 0, calls: 0 }
            : {
                inputTokens: state.budget.spent.inputTokens,
                outputTokens: state.budget.spent.outputTokens,
                calls: state.budget.spent.calls
              }
        )
      }),
      { numRuns: 150 }
    )
  })
})
