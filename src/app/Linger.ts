/**
 * Waiting a moment for more of a batch: a database's group commit with a linger (Kafka's `linger.ms`), bounded by
 * what the batch itself expects. The session writer's turn (`PlannerService`) waits so for a worker's outcomes, and a
 * worker's report group (`ReportGroups`) for its reports: alike attempts one take started end about together, and
 * recorded together, their slots are filled together again, so they stay in step.
 */
import { type Clock, Duration, Effect } from "effect"

/** How long an outcome waits for those expected with it by default (milliseconds): a few scheduler turns' worth. */
export const defaultGatherMs = 5

/** The longest such wait that may be asked for: an outcome held a second is already a slower plan for any task. */
export const maxGatherMs = 1_000

/** A wait asked for, as used: the default when not given (or not a number), and within 0 to `maxGatherMs`. */
export const gatherBound = (ms: number | undefined): number =>
  ms === undefined || Number.isNaN(ms) ? defaultGatherMs : Math.min(maxGatherMs, Math.max(0, ms))

export interface LingerOptions {
  /** The longest wait; 0 waits for nothing. */
  readonly ms: number
  readonly clock: Clock.Clock
  /** Whether more is still to come: asked before each wait, which ends once it says no. */
  readonly expects: () => boolean
  /** Completes when something comes in; asked afresh for each wait. */
  readonly arrival: () => Effect.Effect<unknown>
  /** After each wake-up: takes in what came. */
  readonly gathered?: Effect.Effect<void>
}

/**
 * Waits until `expects` says nothing more is to come or `ms` have passed, woken by each `arrival`. The arrival and the
 * timer race with each side interruptible, whatever the caller's region (a worker's report group waits inside a step
 * that is not): the loser is interrupted, not waited for, which under a test's clock would be for ever.
 */
export const linger = (options: LingerOptions): Effect.Effect<void> =>
  Effect.suspend(() => {
    const { clock, expects, arrival } = options
    const gathered = options.gathered ?? Effect.void
    const until = clock.unsafeCurrentTimeMillis() + options.ms
    const wait: Effect.Effect<void> = Effect.suspend(() => {
      const left = until - clock.unsafeCurrentTimeMillis()
      if (left <= 0 || !expects()) return Effect.void
      return Effect.raceFirst(
        Effect.interruptible(arrival()),
        Effect.interruptible(Effect.sleep(Duration.millis(left)))
      ).pipe(Effect.zipRight(gathered), Effect.zipRight(wait))
    })
    return wait
  })
