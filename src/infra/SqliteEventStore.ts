/**
 * The `EventStore` on SQLite (`@effect/sql-sqlite-node`): a file in WAL mode by default, or `:memory:`. Several
 * processes may append to the same file; see `SqlEventStore` for how they stay consistent.
 *
 * The layer also provides the `SqlClient` it opened: a durable consumer's handler that writes through it commits
 * its writes together with the consumer's checkpoint.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Context, Effect, Layer } from "effect"
import { type EventStore, EventStoreError } from "./EventStore.js"
import * as SqlEventStore from "./SqlEventStore.js"

export interface SqliteEventStoreConfig extends SqlEventStoreOptions {
  /** A file path, or ":memory:". */
  readonly filename: string
  /** WAL lets readers run while a writer commits, also across processes; turn it off only for special file systems. */
  readonly disableWAL?: boolean
}

type SqlEventStoreOptions = SqlEventStore.SqlEventStoreOptions

/** The SQLite client alone, with opening errors (a missing folder, a file that is not a database) as `EventStoreError`. */
export const clientLayer = (
  config: Pick<SqliteEventStoreConfig, "filename" | "disableWAL">
): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, EventStoreError> =>
  Layer.scopedContext(
    SqliteClient.make({ filename: config.filename, disableWAL: config.disableWAL }).pipe(
      // better-sqlite3 throws while opening, which the client turns into a defect.
      Effect.catchAllDefect(
        (defect) =>
          new EventStoreError({
            operation: "open",
            reason: `cannot open SQLite database ${config.filename}: ${defect instanceof Error ? defect.message : String(defect)}`
          })
      ),
      Effect.map((client) =>
        Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))
      )
    )
  ).pipe(Layer.provide(Reactivity.layer))

export const layer = (
  config: SqliteEventStoreConfig
): Layer.Layer<EventStore | SqliteClient.SqliteClient | SqlClient.SqlClient, EventStoreError> =>
  SqlEventStore.layer(config).pipe(Layer.provideMerge(clientLayer(config)))
