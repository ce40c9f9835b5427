/**
 * `raceFirstScoped`: interrupted, it stops and awaits its racers before any finalizer around it runs (Effect's own
 * `raceFirst` interrupts them only once the caller's fiber ends, after the layers it was given are closed).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { raceFirstScoped } from "../../src/infra/Racing.js"

describe("raceFirstScoped", () => {
  it.effect("an interrupted race stops its racers before the finalizers around it", () =>
    Effect.gen(function* () {
      const order: Array<string> = []
      const started = yield* Deferred.make<void>()
      const racer = Deferred.succeed(started, undefined).pipe(
        Effect.zipRight(Effect.never),
        // A racer that needs a moment to stop, as a worker giving its task back through the store does.
        Effect.onInterrupt(() =>
          Effect.zipRight(
            Effect.yieldNow(),
            Effect.sync(() => order.push("racer stopped"))
          )
        )
      )
      const fiber = yield* raceFirstScoped(racer, Effect.never).pipe(
        Effect.ensuring(Effect.sync(() => order.push("outer finalizer"))),
        Effect.fork
      )
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      expect(order).toEqual(["racer stopped", "outer finalizer"])
    })
  )

  it.effect("the first to end decides, in success or failure, and the other is interrupted", () =>
    Effect.gen(function* () {
      const loser = yield* Deferred.make<void>()
      const slow = Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(loser, undefined)))
      expect(yield* raceFirstScoped(Effect.succeed(1), slow)).toBe(1)
      expect(yield* Deferred.isDone(loser)).toBe(true)
      const failed = yield* Effect.exit(raceFirstScoped(Effect.never, Effect.fail("boom" as const)))
      expect(failed).toEqual(Exit.fail("boom"))
    })
  )
})
