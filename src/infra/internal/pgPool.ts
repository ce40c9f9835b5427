/**
 * The PostgreSQL pool the event store runs on: made here from the same settings `PgClient.layer` takes, and handed to
 * `PgClient.layerFromPool`, so that the client and the store's prepared appends share one pool.
 *
 * Why not the package's own pool: `@effect/sql-pg` runs every statement unnamed, so PostgreSQL parses and plans it
 * on every call. The append statement (a CTE that takes the append lock, inserts and notifies) costs more to plan
 * than to run: as a named prepared statement an append took 0.7 ms at the median and 1.8 ms at p99 here, against
 * 1.1 ms and 4.7 ms unnamed.
 *
 * @internal
 */

import { createHash } from "node:crypto"
import { SqlError } from "@effect/sql/SqlError"
import type { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Redacted, type Scope, Stream } from "effect"
import Pg from "pg"

export interface PoolTimeouts {
  /**
   * How long one statement may wait for the server's answer before it fails (pg's client-side `query_timeout`): a
   * server that accepts connections but never answers must not hang a command. Off when omitted.
   */
  readonly statementTimeout?: Duration.DurationInput
}

/** The `pg` settings of a connection (and of the pool's) from `PgClient` settings, as `PgClient.layer` makes them. */
export const connectionOptions = (config: PgClient.PgClientConfig, timeouts: PoolTimeouts = {}): Pg.PoolConfig => ({
  connectionString: config.url ? Redacted.value(config.url) : undefined,
  user: config.username,
  host: config.host,
  database: config.database,
  password: config.password ? Redacted.value(config.password) : undefined,
  ssl: config.ssl,
  port: config.port,
  ...(config.stream ? { stream: config.stream } : {}),
  connectionTimeoutMillis: config.connectTimeout ? Duration.toMillis(config.connectTimeout) : undefined,
  idleTimeoutMillis: config.idleTimeout ? Duration.toMillis(config.idleTimeout) : undefined,
  max: config.maxConnections,
  min: config.minConnections,
  maxLifetimeSeconds: config.connectionTTL ? Duration.toSeconds(config.connectionTTL) : undefined,
  application_name: config.applicationName ?? "event-sourced-planner",
  types: config.types,
  ...(timeouts.statementTimeout === undefined
    ? {}
    : { query_timeout: Duration.toMillis(Duration.decode(timeouts.statementTimeout)) })
})

/**
 * A pool made from `PgClient` settings, the way `PgClient.layer` makes its own, checked with one query (within the
 * connect timeout) and ended with the scope.
 */
export const open = (
  config: PgClient.PgClientConfig,
  timeouts: PoolTimeouts = {}
): Effect.Effect<Pg.Pool, SqlError, Scope.Scope> =>
  Effect.gen(function* () {
    const pool = new Pg.Pool(connectionOptions(config, timeouts))
    // An idle connection that the server dropped is only reported here; the pool replaces it on the next checkout.
    pool.on("error", () => {})
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(1_000))
    )
    // Outside the acquisition, so that the timeout (and a signal) can interrupt a connection that never answers.
    yield* Effect.tryPromise({
      try: () => pool.query("SELECT 1"),
      catch: (cause) => new SqlError({ cause, message: "could not connect" })
    }).pipe(
      Effect.timeoutFail({
        duration: config.connectTimeout ?? Duration.seconds(5),
        onTimeout: () => new SqlError({ cause: new Error("connection timed out"), message: "could not connect" })
      })
    )
    return pool
  })

/** PostgreSQL keeps the first 63 bytes of a statement's name: two longer names alike up to there would collide. */
const maxNameLength = 63
const serverNames = new Map<string, string>()

/**
 * The name a statement is prepared under: `name` itself when PostgreSQL keeps all of it, else its first 50 characters
 * and a hash of the whole, so that names which differ only past PostgreSQL's limit stay apart.
 */
export const serverName = (name: string): string => {
  if (name.length <= maxNameLength) return name
  let short = serverNames.get(name)
  if (short === undefined) {
    short = `${name.slice(0, 50)}_${createHash("sha1").update(name).digest("hex").slice(0, 12)}`
    serverNames.set(name, short)
  }
  return short
}

/**
 * Runs a named prepared statement on a connection of the pool: prepared on each connection's first use of `name`,
 * then only bound and executed. `name` must always come with the same `text`.
 */
