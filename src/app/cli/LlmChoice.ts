/**
 * Which LLM a command talks to: the one the environment configures (see `LlmConfig`), or the heuristics. Both are
 * loaded on demand, so commands that fail early, or never plan, do not pay for loading them.
 */
import { Effect, Layer } from "effect"
import type { Llm } from "../../infra/Llm.js"
import { type CliExit, type CliFailure, toFailure } from "./Failure.js"
import { llmConfigured as llmNamed } from "./PlanArgs.js"

/**
 * True when the environment names an LLM; only then are the LLM clients loaded. (Read in `PlanArgs`, which imports
 * nothing: bin/planner.js uses it to choose the bundle for `plan`.)
 */
export const llmConfigured = (env: NodeJS.ProcessEnv = process.env): boolean => llmNamed(env)

/**
 * The LLM settings in the environment, read and checked now without building a client, so that invalid ones are a
 * usage error (exit code 2) before a command opens its store; nothing to check when no LLM is named.
 */
export const checkLlmSettings = (): Effect.Effect<void, CliFailure | CliExit> =>
  llmConfigured()
    ? Effect.promise(() => import("../../infra/LlmConfig.js")).pipe(
        Effect.flatMap((LlmConfig) => LlmConfig.fromEnv),
        Effect.asVoid,
        Effect.mapError(toFailure)
      )
    : Effect.void

/** The LLM the environment configures, or the heuristics; invalid settings fail with exit code 2. */
export const llmLayer = (): Layer.Layer<Llm, CliFailure | CliExit> =>
  llmConfigured()
    ? Layer.unwrapEffect(
        Effect.map(
          Effect.promise(() => import("../../infra/LlmConfig.js")),
          (LlmConfig) => LlmConfig.layerFromEnv.pipe(Layer.mapError(toFailure))
        )
      )
    : Layer.unwrapEffect(
        Effect.map(
          Effect.promise(() => import("../../infra/HeuristicLlm.js")),
          (HeuristicLlm) => HeuristicLlm.layer
        )
      )
