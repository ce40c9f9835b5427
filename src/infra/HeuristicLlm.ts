/**
 * The `Llm` used when no model is configured: the deterministic parser and heuristics, no network. It answers
 * everything it can the way the parser would, and says `Unavailable` for performing a step, which needs a model.
 */
import { Effect, Either, Layer } from "effect"
import * as Parser from "../domain/Parser.js"
import * as HeuristicCompactor from "./HeuristicCompactor.js"
import { Llm, LlmError, type LlmService, type TaskDraft } from "./Llm.js"

export const service: LlmService = {
  provider: { _tag: "Heuristic" },
  parseTasks: Effect.fn("HeuristicLlm.parseTasks")(function* (text: string) {
    const planned = Parser.parse(text)
    if (Either.isLeft(planned)) return yield* new LlmError({ reason: "ClientError", detail: planned.left.message })
    return planned.right.map(
      (task): TaskDraft => ({
        id: String(task.id),
        description: task.description,
        kind: task.kind,
        dependsOn: task.dependsOn.map(String),
        attachments: task.attachments
      })
    )
  }),
  compactContext: Effect.fn("HeuristicLlm.compactContext")(function* (input) {
    return yield* Effect.sync(() => HeuristicCompactor.compactContext(input).summary)
  }),
  compactErrorMessage: Effect.fn("HeuristicLlm.compactErrorMessage")(function* (message: string, limit: number) {
    return yield* Effect.sync(() => HeuristicCompactor.compactError(message, limit))
  }),
  performStep: Effect.fn("HeuristicLlm.performStep")(function* () {
    return yield* new LlmError({
      reason: "Unavailable",
      detail: "no LLM is configured to perform steps (set PLANNER_LLM_BASE_URL and PLANNER_LLM_MODEL)"
    })
  })
}

export const layer: Layer.Layer<Llm> = Layer.succeed(Llm, service)
