/**
 * The `EventStore` over `@effect/sql`, for SQLite and PostgreSQL alike; dialect differences stay in this file, behind
 * `sql.onDialectOrElse`. `SqliteEventStore` and `PgEventStore` build the clients and provide it.
 *
 * Appends: all events of an append go in with one multi-row `INSERT ... SELECT ... RETURNING` that reads the
 * aggregate's last sequence and checks the expected one in the same statement, so a conflict costs no extra round
 * trip and a refused append writes nothing. On SQLite that lone statement is its own transaction (appends over 500
 * events take several statements in one transaction); on PostgreSQL it runs inside a transaction with the lock below.
 * The unique constraint on (stream, aggregate, sequence) is the final guard; its violation is a `SequenceConflict`.
 *
 * Cost: the append statement's text is built once per event count, and metadata and result rows of the usual shape
 * skip their schemas. On SQLite, `sql\`...\`` (fragments compiled on every call, a span per statement, an Effect
 * cache lookup for the prepared statement) costs more than the insert itself, so an append outside a transaction
 * runs its prepared statement straight on the connection (`options.direct`, see `internal/sqliteClient.ts`); an
 * append with an alongside in statements (`AlongsideDirect`: the task queue's changes that commit with the planner's
 * events) runs as one BEGIN IMMEDIATE ... COMMIT on the connection without leaving the event loop
 * (`options.directTransaction`), which halved the Effect operations of a one-process task; and
 * the `EventStore.append` span is only made when a tracer that exports spans is installed (`internal/tracing.ts`).
 * Reads collect pages without a stream for `load`, and decode rows field by field. See docs/performance.md.
 *
 * Commit order (the PostgreSQL ordering trap). A subscriber reads "events after the last position I saw", so it must
 * never move past a position that may still commit. On PostgreSQL a position is drawn at insert time but becomes
 * visible at commit, so appends committing out of order would make a subscriber skip the lower one for good. Appends
 * do not queue behind one store-wide lock for that: each takes a lock of its own aggregate only (the per-session
 * sequence is what needs guarding), and subscribers read no further than the store's high-water mark, the highest
 * position below which every position is final (`internal/highWater.ts`: positions seen without a gap are final at
 * once, a gap once every transaction that could own it has ended). `headPosition` is that mark too. A plain `read`
 * or `load` is a snapshot: it may show a later position while an earlier one is still in flight. SQLite has a single
 * writer, and a write statement (or a `BEGIN IMMEDIATE` transaction) takes the write lock before it reads, so
 * positions commit in order there and need no mark.
 *
 * Live delivery: an append wakes this process's subscribers at once (which take the appends that keep coming together,
 * for up to a few scheduler turns: see `liveRead`); on PostgreSQL it also sends `pg_notify` inside its transaction
 * (delivered on commit) to wake other processes' subscribers, which `LISTEN` (`PgPool.listener`, unless the caller
 * gives a `listen` of its own; once a lost LISTEN is back they look for themselves). A notification is only a
 * wake-up, the events are always read from the table, and every subscriber also polls (`pollInterval`) as the safety
 * net for lost notifications and for other SQLite processes.
 *
 * SQLite across processes: a busy timeout, then retries with backoff, so concurrent writers in several processes all
 * succeed. Write transactions (long appends, consumers) start with `BEGIN IMMEDIATE`: a deferred `BEGIN` that reads
 * first would fail outright (`SQLITE_BUSY_SNAPSHOT`) when another process commits between its read and its write.
 */
