/**
 * Properties of the budget over random runs: model calls of random sizes (some reported by the API, some counted),
 * checked by the app's meter (`AppBudget.metered`, the same one the worker uses) against the session's budget as the
 * decider keeps it, with the budget question answered yes (with or without an amount) or no at random.
 *
 * - The spend in the state equals the sum of the usage events, live and when the log is folded again.
 * - A limit is never crossed without an approval: every call was admitted with the spend before it plus its estimate
 *   within the limit in force at that point of the log, which only a `BudgetRaised` (recorded before it) can raise.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FiberRef, FastCheck as fc, Option } from "effect"
import * as AppBudget from "../../src/app/Budget.js"
import * as Budget from "../../src/domain/Budget.js"
import {
  ClarificationProvided,
  HandleExecutorEvent,
  Initialize,
  NeedsClarification,
  RecordUsage,
  TaskCompleted
} from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import type { PlannerEvent } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import * as LlmUsage from "../../src/infra/LlmUsage.js"

const T0 = 1_700_000_000_000

/** One model call as a fake `Llm` makes it: asks the meter, and tells it what was used when it was let through. */
const fakeCall = (call: Call) =>
  Effect.flatMap(FiberRef.get(LlmUsage.currentMeter), (meter) => {
    if (Option.isNone(meter)) return Effect.die("no meter")
    const estimate = {
      operation: "step",
      model: "m",
      promptTokens: call.prompt,
      outputAllowance: call.allowance,
      within: 60_000
    }
    return Effect.gen(function* () {
      if (meter.value.limited && !(yield* meter.value.admit(estimate)))
        return yield* Effect.fail("BudgetExhausted" as const)
      yield* meter.value.record({
        operation: "step",
        model: "m",
        inputTokens: call.prompt,
        // An answer within its allowance (the estimate's premise), reported by the API or counted.
        outputTokens: Math.min(call.output, call.allowance),
        counted: call.reported ? "api" : "tokenizer",
        ...(meter.value.limited ? { estimatedTokens: call.prompt + call.allowance } : {})
      })
      return "done"
    })
  })

interface Call {
  readonly prompt: number
  readonly allowance: number
  readonly output: number
  readonly reported: boolean
}

type Answer = { readonly _tag: "Yes"; readonly amount?: number } | { readonly _tag: "No" }

const callArb: fc.Arbitrary<Call> = fc.record({
  prompt: fc.integer({ min: 0, max: 3_000 }),
  allowance: fc.integer({ min: 0, max: 2_000 }),
  output: fc.integer({ min: 0, max: 2_500 }),
  reported: fc.boolean()
})
const answerArb: fc.Arbitrary<Answer> = fc.oneof(
  fc.constant<Answer>({ _tag: "Yes" }),
  // A yes too small for the call asks again; below a few hundred tokens a run could take thousands of rounds (a call
  // needs up to 5,000), which made the property slow enough to time out on a loaded machine.
  fc.integer({ min: 250, max: 10_000 }).map((amount): Answer => ({ _tag: "Yes", amount })),
  fc.constant<Answer>({ _tag: "No" })
)

interface Run {
  readonly log: ReadonlyArray<PlannerEvent>
  readonly live: Planner.PlannerState
}

/**
 * A session of `tasks` one-call steps run one after another: each step's call goes through the meter; a refused call
 * asks the budget question, answered by the next answer (yes again and again until the call fits, or no).
 */
const execute = (limit: number | undefined, calls: ReadonlyArray<Call>, answers: ReadonlyArray<Answer>): Run => {
  const log: Array<PlannerEvent> = []
  let live = Planner.initialState
  let at = T0
  const apply = (command: Parameters<typeof Planner.decideEither>[1]) => {
    const events = Either.getOrThrow(Planner.decideEither(live, command))
    for (const event of events) {
      live = Planner.evolve(live, event)
      log.push(event)
    }
  }
  const config =
    limit === undefined
      ? { ...defaultConfig, maxParallel: 1 }
      : { ...defaultConfig, maxParallel: 1, budgetTokens: limit }
  apply(
    new Initialize({
      request: "steps",
      tasks: calls.map((_, index) => ({
        id: index + 1,
        description: `step ${index + 1}`,
        kind: "Processing",
        dependsOn: index === 0 ? [] : [index],
        attachments: []
      })),
      config,
      at
    })
  )
  let answer = 0
  for (const [index, call] of calls.entries()) {
    const taskId = index + 1
    for (;;) {
      const current = Planner.task(live, taskId)
      if (live.status !== "Running" || current === undefined || current.status !== "Dispatched") break
      at += 1
      const ran = Effect.runSync(
        AppBudget.metered(fakeCall(call), {
          budget: live.budget,
          prices: undefined,
          purpose: "execution",
          taskId,
          attempt: current.attempt
        })
      )
      if (ran.usage.length > 0) apply(new RecordUsage({ usage: ran.usage, at }))
      if (ran.refused === undefined) {
        apply(new HandleExecutorEvent({ event: new TaskCompleted({ taskId, result: "ok" }), at }))
        break
      }
      apply(
        new HandleExecutorEvent({
          event: new NeedsClarification({ taskId, question: "over budget", budget: ran.refused }),
          at
        })
      )
      const given = answers[answer % answers.length] ?? { _tag: "No" }
      answer += 1
      const text = given._tag === "No" ? "no" : given.amount === undefined ? "yes" : `yes ${given.amount}`
      apply(new HandleExecutorEvent({ event: new ClarificationProvided({ taskId, answer: text }), at }))
    }
  }
  return { log, live }
}

