/**
 * The `EventStore` on PostgreSQL (`@effect/sql-pg`). Other processes' appends wake subscribers through LISTEN/NOTIFY;
 * see `SqlEventStore` for how appends are ordered so that no subscriber skips an event.
 *
 * The layer also provides the `PgClient`/`SqlClient` it opened: a durable consumer's handler that writes through it
 * commits its writes together with the consumer's checkpoint.
 */
import type { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Config, type ConfigError, Context, Duration, Effect, Layer, type Redacted } from "effect"
import * as BudgetHolds from "./BudgetHolds.js"
import { EventStore, EventStoreError } from "./EventStore.js"
import * as PgPool from "./internal/pgPool.js"
import * as SqlEventStore from "./SqlEventStore.js"
import * as SqlTaskQueue from "./SqlTaskQueue.js"
import { TaskQueue } from "./TaskQueue.js"

export interface PgEventStoreConfig extends SqlEventStore.SqlEventStoreOptions {
  readonly url: Redacted.Redacted
  /** Pool settings and the like; `url` is given above. `connectTimeout` defaults to `defaultConnectTimeout`. */
  readonly client?: Omit<PgClient.PgClientConfig, "url">
  /**
   * How long a statement may wait for the server's answer before it fails with `EventStoreError`. Default:
   * `defaultStatementTimeout`. A `query_timeout` parameter in the URL (milliseconds) overrides it.
   */
  readonly statementTimeout?: Duration.DurationInput
}

/**
 * A server that accepts connections but never answers must end a command with an error, not hang it: connecting
 * gives up after this long (it used to wait forever)...
 */
export const defaultConnectTimeout = Duration.seconds(10)
/** ...and so does each statement. Generous: an append may wait its turn behind other writers' appends. */
export const defaultStatementTimeout = Duration.seconds(60)

/**
 * The store over the `PgClient` in context, migrated first, and the task queue on the same client (the planner's
 * writer enqueues a dispatched task's job in the dispatch's transaction). Both LISTEN through `options.listen`, or
 * else on one connection of their own made with the client's settings (`PgPool.listener`), which is started again
 * when the server or the network loses it (the client's own `listen` never says so).
 */
export const layerWithClient = (
  options: SqlEventStore.SqlEventStoreOptions = {}
): Layer.Layer<
  EventStore | TaskQueue | BudgetHolds.BudgetHolds,
  EventStoreError,
  PgClient.PgClient | SqlClient.SqlClient
> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const pg = yield* PgClient.PgClient
      yield* SqlEventStore.migrate
      // LISTEN on a connection of its own that says when it is lost (`PgPool.listener`), with the client's settings.
      const listen = options.listen ?? (yield* PgPool.listener(PgPool.connectionOptions(pg.config)))
      const store = yield* SqlEventStore.make({ ...options, listen })
      const queue = yield* SqlTaskQueue.make({
        listen,
        ...(options.prepared === undefined ? {} : { prepared: options.prepared })
      }).pipe(Effect.mapError((error) => new EventStoreError({ operation: "open", reason: error.message })))
      const holds = yield* BudgetHolds.make
      return Context.make(EventStore, store).pipe(
        Context.add(TaskQueue, queue),
        Context.add(BudgetHolds.BudgetHolds, holds)
      )
    })
  )

/**
 * The store and the `PgClient` it opens. Both run on one pool (`internal/pgPool.ts`): the client for everything it
 * does, the store's appends as prepared statements.
 */
export const layer = (
  config: PgEventStoreConfig
): Layer.Layer<
  EventStore | TaskQueue | BudgetHolds.BudgetHolds | PgClient.PgClient | SqlClient.SqlClient,
  EventStoreError
> => {
  const { client: given = {}, url, statementTimeout = defaultStatementTimeout, ...options } = config
  const client = { ...given, connectTimeout: given.connectTimeout ?? defaultConnectTimeout }
  const connectError = SqlEventStore.toStoreError("connect to PostgreSQL")
  return Layer.unwrapScoped(
    Effect.gen(function* () {
      const pool = yield* Effect.mapError(PgPool.open({ ...client, url }, { statementTimeout }), connectError)
      const listen = yield* PgPool.listener(pool.options)
      return layerWithClient({ prepared: PgPool.prepared(pool), listen, ...options }).pipe(
        Layer.provideMerge(
          PgClient.layerFromPool({
            acquire: Effect.succeed(pool),
            applicationName: client.applicationName,
            spanAttributes: client.spanAttributes,
            transformResultNames: client.transformResultNames,
            transformQueryNames: client.transformQueryNames,
            transformJson: client.transformJson,
            types: client.types
          }).pipe(Layer.mapError(connectError))
        )
      )
    })
  )
}

/** Reads the database URL from `PLANNER_DATABASE_URL` (kept redacted). */
export const layerConfig = (
  options: Omit<PgEventStoreConfig, "url"> = {}
): Layer.Layer<
  EventStore | TaskQueue | BudgetHolds.BudgetHolds | PgClient.PgClient | SqlClient.SqlClient,
  EventStoreError | ConfigError.ConfigError
> => Layer.unwrapEffect(Effect.map(Config.redacted("PLANNER_DATABASE_URL"), (url) => layer({ ...options, url })))