import { Migrator, SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import { Clock, Context, Data, Duration, Effect, Either, Layer, Option, Schedule, Schema, Scope, Stream } from "effect"
import {
  type AggregateInfo,
  type AggregatePage,
  type AlongsideDirect,
  type AlongsideStatement,
  type AppendAlongside,
  type AppendOptions,
  type AppendResult,
  type ConsumeOptions,
  CorruptEvent,
  EventStore,
  EventStoreError,
  type EventStoreService,
  type ExpectedSequence,
  type LoadQuery,
  type NewEvent,
  type ReadError,
  SequenceConflict,
  type StoredEvent,
  type SubscribeQuery
} from "./EventStore.js"
import * as ActiveListen from "./internal/activeListen.js"
import {
  type AppendShape,
  type AppendStatement,
  appendLockKey,
  appendStatement,
  appendStatementName
} from "./internal/appendStatement.js"
import {
  checkExpected,
  decodePage,
  defaultPageSize,
  type EncodedEvent,
  encodeAppend,
  liveRead,
  makeRecentEvents,
  makeWakeUp,
  matchesQuery,
  type Page,
  pagedLoad,
  pagedRead,
  type RawEvent
} from "./internal/eventStore.js"
import * as HighWater from "./internal/highWater.js"
import { busyRetry, isBusy } from "./internal/sqliteBusy.js"
import { commitFailuresTyped } from "./internal/transaction.js"
import { migrations, migrationsTable } from "./migrations/index.js"
import { hotSpanWith } from "./Tracing.js"

export interface SqlEventStoreOptions {
  /** Rows per page of a read; defaults to 1,000. */
  readonly pageSize?: number
  /** How often an idle subscriber looks for events it was not woken for; defaults to 250 ms. */
  readonly pollInterval?: Duration.DurationInput
  /** SQLite: how long a statement waits for another connection's write lock before it is retried; defaults to 200 ms. */
  readonly busyTimeout?: Duration.DurationInput
  /** PostgreSQL: LISTEN for other processes' appends (`PgEventStore` passes `PgPool.listener`'s). */
  readonly listen?: (channel: string) => Stream.Stream<string, SqlError>
  /** PostgreSQL: the NOTIFY channel; defaults to "event_store_appended". */
  readonly channel?: string
  /**
   * SQLite: runs an append's statement at once, outside any transaction, or returns `undefined` when it cannot (a
   * transaction holds the connection); `SqliteEventStore` passes its connection's. Throws what the driver throws.
   */
  readonly direct?: (text: string, params: ReadonlyArray<unknown>) => ReadonlyArray<unknown> | undefined
  /**
   * SQLite: runs `body` at once in a write transaction of its own, or returns `undefined` when it cannot (a
   * transaction holds the connection); `SqliteEventStore` passes its connection's. An append whose alongside has a
   * `direct` form goes this way (see `AlongsideDirect`). Throws what the driver or `body` throws, after rolling back.
   */
  readonly directTransaction?: <A>(
    body: (run: (text: string, params: ReadonlyArray<unknown>) => ReadonlyArray<unknown>) => A
  ) => A | undefined
  /**
   * PostgreSQL: runs an append's statement, outside any transaction, as a named prepared statement (`name` always
   * comes with the same text); `PgEventStore` passes its pool's. Without it the statement runs unnamed.
   */
  readonly prepared?: (
    name: string,
    text: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<unknown>, SqlError>
}

// --- Rows -----------------------------------------------------------------------------------------------------------

/** PostgreSQL hands BIGINT back as a string, SQLite as a number. */
const DbInt = Schema.Union(Schema.Number, Schema.NumberFromString)

const EventRow = Schema.Struct({
  position: DbInt,
  stream_id: Schema.String,
  aggregate_id: Schema.String,
  sequence: DbInt,
  event_type: Schema.String,
  event_version: Schema.String,
  data: Schema.Unknown,
  metadata: Schema.Unknown,
  created_at: DbInt
})
const decodeEventRow = Schema.decodeUnknownEither(EventRow)
const decodeInts = Schema.decodeUnknownEither(Schema.Array(Schema.Struct({ value: DbInt })))
const AggregateRow = Schema.Struct({
  aggregate_id: Schema.String,
  last_sequence: DbInt,
  first_created_at: DbInt,
  last_created_at: DbInt,
  first_position: DbInt
})
const decodeAggregateRows = Schema.decodeUnknownEither(Schema.Array(AggregateRow))
const InsertedRows = Schema.Array(Schema.Struct({ position: DbInt, sequence: DbInt }))
const decodeInsertedRows = Schema.decodeUnknownEither(InsertedRows)
type Inserted = (typeof InsertedRows.Type)[number]

/**
 * An append's RETURNING rows, by sequence. Integers as numbers (SQLite) or as decimal text (PostgreSQL's BIGINT) need
 * no schema; anything else goes through it, to say what is wrong.
 */
const decodeInserted = (rows: ReadonlyArray<unknown>): Either.Either<ReadonlyArray<Inserted>, EventStoreError> => {
  const inserted: Array<Inserted> = []
  for (const row of rows) {
    const position = typeof row === "object" && row !== null ? dbInt(Reflect.get(row, "position")) : undefined
    const sequence = typeof row === "object" && row !== null ? dbInt(Reflect.get(row, "sequence")) : undefined
    if (position === undefined || sequence === undefined) {
      return decodeInsertedRows(rows).pipe(
        Either.map((decoded) => [...decoded].sort((a, b) => a.sequence - b.sequence)),
        Either.mapLeft(
          (error) => new EventStoreError({ operation: "append", reason: `unexpected RETURNING rows: ${error.message}` })
        )
      )
    }
    inserted.push({ position, sequence })
  }
  // RETURNING order is not guaranteed.
  return Either.right(inserted.length > 1 ? inserted.sort((a, b) => a.sequence - b.sequence) : inserted)
}

/** An integer column: a number (SQLite), or the decimal text PostgreSQL gives for BIGINT. */
const dbInt = (value: unknown): number | undefined =>
  typeof value === "number"
    ? value
    : typeof value === "string" && /^-?\d{1,15}$/.test(value)
      ? Number(value)
      : undefined

/**
 * A row as a `RawEvent`. Rows of the expected shape (all of them, unless the table was tampered with) are read field
 * by field; the schema only runs for the others, to say what is wrong. Replays read every row through here, and the
 * schema cost more than the database.
 */
const rowToRaw = (row: unknown): Either.Either<RawEvent, CorruptEvent> => {
  if (typeof row === "object" && row !== null) {
    const r = row as Readonly<Record<string, unknown>>
    const position = dbInt(r.position)
    const sequence = dbInt(r.sequence)
    const createdAt = dbInt(r.created_at)
    if (
      position !== undefined &&
      sequence !== undefined &&
      createdAt !== undefined &&
      typeof r.stream_id === "string" &&
      typeof r.aggregate_id === "string" &&
      typeof r.event_type === "string" &&
      typeof r.event_version === "string" &&
      "data" in r &&
      "metadata" in r
    ) {
      return Either.right({
        position,
        streamId: r.stream_id,
        aggregateId: r.aggregate_id,
        sequence,
        type: r.event_type,
        version: r.event_version,
        data: r.data,
        metadata: r.metadata,
        createdAt
      })
    }
  }
  return rowToRawChecked(row)
}

const rowToRawChecked = (row: unknown): Either.Either<RawEvent, CorruptEvent> =>
  decodeEventRow(row).pipe(
    Either.map(
      (r): RawEvent => ({
        position: r.position,
        streamId: r.stream_id,
        aggregateId: r.aggregate_id,
        sequence: r.sequence,
        type: r.event_type,
        version: r.event_version,
        data: r.data,
        metadata: r.metadata,
        createdAt: r.created_at
      })
    ),
    Either.mapLeft((error) => {
      const field = (name: string) => (typeof row === "object" && row !== null ? Reflect.get(row, name) : undefined)
      return new CorruptEvent({
        position: Number(field("position") ?? -1),
        streamId: String(field("stream_id") ?? ""),
        aggregateId: String(field("aggregate_id") ?? ""),
        sequence: Number(field("sequence") ?? -1),
        type: String(field("event_type") ?? ""),
        reason: `the row does not have the expected columns: ${error.message}`
      })
    })
  )

/**
 * PostgreSQL: the high-water mark's probe, in one snapshot: its oldest running transaction id, the highest visible
 * position, and the visible positions among the 1,000 after the mark.
 *
 * The positions are asked for as a range closed on both sides, not as "after the mark, the first 1,000". The probe is
 * a named prepared statement, and PostgreSQL keeps the generic plan it settles on after five runs for as long as the
 * connection lives (until the table is analyzed again). For an open range that plan, made while the log was small,
 * was a sequential scan and a sort, and it stayed one as the log grew: in the scale benchmark every probe of a
 * follower read the whole table (3,000 buffers at 100,000 events, 3 to 16 ms), and at 200,000 events 8,000 buffers.
 * A closed range is estimated at a fixed 0.5% of the table at any size, so its plan goes through the index from the
 * start.
 *
 * @internal exported for its plan's test
 */
export const highWaterProbe = `SELECT pg_snapshot_xmin(s)::text AS xmin,
    (SELECT coalesce(max(position), 0) FROM events) AS head,
    ARRAY(SELECT position FROM events WHERE position > $1::bigint AND position <= $1::bigint + 1000
      ORDER BY position) AS positions
  FROM pg_current_snapshot() AS s`

/** The mark once no gap stalls it, looking again every 5 ms at most `tries` times (then the mark as it is). */
const settledMark = <E>(advance: Effect.Effect<HighWater.Mark, E>, tries: number): Effect.Effect<number, E> =>
  Effect.flatMap(advance, (mark) =>
    mark.stalled && tries > 0
      ? Effect.zipRight(Effect.sleep(Duration.millis(5)), settledMark(advance, tries - 1))
      : Effect.succeed(mark.safe)
  )

const decodeProbe = (rows: ReadonlyArray<unknown>): Effect.Effect<HighWater.Probe, EventStoreError> => {
  const row = rows[0]
  const field = (name: string): unknown =>
    typeof row === "object" && row !== null ? Reflect.get(row, name) : undefined
  const xmin = field("xmin")
  const head = dbInt(field("head"))
  const positions = field("positions")
  const listed = Array.isArray(positions) ? positions.map(dbInt) : undefined
  if (typeof xmin !== "string" || !/^\d+$/.test(xmin) || head === undefined || listed === undefined) {
    return Effect.fail(
      new EventStoreError({ operation: "read the high-water mark", reason: `unexpected row ${JSON.stringify(row)}` })
    )
  }
  return listed.every((position): position is number => position !== undefined)
    ? Effect.succeed({ xmin: BigInt(xmin), head, positions: listed })
    : Effect.fail(
        new EventStoreError({ operation: "read the high-water mark", reason: "a position is not an integer" })
      )
}

// --- Errors ---------------------------------------------------------------------------------------------------------

const causeText = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)

/** What an `SqlError` says, with its driver's words. */
const sqlReason = (error: SqlError): string =>
  error.cause === undefined ? error.message : `${error.message}: ${causeText(error.cause)}`

export const toStoreError = (operation: string) => (error: SqlError) =>
  new EventStoreError({ operation, reason: sqlReason(error) })

const driverCode = (error: SqlError): string | undefined => {
  const cause: unknown = error.cause
  if (typeof cause !== "object" || cause === null) return undefined
  const code: unknown = Reflect.get(cause, "code")
  return typeof code === "string" ? code : undefined
}

/** The (stream, aggregate, sequence) constraint refused the insert: another writer took the sequence. */
const isUniqueViolation = (error: SqlError) => {
  const code = driverCode(error)
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE"
}

class UniqueViolation extends Data.TaggedError("UniqueViolation") {}

/** What came of an append run at once on the SQLite connection (see `appendAtOnce`). */
type AtOnce =
  | { readonly _tag: "Appended"; readonly result: AppendResult; readonly after: Effect.Effect<void> | undefined }
  | { readonly _tag: "Failed"; readonly error: Refused | UniqueViolation | EventStoreError | SqlError }

/** What an alongside's `direct` statements threw, inside the transaction they roll back. */
class AlongsideFailed extends Data.TaggedError("AlongsideFailed")<{ readonly cause: unknown }> {}

/** The last sequence an append at `expected` checks against; undefined: no check ("any"). */
const expectedLastOf = (expected: ExpectedSequence): number | undefined =>
  expected === "any" ? undefined : expected === "no-stream" ? 0 : expected

/**
 * The append's own check found another sequence than expected; nothing was written. `seen`: the aggregate's last
 * sequence as the statement saw it (PostgreSQL; see `appendStatement`), when it said.
 */
class Refused extends Data.TaggedError("Refused")<{ readonly seen?: number }> {}

/** PostgreSQL: a one-statement append found the append lock taken and wrote nothing (see `appendStatement`). */
class LockBusy extends Data.TaggedError("LockBusy")<{ readonly seen?: number }> {}

/** A handler's own failure, carried through the transaction so that it rolls back and is then handed back as is. */
class HandlerFailed<E> {
  readonly _tag = "HandlerFailed"
  constructor(readonly error: E) {}
}

// --- Constants ------------------------------------------------------------------------------------------------------

/** The `pg_advisory_xact_lock` key for migrations (appends have theirs, `appendLockKey`). */
const migrationLockKey = 7_243_150_002
const defaultChannel = "event_store_appended"
/** Rows per INSERT statement: well under SQLite's and PostgreSQL's bound-parameter limits (8 per row). */
const insertChunk = 500

type Dialect = "pg" | "sqlite"

const dialectOf = (sql: SqlClient.SqlClient): Effect.Effect<Dialect, EventStoreError> =>
  sql.onDialectOrElse({
    pg: () => Effect.succeed<Dialect>("pg"),
    sqlite: () => Effect.succeed<Dialect>("sqlite"),
    orElse: () =>
      Effect.fail(new EventStoreError({ operation: "start", reason: "only SQLite and PostgreSQL are supported" }))
  })

/**
 * A write transaction: `sql.withTransaction` on PostgreSQL; on SQLite the same machinery but opened with
 * `BEGIN IMMEDIATE`, which takes the write lock (waiting `busy_timeout`) before anything is read. A ROLLBACK after a
 * BEGIN that itself failed has no transaction to roll back; that is not an error. A COMMIT or ROLLBACK that fails
 * fails the transaction with its `SqlError` (`internal/transaction.ts`).
 */
const makeWriteTransaction = (
  sql: SqlClient.SqlClient,
  dialect: Dialect
): (<A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>) => {
  const transaction = writeTransactionOf(sql, dialect)
  return (effect) => commitFailuresTyped(transaction(effect))
}

const writeTransactionOf = (sql: SqlClient.SqlClient, dialect: Dialect) => {
  if (dialect === "pg") return sql.withTransaction
  return SqlClient.makeWithTransaction({
    transactionTag: SqlClient.TransactionConnection,
    spanAttributes: [["db.system.name", "sqlite"]],
    acquireConnection: Effect.flatMap(Scope.make(), (scope) =>
      Effect.map(Scope.extend(sql.reserve, scope), (connection) => [scope, connection] as const)
    ),
    // BEGIN, COMMIT and ROLLBACK through the connection's prepared-statement cache: preparing them afresh for every
    // transaction cost more than running them (two of them on every task of a one-process run).
    begin: (connection) => connection.execute("BEGIN IMMEDIATE", [], undefined),
    savepoint: (connection, id) => connection.executeUnprepared(`SAVEPOINT effect_sql_${id}`, [], undefined),
    commit: (connection) => connection.execute("COMMIT", [], undefined),
    rollback: (connection) =>
      connection.execute("ROLLBACK", [], undefined).pipe(
        Effect.catchIf(
          (error) => /no transaction is active/.test(causeText(error.cause)),
          () => Effect.void
        )
      ),
    rollbackSavepoint: (connection, id) =>
      connection.executeUnprepared(`ROLLBACK TO SAVEPOINT effect_sql_${id}`, [], undefined)
  })
}

// --- Notifications (PostgreSQL) --------------------------------------------------------------------------------------

/**
 * An append's notification carries its rows when they fit, so that other processes' subscribers take them from memory
 * instead of reading them back (`RecentEvents`); otherwise it carries the last position alone, as a wake-up. Rows go
 * as a JSON array of objects with one-letter keys, data and metadata as JSON text (`appendStatement` builds the same
 * in SQL for a one-statement append).
 */
interface NotifiedRow {
  readonly p: number
  readonly s: string
  readonly a: string
  readonly q: number
  readonly t: string
  readonly v: string
  readonly d: string
  readonly m: string
  readonly c: number
}

const isNotifiedRow = (value: unknown): value is NotifiedRow => {
  if (typeof value !== "object" || value === null) return false
  const row = value as Record<string, unknown>
  return (
    typeof row.p === "number" &&
    typeof row.s === "string" &&
    typeof row.a === "string" &&
    typeof row.q === "number" &&
    typeof row.t === "string" &&
    typeof row.v === "string" &&
    typeof row.d === "string" &&
    typeof row.m === "string" &&
    typeof row.c === "number"
  )
}

/** The rows a notification carries; undefined for a bare position, or for anything this store did not write. */
const notifiedRows = (payload: string): ReadonlyArray<RawEvent> | undefined => {
  if (!payload.startsWith("[")) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(payload)
  } catch {
    return undefined
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every(isNotifiedRow)) return undefined
  return parsed.map(
    (row: NotifiedRow): RawEvent => ({
      position: row.p,
      streamId: row.s,
      aggregateId: row.a,
      sequence: row.q,
      type: row.t,
      version: row.v,
      data: row.d,
      metadata: row.m,
      createdAt: row.c
    })
  )
}

