/** The circuit breaker's states, driven deterministically by the TestClock. */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref, TestClock } from "effect"
import * as CircuitBreaker from "../../src/infra/CircuitBreaker.js"

class Unhealthy {
  readonly _tag = "Unhealthy"
}
class Rejected {
  readonly _tag = "Rejected"
}

const countsAgainst = (error: Unhealthy | Rejected) => error._tag === "Unhealthy"

/** An endpoint whose calls are counted. */
const endpoint = Effect.gen(function* () {
  const calls = yield* Ref.make(0)
  const call = <A, E>(outcome: Effect.Effect<A, E>) =>
    Effect.zipRight(
      Ref.update(calls, (n) => n + 1),
      outcome
    )
  return { calls: Ref.get(calls), call }
})

describe("CircuitBreaker", () => {
  it.effect("opens after N consecutive failures and fails fast without calling", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ maxFailures: 3, cooldown: "10 seconds" })
      const { calls, call } = yield* endpoint
      for (let index = 0; index < 3; index++) {
        yield* breaker.protect(call(Effect.fail(new Unhealthy())), countsAgainst).pipe(Effect.flip)
      }
      expect((yield* breaker.state)._tag).toBe("Open")
      const error = yield* breaker.protect(call(Effect.succeed("ok")), countsAgainst).pipe(Effect.flip)
      expect(error).toBeInstanceOf(CircuitBreaker.CircuitOpen)
      expect(error._tag === "CircuitOpen" && error.retryInMs).toBe(10_000)
      expect(yield* calls).toBe(3)

      yield* TestClock.adjust("9 seconds")
      const later = yield* breaker.protect(call(Effect.succeed("ok")), countsAgainst).pipe(Effect.flip)
      expect(later._tag === "CircuitOpen" && later.retryInMs).toBe(1_000)
      expect(yield* calls).toBe(3)
    })
  )

  it.effect("a success or a non-counted error resets the count of consecutive failures", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ maxFailures: 2, cooldown: "1 second" })
      const fail = breaker.protect(Effect.fail(new Unhealthy()), countsAgainst).pipe(Effect.flip)
      yield* fail
      yield* breaker.protect(Effect.succeed(1), countsAgainst)
      yield* fail
      yield* breaker.protect(Effect.fail(new Rejected()), countsAgainst).pipe(Effect.flip)
      yield* fail
      expect(yield* breaker.state).toEqual(CircuitBreaker.State.Closed({ failures: 1 }))
    })
  )

  it.effect("after the cool-down one probe goes through; its success closes the breaker", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ maxFailures: 1, cooldown: "5 seconds" })
      const { calls, call } = yield* endpoint
      yield* breaker.protect(call(Effect.fail(new Unhealthy())), countsAgainst).pipe(Effect.flip)
      yield* TestClock.adjust("5 seconds")

      // The probe is slow; a second call meanwhile is rejected, not sent.
      const gate = yield* Deferred.make<void>()
      const probe = yield* breaker
        .protect(call(Deferred.await(gate).pipe(Effect.as("probe"))), countsAgainst)
        .pipe(Effect.fork)
      yield* Effect.yieldNow()
      expect((yield* breaker.state)._tag).toBe("HalfOpen")
      const meanwhile = yield* breaker.protect(call(Effect.succeed("other")), countsAgainst).pipe(Effect.flip)
      expect(meanwhile._tag === "CircuitOpen" && meanwhile.retryInMs).toBe(0)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(probe)).toBe("probe")
      expect(yield* breaker.state).toEqual(CircuitBreaker.State.Closed({ failures: 0 }))
      expect(yield* breaker.protect(call(Effect.succeed("again")), countsAgainst)).toBe("again")
      expect(yield* calls).toBe(3)
    })
  )

  it.effect("a failed probe opens the breaker for a whole new cool-down", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ maxFailures: 2, cooldown: "5 seconds" })
      const fail = breaker.protect(Effect.fail(new Unhealthy()), countsAgainst).pipe(Effect.flip)
      yield* fail
      yield* fail
      yield* TestClock.adjust("6 seconds")
      yield* fail
      const state = yield* breaker.state
      expect(state._tag).toBe("Open")
      expect(state._tag === "Open" && state.failures).toBe(3)
      yield* TestClock.adjust("4 seconds")
      expect((yield* fail)._tag).toBe("CircuitOpen")
      yield* TestClock.adjust("1 second")
      expect((yield* fail)._tag).toBe("Unhealthy")
    })
  )

  it.effect("an interrupted probe lets the next call probe at once", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ maxFailures: 1, cooldown: "5 seconds" })
      yield* breaker.protect(Effect.fail(new Unhealthy()), countsAgainst).pipe(Effect.flip)
      yield* TestClock.adjust("5 seconds")
      const probe = yield* breaker.protect(Effect.never, countsAgainst).pipe(Effect.fork)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(probe)
      expect(yield* breaker.protect(Effect.succeed("next"), countsAgainst)).toBe("next")
    })
  )
})
