/**
 * The shared wait for more of a batch (`app/Linger`): how long it may be asked to wait, and that it ends when nothing
 * more is expected, when what was expected has come, or when its time is up, on the test clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Option, TestClock } from "effect"
import { defaultGatherMs, gatherBound, linger, maxGatherMs } from "../../src/app/Linger.js"

describe("a linger's bound", () => {
  it("is the default when not given, and within 0 and the most allowed when given", () => {
    expect(gatherBound(undefined)).toBe(defaultGatherMs)
    expect(gatherBound(Number.NaN)).toBe(defaultGatherMs)
    expect(gatherBound(-3)).toBe(0)
    expect(gatherBound(0)).toBe(0)
    expect(gatherBound(20)).toBe(20)
    // A wait asked for without end would hold a worker's report group, which a stop waits for, for ever.
    expect(gatherBound(Number.POSITIVE_INFINITY)).toBe(maxGatherMs)
  })
})

describe("a linger", () => {
  it.effect("ends once what it expects has come, and does not wait for the rest of its time", () =>
    Effect.gen(function* () {
      const clock = yield* Effect.clock
      let toCome = 2
      let signal = yield* Deferred.make<void>()
      const waiting = yield* Effect.fork(
        linger({ ms: 5, clock, expects: () => toCome > 0, arrival: () => Deferred.await(signal) })
      )
      for (let left = 2; left > 0; left--) {
        yield* Effect.yieldNow()
        expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
        toCome -= 1
        const arrived = signal
        signal = yield* Deferred.make<void>()
        yield* Deferred.succeed(arrived, undefined)
      }
      yield* Fiber.join(waiting)
      // The clock never moved: it ended on the arrival, not on its timer.
      expect(yield* Clock.currentTimeMillis).toBe(0)
    })
  )

  it.effect("waits no longer than its time for what does not come, and not at all for 0", () =>
    Effect.gen(function* () {
      const clock = yield* Effect.clock
      const never = () => Effect.never
      const waiting = yield* Effect.fork(linger({ ms: 5, clock, expects: () => true, arrival: never }))
      yield* TestClock.adjust("4 millis")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(waiting)
      yield* linger({ ms: 0, clock, expects: () => true, arrival: never })
    })
  )
})