// --- Migrations -----------------------------------------------------------------------------------------------------

/**
 * Brings the schema up to date. Safe when several processes start at once: PostgreSQL runs it under an advisory
 * lock (with the migrations table created first, because the Migrator's own probe for it would abort the
 * transaction), SQLite under its write lock.
 */
/**
 * For a database opened read only, which cannot migrate: fails unless every migration has run (a file written by an
 * older version of the planner is upgraded by the first command that may write to it).
 */
export const checkMigrated: Effect.Effect<void, EventStoreError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const latest = Math.max(...Object.keys(migrations).map((key) => Number.parseInt(key, 10)))
  const rows = yield* sql<{ readonly id: number | null }>`SELECT max(migration_id) AS id FROM ${sql(migrationsTable)}`
  const ran = Number(rows[0]?.id ?? 0)
  if (ran < latest) {
    return yield* new EventStoreError({
      operation: "open",
      reason: `it was written by an older version of the planner and must be upgraded, which a read-only open cannot do: run any planner command with write access to it once`
    })
  }
}).pipe(
  Effect.catchTag("SqlError", (error) =>
    Effect.fail(
      new EventStoreError({
        operation: "open",
        reason: `it does not look like a planner database (${error.message})`
      })
    )
  )
)

/**
 * `@effect/sql`'s migrator makes a migration whose statement the database refuses a defect (`orDieWith` a
 * `MigrationError`): a `--db` naming another application's database with a table of one of our names, a role that
 * may not alter the tables, a full disk. It fails instead, so that the command says why with the store's exit code.
 */
const migrationsFailing = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Migrator.MigrationError, R> =>
  Effect.catchSomeDefect(effect, (defect) =>
    defect instanceof Migrator.MigrationError ? Option.some(Effect.fail(defect)) : Option.none()
  )

/** The `SqlError` a failure is or wraps (a failed migration's cause). */
const sqlErrorOf = (error: unknown): SqlError | undefined =>
  error instanceof SqlError
    ? error
    : error instanceof Migrator.MigrationError && error.cause instanceof SqlError
      ? error.cause
      : undefined

