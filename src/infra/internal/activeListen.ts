/**
 * PostgreSQL LISTEN that is known to be active before anybody relies on it, for the event store's subscribers and the
 * task queue's waiters.
 *
 * `startListening` starts LISTEN once, on its first use, for as long as `scope` lives, and completes once a
 * notification it sends itself (a probe) has come back: a notification sent before that would reach nobody here, and
 * whoever had just looked would wait for the poll. After 5 s of trying it completes anyway, and the poll covers. Later
 * uses wait for the same start. Real time, whatever clock the caller runs with: this is the network.
 *
 * When LISTEN ends (the server or the network ended its connection: `PgPool.listener` says so) it starts again a
 * second later, and once its probe is back, `onRestart`: what was notified in between reached nobody here.
 *
 * The start runs in `scope`, not in the first caller's fiber: that caller may be interrupted while LISTEN comes up (its
 * run ended), and a start cut short with it (as `Effect.cached` would memoize it: an interruption, handed to every
 * later caller) left every later waiter of a queue interrupted at once and its worker's take loop never woken (the
 * sub-plan hang of #16).
 *
 * @internal
 */
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Deferred, Duration, Effect, Fiber, type Scope, Stream } from "effect"

const liveClock = Clock.make()

/** A probe's payload: never an append's rows or a queue's wake-up, whichever process sent it. */
export const isProbe = (payload: string): boolean => payload.startsWith("ready:")

export const make = (options: {
  readonly sql: SqlClient.SqlClient
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
  readonly channel: string
  readonly scope: Scope.Scope
  /** What listens, for the debug log ("event store", "task queue"). */
  readonly what: string
  /** Each notification but probes. */
  readonly onPayload: (payload: string) => Effect.Effect<void>
  /**
   * LISTEN is active again after it was lost (the server or the network ended its connection): what was notified
   * meanwhile reached nobody here, so whoever waits for a notification should look for themselves.
   */
  readonly onRestart?: Effect.Effect<void>
}): Effect.Effect<Effect.Effect<void>> =>
  Effect.gen(function* () {
    const { sql, listen, channel, scope, what, onPayload } = options
    const listening = yield* Deferred.make<void>()
    let started = false
    /**
     * LISTEN until it ends, once it is known to be active: its probe came back (or 5 s went by). The first time that
     * releases whoever waits for the start; after a loss, `onRestart`.
     */
    const listenOnce = (first: boolean) =>
      Effect.gen(function* () {
        // A probe of its own each time: one sent before a loss may still come back after it.
        const probe = `ready:${crypto.randomUUID()}`
        const ready = yield* Deferred.make<void>()
        const running = yield* listen(channel).pipe(
          Stream.runForEach((payload) =>
            isProbe(payload)
              ? payload === probe
                ? Deferred.succeed(ready, undefined)
                : Effect.void
              : onPayload(payload)
          ),
          Effect.forkScoped
        )
        yield* sql`SELECT pg_notify(${channel}, ${probe})`.pipe(
          Effect.zipRight(
            Deferred.await(ready).pipe(Effect.timeoutFail({ duration: "100 millis", onTimeout: () => "not yet" }))
          ),
          Effect.retry({ times: 50 }),
          Effect.catchAll(() => Effect.logDebug(`${what} LISTEN is not active yet; polling until it is`))
        )
        yield* first ? Deferred.succeed(listening, undefined) : (options.onRestart ?? Effect.void)
        return yield* Fiber.join(running)
      }).pipe(Effect.scoped)
    const start = Effect.gen(function* () {
      for (let first = true; ; first = false) {
        yield* listenOnce(first).pipe(
          first ? Effect.ensuring(Deferred.succeed(listening, undefined)) : (self) => self,
          Effect.catchAllCause((cause) => Effect.logDebug(`${what} LISTEN ended; polling until it is back`, cause))
        )
        yield* Effect.sleep(Duration.seconds(1))
      }
    }).pipe(Effect.withClock(liveClock))
    return Effect.suspend(() => {
      if (started) return Deferred.await(listening)
      started = true
      return Effect.zipRight(Effect.forkIn(start, scope), Deferred.await(listening))
    })
  })
