/**
 * `sayingHowItStops`: a command stopped by a signal says how it stopped, once. Stopped cleanly, it prints its own
 * line and leaves nothing for `main.ts`; still stopping (a finalizer waiting on a store that does not answer), it
 * leaves the line `main.ts` prints as it ends the process; finished or failed, it leaves nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import { sayingHowItStops, takeUnconfirmedStop } from "../../src/app/cli/Failure.js"

const unconfirmed = { fd: 2, line: "stopped before the store confirmed it" } as const

describe("sayingHowItStops", () => {
  it.effect("a clean stop says its own line, and leaves nothing to print on exit", () =>
    Effect.gen(function* () {
      const said = yield* Ref.make<ReadonlyArray<string>>([])
      const fiber = yield* Effect.never.pipe(
        sayingHowItStops(
          Ref.update(said, (lines) => [...lines, "Stopped."]),
          unconfirmed
        ),
        Effect.fork
      )
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(said)).toEqual(["Stopped."])
      expect(takeUnconfirmedStop()).toBeUndefined()
    })
  )

  it.effect("a stop still waiting on its finalizer leaves the unconfirmed line, taken once", () =>
    Effect.gen(function* () {
      const said = yield* Ref.make<ReadonlyArray<string>>([])
      const stuck = yield* Deferred.make<void>()
      const finalizing = yield* Deferred.make<void>()
      const fiber = yield* Effect.never.pipe(
        // Giving back what it holds: a write the store never answers.
        Effect.ensuring(Effect.zipRight(Deferred.succeed(finalizing, undefined), Deferred.await(stuck))),
        sayingHowItStops(
          Ref.update(said, (lines) => [...lines, "Stopped."]),
          unconfirmed
        ),
        Effect.fork
      )
      yield* Effect.yieldNow()
      const stopping = yield* Effect.fork(Fiber.interrupt(fiber))
      // Stopping, not running: the stop is under way, held up in its finalizer.
      yield* Deferred.await(finalizing)
      expect(takeUnconfirmedStop()).toEqual(unconfirmed)
      expect(takeUnconfirmedStop()).toBeUndefined()
      expect(yield* Ref.get(said)).toEqual([])
      // Once the store answers after all, the stop ends as a clean one.
      yield* Deferred.succeed(stuck, undefined)
      yield* Fiber.join(stopping)
      expect(yield* Ref.get(said)).toEqual(["Stopped."])
    })
  )

  it.effect("a command that ends, or fails, leaves nothing and says nothing", () =>
    Effect.gen(function* () {
      const said = yield* Ref.make<ReadonlyArray<string>>([])
      const say = Ref.update(said, (lines) => [...lines, "Stopped."])
      expect(yield* Effect.succeed(1).pipe(sayingHowItStops(say, unconfirmed))).toBe(1)
      expect(takeUnconfirmedStop()).toBeUndefined()
      yield* Effect.flip(Effect.fail("no").pipe(sayingHowItStops(say, unconfirmed)))
      expect(takeUnconfirmedStop()).toBeUndefined()
      expect(yield* Ref.get(said)).toEqual([])
    })
  )

  it.effect("while it runs, the unconfirmed line is there for a second signal", () =>
    Effect.gen(function* () {
      const seen = yield* Effect.sync(() => takeUnconfirmedStop()).pipe(sayingHowItStops(Effect.void, unconfirmed))
      expect(seen).toEqual(unconfirmed)
    })
  )
})
