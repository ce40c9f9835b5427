/**
 * An executor that performs `Processing` steps (or any kind it is routed) with the `Llm`: it sends the step, the
 * compacted context, the results of the steps it depends on, the answers to its questions and its attachments, and
 * turns the answer into an `Outcome`. Nothing the model does makes it crash: a refusal, an empty or malformed answer
 * and a failed call are failed attempts, retryable unless retrying cannot help (a rejected key, no model at all).
 */
import { Effect, Layer } from "effect"
import { ExecutorRegistry, type ExecutorService, makeRegistry, Outcome, type TaskContext } from "./Executor.js"
import { Llm, type LlmError, type LlmService } from "./Llm.js"

const retryableFailure = (error: LlmError): boolean => error.reason !== "ClientError" && error.reason !== "Unavailable"

export const fromLlm = (llm: LlmService): ExecutorService => ({
  name: "llm",
  execute: Effect.fn("LlmExecutor.execute")(
    function* (context: TaskContext) {
      const answer = yield* llm.performStep(context)
      switch (answer._tag) {
        case "Completed":
          return Outcome.Completed({ result: answer.result })
        case "NeedsClarification":
          return Outcome.NeedsClarification({ question: answer.question })
        case "Declined":
          return Outcome.Failed({ error: `The model declined the step: ${answer.reason}`, retryable: true })
      }
    },
    (effect) =>
      effect.pipe(
        Effect.catchAll((error) =>
          Effect.succeed(Outcome.Failed({ error: error.message, retryable: retryableFailure(error) }))
        ),
        // A defect in the client is still one failed attempt of one task, not the runner's crash.
        Effect.catchAllDefect((defect) =>
          Effect.succeed(
            Outcome.Failed({ error: `The LLM executor failed unexpectedly: ${String(defect)}`, retryable: true })
          )
        )
      )
  )
})

export const make: Effect.Effect<ExecutorService, never, Llm> = Effect.map(Llm, fromLlm)

/** A registry sending `Processing` tasks (and, with `everyKind`, all kinds without a route) to the LLM executor. */
export const layerRegistry = (options?: { readonly everyKind?: boolean }): Layer.Layer<ExecutorRegistry, never, Llm> =>
  Layer.effect(
    ExecutorRegistry,
    Effect.map(make, (executor) =>
      options?.everyKind === true ? makeRegistry({}, executor) : makeRegistry({ Processing: executor })
    )
  )
