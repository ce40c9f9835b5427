/**
 * The services a command that runs plans needs besides the store (see `Store.plannerLayer`) and its executors (see
 * `Executors`): the LLM from the environment, the compactor that goes with it, and the attachment checker.
 */
import { Effect, Layer } from "effect"
import * as AttachmentChecker from "../../infra/AttachmentChecker.js"
import type { Compactor } from "../../infra/Compactor.js"
import * as HeuristicCompactor from "../../infra/HeuristicCompactor.js"
import { Llm } from "../../infra/Llm.js"
import * as LlmCompactor from "../../infra/LlmCompactor.js"
import { llmLayer } from "./LlmChoice.js"

/** The LLM compactor when a model is configured, the heuristic one otherwise. */
const compactorLayer: Layer.Layer<Compactor, never, Llm> = Layer.unwrapEffect(
  Effect.map(Llm, (llm) => (llm.provider._tag === "Remote" ? LlmCompactor.layer : HeuristicCompactor.layer))
)

export interface RunServicesOptions {
  /** Check links over the network before a task runs (off with --no-check-links). */
  readonly checkLinks: boolean
}

export const runServices = (options: RunServicesOptions) => {
  const llm = llmLayer()
  return Layer.mergeAll(
    llm,
    compactorLayer.pipe(Layer.provide(llm)),
    AttachmentChecker.layerNode({ checkLinks: options.checkLinks })
  )
}
