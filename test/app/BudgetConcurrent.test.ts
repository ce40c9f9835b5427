/**
 * Two tasks of one session calling the model at the same time cannot together cross its budget (#16): each call
 * alone fits what is left, both do not. The first call admitted holds its estimate while it is in flight (the server
 * answers it only once the other task has asked), so the second is refused and its task asks the budget question;
 * only one call reaches the real HTTP server. The budget's spend afterwards is exactly the usage events, and nothing
 * is left held.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer } from "effect"
import * as AppBudget from "../../src/app/Budget.js"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as AttachmentChecker from "../../src/infra/AttachmentChecker.js"
import * as HeuristicCompactor from "../../src/infra/HeuristicCompactor.js"
import * as LlmExecutor from "../../src/infra/LlmExecutor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { llmLayer, settingsFor } from "../llm/support/layers.js"
import { twoStepsOneCallFits } from "./fixtures/budgetPlan.js"

const step = (result: string) =>
  Reply.json({ outcome: "completed", result, question: "", reason: "" }, { input: 100, output: 50 })

describe("a budget spent by tasks running at once", () => {
  it.scopedLive("admits one call of two that together would cross it; the other task asks first", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      // The first call is answered only once the other task has asked: it is surely in flight meanwhile.
      let answerFirst = () => {}
      const firstAnswered = new Promise<void>((resolve) => {
        answerFirst = resolve
      })
      server.enqueue(Reply.after(firstAnswered, step("the release notes")), step("the announcement"))
      const services = Layer.mergeAll(
        PlannerService.layer().pipe(Layer.provideMerge(PlannerStore.layer)),
        LlmExecutor.layerRegistry(),
        AttachmentChecker.layerNode({ checkLinks: false }),
        HeuristicCompactor.layer
      ).pipe(Layer.provideMerge(MemoryEventStore.layer()), Layer.provideMerge(llmLayer("chat", settingsFor(server))))

      const { result, records } = yield* Effect.gen(function* () {
        const service = yield* PlannerService.PlannerService
        const at = yield* Clock.currentTimeMillis
        const sessionId = Runner.newSessionId(at)
        yield* service.execute(sessionId, twoStepsOneCallFits(at))
        const result = yield* Runner.run(sessionId, {
          concurrency: 4,
          onProgress: (progress) =>
            Effect.sync(() => {
              if (progress.state.tasks.some((task) => task.status === "NeedsClarification")) answerFirst()
            })
        })
        return { result, records: yield* Runner.history(sessionId) }
      }).pipe(Effect.provide(services))

      expect(server.modelRequests()).toHaveLength(1)
      const statuses = result.state.tasks.map((task) => task.status).sort()
      expect(statuses).toEqual(["Completed", "NeedsClarification"])
      expect(result.waiting).toBe(true)
      const asked = result.state.budget?.questions ?? []
      expect(asked).toHaveLength(1)
      expect(asked[0]?.ask.unit).toBe("tokens")
      const usage = records.flatMap((record) => (record.event._tag === "ModelUsageRecorded" ? record.event.usage : []))
      expect(usage).toHaveLength(1)
      expect(result.state.budget?.spent).toMatchObject({ inputTokens: 100, outputTokens: 50, calls: 1 })
      expect(AppBudget.heldCalls()).toBe(0)
    })
  )
})
