/**
 * Racing two effects whose losers must stop before what surrounds the race does.
 *
 * `Effect.raceFirst` runs its racers as child fibers of the caller. When the race itself is interrupted (a signal
 * stopping the CLI), the caller's finalizers run first, up to and including the layers it was given, and the racers are
 * interrupted only when the caller's fiber ends. A worker inside a race then gives its tasks back through a database
 * that was already closed: `planner run` stopped with Ctrl-C left its task claimed, and the next `resume` counted the
 * attempt as lost to a dead worker.
 *
 * Here both racers run in the race's own scope, which closes (interrupting and awaiting them) before the interruption
 * goes any further out.
 */
import { Effect, Fiber } from "effect"

/** Like `Effect.raceFirst`: the first to end, in success or failure, decides; the other is interrupted and awaited. */
export const raceFirstScoped = <A, E, R, A2, E2, R2>(
  self: Effect.Effect<A, E, R>,
  that: Effect.Effect<A2, E2, R2>
): Effect.Effect<A | A2, E | E2, R | R2> =>
  Effect.scoped(
    Effect.gen(function* () {
      const first = yield* Effect.forkScoped(self)
      const second = yield* Effect.forkScoped(that)
      return yield* Effect.raceFirst(Fiber.join(first), Fiber.join(second))
    })
  )
