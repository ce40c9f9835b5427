/**
 * How the meter uses the budget holds (`AppBudget.metered` over `infra/BudgetHolds`): another work's call counts while
 * it is in flight, then as what it used until the log shows it, and never twice; a call that never answered frees its
 * hold; a budget without a snapshot takes no hold.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FiberRef, Layer, Option } from "effect"
import * as AppBudget from "../../src/app/Budget.js"
import * as PlannerService from "../../src/app/PlannerService.js"
import type * as Budget from "../../src/domain/Budget.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as BudgetHolds from "../../src/infra/BudgetHolds.js"
import * as LlmUsage from "../../src/infra/LlmUsage.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"

/** A model call as the `Llm` makes it: asks the meter, then (unless it never answers) tells it what was used. */
const call = (prompt: number, output: number, answers = true) =>
  Effect.flatMap(FiberRef.get(LlmUsage.currentMeter), (meter) =>
    Effect.gen(function* () {
      if (Option.isNone(meter)) return yield* Effect.die("no meter")
      const admitted = yield* meter.value.admit({
        operation: "step",
        model: "m",
        promptTokens: prompt,
        outputAllowance: output,
        within: 60_000
      })
      if (!admitted) return yield* Effect.fail("refused" as const)
      if (!answers) return yield* Effect.fail("no answer" as const)
      yield* meter.value.record({
        operation: "step",
        model: "m",
        inputTokens: prompt,
        outputTokens: output,
        counted: "api"
      })
      return "done"
    })
  )

const budget = (spent: number): Budget.BudgetState => ({
  tokens: 1_000,
  spent: { inputTokens: spent, outputTokens: 0, calls: spent === 0 ? 0 : 1 },
  questions: []
})

const readAt = (version: number): AppBudget.Snapshot => ({
  sessionId: "s",
  root: "s",
  versions: new Map([["s", version]])
})

/** The writer, as far as `record` needs it: the usage lands at `version`. */
const writerAt = (version: number) => ({
  execute: () => Effect.succeed({ state: { version } }) as never
})

describe("the meter's holds on a budget", () => {
  it.effect("counts another work's call until the log shows it, and not twice after", () =>
    Effect.gen(function* () {
      const holds = BudgetHolds.makeMemory()
      const run = (effect: Effect.Effect<string, string>, spent: number, version: number) =>
        AppBudget.metered(effect, {
          budget: budget(spent),
          snapshot: readAt(version),
          prices: undefined,
          purpose: "execution"
        }).pipe(Effect.provideService(BudgetHolds.BudgetHolds, holds))

      // A work makes a call of 400 tokens; until recorded, it holds that much.
      const first = yield* run(call(300, 100), 0, 1)
      expect(first.usage).toHaveLength(1)
      expect(holds.unrecorded()).toBe(1)
      // A check read before the record must count it: 400 held + 700 > 1,000.
      const early = yield* run(call(600, 100), 0, 1)
      expect(early.refused).toEqual({ tokens: 700 })
      // The usage is recorded at version 2.
      yield* AppBudget.record(writerAt(2), "s", first.usage)
      expect(holds.unrecorded()).toBe(0)
      // A check read before the record still counts the hold; one read after it sees the usage in the log alone.
      expect((yield* run(call(600, 100), 0, 1)).refused).toEqual({ tokens: 700 })
      const late = yield* run(call(500, 100), 400, 2)
      expect(late.refused).toBeUndefined()
      expect(late.usage).toHaveLength(1)
    })
  )

  it.effect("a call that never answered frees its hold; work with no usage keeps none", () =>
    Effect.gen(function* () {
      const holds = BudgetHolds.makeMemory()
      const run = (effect: Effect.Effect<string, string>) =>
        AppBudget.metered(effect, {
          budget: budget(0),
          snapshot: readAt(1),
          prices: undefined,
          purpose: "execution"
        }).pipe(Effect.provideService(BudgetHolds.BudgetHolds, holds))
      const lost = yield* run(call(800, 100, false))
      expect(lost.exit._tag).toBe("Failure")
      expect(holds.unrecorded()).toBe(0)
      expect((yield* run(call(800, 100))).refused).toBeUndefined()
    })
  )

  it.effect("a usage the log refused to record frees its hold", () =>
    Effect.gen(function* () {
      const holds = BudgetHolds.makeMemory()
      const options = { budget: budget(0), snapshot: readAt(1), prices: undefined, purpose: "execution" } as const
      const ran = yield* AppBudget.metered(call(300, 100), options).pipe(
        Effect.provideService(BudgetHolds.BudgetHolds, holds)
      )
      expect(holds.unrecorded()).toBe(1)
      const refusing = { execute: () => Effect.fail({ _tag: "SessionFinished", message: "finished" }) as never }
      yield* AppBudget.record(refusing, "s", ran.usage)
      expect(holds.unrecorded()).toBe(0)
      expect(
        (yield* AppBudget.metered(call(800, 100), options).pipe(Effect.provideService(BudgetHolds.BudgetHolds, holds)))
          .refused
      ).toBeUndefined()
    })
  )

  it.effect(
    "a child's plan takes its planning call's hold to the log; the writer settles it when it records the plan",
    () =>
      Effect.gen(function* () {
        const holds = BudgetHolds.makeMemory()
        // The parent's worker plans the child: the call holds its part of the tree's budget, under the child's id.
        const planning = yield* AppBudget.metered(call(300, 100), {
          budget: budget(0),
          snapshot: { sessionId: "root~1", root: "root", versions: new Map([["root", 3]]) },
          prices: undefined,
          purpose: "planning"
        }).pipe(Effect.provideService(BudgetHolds.BudgetHolds, holds))
        const start = AppBudget.carry(
          new Initialize({
            request: "Plan the child",
            tasks: [{ id: 1, description: "Do it", kind: "Processing", dependsOn: [], attachments: [] }],
            source: { _tag: "Llm", model: "m" },
            usage: planning.usage,
            config: defaultConfig,
            at: 1_750_000_000_000
          }),
          planning.usage
        )
        expect(holds.unrecorded()).toBe(1)
        const handled = yield* Effect.flatMap(PlannerService.PlannerService, (service) =>
          service.execute("root~1", start)
        ).pipe(
          Effect.provide(
            PlannerService.layer().pipe(
              Layer.provideMerge(PlannerStore.layer),
              Layer.provideMerge(MemoryEventStore.layer())
            )
          )
        )
        expect(holds.unrecorded()).toBe(0)
        const next = (spent: number, prompt: number, versions: ReadonlyMap<string, number>) =>
          AppBudget.metered(call(prompt, 100), {
            budget: budget(spent),
            snapshot: { sessionId: "root", root: "root", versions },
            prices: undefined,
            purpose: "execution"
          }).pipe(Effect.provideService(BudgetHolds.BudgetHolds, holds))
        // A check that has not read the child's plan still counts its call: 400 held + 601 > 1,000.
        expect((yield* next(0, 501, new Map([["root", 3]]))).refused).toEqual({ tokens: 601 })
        // One that read it has the 400 in its budget from the log, and does not count them twice: 400 + 600 fits.
        const read = new Map([
          ["root", 3],
          ["root~1", handled.state.version]
        ])
        expect((yield* next(400, 500, read)).refused).toBeUndefined()
      })
  )
})
