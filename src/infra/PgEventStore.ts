/**
 * The `EventStore` on PostgreSQL (`@effect/sql-pg`). Other processes' appends wake subscribers through LISTEN/NOTIFY;
 * see `SqlEventStore` for how appends are ordered so that no subscriber skips an event.
 *
 * The layer also provides the `PgClient`/`SqlClient` it opened: a durable consumer's handler that writes through it
 * commits its writes together with the consumer's checkpoint.
 */
import type { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Config, type ConfigError, Effect, Layer, type Redacted } from "effect"
import { EventStore, type EventStoreError } from "./EventStore.js"
import * as PgPool from "./internal/pgPool.js"
import * as SqlEventStore from "./SqlEventStore.js"

export interface PgEventStoreConfig extends SqlEventStore.SqlEventStoreOptions {
  readonly url: Redacted.Redacted
  /** Pool settings and the like; `url` is given above. */
  readonly client?: Omit<PgClient.PgClientConfig, "url">
}

/** The store over the `PgClient` in context, migrated first. */
export const layerWithClient = (
  options: SqlEventStore.SqlEventStoreOptions = {}
): Layer.Layer<EventStore, EventStoreError, PgClient.PgClient | SqlClient.SqlClient> =>
  Layer.scoped(
    EventStore,
    Effect.gen(function* () {
      const pg = yield* PgClient.PgClient
      yield* SqlEventStore.migrate
      return yield* SqlEventStore.make({ listen: pg.listen, ...options })
    })
  )

/**
 * The store and the `PgClient` it opens. Both run on one pool (`internal/pgPool.ts`): the client for everything it
 * does, the store's appends as prepared statements.
 */
export const layer = (
  config: PgEventStoreConfig
): Layer.Layer<EventStore | PgClient.PgClient | SqlClient.SqlClient, EventStoreError> => {
  const { client = {}, url, ...options } = config
  const connectError = SqlEventStore.toStoreError("connect to PostgreSQL")
  return Layer.unwrapScoped(
    Effect.map(Effect.mapError(PgPool.open({ ...client, url }), connectError), (pool) =>
      layerWithClient({ prepared: PgPool.prepared(pool), ...options }).pipe(
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
    )
  )
}

/** Reads the database URL from `PLANNER_DATABASE_URL` (kept redacted). */
export const layerConfig = (
  options: Omit<PgEventStoreConfig, "url"> = {}
): Layer.Layer<EventStore | PgClient.PgClient | SqlClient.SqlClient, EventStoreError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.redacted("PLANNER_DATABASE_URL"), (url) => layer({ ...options, url })))
