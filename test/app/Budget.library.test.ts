/**
 * The budget through the library (`Runner.start`, `Runner.run`, `Runner.answer`) against a real HTTP server speaking
 * both OpenAI protocols, each reporting usage its own way (the Responses API's `input_tokens`, chat completions'
 * `prompt_tokens`): the plan call's usage is recorded with the plan, the first step's call would cross the budget and
 * is held back, and "no" fails the task for good without the call ever being made.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Planner from "../../src/domain/Planner.js"
import * as AttachmentChecker from "../../src/infra/AttachmentChecker.js"
import * as HeuristicCompactor from "../../src/infra/HeuristicCompactor.js"
import type { LlmApi } from "../../src/infra/LlmConfig.js"
import * as LlmExecutor from "../../src/infra/LlmExecutor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { apis, llmLayer, model, settingsFor } from "../llm/support/layers.js"

const plan = {
  tasks: [
    { id: "a", description: "Summarise the release", kind: "Processing", dependsOn: [], attachments: [] },
    { id: "b", description: "Draft the announcement", kind: "Processing", dependsOn: ["a"], attachments: [] }
  ]
}

/** The planner's services in memory, with the LLM at `server` over `api`. */
const servicesFor = (api: LlmApi, server: FakeOpenAiServer.FakeOpenAiServer) =>
  Layer.mergeAll(
    PlannerService.layer().pipe(Layer.provideMerge(PlannerStore.layer)),
    LlmExecutor.layerRegistry(),
    AttachmentChecker.layerNode({ checkLinks: false }),
    HeuristicCompactor.layer
  ).pipe(Layer.provideMerge(MemoryEventStore.layer()), Layer.provideMerge(llmLayer(api, settingsFor(server))))

describe.each(apis)("a budget over the %s protocol, through the library", (api) => {
  it.scopedLive("records the plan call's usage, holds back the crossing step, and no fails it for good", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json(plan, { input: 2_900, output: 100 }))
      const services = servicesFor(api, server)

      const { first, last, records } = yield* Effect.gen(function* () {
        const { sessionId } = yield* Runner.start("Summarise the release, then draft the announcement.", {
          config: { budgetTokens: 3_500 }
        })
        const first = yield* Runner.run(sessionId)
        yield* Runner.answer(sessionId, 1, "no")
        const last = yield* Runner.run(sessionId)
        return { first, last, records: yield* Runner.history(sessionId) }
      }).pipe(Effect.provide(services))

      // The plan call fit (its prompt and 1,500 tokens for the answer are within 3,500) and was made; its usage, as the
      // server reported it, is recorded with the plan. The step's estimate does not fit what is left (500 tokens).
      expect(first.state.budget?.spent).toEqual({ inputTokens: 2_900, outputTokens: 100, calls: 1 })
      expect(Planner.task(first.state, 1)?.status).toBe("NeedsClarification")
      expect(first.state.budget?.questions[0]?.ask).toMatchObject({ unit: "tokens", spent: 3_000, limit: 3_500 })
      // Only the plan call reached the server: the step's call was held back, and "no" never made it.
      expect(server.modelRequests().length).toBe(1)
      expect(last.state.status).toBe("Failed")
      expect(Planner.task(last.state, 1)?.error).toMatch(
        /^the budget was not raised: 3,000 tokens of 3,500 tokens used/
      )
      expect(Planner.task(last.state, 1)?.attempt).toBe(1)
      expect(Planner.task(last.state, 2)?.status).toBe("Skipped")
      const events = records.map((record) => record.event)
      expect(Planner.fold(events)).toEqual(last.state)
      const usage = events.flatMap((event) => (event._tag === "ModelUsageRecorded" ? event.usage : []))
      expect(usage).toEqual([
        {
          purpose: "planning",
          model,
          inputTokens: 2_900,
          outputTokens: 100,
          counted: "api",
          estimatedTokens: expect.any(Number)
        }
      ])
      expect(events.some((event) => event._tag === "BudgetRaised")).toBe(false)
    })
  )

  it.scopedLive(
    "usage the server reports that is no count (a fraction, below zero) is counted with the tokenizer",
    () =>
      Effect.gen(function* () {
        const server = yield* FakeOpenAiServer.make
        // The Responses API's client (@effect/ai) refuses a fraction itself, as a malformed answer: the plan then comes
        // from the parser. A count below zero reaches the meter over both protocols.
        server.enqueue(Reply.json(plan, api === "chat" ? { input: 12.5, output: -1 } : { input: 12, output: -1 }))
        const services = servicesFor(api, server)
        // It used to make the usage's event throw as it was built: a defect after the paid call, whose outcome was lost.
        const records = yield* Effect.gen(function* () {
          const { sessionId } = yield* Runner.start("Summarise the release, then draft the announcement.", {
            config: { budgetTokens: 1_000_000 }
          })
          return yield* Runner.history(sessionId)
        }).pipe(Effect.provide(services))
        const usage = records.flatMap((record) =>
          record.event._tag === "ModelUsageRecorded" ? record.event.usage : []
        )
        expect(usage).toHaveLength(1)
        expect(usage[0]).toMatchObject({ purpose: "planning", counted: "tokenizer" })
        expect(Number.isInteger(usage[0]?.inputTokens) && (usage[0]?.inputTokens ?? 0) > 0).toBe(true)
        expect(Number.isInteger(usage[0]?.outputTokens) && (usage[0]?.outputTokens ?? -1) >= 0).toBe(true)
      })
  )
})