export const prepared =
  (pool: Pg.Pool) =>
  (name: string, text: string, params: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<unknown>, SqlError> =>
    Effect.async<ReadonlyArray<unknown>, SqlError>((resume) => {
      pool.query(
        { name: serverName(name), text, values: [...params] },
        (cause: Error | undefined, result: Pg.QueryResult | undefined) => {
          if (cause !== undefined && cause !== null) {
            resume(Effect.fail(new SqlError({ cause, message: "Failed to execute statement" })))
          } else resume(Effect.succeed(result?.rows ?? []))
        }
      )
    })

/**
 * LISTEN for a process: one connection of its own (made with `options`), shared by every channel listened to (the
 * event store's, the task queue's, a session writer's), made on the first `listen` and ended when the last one ends.
 *
 * Why not `PgClient.listen`: its connection ignores its errors, so when the server ends it (a restart, an
 * administrator's `pg_terminate_backend`, a failover) its streams never end, nothing listens again, and the process
 * hears other processes' appends and jobs only at its slow poll for the rest of its life. Here losing the connection
 * fails every stream on it with an `SqlError` (`ActiveListen` starts LISTEN again a second later), and the next
 * `listen` makes a fresh connection. A connection that went silent without an error (a network cut) is found by
 * `ActiveListen`'s heartbeat. Two streams of one channel share its LISTEN: it is ended when the last of them ends.
 */
export const listener = (
  options: Pg.ClientConfig
): Effect.Effect<(channel: string) => Stream.Stream<string, SqlError>> =>
  Effect.map(Effect.makeSemaphore(1), (lock) => {
    /** The connection the next `listen` shares, unless it was lost. */
    let shared: Listening | undefined
    const connect = Effect.tryPromise({
      try: async () => {
        const client = new Pg.Client({ ...options, keepAlive: true })
        const listening: Listening = { client, users: 0, channels: new Map(), lost: undefined, onLost: new Set() }
        const lose = (cause: unknown) => {
          if (listening.lost !== undefined) return
          listening.lost = new SqlError({ cause, message: "The LISTEN connection was lost" })
          for (const tell of listening.onLost) tell(listening.lost)
        }
        client.on("error", lose)
        client.on("end", () => lose(new Error("the connection ended")))
        await client.connect()
        return listening
      },
      catch: (cause) => new SqlError({ cause, message: "Failed to acquire connection for listen" })
    })
    /** Bounded in time even in a finalizer (which is not interruptible by itself): a cut network does not hang it. */
    const boundedEnd = <A>(promise: () => Promise<A>) =>
      Effect.tryPromise(promise).pipe(Effect.ignore, Effect.interruptible, Effect.timeoutOption(1_000), Effect.asVoid)
    const acquire = lock.withPermits(1)(
      Effect.suspend(() => {
        const current = shared
        if (current !== undefined && current.lost === undefined) {
          current.users++
          return Effect.succeed(current)
        }
        return Effect.map(connect, (made) => {
          made.users++
          shared = made
          return made
        })
      })
    )
    const release = (listening: Listening) =>
      lock.withPermits(1)(
        Effect.suspend(() => {
          listening.users--
          if (listening.users > 0) return Effect.void
          if (shared === listening) shared = undefined
          return boundedEnd(() => listening.client.end())
        })
      )
    return (channel: string) =>
      Stream.asyncPush<string, SqlError>((emit) =>
        Effect.gen(function* () {
          const listening = yield* Effect.acquireRelease(acquire, release)
          const { client } = listening
          const onNotification = (message: Pg.Notification) => {
            if (message.channel === channel && message.payload !== undefined) emit.single(message.payload)
          }
          const onLost = (error: SqlError) => emit.fail(error)
          if (listening.lost !== undefined) return yield* Effect.fail(listening.lost)
          const others = listening.channels.get(channel) ?? 0
          listening.channels.set(channel, others + 1)
          listening.onLost.add(onLost)
          client.on("notification", onNotification)
          yield* Effect.addFinalizer(() =>
            Effect.suspend(() => {
              client.off("notification", onNotification)
              listening.onLost.delete(onLost)
              const left = (listening.channels.get(channel) ?? 1) - 1
              if (left > 0) {
                listening.channels.set(channel, left)
                return Effect.void
              }
              listening.channels.delete(channel)
              return listening.lost === undefined
                ? boundedEnd(() => client.query(`UNLISTEN ${Pg.escapeIdentifier(channel)}`))
                : Effect.void
            })
          )
          if (others === 0) {
            yield* Effect.tryPromise({
              try: () => client.query(`LISTEN ${Pg.escapeIdentifier(channel)}`),
              catch: (cause) => new SqlError({ cause, message: "Failed to listen" })
            })
          }
        })
      )
  })

/**
 * The listener's connection: how many streams use it and how many of them each channel has, and whether (and how) it
 * was lost, with whom to tell.
 */
interface Listening {
  readonly client: Pg.Client
  users: number
  readonly channels: Map<string, number>
  lost: SqlError | undefined
  readonly onLost: Set<(error: SqlError) => void>
}