const sumOf = (log: ReadonlyArray<PlannerEvent>) => {
  let input = 0
  let output = 0
  let calls = 0
  for (const event of log) {
    if (event._tag !== "ModelUsageRecorded") continue
    for (const call of event.usage) {
      input += call.inputTokens
      output += call.outputTokens
      calls += 1
    }
  }
  return { inputTokens: input, outputTokens: output, calls }
}

const limitArb = fc.option(fc.integer({ min: 1, max: 20_000 }), { nil: undefined })
const callsArb = fc.array(callArb, { minLength: 1, maxLength: 8 })
const answersArb = fc.array(answerArb, { minLength: 1, maxLength: 6 })

describe("budget properties", () => {
  it.prop(
    "the spend in the state is the sum of the usage events, live and folded",
    [limitArb, callsArb, answersArb],
    ([limit, calls, answers]) => {
      const { log, live } = execute(limit, calls, answers)
      const sum = sumOf(log)
      const spent = live.budget?.spent ?? { inputTokens: 0, outputTokens: 0, calls: 0 }
      expect({ inputTokens: spent.inputTokens, outputTokens: spent.outputTokens, calls: spent.calls }).toEqual(sum)
      expect(Planner.fold(log).budget).toEqual(live.budget)
      // At every point of the log, too (what `replay --at N` shows).
      for (let n = 0; n <= log.length; n += 1) {
        const at = Planner.fold(log.slice(0, n))
        expect(Budget.totalTokens(at.budget?.spent ?? { inputTokens: 0, outputTokens: 0, calls: 0 })).toBe(
          sumOf(log.slice(0, n)).inputTokens + sumOf(log.slice(0, n)).outputTokens
        )
      }
    }
  )

  it.prop(
    "a limit is never crossed without an approval recorded before the crossing call",
    [fc.integer({ min: 1, max: 20_000 }), callsArb, answersArb],
    ([limit, calls, answers]) => {
      const { log } = execute(limit, calls, answers)
      let state = Planner.initialState
      for (const event of log) {
        if (event._tag === "ModelUsageRecorded") {
          for (const call of event.usage) {
            const before = Budget.totalTokens(state.budget?.spent ?? { inputTokens: 0, outputTokens: 0, calls: 0 })
            expect(call.estimatedTokens).toBeDefined()
            // Admitted within the limit in force, which only BudgetRaised events before it can have raised...
            expect(before + (call.estimatedTokens ?? Number.POSITIVE_INFINITY)).toBeLessThanOrEqual(
              state.budget?.tokens ?? 0
            )
            // ...and with an answer within its allowance, the spend after it is within that limit as well.
            expect(before + call.inputTokens + call.outputTokens).toBeLessThanOrEqual(state.budget?.tokens ?? 0)
          }
        }
        state = Planner.evolve(state, event)
      }
      // Every raise answered a question, and the limit only moves by raises.
      const raises = log.filter((event) => event._tag === "BudgetRaised")
      expect(state.budget?.tokens).toBe(limit + raises.reduce((total, raise) => total + raise.by, 0))
    }
  )

  it.prop("no limit, no questions: every call is made and recorded", [callsArb], ([calls]) => {
    const { log, live } = execute(undefined, calls, [{ _tag: "No" }])
    expect(log.some((event) => event._tag === "ClarificationRequested")).toBe(false)
    expect(live.status).toBe("Succeeded")
    expect(live.budget?.spent.calls).toBe(calls.length)
  })
})
