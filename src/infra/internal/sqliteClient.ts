/**
 * The SQLite client the event store runs on: the same client as `@effect/sql-sqlite-node`'s `SqliteClient.make`
 * (one better-sqlite3 connection behind a one-permit semaphore, WAL by default, the same compiler, transactions and
 * span attributes), plus a way to run one statement, or one write transaction of statements, at once when no
 * transaction holds the connection (`DirectSqlite`).
 *
 * Why not the package's own client: it does not expose its better-sqlite3 handle, and on the hot path its
 * per-statement machinery (an Effect `Cache` lookup for the prepared statement, the semaphore, a scope) costs about
 * as much as SQLite's own work for a single-row insert. A second connection to the same file for the fast path is no
 * way out: better-sqlite3 waits for a lock synchronously, so a second connection in the same process waiting for
 * the first one's open transaction would block the very event loop that has to finish that transaction.
 *
 * @internal
 */
import { existsSync } from "node:fs"
import { pathToFileURL } from "node:url"
import type * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { SqliteClient } from "@effect/sql-sqlite-node"
import Sqlite from "better-sqlite3"
import { Context, Effect, Scope, Stream } from "effect"
import { recentlyUsed } from "./recentlyUsed.js"
import { busyRetry, isBusyCause } from "./sqliteBusy.js"

/** Prepared statements kept per connection; the least recently used one is dropped beyond this. */
const preparedCapacity = 200

export interface DirectSqlite {
  /**
   * Runs one statement now, outside any transaction, and returns its rows (none for a statement that returns none);
   * `undefined` when another fiber's transaction holds the connection, so the caller must go through the client.
   * Throws what better-sqlite3 throws.
   */
  readonly run: (text: string, params: ReadonlyArray<unknown>) => ReadonlyArray<unknown> | undefined
  /**
   * Runs `body` now in a write transaction of its own (BEGIN IMMEDIATE ... COMMIT), never leaving the event loop, and
   * returns what it returned; `undefined` when another fiber's transaction holds the connection, as for `run`.
   * `body` runs its statements with the `run` it is given (prepared once per text, like every statement here); what
   * it throws rolls the transaction back and is thrown again. Throws what better-sqlite3 throws (SQLITE_BUSY once
   * `busy_timeout` has passed, as for any write). `body` must not return undefined, which means "not run" here.
   */
  readonly transaction: <A>(
    body: (run: (text: string, params: ReadonlyArray<unknown>) => ReadonlyArray<unknown>) => A
  ) => A | undefined
}

export interface OpenedSqlite {
  readonly client: SqliteClient.SqliteClient
  readonly direct: DirectSqlite
}

const fail = (message: string) => (cause: unknown) => new SqlError({ cause, message })

/**
 * Switches the database to WAL, trying again while another connection holds it. A connection that holds a lock and
 * must wait for another gets SQLITE_BUSY at once, whatever its busy timeout (SQLite's way of avoiding a deadlock):
 * switching a file still in rollback mode while another process writes to it does, as when several `planner`
 * commands open a new database at the same moment. Whatever else fails is thrown, as opening does.
 */
const walMode = (db: Sqlite.Database): Effect.Effect<void> =>
  Effect.try({
    try: () => {
      db.pragma("journal_mode = WAL")
    },
    catch: (cause) => cause
  }).pipe(Effect.retry({ schedule: busyRetry, while: isBusyCause }), Effect.orDie)

/**
 * Runs `open` with URI file names on, if better-sqlite3 is not loaded yet: it reads `SQLITE_USE_URI` once, when its
 * native module loads at the first connection. The variable is set only for that moment, so that neither the rest of
 * the process nor its children see it. A plain name that starts with `file:` is opened as `./file:...` (see `plainName`).
 */
let uriConfigured = false
const withUriNames = <A>(open: () => A): A => {
  if (uriConfigured) return open()
  uriConfigured = true
  const before = process.env.SQLITE_USE_URI
  process.env.SQLITE_USE_URI = "1"
  try {
    return open()
  } finally {
    if (before === undefined) delete process.env.SQLITE_USE_URI
    else process.env.SQLITE_USE_URI = before
  }
}

/** A file name as SQLite takes it with URI names on: one that would read as a URI gets `./` in front. */
const plainName = (filename: string): string => (filename.startsWith("file:") ? `./${filename}` : filename)

/**
 * The read-only connection (`readonly`): the file as it is, if SQLite can share it (its `-wal` and `-shm` files are
 * there, or can be made beside it); otherwise, in a folder this process cannot write to and with no `-wal` file beside
 * it (no writer has commits outside the file), as an immutable file: read without locks, as it is at that moment.
 */
const openReadOnly = (filename: string): Sqlite.Database => {
  try {
    const db = withUriNames(() => new Sqlite(plainName(filename), { readonly: true, fileMustExist: true }))
    try {
      // SQLite opens the file lazily: the first read says whether it can share it.
      db.pragma("schema_version")
    } catch (error) {
      db.close()
      throw error
    }
    return db
  } catch (error) {
    const code = (error as { readonly code?: unknown }).code
    if (code !== "SQLITE_READONLY_DIRECTORY" && code !== "SQLITE_CANTOPEN") throw error
    // A -wal file beside it holds commits that an immutable open would not see (a writer crashed, or is writing now):
    // refused rather than shown out of date.
    if (existsSync(`${filename}-wal`)) throw error
    const uri = `${pathToFileURL(filename).href}?immutable=1`
    try {
      return new Sqlite(uri, { readonly: true, fileMustExist: true })
    } catch {
      throw error
    }
  }
}

