/**
 * The compactor that asks the `Llm` to summarise, guided by the plan's system prompt and compaction profile. The
 * model's word is not trusted on length: the summary is measured with the model's tokenizer, a small overshoot is
 * cut between words, and a large one (or any failure to get an answer) falls back to the heuristic compactor. So the
 * budget holds whatever the model does.
 */
import { Effect, Layer } from "effect"
import { type CompactionInput, type CompactionResult, Compactor, type CompactorService, entryIds } from "./Compactor.js"
import * as HeuristicCompactor from "./HeuristicCompactor.js"
import { Llm, type LlmService } from "./Llm.js"
import * as Tokenizer from "./Tokenizer.js"

/** How far over the budget a model's summary may be and still be cut to size rather than replaced. */
const cuttableOvershoot = 1.5

export const fromLlm = (llm: LlmService): CompactorService => {
  const counter = llm.provider._tag === "Remote" ? Tokenizer.forModel(llm.provider.model) : Tokenizer.fallback

  const compact = Effect.fn("LlmCompactor.compact")(function* (input: CompactionInput) {
    const removedTaskIds = entryIds(input.entries)
    const everything = HeuristicCompactor.fullText(input)
    // Everything already fits: nothing to summarise, no call.
    if (counter.count(everything) <= input.budget) return { summary: everything, removedTaskIds }
    const heuristic = (): CompactionResult => HeuristicCompactor.compactContext(input, counter)
    const answer = yield* llm.compactContext(input).pipe(Effect.either)
    if (answer._tag === "Left") {
      yield* Effect.logWarning(`LLM compaction failed, using the heuristic compactor: ${answer.left.message}`)
      return heuristic()
    }
    const summary = answer.right
    const tokens = counter.count(summary)
    if (summary.length === 0) return heuristic()
    if (tokens <= input.budget) return { summary, removedTaskIds }
    if (tokens <= input.budget * cuttableOvershoot) {
      const cut = HeuristicCompactor.truncateToTokens(summary, input.budget, counter)
      if (cut.length > 0) return { summary: cut, removedTaskIds }
    }
    yield* Effect.logWarning(
      `LLM summary has ${tokens} tokens for a budget of ${input.budget}; using the heuristic compactor instead`
    )
    return heuristic()
  })

  const compactError = Effect.fn("LlmCompactor.compactError")(function* (message: string, limit: number) {
    if (message.length <= limit) return message
    const answer = yield* llm.compactErrorMessage(message, limit).pipe(Effect.either)
    if (answer._tag === "Left") return HeuristicCompactor.compactError(message, limit)
    // An overlong answer is compacted like any error, so the limit holds.
    return answer.right.length <= limit ? answer.right : HeuristicCompactor.compactError(answer.right, limit)
  })

  return Compactor.of({ compact, compactError })
}

export const make: Effect.Effect<CompactorService, never, Llm> = Effect.map(Llm, fromLlm)

/** The LLM compactor over the `Llm` in the context (the heuristic `Llm` makes it a heuristic compactor). */
export const layer: Layer.Layer<Compactor, never, Llm> = Layer.effect(Compactor, make)
