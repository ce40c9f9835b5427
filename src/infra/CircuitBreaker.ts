/**
 * A circuit breaker: after `maxFailures` consecutive failures it opens, and calls fail at once (without reaching the
 * endpoint) for `cooldown`. After the cool-down one call goes through as a probe (half-open): its success closes the
 * breaker, its failure opens it for another cool-down. Calls made while the probe is in flight fail at once.
 *
 * Time comes from Effect's `Clock`, so tests can drive the breaker with the `TestClock`.
 */
import { Cause, Clock, Data, Duration, Effect, Exit, Option, Ref } from "effect"

export type State = Data.TaggedEnum<{
  Closed: { readonly failures: number }
  Open: { readonly failures: number; readonly until: number }
  HalfOpen: { readonly failures: number }
}>
export const State = Data.taggedEnum<State>()

/** The breaker is open: the call was not made. */
export class CircuitOpen extends Data.TaggedError("CircuitOpen")<{
  /** Consecutive failures that opened the breaker. */
  readonly failures: number
  /** How long until a probe call is allowed (0 while a probe is in flight). */
  readonly retryInMs: number
}> {
  override get message() {
    const wait =
      this.retryInMs > 0 ? `calls resume in ${Math.ceil(this.retryInMs / 1000)} s` : "a probe call is in progress"
    return `the endpoint failed ${this.failures} times in a row, so calls are paused (${wait})`
  }
}

export interface Options {
  readonly maxFailures: number
  readonly cooldown: Duration.DurationInput
}

export interface CircuitBreaker {
  /**
   * Runs `effect` unless the breaker is open. `isFailure` says which errors count against the endpoint (timeouts,
   * 5xx, 429); other errors (a 400, say) prove the endpoint is answering and reset the count.
   */
  readonly protect: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    isFailure: (error: E) => boolean
  ) => Effect.Effect<A, E | CircuitOpen, R>
  readonly state: Effect.Effect<State>
}

type Admission =
  | { readonly _tag: "Run"; readonly probe: boolean }
  | { readonly _tag: "Reject"; readonly error: CircuitOpen }

export const make = (options: Options): Effect.Effect<CircuitBreaker> =>
  Effect.gen(function* () {
    const maxFailures = Math.max(1, Math.floor(options.maxFailures))
    const cooldownMs = Duration.toMillis(Duration.decode(options.cooldown))
    const state = yield* Ref.make<State>(State.Closed({ failures: 0 }))

    const admit = (now: number) =>
      Ref.modify(state, (current): [Admission, State] => {
        switch (current._tag) {
          case "Closed":
            return [{ _tag: "Run", probe: false }, current]
          case "Open":
            return now >= current.until
              ? [{ _tag: "Run", probe: true }, State.HalfOpen({ failures: current.failures })]
              : [
                  {
                    _tag: "Reject",
                    error: new CircuitOpen({ failures: current.failures, retryInMs: current.until - now })
                  },
                  current
                ]
          case "HalfOpen":
            return [{ _tag: "Reject", error: new CircuitOpen({ failures: current.failures, retryInMs: 0 }) }, current]
        }
      })

    const settle = <A, E>(exit: Exit.Exit<A, E>, probe: boolean, isFailure: (error: E) => boolean) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const counted = Exit.match(exit, {
          onSuccess: () => "ok" as const,
          onFailure: (cause) => {
            if (Cause.isInterruptedOnly(cause)) return "interrupted" as const
            const failure = Cause.failureOption(cause)
            return Option.isSome(failure) && !isFailure(failure.value) ? ("ok" as const) : ("failed" as const)
          }
        })
        const next = yield* Ref.updateAndGet(state, (current): State => {
          if (counted === "interrupted") {
            // An interrupted probe proved nothing: let the next call probe again.
            return probe ? State.Open({ failures: current.failures, until: now }) : current
          }
          if (counted === "ok") return State.Closed({ failures: 0 })
          const failures = current.failures + 1
          return probe || failures >= maxFailures
            ? State.Open({ failures, until: now + cooldownMs })
            : State.Closed({ failures })
        })
        if (next._tag === "Open" && counted === "failed") {
          yield* Effect.logWarning(
            `Circuit breaker opened after ${next.failures} consecutive failures; calls pause for ${cooldownMs} ms`
          )
        }
      })

    const protect = <A, E, R>(effect: Effect.Effect<A, E, R>, isFailure: (error: E) => boolean) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const admission = yield* Effect.flatMap(Clock.currentTimeMillis, admit)
          if (admission._tag === "Reject") return yield* Effect.fail(admission.error)
          return yield* restore(effect).pipe(Effect.onExit((exit) => settle(exit, admission.probe, isFailure)))
        })
      )

    return { protect, state: Ref.get(state) } satisfies CircuitBreaker
  })