/** Opens the database (throwing what better-sqlite3 throws) and closes it with the scope. */
export const make = (options: {
  readonly filename: string
  readonly disableWAL?: boolean | undefined
  readonly synchronous?: "normal" | "full" | undefined
  /** Read only: nothing is written, not even the switch to WAL (see `SqliteEventStoreConfig.readonly`). */
  readonly readonly?: boolean | undefined
}): Effect.Effect<OpenedSqlite, never, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const db =
      options.readonly === true
        ? openReadOnly(options.filename)
        : withUriNames(() => new Sqlite(plainName(options.filename)))
    yield* Effect.addFinalizer(() => Effect.sync(() => db.close()))
    const wal = options.disableWAL !== true
    if (options.readonly !== true) {
      if (wal) yield* walMode(db)
      // When a commit is synced to disk (see `SqliteEventStoreConfig.synchronous`). Without WAL every commit is,
      // whatever is asked: in rollback-journal mode NORMAL can corrupt the file on a power failure.
      db.pragma(`synchronous = ${wal && options.synchronous !== "full" ? "NORMAL" : "FULL"}`)
    }

    const prepared = recentlyUsed(preparedCapacity, (text: string) => db.prepare(text))
    const prepare = prepared.get

    /** Rows are objects, or the run's info object itself for `executeRaw` (as the package's client does). */
    const runNow = (
      statement: Sqlite.Statement,
      params: ReadonlyArray<unknown>,
      raw: boolean
    ): ReadonlyArray<object> => {
      if (statement.reader) return statement.all(...params) as ReadonlyArray<object>
      const result = statement.run(...params)
      return raw ? (result as unknown as ReadonlyArray<object>) : []
    }

    const run = (text: string | Sqlite.Statement, params: ReadonlyArray<unknown>, raw: boolean) =>
      Effect.withFiberRuntime<ReadonlyArray<object>, SqlError>((fiber) => {
        try {
          const statement = typeof text === "string" ? prepare(text) : text
          // Statements are cached, so the flag must be set either way.
          statement.safeIntegers(Context.get(fiber.currentContext, SqlClient.SafeIntegers))
          return Effect.succeed(runNow(statement, params, raw))
        } catch (cause) {
          return Effect.fail(fail("Failed to execute statement")(cause))
        }
      })

    const connection: Connection = {
      execute: (text, params, transformRows) =>
        transformRows === undefined ? run(text, params, false) : Effect.map(run(text, params, false), transformRows),
      executeRaw: (text, params) => run(text, params, true),
      executeValues: (text, params) =>
        Effect.try({
          try: () => {
            const statement = prepare(text)
            if (!statement.reader) {
              statement.run(...params)
              return []
            }
            try {
              return statement.raw(true).all(...params) as ReadonlyArray<ReadonlyArray<unknown>>
            } finally {
              statement.raw(false)
            }
          },
          catch: fail("Failed to execute statement")
        }),
      executeUnprepared: (text, params, transformRows) =>
        Effect.flatMap(
          Effect.try({ try: () => db.prepare(text), catch: fail("Failed to prepare statement") }),
          (statement) => {
            const rows = run(statement, params ?? [], false)
            return transformRows === undefined ? rows : Effect.map(rows, transformRows)
          }
        ),
      executeStream: () => Stream.dieMessage("executeStream is not implemented for SQLite")
    }

    // One connection: a statement waits while a transaction holds it, and a transaction holds it until it ends.
    const semaphore = yield* Effect.makeSemaphore(1)
    const acquirer = semaphore.withPermits(1)(Effect.succeed(connection))
    const transactionAcquirer = Effect.uninterruptibleMask((restore) =>
      Effect.as(
        Effect.zipRight(
          restore(semaphore.take(1)),
          Effect.tap(Effect.scope, (scope) => Scope.addFinalizer(scope, semaphore.release(1)))
        ),
        connection
      )
    )
    const sql = yield* SqlClient.make({
      acquirer,
      transactionAcquirer,
      compiler: Statement.makeCompilerSqlite(),
      spanAttributes: [["db.system.name", "sqlite"]]
    })

    const client = Object.assign(sql, {
      [SqliteClient.TypeId]: SqliteClient.TypeId,
      config: { filename: options.filename, disableWAL: options.disableWAL },
      export: Effect.try({ try: () => db.serialize(), catch: fail("Failed to export database") }),
      backup: (destination: string) =>
        Effect.tryPromise({ try: () => db.backup(destination), catch: fail("Failed to backup database") }),
      loadExtension: (path: string) =>
        Effect.try({
          try: () => {
            db.loadExtension(path)
            prepared.clear()
          },
          catch: fail("Failed to load extension")
        })
    }) as unknown as SqliteClient.SqliteClient

    const runPrepared = (text: string, params: ReadonlyArray<unknown>) => runNow(prepare(text), params, false)
    // better-sqlite3's own transaction function: BEGIN IMMEDIATE, COMMIT, and ROLLBACK when the body throws.
    const immediate = db.transaction((body: (run: typeof runPrepared) => unknown) => body(runPrepared)).immediate
    const direct: DirectSqlite = {
      // `inTransaction` is exact here: this is the only connection, and every transaction on it starts with BEGIN.
      run: (text, params) => (db.inTransaction ? undefined : runPrepared(text, params)),
      transaction: <A>(body: (run: typeof runPrepared) => A) => (db.inTransaction ? undefined : (immediate(body) as A))
    }
    return { client, direct }
  })