export const migrate: Effect.Effect<void, EventStoreError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* dialectOf(sql)
  const run = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: migrationsTable })
  const locked =
    dialect === "pg"
      ? Effect.zipRight(
          sql`SELECT pg_advisory_xact_lock(${migrationLockKey})`.pipe(
            Effect.zipRight(sql`CREATE TABLE IF NOT EXISTS ${sql(migrationsTable)} (
              migration_id integer primary key,
              created_at timestamp with time zone not null default now(),
              name text not null
            )`)
          ),
          run
        )
      : run
  yield* makeWriteTransaction(
    sql,
    dialect
  )(migrationsFailing(locked)).pipe(
    Effect.retry({
      schedule: busyRetry,
      while: (error) => {
        const cause = sqlErrorOf(error)
        return cause !== undefined && isBusy(cause)
      }
    })
  )
}).pipe(
  Effect.catchTags({
    SqlError: toStoreError("migrate"),
    MigrationError: (error) => {
      const cause = sqlErrorOf(error)
      return new EventStoreError({
        operation: "migrate",
        reason: cause === undefined ? error.message : `${error.message}: ${sqlReason(cause)}`
      })
    }
  }),
  Effect.withSpan("EventStore.migrate")
)

// --- The service ----------------------------------------------------------------------------------------------------

/**
 * The store over the `SqlClient` in context, which must already be migrated (see `migrate`). Lives in the scope: the
 * PostgreSQL LISTEN connection, once a subscriber starts it, is closed with it.
 */
