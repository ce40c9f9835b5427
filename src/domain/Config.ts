/**
 * The policy a plan runs under. It is recorded in `TasksPlanned`, so a replay decides exactly as the live run did
 * even if the defaults change later.
 */
import { Schema } from "effect"

/**
 * After a task fails for good: `continue` skips what depends on it, `abort` ends the plan, `replan` asks for a revised
 * plan for the task and what depends on it (see `app/Replan`), falling back to `continue` when none can be had.
 */
export const FailurePolicy = Schema.Literal("continue", "abort", "replan").annotations({ identifier: "FailurePolicy" })
export type FailurePolicy = typeof FailurePolicy.Type

/** Exponential backoff: attempt n waits `min(maxDelayMs, initialDelayMs * factor^(n-1))`. */
export const Backoff = Schema.Struct({
  initialDelayMs: Schema.Int.pipe(Schema.nonNegative()),
  // Finite: an infinite factor cannot be stored as JSON (it would read back as null).
  factor: Schema.Number.pipe(Schema.finite(), Schema.between(1, 100)),
  maxDelayMs: Schema.Int.pipe(Schema.nonNegative())
}).annotations({ identifier: "Backoff" })
export type Backoff = typeof Backoff.Type

export const PlannerConfig = Schema.Struct({
  /** How many tasks may be dispatched or running at once. */
  maxParallel: Schema.Int.pipe(Schema.between(1, 1024)),
  /** How many times a task may be attempted before it fails for good. */
  maxAttempts: Schema.Int.pipe(Schema.between(1, 100)),
  backoff: Backoff,
  /** After a task fails for good: `continue` skips what depends on it and runs the rest; `abort` ends the plan. */
  onFailure: FailurePolicy,
  /**
   * Under `onFailure: "replan"`, how many revised plans a session may ask for; absent means `defaultMaxReplans`
   * (plans recorded before replanning existed have no such field and decode unchanged).
   */
  maxReplans: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 100)), { exact: true }),
  /** How long a worker's claim on a task lasts before the task is considered abandoned. */
  leaseMs: Schema.Int.pipe(Schema.positive()),
  /** The rolling context passed between steps is compacted to stay under this many tokens. */
  tokenBudget: Schema.Int.pipe(Schema.positive()),
  /** Guides LLM planning and compaction (the seed's `PlannerConfig`). */
  systemPrompt: Schema.String,
  /** Compaction profile, for example `coding` or `analysis`. */
  profile: Schema.String,
  /** Error messages are compacted to at most this many characters before they are recorded. */
  errorCharLimit: Schema.Int.pipe(Schema.positive()),
  /**
   * The most the session may spend on models, in tokens (input plus output) and in dollars (priced from the user's
   * table); raised only by `BudgetRaised` (see `Budget`). Absent: no limit (plans from before budgets decode unchanged).
   */
  budgetTokens: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true }),
  budgetUsd: Schema.optionalWith(Schema.Number.pipe(Schema.finite(), Schema.positive()), { exact: true })
}).annotations({ identifier: "PlannerConfig" })
export type PlannerConfig = typeof PlannerConfig.Type

/**
 * The compaction profiles with their own guidance. `profile` stays a free string in the schema, so events recorded
 * with any other word keep decoding (it gets the general guidance); new plans choose one of these.
 */
export const compactionProfiles = ["coding", "analysis", "general"] as const
export type CompactionProfile = (typeof compactionProfiles)[number]

export const defaultConfig: PlannerConfig = {
  maxParallel: 4,
  maxAttempts: 3,
  backoff: { initialDelayMs: 1_000, factor: 2, maxDelayMs: 60_000 },
  onFailure: "continue",
  leaseMs: 60_000,
  tokenBudget: 2_000,
  systemPrompt: "You are a careful planner. Break the request into small, verifiable steps.",
  profile: "coding",
  errorCharLimit: 2_000
}

/** How many replans a session may ask for when its plan does not say. */
export const defaultMaxReplans = 2

/** The delay before retry number `failures` (1 for the first retry). */
export const backoffDelay = (backoff: Backoff, failures: number): number =>
  Math.min(backoff.maxDelayMs, Math.round(backoff.initialDelayMs * backoff.factor ** Math.max(0, failures - 1)))
