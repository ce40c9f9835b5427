/**
 * A tree of sub-plans spends its root's budget (#16): a child session's calls are checked against the root's limit
 * with every session's spend counted, a raise answered in a child counts for the whole tree, and the question a child
 * asks states the tree's figures.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FiberRef, Option } from "effect"
import * as AppBudget from "../../src/app/Budget.js"
import * as Budget from "../../src/domain/Budget.js"
import { ClarificationProvided, HandleExecutorEvent, NeedsClarification } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import {
  ModelUsageRecorded,
  type PlannerEvent,
  TaskDispatched,
  TaskExpanded,
  TasksPlanned
} from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import * as LlmUsage from "../../src/infra/LlmUsage.js"

const T0 = 1_700_000_000_000
const config = { ...defaultConfig, budgetTokens: 10_000 }
const step = (id: number, description: string) => ({
  id,
  description,
  kind: "Processing" as const,
  dependsOn: [],
  attachments: []
})
const used = (inputTokens: number, outputTokens: number) =>
  new ModelUsageRecorded({
    usage: [{ purpose: "execution", model: "m", inputTokens, outputTokens, counted: "api" }],
    at: T0
  })

const root = Planner.fold([
  new TasksPlanned({
    request: "Ship it",
    attachments: [],
    tasks: [step(1, "Build it"), step(2, "Release it")],
    config,
    source: { _tag: "Parser" },
    at: T0
  }),
  used(3_000, 1_000),
  new TaskExpanded({ taskId: 2, childSessionId: "root~2", at: T0 })
])

const childEvents: Array<PlannerEvent> = [
  new TasksPlanned({
    request: "Release it",
    attachments: [],
    tasks: [step(1, "Tag it"), step(2, "Announce it")],
    config,
    source: { _tag: "Parser", reason: "sub-plan of task 2 of session root" },
    subPlanOf: { sessionId: "root", taskId: 2, rootSessionId: "root", depth: 1, maxDepth: 3 },
    at: T0
  }),
  new TaskDispatched({ taskId: 1, attempt: 1, kind: "Processing", description: "Tag it", clarifications: [], at: T0 }),
  used(4_000, 500)
]

const service = (states: Record<string, Planner.PlannerState>) => ({
  state: (id: string) => Effect.succeed(states[id] ?? Planner.initialState)
})

describe("a tree of sub-plans spends its root's budget", () => {
  it("a child's calls are checked against the root's limit with the whole tree's spend", () =>
    Effect.gen(function* () {
      const child = Planner.fold(childEvents)
      const spendable = yield* AppBudget.budgetFor(service({ root, "root~2": child }), "root~2", child)
      expect(spendable.tree).toBe(true)
      // A child's calls are held against its root's budget, with every session of the tree at the version read.
      expect(spendable.snapshot.root).toBe("root")
      expect([...spendable.snapshot.versions.keys()].sort()).toEqual(["root", "root~2"])
      expect(spendable.budget?.tokens).toBe(10_000)
      expect(spendable.budget?.spent).toEqual({ inputTokens: 7_000, outputTokens: 1_500, calls: 2 })
      // Alone, the child would have 5,500 tokens left; in the tree it has 1,500.
      expect(Budget.wouldCross(child.budget, { tokens: 2_000 })).toBeUndefined()
      expect(Budget.wouldCross(spendable.budget, { tokens: 2_000 })?.spent).toBe(8_500)

      // The meter refuses the call with the tree's figures, and the child's question states them.
      const call = Effect.flatMap(FiberRef.get(LlmUsage.currentMeter), (meter) =>
        Option.isSome(meter)
          ? meter.value.admit({
              operation: "step",
              model: "m",
              promptTokens: 1_000,
              outputAllowance: 1_000,
              within: 60_000
            })
          : Effect.succeed(false)
      )
      const ran = yield* AppBudget.metered(call, { ...spendable, prices: undefined, purpose: "execution" })
      expect(ran.refused).toEqual({ tokens: 2_000, spent: 8_500, limit: 10_000 })
      const need = { tokens: 2_000, spent: 8_500, limit: 10_000 }
      const asked = Either.getOrThrow(
        Planner.decideEither(
          child,
          new HandleExecutorEvent({
            event: new NeedsClarification({ taskId: 1, attempt: 1, question: "over", budget: need }),
            at: T0
          })
        )
      )
      const question = asked[0]
      expect(question?._tag === "ClarificationRequested" ? question.question : "").toBe(
        "This plan has used 8,500 of 10,000 tokens; the next step needs about 2,000. Allow 4,000 more? (answer yes, yes AMOUNT, or no)"
      )

      // Yes in the child raises the tree's budget by that much.
      const waiting = Planner.fold(asked, child)
      const answered = Planner.fold(
        Either.getOrThrow(
          Planner.decideEither(
            waiting,
            new HandleExecutorEvent({ event: new ClarificationProvided({ taskId: 1, answer: "yes 3000" }), at: T0 })
          )
        ),
        waiting
      )
      const after = yield* AppBudget.budgetFor(service({ root, "root~2": answered }), "root~2", answered)
      expect(after.budget?.tokens).toBe(13_000)
      expect(Budget.wouldCross(after.budget, { tokens: 2_000 })).toBeUndefined()
    }).pipe(Effect.runPromise))

  it("the root counts its children's spend too; a session alone reads nothing", () =>
    Effect.gen(function* () {
      const child = Planner.fold(childEvents)
      let reads = 0
      const counting = {
        state: (id: string) => {
          reads += 1
          return Effect.succeed(id === "root~2" ? child : root)
        }
      }
      const fromRoot = yield* AppBudget.budgetFor(counting, "root", root)
      expect(fromRoot.budget?.spent.inputTokens).toBe(7_000)
      expect(reads).toBe(1)
      const alone = Planner.fold([
        new TasksPlanned({
          request: "x",
          attachments: [],
          tasks: [step(1, "x")],
          config,
          source: { _tag: "Parser" },
          at: T0
        })
      ])
      reads = 0
      const own = yield* AppBudget.budgetFor(counting, "alone", alone)
      expect(own).toMatchObject({ budget: alone.budget, tree: false })
      // The snapshot the budget holds are checked against: the session alone, at the version read.
      expect(own.snapshot).toEqual({ sessionId: "alone", root: "alone", versions: new Map([["alone", alone.version]]) })
      expect(reads).toBe(0)
    }).pipe(Effect.runPromise))
})
