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
 * second later, and once its probe is back, `onRestart`: what was notified in between reached nobody here. While the
 * server cannot be reached the tries go on each second, and `onRestart` waits for one that listens. Once active, a
 * probe every `heartbeat` (30 s) finds a connection that went silent without an error (a cut network, a half-open
 * socket) and starts LISTEN again.
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
import { Clock, Deferred, Duration, Effect, Fiber, Option, type Scope, Stream } from "effect"

const liveClock = Clock.make()

/** A probe's payload: never an append's rows or a queue's wake-up, whichever process sent it. */
export const isProbe = (payload: string): boolean => payload.startsWith("ready:")

/** How often an active LISTEN is checked with a probe (see `make`). */
export const defaultHeartbeat = Duration.seconds(30)

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
  /** How often LISTEN is checked with a probe once it is active; default `defaultHeartbeat`. */
  readonly heartbeat?: Duration.DurationInput
}): Effect.Effect<Effect.Effect<void>> =>
  Effect.gen(function* () {
    const { sql, listen, channel, scope, what, onPayload } = options
    const listening = yield* Deferred.make<void>()
    let started = false
    /**
     * LISTEN until it ends, once it is known to be active: its probe came back, or 5 s went by with it still running.
     * The first time that releases whoever waits for the start; after a loss, `onRestart`. Then a probe every
     * `heartbeat`: one that the database took but that never came back means the connection went silent without an
     * error (a network cut), and LISTEN starts again.
     */
    const listenOnce = (first: boolean) =>
      Effect.gen(function* () {
        // A probe of its own each time: one sent before a loss may still come back after it.
        let probe = ""
        let ready = yield* Deferred.make<void>()
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
        const isRunning = () => running.unsafePoll() === null
        /** Whether a probe came back within `attempts` tries of 100 ms, and whether the database took one. */
        const probed = (attempts: number) =>
          Effect.gen(function* () {
            probe = `ready:${crypto.randomUUID()}`
            ready = yield* Deferred.make<void>()
            let sent = false
            const came = yield* sql`SELECT pg_notify(${channel}, ${probe})`.pipe(
              Effect.tap(() => {
                sent = true
              }),
              Effect.zipRight(
                Deferred.await(ready).pipe(Effect.timeoutFail({ duration: "100 millis", onTimeout: () => "not yet" }))
              ),
              // No use asking once the stream has ended: it is started again.
              Effect.retry({ times: attempts, while: isRunning }),
              Effect.as(true),
              Effect.orElseSucceed(() => false)
            )
            return { came, sent }
          })
        const { came } = yield* probed(50)
        if (!came && isRunning()) yield* Effect.logDebug(`${what} LISTEN is not active yet; polling until it is`)
        if (isRunning()) yield* first ? Deferred.succeed(listening, undefined) : (options.onRestart ?? Effect.void)
        while (true) {
          const ended = yield* Fiber.await(running).pipe(Effect.timeoutOption(options.heartbeat ?? defaultHeartbeat))
          if (Option.isSome(ended)) return yield* Fiber.join(running)
          const beat = yield* probed(50)
          if (beat.sent && !beat.came && isRunning()) {
            return yield* Effect.fail(new Error("LISTEN went silent: a probe the database took never came back"))
          }
        }
      }).pipe(Effect.scoped)
    const start = Effect.gen(function* () {
      for (let first = true; ; first = false) {
        yield* listenOnce(first).pipe(
          first ? Effect.ensuring(Deferred.succeed(listening, undefined)) : (self) => self,
          // One line, the same each time, so that a command's repeated-warning filter holds it back while the server
          // stays away; the cause is for --verbose.
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Effect.logDebug(`${what} LISTEN ended`, cause),
              Effect.logWarning(
                `the ${what}'s LISTEN connection was lost: it listens again in a second, and until then sees other processes' changes at its poll`
              )
            )
          )
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
