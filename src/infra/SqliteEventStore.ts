/**
 * The `EventStore` on SQLite (`@effect/sql-sqlite-node`): a file in WAL mode by default, or `:memory:`. Several
 * processes may append to the same file; see `SqlEventStore` for how they stay consistent.
 *
 * The layer also provides the `SqlClient` it opened: a durable consumer's handler that writes through it commits
 * its writes together with the consumer's checkpoint. And it provides the `TaskQueue` on that client, so the planner's
 * writer enqueues a dispatched task's job in the same transaction as the dispatch.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Context, Effect, Layer } from "effect"
import * as BudgetHolds from "./BudgetHolds.js"
import { EventStore, EventStoreError } from "./EventStore.js"
import * as sqliteClient from "./internal/sqliteClient.js"
import * as SqlEventStore from "./SqlEventStore.js"
import * as SqlTaskQueue from "./SqlTaskQueue.js"
import { TaskQueue } from "./TaskQueue.js"

export interface SqliteEventStoreConfig extends SqlEventStoreOptions {
  /** A file path, or ":memory:". */
  readonly filename: string
  /** WAL lets readers run while a writer commits, also across processes; turn it off only for special file systems. */
  readonly disableWAL?: boolean
  /**
   * When a commit reaches the disk, in WAL mode. `normal` (the default, SQLite's advice for WAL): a commit is synced
   * at the next checkpoint, not at once, so every committed event survives the process crashing or being killed,
   * and the file is never corrupted, but the last commits before a power failure or an operating-system crash may be
   * lost (after `resume`, a task whose completion was lost runs again). `full`: every commit is synced to disk before
   * it returns, which survives those too, at the cost of a sync per commit (about a sixth of the one-process
   * chain's time per task on the machines of `docs/performance.md`). Without WAL the store always syncs every commit.
   */
  readonly synchronous?: "normal" | "full"
  /**
   * Open the file for reading only: nothing is written to it, not even a migration or the switch to WAL, so a database
   * in a folder this process may not write to (another user's, a mounted backup) can still be read. Appends and other
   * writes fail. A file that an older version wrote and no writer has upgraded yet is refused.
   */
  readonly readonly?: boolean
}

type SqlEventStoreOptions = SqlEventStore.SqlEventStoreOptions

/** Opens the database, with opening errors (a missing folder, a file that is not a database) as `EventStoreError`. */
const open = (config: Pick<SqliteEventStoreConfig, "filename" | "disableWAL" | "synchronous" | "readonly">) =>
  sqliteClient
    .make({
      filename: config.filename,
      disableWAL: config.disableWAL,
      synchronous: config.synchronous,
      readonly: config.readonly
    })
    .pipe(
      // better-sqlite3 throws while opening.
      Effect.catchAllDefect(
        (defect) =>
          new EventStoreError({
            operation: "open",
            reason: `cannot open SQLite database ${config.filename}: ${defect instanceof Error ? defect.message : String(defect)}`
          })
      )
    )

const clients = (client: SqliteClient.SqliteClient) =>
  Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))

/** The SQLite client alone. */
export const clientLayer = (
  config: Pick<SqliteEventStoreConfig, "filename" | "disableWAL" | "synchronous">
): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, EventStoreError> =>
  Layer.scopedContext(Effect.map(open(config), ({ client }) => clients(client))).pipe(Layer.provide(Reactivity.layer))

/**
 * The store, the client it opened and the task queue on that client. Appends outside a transaction run straight on
 * the better-sqlite3 connection (see `internal/sqliteClient.ts`); everything else goes through the client.
 */
export const layer = (
  config: SqliteEventStoreConfig
): Layer.Layer<
  EventStore | TaskQueue | BudgetHolds.BudgetHolds | SqliteClient.SqliteClient | SqlClient.SqlClient,
  EventStoreError
> =>
  Layer.scopedContext(
    Effect.gen(function* () {
      const { client, direct } = yield* open(config)
      const context = clients(client)
      const store = yield* Effect.provide(
        Effect.zipRight(
          config.readonly === true ? SqlEventStore.checkMigrated : SqlEventStore.migrate,
          SqlEventStore.make({ ...config, direct: direct.run, directTransaction: direct.transaction })
        ),
        context
      )
      const queue = yield* Effect.provide(SqlTaskQueue.make(), context).pipe(
        Effect.mapError((error) => new EventStoreError({ operation: "open", reason: error.message }))
      )
      const holds = yield* Effect.provide(BudgetHolds.make, context)
      return Context.add(context, EventStore, store).pipe(
        Context.add(TaskQueue, queue),
        Context.add(BudgetHolds.BudgetHolds, holds)
      )
    })
  ).pipe(Layer.provide(Reactivity.layer))