export const make = (
  options: SqlEventStoreOptions = {}
): Effect.Effect<EventStoreService, EventStoreError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const dialect = yield* dialectOf(sql)
    const scope = yield* Effect.scope
    const pageSize = options.pageSize ?? defaultPageSize
    const pollInterval = options.pollInterval ?? Duration.millis(250)
    const channel = options.channel ?? defaultChannel
    const isPg = dialect === "pg"
    const direct = options.direct
    const directTransaction = options.directTransaction
    const prepared = options.prepared
    const wakeUp = yield* makeWakeUp
    const recent = makeRecentEvents()
    // The polling safety net: waiting subscribers look again every `pollInterval` (one timer for all of them).
    yield* Effect.forkIn(Effect.repeat(wakeUp.signal, Schedule.spaced(pollInterval)), scope)
    const writeTransaction = makeWriteTransaction(sql, dialect)

    if (!isPg) {
      const busyMs = Math.max(0, Math.round(Duration.toMillis(options.busyTimeout ?? Duration.millis(200))))
      yield* sql.unsafe(`PRAGMA busy_timeout = ${busyMs}`).pipe(Effect.mapError(toStoreError("start")))
    }

    /**
     * Retries an effect that met another process's write lock (SQLite); a no-op on PostgreSQL. Not inside a caller's
     * transaction: its snapshot is stale by then, so only the caller can start over. The retry schedule is only set
     * up after a first failure: appends are hot, and most never meet a lock.
     */
    const retryBusy = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) => {
      if (isPg) return effect
      const busy = (error: E) => error._tag === "SqlError" && isBusy(error as unknown as SqlError)
      return Effect.catchIf(effect, busy, (error) =>
        Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) =>
          Option.isSome(transaction) ? Effect.fail(error) : Effect.retry(effect, { schedule: busyRetry, while: busy })
        )
      )
    }

    /** Decodes a single integer column named `value` (COUNT/MAX come back as strings on PostgreSQL). */
    const singleInt = (operation: string, rows: ReadonlyArray<unknown>) =>
      decodeInts(rows).pipe(
        Either.map((decoded) => decoded[0]?.value ?? 0),
        Either.mapLeft((error) => new EventStoreError({ operation, reason: `unexpected result: ${error.message}` }))
      )

    const selectColumns = isPg
      ? sql`position, stream_id, aggregate_id, sequence, event_type, event_version, data, metadata,
          (extract(epoch from created_at) * 1000)::bigint AS created_at`
      : sql`position, stream_id, aggregate_id, sequence, event_type, event_version, data, metadata, created_at`
    const epochMs = (column: string) =>
      isPg ? sql.literal(`(extract(epoch from ${column}) * 1000)::bigint`) : sql.literal(column)
    const timestamp = (ms: number) => (isPg ? new Date(ms) : ms)

    /**
     * The page after a cursor (a position or a sequence, by `cursorColumn`) of the rows matching `where`, as one
     * statement compiled once per read or subscription and then run with only the cursor changed: a subscriber runs it
     * on every wake-up, and compiling the fragments and opening a span for each run cost more than the query.
     */
    const pageQuery = (
      operation: string,
      where: ReadonlyArray<Fragment>,
      cursorColumn: "position" | "sequence",
      bounded = false
    ) => {
      const marker = -7_243_150_003
      const upToMarker = -7_243_150_004
      const [text, params] = sql`SELECT ${selectColumns} FROM events WHERE ${sql.and([
        ...where,
        sql`${sql.literal(cursorColumn)} > ${marker}`,
        ...(bounded ? [sql`${sql.literal(cursorColumn)} <= ${upToMarker}`] : [])
      ])}
          ORDER BY ${sql.literal(cursorColumn)} LIMIT ${pageSize}`.compile()
      // The cursor and the upper bound are the last conditions: a bound of the query that happened to equal a marker
      // comes before them.
      const cursorIndex = params.lastIndexOf(marker)
      const upToIndex = params.lastIndexOf(upToMarker)
      return (cursor: number, upTo?: number): Effect.Effect<Page, EventStoreError> =>
        Effect.suspend(() => {
          const bound = [...params]
          bound[cursorIndex] = cursor
          if (upToIndex >= 0) bound[upToIndex] = upTo ?? Number.MAX_SAFE_INTEGER
          return runStatement(text, bound)
        }).pipe(
          retryBusy,
          Effect.mapError(toStoreError(operation)),
          Effect.map((rows): Page => decodePage(rows, rowToRaw, pageSize, !isPg))
        )
    }

    const filters = (query: {
      readonly streamId?: string | undefined
      readonly aggregateId?: string | undefined
      readonly eventTypes?: ReadonlyArray<string> | undefined
    }) => [
      ...(query.streamId === undefined ? [] : [sql`stream_id = ${query.streamId}`]),
      ...(query.aggregateId === undefined ? [] : [sql`aggregate_id = ${query.aggregateId}`]),
      ...(query.eventTypes === undefined ? [] : [sql`event_type IN ${sql.in(query.eventTypes)}`])
    ]

    /**
     * The aggregate's last sequence, as one index seek. (`max(sequence)` inside a subquery is not optimised by
     * SQLite and scans the whole aggregate, which made appends slower the longer a session got.)
     */
    const lastSequenceOf = (streamId: string, aggregateId: string) =>
      sql`coalesce((SELECT sequence FROM events WHERE stream_id = ${streamId} AND aggregate_id = ${aggregateId}
                    ORDER BY sequence DESC LIMIT 1), 0)`

    const currentSequence = (streamId: string, aggregateId: string) =>
      sql`SELECT ${lastSequenceOf(streamId, aggregateId)} AS value`.pipe(
        Effect.mapError(toStoreError("read the last sequence")),
        Effect.flatMap((rows) => singleInt("read the last sequence", rows))
      )

    const lastSequence = Effect.fn("EventStore.lastSequence")((streamId: string, aggregateId: string) =>
      retryBusy(currentSequence(streamId, aggregateId))
    )

    /**
     * Runs one statement given as SQL text, in the caller's transaction if there is one, else on a connection of the
     * client reserved for just this statement. Unlike `sql\`...\``, it neither rebuilds and recompiles the statement
     * nor opens a span per call: on SQLite those cost as much as the insert itself.
     */
    const runStatement = (
      text: string,
      params: ReadonlyArray<unknown>,
      name?: string
    ): Effect.Effect<ReadonlyArray<unknown>, SqlError> =>
      Effect.withFiberRuntime((fiber) => {
        const transaction = Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)
        if (Option.isSome(transaction)) return transaction.value[0].execute(text, params, undefined)
        if (prepared !== undefined && name !== undefined) return prepared(name, text, params)
        if (direct !== undefined) {
          try {
            const rows = direct(text, params)
            if (rows !== undefined) return Effect.succeed(rows)
          } catch (cause) {
            return Effect.fail(new SqlError({ cause, message: "Failed to execute statement" }))
          }
        }
        return Effect.scoped(Effect.flatMap(sql.reserve, (connection) => connection.execute(text, params, undefined)))
      })

    /** `insertAfter`'s statement for each shape, built once (see `appendStatement`). */
    const insertTexts = new Map<string, AppendStatement>()
    const insertText = (
      count: number,
      checked: boolean,
      shape: AppendShape,
      alongside: AlongsideStatement | undefined
    ): AppendStatement => {
      const key = appendStatementName(count, checked, shape, alongside?.shape)
      let statement = insertTexts.get(key)
      if (statement === undefined) {
        statement = appendStatement(dialect, count, checked, shape, alongside)
        insertTexts.set(key, statement)
      }
      return statement
    }

    /**
     * Inserts `events` as the next events of the aggregate in one statement, which reads the aggregate's last
     * sequence (one index seek) and checks it against `expectedLast` itself (no check when undefined). Its RETURNING
     * rows are empty when the check failed. On SQLite a lone statement is its own transaction and takes the write
     * lock before it reads, so a single-statement append needs no BEGIN/COMMIT round trips.
     */
    const insertAfter = (
      streamId: string,
      aggregateId: string,
      events: ReadonlyArray<EncodedEvent>,
      expectedLast: number | undefined,
      createdAt: number,
      shape: AppendShape,
      alongside?: AlongsideStatement
    ): Effect.Effect<ReadonlyArray<Inserted>, Refused | UniqueViolation | LockBusy | EventStoreError | SqlError> => {
      const params = insertParams(streamId, aggregateId, events, expectedLast, createdAt)
      if (shape !== "insert") params.push(channel)
      if (alongside !== undefined) params.push(...alongside.params)
      const { name, text } = insertText(events.length, expectedLast !== undefined, shape, alongside)
      return runStatement(text, params, name).pipe(
        Effect.catchIf(isUniqueViolation, () => new UniqueViolation()),
        Effect.flatMap((rows): Effect.Effect<ReadonlyArray<Inserted>, Refused | LockBusy | EventStoreError> => {
          const first = rows[0]
          const field = (column: string): unknown =>
            typeof first === "object" && first !== null ? Reflect.get(first, column) : undefined
          if (shape !== "insert" && rows.length === 1 && field("position") === null) {
            const seen = dbInt(field("last"))
            if (field("held") === false) return Effect.fail(new LockBusy(seen === undefined ? {} : { seen }))
            return Effect.fail(new Refused(seen === undefined ? {} : { seen }))
          }
          const decoded = decodeInserted(rows)
          if (Either.isLeft(decoded)) return Effect.fail(decoded.left)
          // The statement committed: what its alongside returned goes to whoever asked for it.
          // (PostgreSQL's json_agg, NULL when there were none.)
          if (shape === "standalone" && alongside?.returned !== undefined) {
            const returned = field("returned")
            const parsed: unknown = typeof returned === "string" ? JSON.parse(returned) : []
            alongside.returned(Array.isArray(parsed) ? parsed : [])
          }
          return Effect.succeed(decoded.right)
        })
      )
    }

    const insertParams = (
      streamId: string,
      aggregateId: string,
      events: ReadonlyArray<EncodedEvent>,
      expectedLast: number | undefined,
      createdAt: number
    ): Array<unknown> => {
      const params: Array<unknown> = [
        streamId,
        aggregateId,
        isPg ? new Date(createdAt) : createdAt,
        streamId,
        aggregateId
      ]
      for (let index = 0; index < events.length; index++) {
        const event = events[index] as EncodedEvent
        params.push(index + 1, event.type, event.version, event.data, event.metadata)
      }
      if (expectedLast !== undefined) params.push(expectedLast)
      return params
    }

    /** The last sequence an insert of `count` events ended at; undefined when it was refused (wrote nothing). */
    const lastIfComplete = (inserted: ReadonlyArray<Inserted>, count: number) => {
      const final = inserted[inserted.length - 1]
      return final === undefined || inserted.length !== count ? undefined : final.sequence
    }

    /**
     * SQLite: an append that fits one statement and its alongside's `direct` statements, in one transaction run at
     * once on the connection (see `AlongsideDirect`): what came of it, or `undefined` when a transaction holds the
     * connection (the caller's own, or another fiber's), and the append then goes the transaction way. It fails as
     * `insertAll` does, and with an `EventStoreError` for what the alongside threw; `after` is what the alongside left
     * to do once committed. A COMMIT that fails (SQLITE_BUSY without WAL) is rolled back and fails as a `SqlError`,
     * tried again when busy; the transaction way's COMMIT, @effect/sql's, makes that a defect instead.
     */
    const appendAtOnce = (
      transaction: NonNullable<SqlEventStoreOptions["directTransaction"]>,
      streamId: string,
      aggregateId: string,
      events: ReadonlyArray<EncodedEvent>,
      expected: ExpectedSequence,
      createdAt: number,
      alongside: AlongsideDirect
    ): AtOnce | undefined => {
      const expectedLast = expectedLastOf(expected)
      const { text } = insertText(events.length, expectedLast !== undefined, "insert", undefined)
      const params = insertParams(streamId, aggregateId, events, expectedLast, createdAt)
      let after: Effect.Effect<void> | undefined
      let done: AppendResult | Refused | undefined
      try {
        done = transaction((run) => {
          const decoded = decodeInserted(run(text, params))
          // Unreadable RETURNING rows: thrown, so that the insert is rolled back.
          if (Either.isLeft(decoded)) throw decoded.left
          const last = lastIfComplete(decoded.right, events.length)
          if (last === undefined) return new Refused({})
          try {
            after = alongside(run)
          } catch (cause) {
            throw new AlongsideFailed({ cause })
          }
          return { lastSequence: last, positions: decoded.right.map((row) => row.position) }
        })
      } catch (cause) {
        if (cause instanceof EventStoreError) return { _tag: "Failed", error: cause }
        if (cause instanceof AlongsideFailed) {
          const reason = `the task queue: ${causeText(cause.cause)}`
          return { _tag: "Failed", error: new EventStoreError({ operation: "append", reason }) }
        }
        const error = new SqlError({ cause, message: "Failed to execute statement" })
        return { _tag: "Failed", error: isUniqueViolation(error) ? new UniqueViolation() : error }
      }
      if (done === undefined) return undefined
      if (done instanceof Refused) return { _tag: "Failed", error: done }
      return { _tag: "Appended", result: done, after }
    }

    /** Appends chunk after chunk, each checked against the last; `Refused` when a check fails. */
    const insertAll = (
      streamId: string,
      aggregateId: string,
      events: ReadonlyArray<EncodedEvent>,
      expected: ExpectedSequence,
      createdAt: number,
      shape: AppendShape,
      /** A standalone append's companion statement (it is never chunked). */
      alongside?: AlongsideStatement
    ): Effect.Effect<AppendResult, Refused | UniqueViolation | LockBusy | EventStoreError | SqlError> => {
      const first = expectedLastOf(expected)
      if (events.length <= insertChunk) {
        // The usual case, kept free of generators: one statement.
        return Effect.flatMap(
          insertAfter(streamId, aggregateId, events, first, createdAt, shape, alongside),
          (inserted) => {
            const last = lastIfComplete(inserted, events.length)
            return last === undefined
              ? Effect.fail(new Refused({}))
              : Effect.succeed({ lastSequence: last, positions: inserted.map((row) => row.position) })
          }
        )
      }
      return Effect.gen(function* () {
        const positions: Array<number> = []
        let last = first
        for (let start = 0; start < events.length; start += insertChunk) {
          const chunk = events.slice(start, start + insertChunk)
          // Each chunk of a notifying append notifies its own rows; a standalone one is never chunked.
          const inserted = yield* insertAfter(
            streamId,
            aggregateId,
            chunk,
            last,
            createdAt,
            shape === "notifying" ? shape : "insert"
          )
          const final = lastIfComplete(inserted, chunk.length)
          if (final === undefined) return yield* new Refused({})
          for (const row of inserted) positions.push(row.position)
          last = final
        }
        return { lastSequence: last ?? 0, positions } satisfies AppendResult
      })
    }

    /**
     * PostgreSQL, an append of several statements: the aggregate's append lock and the transaction's id first (the id
     * before any position is drawn: see `internal/highWater.ts`), then the inserts, each sending the wake-up for
     * other processes on commit (`notifying` statements).
     */
    const pgLockText = `SELECT pg_advisory_xact_lock(${appendLockKey("$1", "$2")}), pg_current_xact_id()`
    const pgAppend = (
      streamId: string,
      aggregateId: string,
      insert: Effect.Effect<AppendResult, Refused | UniqueViolation | EventStoreError | SqlError>
    ) => writeTransaction(Effect.zipRight(runStatement(pgLockText, [streamId, aggregateId]), insert))

    /** An append's rows as they were stored. */
    const appendedRows = (
      streamId: string,
      aggregateId: string,
      encoded: ReadonlyArray<EncodedEvent>,
      result: AppendResult,
      createdAt: number
    ): ReadonlyArray<RawEvent> => {
      const first = result.lastSequence - encoded.length + 1
      return encoded.map(
        (event, index): RawEvent => ({
          position: result.positions[index] ?? 0,
          streamId,
          aggregateId,
          sequence: first + index,
          type: event.type,
          version: event.version,
          data: event.data,
          metadata: event.metadata,
          createdAt
        })
      )
    }

    const appendEncoded = (
      streamId: string,
      aggregateId: string,
      encoded: ReadonlyArray<EncodedEvent>,
      expected: ExpectedSequence,
      alongside: AppendAlongside | undefined,
      options: AppendOptions | undefined
    ): Effect.Effect<AppendResult, SequenceConflict | EventStoreError> => {
      if (encoded.length === 0) {
        return Effect.flatMap(lastSequence(streamId, aggregateId), (actual) => {
          const conflict = checkExpected(streamId, aggregateId, expected, actual)
          if (conflict !== undefined) return Effect.fail<SequenceConflict | EventStoreError>(conflict)
          const result: AppendResult = { lastSequence: actual, positions: [] }
          return alongside === undefined ? Effect.succeed(result) : Effect.as(alongside(result), result)
        })
      }
      return Effect.flatMap(Clock.currentTimeMillis, (createdAt) => {
        const single = encoded.length <= insertChunk
        // On SQLite a lone statement is its own transaction (or runs in the caller's); with an alongside in statements
        // the append and they run at once in a transaction of their own, when no other holds the connection. When
        // that went through, nothing below is needed: it committed outside any transaction, so this process's
        // subscribers have it at once. Otherwise the way below waits its turn, tries again or says what went wrong,
        // starting from what this try found.
        const direct = single ? alongside?.direct : undefined
        const tryAtOnce = !isPg && direct !== undefined && directTransaction !== undefined
        // The first try's outcome, for the way below; `firstTry` until that way has used it.
        let firstTry = tryAtOnce
        const atOnce = tryAtOnce
          ? appendAtOnce(directTransaction, streamId, aggregateId, encoded, expected, createdAt, direct)
          : undefined
        if (atOnce?._tag === "Appended") {
          recent.add(appendedRows(streamId, aggregateId, encoded, atOnce.result, createdAt))
          return Effect.as(
            atOnce.after === undefined ? wakeUp.signal : Effect.zipRight(atOnce.after, wakeUp.signal),
            atOnce.result
          )
        }
        // (Only a standalone statement can find the lock busy: this one waits for it.)
        const insert = insertAll(
          streamId,
          aggregateId,
          encoded,
          expected,
          createdAt,
          isPg ? "notifying" : "insert"
        ).pipe(Effect.catchTag("LockBusy", Effect.die))
        // With something to commit alongside, the insert and it share one transaction (see `EventStoreService.append`).
        const insertThen = alongside === undefined ? insert : Effect.tap(insert, (result) => alongside(result))
        const written: Effect.Effect<
          AppendResult,
          Refused | UniqueViolation | SequenceConflict | EventStoreError | SqlError
        > = !isPg
          ? alongside !== undefined || !single
            ? direct !== undefined && directTransaction !== undefined
              ? Effect.suspend(() => {
                  // The first try's outcome, then a try of its own each time (a busy lock's retries).
                  const done = firstTry
                    ? atOnce
                    : appendAtOnce(directTransaction, streamId, aggregateId, encoded, expected, createdAt, direct)
                  firstTry = false
                  if (done === undefined) return writeTransaction(insertThen)
                  if (done._tag === "Failed") return Effect.fail(done.error)
                  return done.after === undefined ? Effect.succeed(done.result) : Effect.as(done.after, done.result)
                })
              : writeTransaction(insertThen)
            : insert
          : Effect.withFiberRuntime((fiber) => {
              // On PostgreSQL a lone statement outside any transaction takes the lock and sends the notification itself
              // (and runs the alongside's own statement, when it has one), or finds the lock taken and leaves the append
              // to the transaction way (see `appendStatement`). Inside a caller's transaction the append keeps its
              // savepoint: a refused insert must not abort the caller's transaction. An append at "any" sequence keeps
              // its transaction too: reading the last sequence after the lock, never from an older snapshot, is what
              // lets it always succeed. An alongside without a statement is an effect: a transaction of its own.
              const transactionWay = pgAppend(streamId, aggregateId, insertThen)
              const inTransaction = Option.isSome(
                Context.getOption(fiber.currentContext, SqlClient.TransactionConnection)
              )
              const statement = alongside?.statement
              if (
                !single ||
                inTransaction ||
                expected === "any" ||
                (alongside !== undefined && statement === undefined)
              )
                return transactionWay
              return Effect.catchTag(
                insertAll(streamId, aggregateId, encoded, expected, createdAt, "standalone", statement),
                "LockBusy",
                ({
                  seen
                }): Effect.Effect<
                  AppendResult,
                  Refused | UniqueViolation | SequenceConflict | EventStoreError | SqlError
                > =>
                  options?.whenBusy === "refuse"
                    ? Effect.fail(
                        new SequenceConflict({
                          streamId,
                          aggregateId,
                          expected,
                          actual: seen ?? (expected === "no-stream" ? 0 : Number(expected)),
                          busy: true
                        })
                      )
                    : transactionWay
              )
            })
        return written.pipe(
          retryBusy,
          Effect.catchTags({
            // Refused: the expected sequence did not match. UniqueViolation: a writer that bypassed this store's lock,
            // or (PostgreSQL, one statement) a sequence read from a snapshot older than an append that committed just
            // before the statement took the lock. Either way, report where the aggregate really is.
            // A statement that saw the aggregate past the expected sequence said where: no query needed. (One that saw
            // it behind may have read before an append that just committed: ask.)
            Refused: ({ seen }) =>
              seen !== undefined && seen > (expected === "no-stream" ? 0 : Number(expected))
                ? Effect.fail(new SequenceConflict({ streamId, aggregateId, expected, actual: seen }))
                : conflictNow(streamId, aggregateId, expected),
            UniqueViolation: () => conflictNow(streamId, aggregateId, expected),
            SqlError: toStoreError("append")
          }),
          Effect.tap((result) => remember(streamId, aggregateId, encoded, result, createdAt)),
          Effect.zipLeft(wakeUp.signal)
        )
      })
    }

    /**
     * Hands a committed append to this process's subscribers (see `RecentEvents`). Not inside a caller's transaction:
     * it has not committed yet, and may not.
     */
    const remember = (
      streamId: string,
      aggregateId: string,
      encoded: ReadonlyArray<EncodedEvent>,
      result: AppendResult,
      createdAt: number
    ) =>
      Effect.withFiberRuntime<void>((fiber) => {
        if (Option.isSome(Context.getOption(fiber.currentContext, SqlClient.TransactionConnection))) return Effect.void
        recent.add(appendedRows(streamId, aggregateId, encoded, result, createdAt))
        return Effect.void
      })

    // No generator and no call-site stack trace here: on SQLite an append is a few tens of microseconds of work, and
    // each of those cost a noticeable share of it.
    const append = (
      streamId: string,
      aggregateId: string,
      events: ReadonlyArray<NewEvent>,
      expected: ExpectedSequence,
      alongside?: AppendAlongside,
      options?: AppendOptions
    ): Effect.Effect<AppendResult, SequenceConflict | EventStoreError> =>
      Effect.suspend(() => {
        const encoded = encodeAppend(streamId, aggregateId, events, expected)
        return Either.isLeft(encoded)
          ? Effect.fail(encoded.left)
          : appendEncoded(streamId, aggregateId, encoded.right, expected, alongside, options)
      }).pipe((effect) =>
        hotSpanWith(effect, "EventStore.append", () => ({ streamId, aggregateId, events: events.length }))
      )

    const conflictNow = (streamId: string, aggregateId: string, expected: ExpectedSequence) =>
      Effect.flatMap(
        lastSequence(streamId, aggregateId),
        (actual) => new SequenceConflict({ streamId, aggregateId, expected, actual })
      )

    /**
     * The page of one aggregate's events after a sequence: the query a writer catching up on a session runs (the
     * events since its cached state), as one text prepared once (a named statement on PostgreSQL) rather than built
     * and compiled from fragments at each read.
     */
    const aggregatePageText = `SELECT ${
      isPg
        ? "position, stream_id, aggregate_id, sequence, event_type, event_version, data, metadata, (extract(epoch from created_at) * 1000)::bigint AS created_at"
        : "position, stream_id, aggregate_id, sequence, event_type, event_version, data, metadata, created_at"
    } FROM events WHERE stream_id = ${isPg ? "$1" : "?"} AND aggregate_id = ${isPg ? "$2" : "?"} AND sequence > ${
      isPg ? "$3" : "?"
    } ORDER BY sequence LIMIT ${pageSize}`
    const aggregatePage =
      (streamId: string, aggregateId: string, after: number) =>
      (cursor: number): Effect.Effect<Page, EventStoreError> =>
        runStatement(
          aggregatePageText,
          [streamId, aggregateId, Math.max(cursor, after)],
          "event_store_aggregate_page"
        ).pipe(
          retryBusy,
          Effect.mapError(toStoreError("read")),
          Effect.map((rows): Page => decodePage(rows, rowToRaw, pageSize, !isPg))
        )

    /** Where a read starts, how it fetches the page after a cursor, and the cursor after an event. */
    const paging = (query: LoadQuery) => {
      if (
        query.aggregateId !== undefined &&
        query.eventTypes === undefined &&
        query.toSequence === undefined &&
        query.afterPosition === undefined
      ) {
        return {
          start: 0,
          fetch: aggregatePage(query.streamId, query.aggregateId, (query.fromSequence ?? 1) - 1),
          cursorAfter: (last: StoredEvent) => last.sequence
        }
      }
      const bounds = [
        ...(query.fromSequence === undefined ? [] : [sql`sequence >= ${query.fromSequence}`]),
        ...(query.toSequence === undefined ? [] : [sql`sequence <= ${query.toSequence}`]),
        ...(query.afterPosition === undefined ? [] : [sql`position > ${query.afterPosition}`])
      ]
      const where = [...filters(query), ...bounds]
      return query.aggregateId === undefined
        ? {
            start: query.afterPosition ?? 0,
            fetch: pageQuery("read", where, "position"),
            cursorAfter: (last: StoredEvent) => last.position
          }
        : {
            start: 0,
            fetch: pageQuery("read", where, "sequence"),
            cursorAfter: (last: StoredEvent) => last.sequence
          }
    }

    const read = (query: LoadQuery): Stream.Stream<StoredEvent, ReadError> => {
      if (query.eventTypes !== undefined && query.eventTypes.length === 0) return Stream.empty
      const { start, fetch, cursorAfter } = paging(query)
      return Stream.withSpan(pagedRead(start, fetch, cursorAfter), "EventStore.read")
    }

    const load = (query: LoadQuery): Effect.Effect<ReadonlyArray<StoredEvent>, ReadError> => {
      if (query.eventTypes !== undefined && query.eventTypes.length === 0) return Effect.succeed([])
      const { start, fetch, cursorAfter } = paging(query)
      return hotSpanWith(pagedLoad(start, fetch, cursorAfter), "EventStore.load", () => ({ ...query }))
    }

    /** Starts LISTEN once, on the first subscription, and waits until it is active (see `internal/activeListen.ts`). */
    const startListening =
      options.listen === undefined
        ? Effect.void
        : yield* ActiveListen.make({
            sql,
            listen: options.listen,
            channel,
            scope,
            what: "event store",
            onPayload: (payload) => {
              // The append's rows, or its last position (see `notifiedRows`). One of this process's own appends woke
              // the subscribers when it returned: its notification would only wake them for nothing.
              const rows = notifiedRows(payload)
              const first = rows === undefined ? Number(payload) : (rows[0]?.position ?? 0)
              if (recent.has(first)) return Effect.void
              if (rows !== undefined) recent.add(rows)
              return wakeUp.signal
            },
            // Appends notified while LISTEN was down reached nobody: the subscribers read the table.
            onRestart: wakeUp.signal
          })

    /**
     * PostgreSQL: the high-water mark (see `internal/highWater.ts`). Its probe and the fresh transaction id run on a
     * connection of their own, never in a caller's transaction, whose snapshot and id would be older than they must be.
     */
    const outsideTransaction = (name: string, text: string, params: ReadonlyArray<unknown>) =>
      prepared !== undefined
        ? prepared(name, text, params)
        : Effect.scoped(Effect.flatMap(sql.reserve, (connection) => connection.execute(text, params, undefined)))
    const highWater = isPg
      ? yield* HighWater.make({
          probe: (after: number) =>
            outsideTransaction("event_store_high_water", highWaterProbe, [after]).pipe(
              Effect.mapError(toStoreError("read the high-water mark")),
              Effect.flatMap(decodeProbe)
            ),
          freshXid: outsideTransaction("event_store_fresh_xid", "SELECT pg_current_xact_id()::text AS xid", []).pipe(
            Effect.mapError(toStoreError("read the high-water mark")),
            Effect.flatMap((rows) => {
              const xid: unknown =
                typeof rows[0] === "object" && rows[0] !== null ? Reflect.get(rows[0], "xid") : undefined
              return typeof xid === "string" && /^\d+$/.test(xid)
                ? Effect.succeed(BigInt(xid))
                : Effect.fail(
                    new EventStoreError({ operation: "read the high-water mark", reason: "no transaction id" })
                  )
            })
          ),
          known: recent.has
        })
      : undefined

    /** The page after a cursor up to the high-water mark, and what the mark says of the rows beyond it. */
    const boundedPage = (
      mark: Effect.Effect<HighWater.Mark, EventStoreError>,
      fetch: (cursor: number, upTo?: number) => Effect.Effect<Page, EventStoreError>
    ) => {
      return (cursor: number): Effect.Effect<Page, EventStoreError> =>
        Effect.flatMap(mark, ({ safe, stalled }) =>
          safe <= cursor
            ? Effect.succeed<Page>({ events: [], corrupt: undefined, full: false, stalled })
            : Effect.map(fetch(cursor, safe), (page): Page => (page.full ? page : { ...page, stalled, through: safe }))
        )
    }

    const subscribe = (query: SubscribeQuery): Stream.Stream<StoredEvent, ReadError> => {
      if (query.eventTypes !== undefined && query.eventTypes.length === 0) return Stream.never
      const where = filters(query)
      return Stream.unwrap(
        Effect.as(
          startListening,
          liveRead({
            afterPosition: query.afterPosition ?? 0,
            fetchAfter:
              highWater === undefined
                ? pageQuery("subscribe", where, "position")
                : boundedPage(highWater.advance, pageQuery("subscribe", where, "position", true)),
            wakeUp,
            recent: { events: recent, matches: matchesQuery(query) }
          })
        )
      ).pipe(Stream.withSpan("EventStore.subscribe"))
    }

    const checkpoint = Effect.fn("EventStore.checkpoint")((consumer: string) =>
      sql`SELECT position AS value FROM event_checkpoints WHERE consumer = ${consumer}`.pipe(
        retryBusy,
        Effect.mapError(toStoreError("read a checkpoint")),
        Effect.flatMap((rows) =>
          rows.length === 0
            ? Effect.succeed(Option.none())
            : Effect.map(singleInt("read a checkpoint", rows), Option.some)
        )
      )
    )

    const saveCheckpoint = (consumer: string, position: number) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) =>
          sql`INSERT INTO event_checkpoints (consumer, position, updated_at) VALUES (${consumer}, ${position}, ${timestamp(now)})
              ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`
      )

    const consume = <E, R>(
      consumer: string,
      query: Omit<SubscribeQuery, "afterPosition">,
      handle: (event: StoredEvent) => Effect.Effect<void, E, R>,
      options: ConsumeOptions<E, R> = {}
    ): Effect.Effect<never, E | ReadError, R> => {
      /** `effect` and the checkpoint at `position`, in one write transaction. */
      const withCheckpoint = (effect: Effect.Effect<void, E, R>, position: number) =>
        writeTransaction(
          effect.pipe(
            Effect.mapError((error) => new HandlerFailed(error)),
            Effect.zipRight(saveCheckpoint(consumer, position))
          )
        ).pipe(
          retryBusy,
          Effect.catchTags({
            HandlerFailed: (failed: HandlerFailed<E>) => Effect.fail(failed.error),
            SqlError: (error: SqlError) => Effect.fail(toStoreError("save a checkpoint")(error))
          })
        )
      const { onCorrupt } = options
      /** Consumes from `after` until a row cannot be read: then, with `onCorrupt`, the position to go on after. */
      const from = (after: number): Effect.Effect<number, E | ReadError, R> =>
        Stream.runForEach(subscribe({ ...query, afterPosition: after }), (event) =>
          // Wrapped while the subscription's own failures are looked at: a `CorruptEvent` the handler fails with is
          // its failure, not a row the subscription could not read.
          Effect.mapError(withCheckpoint(handle(event), event.position), (error) => new HandlerFailed(error))
        ).pipe(
          Effect.zipRight(Effect.dieMessage("a subscription ended")),
          Effect.catchIf(
            (error): error is CorruptEvent => onCorrupt !== undefined && error instanceof CorruptEvent,
            (corrupt) =>
              Effect.as(withCheckpoint(onCorrupt?.(corrupt) ?? Effect.void, corrupt.position), corrupt.position)
          ),
          Effect.mapError((error) => (error instanceof HandlerFailed ? error.error : error))
        )
      return Effect.gen(function* () {
        let after = Option.getOrElse(yield* checkpoint(consumer), () => 0)
        for (;;) after = yield* from(after)
      }).pipe(Effect.withSpan("EventStore.consume", { attributes: { consumer } }))
    }

    return {
      append,
      read,
      load,
      lastSequence,
      headPosition: (highWater === undefined
        ? sql`SELECT coalesce(max(position), 0) AS value FROM events`.pipe(
            retryBusy,
            Effect.mapError(toStoreError("read the head position")),
            Effect.flatMap((rows) => singleInt("read the head position", rows))
          )
        : // On PostgreSQL the high-water mark: a position below it may still commit, one at or below never will.
          // Positions beyond a gap wait (briefly, as a rule) for the gap to fill or to be known final.
          settledMark(highWater.advance, 100)
      ).pipe(Effect.withSpan("EventStore.headPosition")),
      aggregates: Effect.fn("EventStore.aggregates")((streamId: string, page?: AggregatePage) =>
        sql`SELECT aggregate_id, max(sequence) AS last_sequence,
              ${epochMs("min(created_at)")} AS first_created_at, ${epochMs("max(created_at)")} AS last_created_at,
              min(position) AS first_position
            FROM events WHERE stream_id = ${streamId}
            GROUP BY aggregate_id ORDER BY max(position) DESC${
              page === undefined
                ? sql``
                : sql` LIMIT ${Math.max(0, Math.floor(page.limit))} OFFSET ${Math.max(0, Math.floor(page.offset))}`
            }`.pipe(
          retryBusy,
          Effect.mapError(toStoreError("list aggregates")),
          Effect.flatMap((rows) =>
            decodeAggregateRows(rows).pipe(
              Either.map((decoded) =>
                decoded.map(
                  (row): AggregateInfo => ({
                    streamId,
                    aggregateId: row.aggregate_id,
                    lastSequence: row.last_sequence,
                    firstCreatedAt: row.first_created_at,
                    lastCreatedAt: row.last_created_at,
                    firstPosition: row.first_position
                  })
                )
              ),
              Either.mapLeft(
                (error) =>
                  new EventStoreError({ operation: "list aggregates", reason: `unexpected rows: ${error.message}` })
              )
            )
          )
        )
      ),
      deleteAggregate: (
        streamId: string,
        aggregateId: string,
        expected: number
      ): Effect.Effect<number, SequenceConflict | EventStoreError> => {
        const remove: Effect.Effect<number, SequenceConflict | EventStoreError | SqlError> = Effect.flatMap(
          currentSequence(streamId, aggregateId),
          (actual): Effect.Effect<number, SequenceConflict | EventStoreError | SqlError> =>
            actual !== expected
              ? Effect.fail(new SequenceConflict({ streamId, aggregateId, expected, actual }))
              : Effect.as(
                  sql`DELETE FROM events WHERE stream_id = ${streamId} AND aggregate_id = ${aggregateId}`,
                  actual
                )
        )
        return retryBusy(writeTransaction(remove)).pipe(
          Effect.catchTag("SqlError", (error: SqlError) =>
            Effect.fail(toStoreError("delete an aggregate's events")(error))
          ),
          Effect.withSpan("EventStore.deleteAggregate", { attributes: { streamId, aggregateId } })
        )
      },
      aggregateCount: Effect.fn("EventStore.aggregateCount")((streamId: string) =>
        sql`SELECT count(DISTINCT aggregate_id) AS value FROM events WHERE stream_id = ${streamId}`.pipe(
          retryBusy,
          Effect.mapError(toStoreError("count aggregates")),
          Effect.flatMap((rows) => singleInt("count aggregates", rows))
        )
      ),
      subscribe,
      checkpoint,
      consume
    }
  })

/** Migrates, then provides the store over the `SqlClient` in context. */
export const layer = (options?: SqlEventStoreOptions): Layer.Layer<EventStore, EventStoreError, SqlClient.SqlClient> =>
  Layer.scoped(EventStore, Effect.zipRight(migrate, make(options)))
