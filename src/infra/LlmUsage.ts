/**
 * Metering model calls: a fiber-local `Meter` that the remote `Llm` consults before each HTTP call (may it go ahead
 * within the session's budget?) and tells after it (what the call used). The app sets one around the work it does for
 * a session (`app/Budget.metered`) and records what it collected as `ModelUsageRecorded`; code that sets none (a test,
 * `planner plan`) is not metered. Fiber-local, like the idempotency key, so the usage reaches the caller without
 * changing the `Llm` port or threading it through `@effect/ai`.
 *
 * The estimate of what a call needs is the tokenizer's count of its messages and of the JSON schema sent with them,
 * plus an output allowance per operation (`outputAllowance`): an answer's length is not known before it arrives, so
 * the allowance is a bound on a typical answer, not a guarantee.
 */
import { type Effect, FiberRef, Option } from "effect"
import { globalValue } from "effect/GlobalValue"

/** What one call used. */
export interface CallUsage {
  /** The `Llm` operation: plan, summary, error, step (a repair is the same operation again). */
  readonly operation: string
  readonly model: string
  readonly inputTokens: number
  readonly outputTokens: number
  /** `api` when the server reported the usage; `tokenizer` when it did not and the text was counted. */
  readonly counted: "api" | "tokenizer"
  /** The estimate the call was admitted with, when a limit was checked. */
  readonly estimatedTokens?: number
}

/** What a call is expected to need, before it is made. */
export interface CallEstimate {
  readonly operation: string
  readonly model: string
  readonly promptTokens: number
  readonly outputAllowance: number
  /** How long the call may take at most, with its retries, in milliseconds: a hold on the budget lasts that long. */
  readonly within: number
}

export interface Meter {
  /** Whether calls are checked against a limit (and so need an estimate, which costs a tokenizer count). */
  readonly limited: boolean
  /** Before a call: whether it may go ahead. A refusal is remembered by the meter for its caller. */
  readonly admit: (estimate: CallEstimate) => Effect.Effect<boolean>
  /** After a call that answered: what it used. */
  readonly record: (usage: CallUsage) => Effect.Effect<void>
}

export const currentMeter: FiberRef.FiberRef<Option.Option<Meter>> = globalValue(
  "event-sourced-planner/LlmUsage/currentMeter",
  () => FiberRef.unsafeMake<Option.Option<Meter>>(Option.none())
)

/**
 * The output allowance per operation, in tokens: a plan of a dozen steps, a step's answer, a summary, a shortened
 * error. An operation not listed gets `plan`'s.
 */
export const outputAllowance: Readonly<Record<string, number>> = {
  plan: 1_500,
  step: 1_000,
  summary: 1_000,
  error: 500
}

export const allowanceFor = (operation: string): number => outputAllowance[operation] ?? outputAllowance.plan ?? 1_500
