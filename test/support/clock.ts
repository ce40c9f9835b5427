/**
 * Helpers for driving code under test with the `TestClock` while real I/O (a real HTTP server, a child process)
 * happens beside it. The test waits in real time for something observable (a request arrived, the code is now
 * sleeping), then moves the test clock; no assertion depends on how long anything took.
 */
import { Chunk, Duration, Effect, Fiber, Option, TestClock, TestServices } from "effect"

const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))

/**
 * Polls `condition` in real time until it holds. Dies after `within` of real time, naming `what`: a generous bound on
 * a wait for real I/O, never a measurement.
 */
export const eventually = <E, R>(
  what: string,
  condition: Effect.Effect<boolean, E, R>,
  within: Duration.DurationInput = Duration.seconds(20)
): Effect.Effect<void, E, R> =>
  Effect.gen(function* () {
    const deadline = Date.now() + Duration.toMillis(within)
    while (!(yield* condition)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting until ${what}`)
      yield* realPause
    }
  })

/** The sleeps pending on the `TestClock`, as wake-up times (ms of test time), earliest first. */
const pendingWakeTimes: Effect.Effect<ReadonlyArray<number>> = Effect.map(TestClock.sleeps(), (sleeps) =>
  Chunk.toReadonlyArray(sleeps)
    .slice()
    .sort((a, b) => a - b)
)

/** The sleeps pending on the `TestClock`, as delays from the current test time in milliseconds, shortest first. */
export const pendingDelays: Effect.Effect<ReadonlyArray<number>> = Effect.gen(function* () {
  const now = yield* TestClock.currentTimeMillis
  return (yield* pendingWakeTimes).map((wake) => roundDelay(wake - now)).filter((delay) => delay > 0)
})

// Jittered delays are fractional; a difference of two instants carries float noise (199.99999999999997).
const roundDelay = (delay: number) => Math.round(delay * 1e6) / 1e6

export interface PendingSleep {
  /** When the sleeper wakes, in ms of test time. */
  readonly wake: number
  /** How long from the current test time, rounded to a nanosecond. */
  readonly delay: number
}

/**
 * Waits (in real time) until the code under test sleeps on the `TestClock` for less than `below`, and returns the
 * earliest such sleep. `below` tells the wait looked for from longer ones known to be pending, such as a request
 * timeout: a timed-out race leaves its sleep in the `TestClock`'s list even after it is interrupted.
 */
export const nextSleep = (below: Duration.DurationInput = Duration.seconds(30)): Effect.Effect<PendingSleep> =>
  Effect.gen(function* () {
    const limit = Duration.toMillis(below)
    let found: PendingSleep | undefined
    yield* eventually(
      `the code under test sleeps on the TestClock for less than ${limit} ms`,
      Effect.gen(function* () {
        const now = yield* TestClock.currentTimeMillis
        const wake = (yield* pendingWakeTimes).find((wake) => wake > now && wake - now < limit)
        found = wake === undefined ? undefined : { wake, delay: roundDelay(wake - now) }
        return found !== undefined
      })
    )
    return found ?? { wake: 0, delay: 0 }
  })

/** Sets the test clock to the next pending sleep shorter than `below` and returns how far it moved (ms). */
export const advanceToNextSleep = (below?: Duration.DurationInput): Effect.Effect<number> =>
  Effect.gen(function* () {
    const sleep = yield* nextSleep(below)
    yield* TestClock.setTime(sleep.wake)
    return sleep.delay
  })

/**
 * Waits for `fiber`, moving the test's clock on 100 ms at a time, each step given a little real time to act on (real
 * I/O beside it: a store, a queue). Dies once 60 s of the test's clock have gone by.
 */
export const byTheClock = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): Effect.Effect<A, E> =>
  Effect.gen(function* () {
    for (let step = 0; step < 600; step++) {
      const done = yield* Fiber.poll(fiber)
      if (Option.isSome(done)) return yield* done.value
      yield* TestClock.adjust("100 millis")
      yield* TestServices.provideLive(Effect.sleep("10 millis"))
    }
    return yield* Effect.dieMessage("did not end within 60 s of the test's clock")
  })
