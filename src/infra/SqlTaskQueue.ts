/**
 * The `TaskQueue` over `@effect/sql`, for SQLite and PostgreSQL alike, on the event store's `SqlClient` and its
 * `planner_jobs` table (migration 0003, run by the event store's `migrate`). Dialect differences stay in this file,
 * behind `sql.onDialectOrElse`.
 *
 * Why not `@effect/sql`'s `SqlPersistedQueue`: it has the right bones (`FOR UPDATE SKIP LOCKED`, one statement that
 * refreshes all of a worker's locks) but not the semantics this queue needs. It polls (every second by default) with
 * no LISTEN/NOTIFY, so a job would wait up to a poll interval on the hot path; its lock times come from the database's
 * `NOW()`, so neither lease expiry nor backoff can be driven by a test clock; it has no `run_at`, so retry backoff
 * would need a timer in every worker; it creates its table when its layer starts instead of through the store's
 * migrations; one worker id per process, and its elements are handed out through an in-process mailbox rather than
 * taken by the caller in one statement. The statements here follow its style.
 *
 * Taking: PostgreSQL picks due rows with `FOR UPDATE SKIP LOCKED` and stamps the lease in the same statement;
 * SQLite does it in one `UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`, its own short write transaction.
 * Times are epoch milliseconds from the `Clock`, passed as parameters.
 *
 * Wake-ups: an enqueue (or a release) signals this process's waiters at once (an enqueue among an append's statements
 * on SQLite, `changesDirect`, once the append's transaction has committed). On PostgreSQL it also sends
 * `SELECT pg_notify(...)` in the same statement, so when it runs inside the writer's transaction the notification is
 * delivered on commit, and every process LISTENs (`PgClient.notify` is broken in this stack, hence `pg_notify`). A
 * waiter first looks whether a job is due or when the next one falls due (a backoff's `run_at`, a lease running out),
 * and sleeps until then, until woken, or until the slow safety-net poll: on PostgreSQL that poll only covers lost
 * notifications; on SQLite it is how a process learns of another process's jobs.
 *
 * Leases need not be durable, nor reports. A take, a lease extension or a report outside a caller's transaction
 * commits on PostgreSQL with `synchronous_commit` off for that transaction alone (`set_config(..., true)` inside the
 * statement): its commit is visible at once but does not wait for the WAL flush, which on a busy disk is most of a
 * take's time. A server crash can lose the last few hundred milliseconds of such commits. A lost take leaves the job
 * takeable again, as an expired lease would. A lost report leaves the job under its worker's name as if the attempt
 * still ran; the worker no longer runs it, so its lease keeper ends that lease (`lapse`) and the attempt counts as
 * lost, as if the worker had died before reporting. It cannot be half lost: the writer records a report with a
 * durable commit, and a flush of the write-ahead log flushes everything before it, so a report the log holds is one
 * the queue holds. Nothing is lost that the queue's at-least-once delivery (and the writer accepting one outcome per
 * attempt) does not already cover. Enqueue, complete, release, lapse and replace stay durable. `durableLeases` turns
 * it off. Measured on the scale benchmark with four workers: PostgreSQL's CPU per task 1.15-1.20 ms against
 * 1.32-1.50 ms with durable reports (docs/performance.md, 2026-12-05 afternoon).
 *
 * Reports (PostgreSQL, `reports`): a worker that is not its session's writer stores its outcome in the job's row,
 * notifies the session's writer (the notification carries the report when it fits) and takes its next jobs, in one
 * statement, which stores every report the worker has ready at once; the writer of each session is a row of
 * `planner_session_writers` under a lease. Each writer listens on a channel of its own (`writerChannel`), and the
 * statement notifies the channel of the writer it finds for the report's session, so a report wakes one process, not
 * every worker that ever wrote a session: with one channel for all, each of N workers read every report of the others.
 * SQLite has no notification across processes (a writer there would wait for the poll), so its workers append their
 * outcomes themselves.
 *
 * SQLite across processes: the busy timeout, then retries with backoff, as the event store does.
 */
import { createHash } from "node:crypto"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import type { PgClientConfig } from "@effect/sql-pg/PgClient"
import { Clock, Duration, Effect, Layer, Option, type Scope, type Stream } from "effect"
import { type NodeKind, nodeKinds } from "../domain/Task.js"
import type { AlongsideDirect, AlongsideStatement } from "./EventStore.js"
import * as ActiveListen from "./internal/activeListen.js"
import { makeWakeUp, type WakeUp } from "./internal/eventStore.js"
import { retryWhileBusy } from "./internal/sqliteBusy.js"
import { withTransaction } from "./internal/transaction.js"
import {
  type AlongsideTake,
  checkSession,
  type EnqueueOptions,
  type Job,
  type JobKey,
  jobKeyString,
  type ListedJob,
  type OutcomeReports,
  type PendingReport,
  type QueueChanges,
  type Reported,
  type ReportedOutcome,
  reportsPerGroup,
  type TakenJob,
  type TakeOptions,
  TaskQueue,
  TaskQueueError,
  type TaskQueueService,
  type WorkerAnnouncement,
  type WorkerRegistry
} from "./TaskQueue.js"
import { hotFn } from "./Tracing.js"

export interface SqlTaskQueueOptions {
  /** PostgreSQL: LISTEN for other processes' enqueues. Defaults to the `PgClient`'s own `listen` when the client is one. */
  readonly listen?: (channel: string) => Stream.Stream<string, SqlError>
  /** The safety-net poll of `awaitWork`; defaults to 3 seconds on PostgreSQL and 1 second on SQLite. */
  readonly pollInterval?: Duration.DurationInput
  /** The NOTIFY channel; defaults to "planner_jobs". */
  readonly channel?: string
  /**
   * PostgreSQL: make takes, lease extensions and reports wait for the disk like every other commit. Off by default: a
   * lease lost to a server crash only lets the job be taken again, which an expired lease does anyway, and a lost
   * report only loses its attempt, as a worker dying before it reported would (see the module comment).
   */
  readonly durableLeases?: boolean
  /**
   * PostgreSQL: runs a statement as a named prepared statement (`name` always comes with the same text), as the event
   * store's appends do; `PgEventStore` passes its pool's. A take is then planned once per connection instead of on
   * every call. Without it, takes run unnamed through the client (the same text).
   */
  readonly prepared?: (
    name: string,
    text: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<unknown>, SqlError>
  /**
   * PostgreSQL: how many dead row versions of ended jobs `reclaim` lets the table gather before it vacuums it (and
   * never fewer than a quarter of the live rows). Default 1,000.
   */
  readonly reclaimAfter?: number
}

const defaultChannel = "planner_jobs"
const wakeUps = new WeakMap<SqlClient.SqlClient, WakeUp>()
/** Rows per INSERT statement: well under both databases' bound-parameter limits (6 per row). */
const insertChunk = 500
/** Jobs per DELETE of `complete` (3 parameters each). */
const completeChunk = 300
/** At most this many jobs completed inside an append's statement: each count is a statement prepared per connection. */
const completeAlongsideLimit = 16
/** See `SqlTaskQueueOptions.reclaimAfter`. */
const defaultReclaimAfter = 1_000

interface JobRow {
  readonly id: number | string
  readonly session_id: string
  readonly task_id: number
  readonly attempt: number
  readonly kind: NodeKind
  readonly run_at: number | string
  readonly payload: string
  readonly worker_id: string | null
  readonly lease_expires_at: number | string | null
  readonly takes: number
  /** `list` only: whether the job's outcome was reported (PostgreSQL gives a boolean, SQLite 0 or 1). */
  readonly reported?: boolean | number
}

const causeText = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)

const toQueueError = (operation: string) => (error: SqlError) =>
  new TaskQueueError({
    operation,
    reason: error.cause === undefined ? error.message : `${error.message}: ${causeText(error.cause)}`
  })

const run = <A>(operation: string, statement: Effect.Effect<A, SqlError>): Effect.Effect<A, TaskQueueError> =>
  retryWhileBusy(statement).pipe(Effect.mapError(toQueueError(operation)))

/** A job's payload as the JSON text of its row; throws when it is not JSON. */
const payloadText = (job: Job): string => {
  const text = JSON.stringify(job.payload ?? null)
  if (text === undefined) throw new Error("it is not JSON")
  return text
}

/** SQLite, `changesDirect`: one job's statements, prepared once by the connection. */
const directComplete = "DELETE FROM planner_jobs WHERE session_id = ? AND task_id = ? AND attempt = ?"
const directEnqueue = `INSERT INTO planner_jobs (session_id, task_id, attempt, kind, run_at, payload)
  VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, task_id, attempt) DO NOTHING RETURNING kind`
const directEnqueueTaken = `INSERT INTO planner_jobs
  (session_id, task_id, attempt, kind, run_at, payload, worker_id, lease_expires_at, takes)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (session_id, task_id, attempt) DO NOTHING`

const encodePayload = (operation: string, job: Job): Effect.Effect<string, TaskQueueError> =>
  Effect.try({
    try: () => payloadText(job),
    catch: (cause) =>
      new TaskQueueError({
        operation,
        reason: `the payload of job ${jobKeyString(job)} cannot be stored as JSON (${causeText(cause)}); pass plain data`
      })
  })

/** A row as a job; throws when its payload is not JSON. */
const rowToJob = (row: JobRow): ListedJob => ({
  sessionId: row.session_id,
  taskId: Number(row.task_id),
  attempt: Number(row.attempt),
  kind: row.kind,
  runAt: Number(row.run_at),
  payload: JSON.parse(row.payload),
  ...(row.worker_id === null ? {} : { workerId: row.worker_id }),
  ...(row.lease_expires_at === null ? {} : { leaseExpiresAt: Number(row.lease_expires_at) }),
  ...(row.reported === true || row.reported === 1 ? { reported: true as const } : {})
})

const unreadablePayload = (operation: string, row: JobRow, cause: unknown) =>
  new TaskQueueError({
    operation,
    reason: `the stored payload of job ${row.session_id}/${row.task_id}/${row.attempt} is not JSON (${causeText(cause)}); rebuild the session's jobs from its log`
  })

const decodeRow = (operation: string, row: JobRow): Effect.Effect<ListedJob, TaskQueueError> =>
  Effect.try({ try: () => rowToJob(row), catch: (cause) => unreadablePayload(operation, row, cause) })

/** Rows a take returned, as the jobs taken, oldest `runAt` first; a row whose payload is not JSON is left to its lease. */
const decodeTaken = (rows: ReadonlyArray<JobRow>, workerId: string, leaseExpiresAt: number): Array<TakenJob> => {
  const taken: Array<TakenJob> = []
  for (const row of rows) {
    try {
      taken.push({ ...rowToJob(row), workerId, leaseExpiresAt, takes: Number(row.takes) })
    } catch {
      // Its payload is not JSON: `list` and `planner doctor` name it; the job is left to its lease.
    }
  }
  return taken.sort((a, b) => a.runAt - b.runAt)
}

/** A stored report, parsed; text that is not JSON stays text, for the writer to find it unreadable. */
const parseReport = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** The kinds a worker announced, as stored (JSON): those this planner knows; none when the text is not readable. */
const announcedKinds = (text: string): ReadonlyArray<NodeKind> => {
  try {
    const parsed: unknown = JSON.parse(text)
    if (!Array.isArray(parsed)) return []
    return parsed.filter((kind, index): kind is NodeKind => nodeKinds.includes(kind) && parsed.indexOf(kind) === index)
  } catch {
    return []
  }
}

/** PostgreSQL: a FROM item that lets the statement's commit skip waiting for the disk (see `durableLeases`). */
const relaxedCommit = "(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"

/** The columns a take returns. */
const takenColumns = "id, session_id, task_id, attempt, kind, run_at, payload, worker_id, lease_expires_at, takes"

/**
 * PostgreSQL: the UPDATE that takes due jobs for a worker, shared by `take`, the take that comes with an outcome's
 * append (`completeAlongside`) and the one that comes with a report. Its parameters start at `$first`: now, the limit,
 * the worker, its lease's end, then the kinds (an array) and the session when filtered on. `extra` is a further
 * condition on the rows picked (a job the same statement completes or reports is not taken), `from` a FROM item.
 *
 * The rows are picked by an `ARRAY(...)` sub-select, which PostgreSQL runs once, before the update. With
 * `id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` the planner may run the sub-select again for each row it
 * considers (a nested loop, its inner side rescanned); each run skips the rows the statement has already updated and
 * picks the next n, so one take could take every due job: a worker of concurrency 4 was seen starting 400 attempts at
 * once, with a plan PostgreSQL chose from the job table's statistics of the moment.
 */
const takeUpdate = (
  first: number,
  filter: { readonly byKind: boolean; readonly bySession: boolean },
  extra = "",
  from = ""
): string => {
  const at = (offset: number) => `$${first + offset}`
  const filters = [
    ...(filter.byKind ? [`AND kind = ANY(${at(4)}::text[])`] : []),
    ...(filter.bySession ? [`AND session_id = ${at(filter.byKind ? 5 : 4)}::text`] : [])
  ]
  return `
    UPDATE planner_jobs SET worker_id = ${at(2)}::text, lease_expires_at = ${at(3)}::bigint,
      takes = planner_jobs.takes + 1
    ${from === "" ? "" : `FROM ${from}`}
    WHERE planner_jobs.id = ANY(ARRAY(
      SELECT id FROM planner_jobs
      WHERE run_at <= ${at(0)}::bigint AND (lease_expires_at IS NULL OR lease_expires_at <= ${at(0)}::bigint)
        AND report IS NULL ${extra} ${filters.join(" ")}
      ORDER BY run_at, id LIMIT ${at(1)}::bigint FOR UPDATE SKIP LOCKED))
    RETURNING ${takenColumns.replace("id,", "planner_jobs.id,")}`
}

/** The parameters of `takeUpdate`, in its order. */
const takeParams = (options: TakeOptions, now: number): ReadonlyArray<unknown> => [
  now,
  Math.floor(options.limit),
  options.workerId,
  now + options.leaseMs,
  ...(options.kinds === undefined ? [] : [options.kinds]),
  ...(options.sessionId === undefined ? [] : [options.sessionId])
]

/** A name for a statement shape that takes, by its filters. */
const takeShape = (options: TakeOptions): string =>
  `${options.kinds === undefined ? "" : "_by_kind"}${options.sessionId === undefined ? "" : "_by_session"}`

const statementTexts = new Map<string, string>()

/** A statement's name and text: the text built once per name (a name always comes with the same text). */
const statement = (name: string, build: () => string): readonly [string, string] => {
  let text = statementTexts.get(name)
  if (text === undefined) {
    text = build()
    statementTexts.set(name, text)
  }
  return [name, text]
}

/**
 * PostgreSQL: the take's statement, its name (when prepared) and text, one per filter combination. `relaxed`: its
 * commit does not wait for the disk (see `durableLeases`).
 */
const takeStatement = (options: TakeOptions, relaxed: boolean): readonly [string, string] =>
  statement(`planner_jobs_take${takeShape(options)}${relaxed ? "_relaxed" : ""}`, () =>
    takeUpdate(
      1,
      { byKind: options.kinds !== undefined, bySession: options.sessionId !== undefined },
      "",
      relaxed ? relaxedCommit : ""
    )
  )

/** Whether a take's options take nothing at all. */
const takesNothing = (options: TakeOptions | undefined): boolean =>
  options === undefined || options.limit <= 0 || options.kinds?.length === 0

/** PostgreSQL refuses a notification's payload of 8,000 bytes or more. */
const noticeLimit = 7_900

/**
 * What a report's notification says: the report itself, as JSON, when it fits a notification; else the session's id
 * alone, and the writer reads the report back (`pending`).
 */
const reportNotice = (key: JobKey, workerId: string, outcome: string): string => {
  const notice = `{"sessionId":${JSON.stringify(key.sessionId)},"taskId":${key.taskId},"attempt":${key.attempt},"workerId":${JSON.stringify(workerId)},"outcome":${outcome}}`
  return notice.length * 3 < noticeLimit || Buffer.byteLength(notice) < noticeLimit ? notice : key.sessionId
}

/** PostgreSQL keeps a channel's name to 63 bytes, and refuses a notification to a longer one. */
const maxChannelLength = 63
/** How much of a hash of the writer's id names its channel: 64 bits, a collision only a stray notification. */
const writerHashLength = 16

/** The part of the writers' channels that comes from the queue's channel, short enough for the hash to follow. */
const writersPrefix = (channel: string): string => `${channel}_reports_`.slice(0, maxChannelLength - writerHashLength)

/**
 * The channel a session writer listens on for its sessions' reports: the prefix and the first 16 hex digits of the
 * SHA-256 of its id, as the report's statement computes it from the writer's row
 * (`left(encode(sha256(convert_to(worker_id, 'UTF8')), 'hex'), 16)`).
 */
export const writerChannel = (channel: string, workerId: string): string =>
  `${writersPrefix(channel)}${createHash("sha256").update(workerId, "utf8").digest("hex").slice(0, writerHashLength)}`

/** A report's notification read back: the report it carries, or the session it names (see `reportNotice`). */
export const readNotice = (payload: string): { readonly sessionId: string; readonly report?: PendingReport } => {
  if (payload.startsWith("{")) {
    try {
      const notice: unknown = JSON.parse(payload)
      if (typeof notice === "object" && notice !== null) {
        const { sessionId, taskId, attempt, workerId } = notice as Record<string, unknown>
        if (
          typeof sessionId === "string" &&
          typeof workerId === "string" &&
          Number.isInteger(taskId) &&
          Number.isInteger(attempt) &&
          "outcome" in notice
        ) {
          return {
            sessionId,
            report: {
              key: { sessionId, taskId: taskId as number, attempt: attempt as number },
              workerId,
              outcome: (notice as { readonly outcome: unknown }).outcome
            }
          }
        }
      }
    } catch {
      // Not a notice of a report: a session whose id begins with a brace.
    }
  }
  return { sessionId: payload }
}

const chunks = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> => {
  const result: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size))
  return result
}

/** The settings of a `PgClient` (read without loading `@effect/sql-pg`, which a SQLite process never needs). */
const pgConfigOf = (client: SqlClient.SqlClient): PgClientConfig | undefined => {
  const config: unknown = Reflect.get(client, "config")
  return typeof config === "object" && config !== null ? (config as PgClientConfig) : undefined
}

/**
 * The queue over the `SqlClient` in context, which must already be migrated (the event store's layers do it). Lives in
 * the scope: the PostgreSQL LISTEN connection, once a waiter starts it, is closed with it.
 */
export const make = (
  options: SqlTaskQueueOptions = {}
): Effect.Effect<TaskQueueService, TaskQueueError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    const client = yield* SqlClient.SqlClient
    const sql = client.withoutTransforms()
    const dialect = yield* sql.onDialectOrElse({
      pg: () => Effect.succeed("pg" as const),
      sqlite: () => Effect.succeed("sqlite" as const),
      orElse: () =>
        Effect.fail(new TaskQueueError({ operation: "start", reason: "only SQLite and PostgreSQL are supported" }))
    })
    const pg = dialect === "pg"
    const channel = options.channel ?? defaultChannel
    const prepared = pg ? options.prepared : undefined
    const pollInterval = Duration.decode(options.pollInterval ?? (pg ? "3 seconds" : "1 second"))
    // Without one given, LISTEN on a connection of its own made with the client's settings, which says when it is
    // lost (`PgPool.listener`; the client's own `listen` never does).
    const pgConfig = pg ? pgConfigOf(client) : undefined
    const listen =
      options.listen ??
      (pgConfig === undefined
        ? undefined
        : yield* Effect.flatMap(
            Effect.promise(() => import("./internal/pgPool.js")),
            (PgPool) => PgPool.listener(PgPool.connectionOptions(pgConfig))
          ))
    const scope = yield* Effect.scope
    // Queues built over one client in one process share their wake-ups: a second `make` on the event store's client
    // must not leave its waiters to the poll.
    const wakeUp =
      wakeUps.get(client) ?? (yield* Effect.tap(makeWakeUp, (made) => Effect.sync(() => wakeUps.set(client, made))))
    const instanceId = crypto.randomUUID()

    const columns = sql.literal(
      "id, session_id, task_id, attempt, kind, run_at, payload, worker_id, lease_expires_at, takes"
    )
    const kindFilter = (kinds: ReadonlyArray<NodeKind> | undefined) =>
      kinds === undefined ? sql.literal("") : sql`AND kind IN ${sql.in(kinds)}`
    const sessionFilter = (sessionId: string | undefined) =>
      sessionId === undefined ? sql.literal("") : sql`AND session_id = ${sessionId}`
    /** A notification (PostgreSQL) of jobs that became takeable, delivered when the surrounding transaction commits. */
    const notify = (origin: string, kinds: ReadonlyArray<string>): Effect.Effect<unknown, SqlError> =>
      pg && kinds.length > 0
        ? sql`SELECT pg_notify(${channel}, ${`${origin} ${[...new Set(kinds)].join(",")}`})`
        : Effect.void
    /**
     * Who wakes this process's waiters after a write. Outside a transaction the write is committed when it returns:
     * this instance signals them itself, and ignores its own notification when it comes back (`origin` is its id). In
     * the caller's transaction on PostgreSQL the rows are not visible before the commit, so the notification, which is
     * delivered on commit, wakes every process, this one included. (SQLite has one connection per process: a waiter's
     * look waits for the transaction to end, so signalling at once is right there.)
     */
    const wakeOrigin = Effect.map(Effect.serviceOption(SqlClient.TransactionConnection), (transaction) =>
      pg && Option.isSome(transaction) ? "commit" : instanceId
    )
    const wakeHere = (origin: string) => (origin === instanceId ? wakeUp.signal : Effect.void)
    const empty = sql.literal("")
    /**
     * Whether a lease's write (a take, an extension) or a report may commit without waiting for the disk: on
     * PostgreSQL, outside a caller's transaction (whose other writes must stay durable), unless `durableLeases`. See
     * the module comment.
     */
    const relaxLease = Effect.map(
      Effect.serviceOption(SqlClient.TransactionConnection),
      (transaction) => pg && options.durableLeases !== true && Option.isNone(transaction)
    )
    const relaxed = sql.literal(relaxedCommit)

    /** A job as a row of the table, its payload as JSON text. */
    const toRow = (operation: string, job: Job) =>
      Effect.map(encodePayload(operation, job), (payload) => ({
        session_id: job.sessionId,
        task_id: job.taskId,
        attempt: job.attempt,
        kind: job.kind,
        run_at: job.runAt,
        payload
      }))

    /** Jobs handed to a worker as they are enqueued: inserted under its lease, with no wake-up for anybody. */
    const enqueueTaken = (
      jobs: ReadonlyArray<Job>,
      takenBy: NonNullable<EnqueueOptions["takenBy"]>
    ): Effect.Effect<void, TaskQueueError> =>
      Effect.flatMap(
        Effect.forEach(jobs, (job) =>
          Effect.map(toRow("enqueue", job), (row) => ({
            ...row,
            worker_id: takenBy.workerId,
            lease_expires_at: takenBy.leaseExpiresAt,
            takes: 1
          }))
        ),
        (rows) =>
          Effect.forEach(
            chunks(rows, insertChunk),
            (chunk) =>
              run(
                "enqueue",
                sql`INSERT INTO planner_jobs ${sql.insert(chunk)} ON CONFLICT (session_id, task_id, attempt) DO NOTHING`
              ),
            { discard: true }
          )
      )

    const enqueue = hotFn("SqlTaskQueue.enqueue")(function* (jobs: ReadonlyArray<Job>, options?: EnqueueOptions) {
      if (jobs.length === 0) return
      if (options?.takenBy !== undefined) return yield* enqueueTaken(jobs, options.takenBy)
      const rows = yield* Effect.forEach(jobs, (job) => toRow("enqueue", job))
      const origin = yield* wakeOrigin
      const inserted: Array<string> = []
      for (const chunk of chunks(rows, insertChunk)) {
        const kinds = yield* run(
          "enqueue",
          pg
            ? sql<{ kind: string }>`
                WITH inserted AS (
                  INSERT INTO planner_jobs ${sql.insert(chunk)} ON CONFLICT (session_id, task_id, attempt) DO NOTHING
                  RETURNING kind
                )
                SELECT pg_notify(${channel}, ${`${origin} `} || string_agg(DISTINCT kind, ',')) AS kind
                FROM inserted HAVING count(*) > 0`
            : sql<{ kind: string }>`
                INSERT INTO planner_jobs ${sql.insert(chunk)} ON CONFLICT (session_id, task_id, attempt) DO NOTHING
                RETURNING kind`
        )
        for (const row of kinds) inserted.push(row.kind)
      }
      if (inserted.length > 0) yield* wakeHere(origin)
    })

    const take = hotFn("SqlTaskQueue.take")(function* (options: TakeOptions) {
      if (options.limit <= 0 || options.kinds?.length === 0) return []
      const now = yield* Clock.currentTimeMillis
      const limit = Math.floor(options.limit)
      const rows: ReadonlyArray<JobRow & { readonly takes?: number | string }> = pg
        ? yield* Effect.gen(function* () {
            const [name, text] = takeStatement(options, yield* relaxLease)
            const params = takeParams(options, now)
            return yield* run(
              "take jobs",
              (prepared === undefined ? sql.unsafe(text, params) : prepared(name, text, params)) as Effect.Effect<
                ReadonlyArray<JobRow & { readonly takes: number | string }>,
                SqlError
              >
            )
          })
        : yield* run(
            "take jobs",
            sql<JobRow>`
              UPDATE planner_jobs SET worker_id = ${options.workerId}, lease_expires_at = ${now + options.leaseMs},
                takes = takes + 1
              WHERE id IN (
                SELECT id FROM planner_jobs
                WHERE run_at <= ${now} AND (lease_expires_at IS NULL OR lease_expires_at <= ${now}) AND report IS NULL
                  ${kindFilter(options.kinds)} ${sessionFilter(options.sessionId)}
                ORDER BY run_at, id LIMIT ${limit})
              RETURNING ${columns}`
          )
      const sorted = [...rows].sort((a, b) => Number(a.run_at) - Number(b.run_at) || Number(a.id) - Number(b.id))
      const taken: Array<TakenJob> = []
      for (const row of sorted) {
        let job: ListedJob
        try {
          job = rowToJob(row)
        } catch (cause) {
          return yield* Effect.fail(unreadablePayload("take jobs", row, cause))
        }
        taken.push({
          ...job,
          workerId: options.workerId,
          leaseExpiresAt: now + options.leaseMs,
          takes: Number(row.takes)
        })
      }
      return taken
    })

    const extendLeases = hotFn("SqlTaskQueue.extendLeases")(function* (workerId: string, leaseMs: number) {
      const now = yield* Clock.currentTimeMillis
      // A lease that already ran out is not this worker's any more: another taker may have the job. A reported job is
      // the session writer's: counted here it would hide from the lease keeper a job of this worker's that was lost.
      const rows = yield* run(
        "extend leases",
        sql`
          UPDATE planner_jobs SET lease_expires_at = ${now + leaseMs}${(yield* relaxLease) ? sql` FROM ${relaxed}` : empty}
          WHERE worker_id = ${workerId} AND lease_expires_at > ${now} AND report IS NULL
          RETURNING id`
      )
      return rows.length
    })

    const heldBy = Effect.fn("SqlTaskQueue.heldBy")(function* (workerId: string) {
      const now = yield* Clock.currentTimeMillis
      const rows = yield* run(
        "list a worker's jobs",
        sql<{ session_id: string; task_id: number | string; attempt: number | string }>`
          SELECT session_id, task_id, attempt FROM planner_jobs
          WHERE worker_id = ${workerId} AND lease_expires_at > ${now} AND report IS NULL
          ORDER BY session_id, task_id, attempt`
      )
      return rows.map(
        (row): JobKey => ({
          sessionId: row.session_id,
          taskId: Number(row.task_id),
          attempt: Number(row.attempt)
        })
      )
    })

    const holders = Effect.fn("SqlTaskQueue.holders")(function* (sessionId?: string) {
      const rows = yield* run(
        "list the jobs' holders",
        sql<{ worker_id: string }>`
          SELECT DISTINCT worker_id FROM planner_jobs
          WHERE worker_id IS NOT NULL AND report IS NULL ${sessionFilter(sessionId)}
          ORDER BY worker_id`
      )
      return rows.map((row) => row.worker_id)
    })

    const complete = hotFn("SqlTaskQueue.complete")(function* (keys: JobKey | ReadonlyArray<JobKey>) {
      const all: ReadonlyArray<JobKey> = Array.isArray(keys) ? keys : [keys as JobKey]
      for (const chunk of chunks(all, completeChunk)) {
        yield* run(
          "complete a job",
          sql`
            DELETE FROM planner_jobs
            WHERE ${sql.or(
              chunk.map(
                (key) => sql`(session_id = ${key.sessionId} AND task_id = ${key.taskId} AND attempt = ${key.attempt})`
              )
            )}`
        )
      }
    })

    /**
     * `complete`'s DELETE, for the append statement's CTEs: it deletes nothing unless the append wrote its events.
     * With `take`, then `take`'s UPDATE for that worker (never of a job this statement completes), returning the jobs:
     * the alongside's rows, handed to `take.taken` once the append has committed.
     */
    const completeAlongside = (keys: ReadonlyArray<JobKey>, take?: AlongsideTake): AlongsideStatement | undefined => {
      if (keys.length === 0 || keys.length > completeAlongsideLimit) return undefined
      const keyParams = keys.flatMap((key) => [key.sessionId, key.taskId, key.attempt])
      const matching = (first: number) =>
        keys
          .map((_, index) => {
            const at = first + index * 3
            return `(session_id = $${at} AND task_id = $${at + 1} AND attempt = $${at + 2})`
          })
          .join(" OR ")
      const complete = (first: number) =>
        `DELETE FROM planner_jobs WHERE EXISTS (SELECT 1 FROM inserted) AND (${matching(first)})`
      const options = take?.options
      if (take === undefined || options === undefined || takesNothing(options)) {
        return {
          shape: `jobs_complete_${keys.length}`,
          text: (first) => `alongside AS (${complete(first)})`,
          params: keyParams
        }
      }
      const leaseExpiresAt = take.now + options.leaseMs
      return {
        shape: `jobs_complete_${keys.length}_take${takeShape(options)}`,
        text: (first) =>
          `completed AS (${complete(first)}),
         alongside AS (${takeUpdate(
           first + keys.length * 3,
           { byKind: options.kinds !== undefined, bySession: options.sessionId !== undefined },
           `AND EXISTS (SELECT 1 FROM inserted) AND NOT (${matching(first)})`
         )})`,
        params: [...keyParams, ...takeParams(options, take.now)],
        returned: (rows) => take.taken(decodeTaken(rows as ReadonlyArray<JobRow>, options.workerId, leaseExpiresAt))
      }
    }

    /**
     * SQLite: `complete`, `enqueue` and `enqueue` with `takenBy` as statements the event store runs inside its
     * append's transaction (see `AlongsideDirect`), one small prepared statement per job. The payloads are encoded
     * first: one that is not JSON leaves the append to the effect way, which says so.
     */
    const changesDirect = (changes: QueueChanges): AlongsideDirect | undefined => {
      const dispatched: Array<ReadonlyArray<unknown>> = []
      const taken: Array<ReadonlyArray<unknown>> = []
      try {
        for (const job of changes.dispatched) {
          dispatched.push([job.sessionId, job.taskId, job.attempt, job.kind, job.runAt, payloadText(job)])
        }
        for (const job of changes.taken) {
          taken.push([
            job.sessionId,
            job.taskId,
            job.attempt,
            job.kind,
            job.runAt,
            payloadText(job),
            job.workerId,
            job.leaseExpiresAt
          ])
        }
      } catch {
        return undefined
      }
      return (runStatement) => {
        for (const key of changes.ended) runStatement(directComplete, [key.sessionId, key.taskId, key.attempt])
        let inserted = false
        for (const params of dispatched) inserted = runStatement(directEnqueue, params).length > 0 || inserted
        for (const params of taken) runStatement(directEnqueueTaken, params)
        // Committed when the waiters look: the transaction ends before the signal's effect runs.
        return inserted ? wakeUp.signal : undefined
      }
    }

    /** Wakes the waiters of every process for jobs that became takeable outside an enqueue (`release`, `lapse`). */
    const wakeFor = (operation: string, rows: ReadonlyArray<{ readonly kind: string }>) =>
      Effect.gen(function* () {
        if (rows.length === 0) return
        const origin = yield* wakeOrigin
        yield* run(
          operation,
          notify(
            origin,
            rows.map((row) => row.kind)
          )
        )
        yield* wakeHere(origin)
      })

    const release = hotFn("SqlTaskQueue.release")(function* (key: JobKey, workerId: string) {
      const rows = yield* run(
        "release a job",
        sql<{ kind: string }>`
          UPDATE planner_jobs
          SET worker_id = NULL, lease_expires_at = NULL, takes = CASE WHEN takes > 0 THEN takes - 1 ELSE 0 END
          WHERE session_id = ${key.sessionId} AND task_id = ${key.taskId} AND attempt = ${key.attempt}
            AND worker_id = ${workerId} AND report IS NULL
          RETURNING kind`
      )
      yield* wakeFor("release a job", rows)
    })

    const lapse = hotFn("SqlTaskQueue.lapse")(function* (key: JobKey, workerId: string) {
      const now = yield* Clock.currentTimeMillis
      // Its take still counts: the next take finds the attempt lost, as a lease that ran out would have.
      const rows = yield* run(
        "end a job's lease",
        sql<{ kind: string }>`
          UPDATE planner_jobs SET lease_expires_at = ${now}
          WHERE session_id = ${key.sessionId} AND task_id = ${key.taskId} AND attempt = ${key.attempt}
            AND worker_id = ${workerId} AND lease_expires_at > ${now} AND report IS NULL
          RETURNING kind`
      )
      yield* wakeFor("end a job's lease", rows)
    })

    const workers: WorkerRegistry = {
      announce: (announcement) =>
        Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          yield* run(
            "announce a worker",
            sql`
              INSERT INTO planner_workers (worker_id, kinds, session_id, expires_at)
              VALUES (${announcement.workerId}, ${JSON.stringify(announcement.kinds)}, ${announcement.sessionId ?? null},
                ${announcement.expiresAt})
              ON CONFLICT (worker_id) DO UPDATE SET kinds = excluded.kinds, session_id = excluded.session_id,
                expires_at = excluded.expires_at`
          )
          // Those that ran out go as a live worker announces itself: reading them (`show` on a database this user may
          // only read) writes nothing.
          yield* run("forget workers gone", sql`DELETE FROM planner_workers WHERE expires_at <= ${now}`)
        }),
      withdraw: (workerId) =>
        run("withdraw a worker", sql`DELETE FROM planner_workers WHERE worker_id = ${workerId}`).pipe(Effect.asVoid),
      live: (now) =>
        Effect.gen(function* () {
          const rows = yield* run(
            "list the workers",
            sql<{
              worker_id: string
              kinds: string
              session_id: string | null
              expires_at: number | string
            }>`SELECT worker_id, kinds, session_id, expires_at FROM planner_workers WHERE expires_at > ${now}
                ORDER BY worker_id`
          )
          return rows.map(
            (row): WorkerAnnouncement => ({
              workerId: row.worker_id,
              kinds: announcedKinds(row.kinds),
              ...(row.session_id === null ? {} : { sessionId: row.session_id }),
              expiresAt: Number(row.expires_at)
            })
          )
        })
    }

    const remove = Effect.fn("SqlTaskQueue.remove")(function* (sessionId: string, taskIds?: ReadonlyArray<number>) {
      if (taskIds?.length === 0) return
      yield* run(
        "remove jobs",
        sql`
          DELETE FROM planner_jobs WHERE session_id = ${sessionId}
          ${taskIds === undefined ? sql.literal("") : sql`AND task_id IN ${sql.in(taskIds)}`}`
      )
    })

    const list = Effect.fn("SqlTaskQueue.list")(function* (sessionId?: string) {
      const rows = yield* run(
        "list jobs",
        sql<JobRow>`
          SELECT ${columns}, report IS NOT NULL AS reported FROM planner_jobs WHERE TRUE ${sessionFilter(sessionId)}
          ORDER BY session_id, task_id, attempt`
      )
      return yield* Effect.forEach(rows, (row) => decodeRow("list jobs", row))
    })

    const replace = Effect.fn("SqlTaskQueue.replace")(function* (sessionId: string, jobs: ReadonlyArray<Job>) {
      yield* checkSession(sessionId, jobs)
      const rows = yield* Effect.forEach(jobs, (job) => toRow("replace", job))
      const wanted = new Set(jobs.map(jobKeyString))
      const origin = yield* wakeOrigin
      // Writes first, then the read: on SQLite a deferred transaction that read first could not upgrade to a write
      // once another process had committed in between.
      yield* Effect.gen(function* () {
        for (const chunk of chunks(rows, insertChunk)) {
          // The log is the record: an attempt it has unfinished is unfinished, with the log's runAt and payload. A
          // worker holding it keeps its lease, and its outcome still goes through the writer.
          yield* sql`
            INSERT INTO planner_jobs ${sql.insert(chunk)}
            ON CONFLICT (session_id, task_id, attempt) DO UPDATE SET
              kind = excluded.kind, run_at = excluded.run_at, payload = excluded.payload`
        }
        const present = yield* sql<{ id: number | string; task_id: number; attempt: number }>`
          SELECT id, task_id, attempt FROM planner_jobs WHERE session_id = ${sessionId}`
        const stale = present
          .filter((row) => !wanted.has(jobKeyString({ sessionId, taskId: row.task_id, attempt: row.attempt })))
          .map((row) => Number(row.id))
        for (const ids of chunks(stale, insertChunk)) yield* sql`DELETE FROM planner_jobs WHERE id IN ${sql.in(ids)}`
        yield* notify(
          origin,
          rows.map((row) => row.kind)
        )
      }).pipe(withTransaction(sql), (effect) => run("replace jobs", effect))
      yield* wakeHere(origin)
    })

    const reportsPrefix = writersPrefix(channel)
    /**
     * PostgreSQL: the statement that stores `count` reports. Parameters: the reporter, now, the prefix of the writers'
     * channels, then five for each report (its job's key, its outcome as JSON text, its notification's payload),
     * then, with a take, `takeUpdate`'s. It stores each outcome only while its job is the reporter's, notifies each
     * session's writer on commit on the writer's own channel (one notification per report, all sent with the one
     * commit; a session without a writer row notifies nobody, and its reporter, told so, elects one), says who each
     * session's writer is, and takes the reporter's next jobs (never one reported): one round trip for all the
     * outcomes a worker has ready at once. The row names the writer whatever its lease: one whose lease ran out while
     * it still writes records what it hears, as it would have before the lease ran out. A notification carries its
     * report when it fits (`reportNotice`), so that the writer need not read it back. `relaxed`: its commit does not
     * wait for the disk (see the module comment).
     *
     * One statement per count, as the event store's appends have, rather than one taking arrays: the rows of an
     * `unnest` are unknown until the statement runs, and PostgreSQL then plans it again at every execution instead of
     * keeping the prepared plan (that planning cost more than the statement).
     */
    const reportStatement = (
      count: number,
      take: TakeOptions | undefined,
      relaxed: boolean
    ): readonly [string, string] => {
      const taking = take !== undefined && !takesNothing(take)
      const name = `planner_jobs_report_${count}${taking ? `_take${takeShape(take)}` : ""}${relaxed ? "_relaxed" : ""}`
      return statement(name, () => {
        const at = (index: number, field: number) => `$${4 + index * 5 + field}`
        const rows = (fields: (index: number) => string) =>
          `(VALUES ${Array.from({ length: count }, (_, index) => `(${fields(index)})`).join(", ")})`
        const key = (index: number) => `${at(index, 0)}::text, ${at(index, 1)}::integer, ${at(index, 2)}::integer`
        const taken = taking
          ? `, taken AS (${takeUpdate(
              4 + count * 5,
              { byKind: take.kinds !== undefined, bySession: take.sessionId !== undefined },
              `AND (session_id, task_id, attempt) NOT IN ${rows(key)}`
            )})`
          : ""
        // `notified` is referenced below so that PostgreSQL runs it: a CTE that is only a SELECT runs only if used.
        // `found` reads the statement's snapshot, from before its own UPDATE: a report stored now is in `reported`,
        // one of this worker's already there (an earlier try whose answer was lost) in the job's row.
        return `
        WITH reported AS (
          UPDATE planner_jobs SET report = input.report, reported_at = $2::bigint
          FROM ${rows((index) => `${key(index)}, ${at(index, 3)}::text, ${at(index, 4)}::text`)}
            AS input(session_id, task_id, attempt, report, notice)
          WHERE planner_jobs.session_id = input.session_id AND planner_jobs.task_id = input.task_id
            AND planner_jobs.attempt = input.attempt AND planner_jobs.worker_id = $1::text
            AND planner_jobs.report IS NULL
          RETURNING planner_jobs.id, planner_jobs.session_id, input.notice
        ), notified AS (
          SELECT pg_notify($3::text || left(encode(sha256(convert_to(writer.worker_id, 'UTF8')), 'hex'), ${writerHashLength}),
              reported.notice) AS sent
          FROM reported JOIN planner_session_writers AS writer ON writer.session_id = reported.session_id
        )${taken}
        SELECT (
            SELECT json_agg(json_build_array(
              EXISTS (
                SELECT 1 FROM planner_jobs AS job WHERE job.session_id = input.session_id
                  AND job.task_id = input.task_id AND job.attempt = input.attempt AND job.worker_id = $1::text
                  AND (job.report IS NOT NULL OR job.id IN (SELECT id FROM reported))),
              (SELECT worker_id FROM planner_session_writers AS writer WHERE writer.session_id = input.session_id
                AND writer.lease_expires_at > $2::bigint)) ORDER BY input.ord)
            FROM ${rows((index) => `${key(index)}, ${index}`)} AS input(session_id, task_id, attempt, ord)
          ) AS found, (SELECT count(*) FROM notified) AS notified${relaxed ? `, ${relaxedCommit}` : ""}${
            taking ? ", taken.*" : ""
          }
        FROM (SELECT 1) AS one${taking ? " LEFT JOIN taken ON TRUE" : ""}`
      })
    }

    /** Stores up to `reportsPerGroup` reports in one statement, with the take if there is one. */
    const reportSome = (
      outcomes: ReadonlyArray<ReportedOutcome>,
      workerId: string,
      take: AlongsideTake | undefined
    ): Effect.Effect<ReadonlyArray<Reported>, TaskQueueError> =>
      Effect.gen(function* () {
        const texts: Array<string> = []
        for (const { key, outcome } of outcomes) {
          texts.push(
            yield* Effect.try({
              try: () => JSON.stringify(outcome ?? null),
              catch: (cause) =>
                new TaskQueueError({
                  operation: "report an outcome",
                  reason: `the outcome of job ${jobKeyString(key)} cannot be stored as JSON (${causeText(cause)})`
                })
            })
          )
        }
        const now = yield* Clock.currentTimeMillis
        const options = take?.options
        const taking = options !== undefined && !takesNothing(options)
        const [name, statementText] = reportStatement(outcomes.length, taking ? options : undefined, yield* relaxLease)
        const params: Array<unknown> = [workerId, now, reportsPrefix]
        outcomes.forEach(({ key }, index) => {
          const text = texts[index] ?? "null"
          params.push(key.sessionId, key.taskId, key.attempt, text, reportNotice(key, workerId, text))
        })
        if (taking) params.push(...takeParams(options, now))
        type Row = Partial<JobRow> & { readonly found: ReadonlyArray<readonly [boolean, string | null]> | null }
        const rows = (yield* run(
          "report an outcome",
          prepared === undefined ? sql.unsafe(statementText, params) : prepared(name, statementText, params)
        )) as ReadonlyArray<Row>
        if (taking && take !== undefined) {
          const jobs = rows.filter((row): row is Row & JobRow => row.id !== null && row.id !== undefined)
          take.taken(decodeTaken(jobs, options.workerId, now + options.leaseMs))
        }
        const found = rows[0]?.found ?? []
        return outcomes.map((_, index): Reported => {
          const [stored, writer] = found[index] ?? [false, null]
          return { stored, writer: writer ?? undefined }
        })
      })

    /**
     * Stores the reports, `reportsPerGroup` to a statement (each atomic on its own; a worker's group is never larger,
     * so that it is one); the take goes with the last, when the others have committed (their jobs reported, so not
     * takeable): a take with the first could hand back a job of a later one.
     */
    const reportAll = hotFn("SqlTaskQueue.reportAll")(function* (
      outcomes: ReadonlyArray<ReportedOutcome>,
      workerId: string,
      take?: AlongsideTake
    ) {
      if (outcomes.length === 0) return []
      if (outcomes.length <= reportsPerGroup) return yield* reportSome(outcomes, workerId, take)
      const found: Array<Reported> = []
      const all = chunks(outcomes, reportsPerGroup)
      for (const [index, chunk] of all.entries()) {
        found.push(...(yield* reportSome(chunk, workerId, index === all.length - 1 ? take : undefined)))
      }
      return found
    })

    const reports: OutcomeReports = {
      report: (key, workerId, outcome, take) =>
        Effect.map(
          reportAll([{ key, outcome }], workerId, take),
          (found) => found[0] ?? { stored: false, writer: undefined }
        ),
      reportAll,
      claimWriter: (sessionId, workerId, leaseMs, replacing) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          run(
            "claim a session's writer",
            sql<{ worker_id: string }>`
              INSERT INTO planner_session_writers (session_id, worker_id, lease_expires_at)
              VALUES (${sessionId}, ${workerId}, ${now + leaseMs})
              ON CONFLICT (session_id) DO UPDATE
                SET worker_id = excluded.worker_id, lease_expires_at = excluded.lease_expires_at
                WHERE planner_session_writers.lease_expires_at <= ${now}
                  OR planner_session_writers.worker_id = excluded.worker_id
                  OR planner_session_writers.worker_id = ${replacing ?? workerId}
              RETURNING worker_id`
          )
        ).pipe(Effect.map((rows) => rows.length > 0)),
      extendWriter: (workerId, sessionIds, leaseMs) =>
        sessionIds.length === 0
          ? Effect.succeed([])
          : Effect.flatMap(Clock.currentTimeMillis, (now) =>
              run(
                "extend a session writer's lease",
                sql<{ session_id: string }>`
                  UPDATE planner_session_writers SET lease_expires_at = ${now + leaseMs}
                  WHERE worker_id = ${workerId} AND session_id IN ${sql.in(sessionIds)}
                  RETURNING session_id`
              )
            ).pipe(Effect.map((rows) => rows.map((row) => row.session_id))),
      releaseWriter: (workerId, sessionIds) =>
        sessionIds.length === 0
          ? Effect.void
          : run(
              "give up being a session's writer",
              sql`DELETE FROM planner_session_writers WHERE worker_id = ${workerId} AND session_id IN ${sql.in(sessionIds)}`
            ).pipe(Effect.asVoid),
      pending: (sessionId, limit) =>
        run(
          "read reported outcomes",
          sql<{ task_id: number; attempt: number; worker_id: string | null; report: string }>`
            SELECT task_id, attempt, worker_id, report FROM planner_jobs
            WHERE session_id = ${sessionId} AND report IS NOT NULL
            ORDER BY reported_at, id LIMIT ${Math.max(1, Math.floor(limit))}`
        ).pipe(
          Effect.map((rows) =>
            rows.map(
              (row): PendingReport => ({
                key: { sessionId, taskId: Number(row.task_id), attempt: Number(row.attempt) },
                workerId: row.worker_id ?? "",
                outcome: parseReport(row.report)
              })
            )
          )
        ),
      unrecorded: (storedBefore) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          run(
            "look for reports nobody records",
            sql<{ session_id: string; writer: string | null }>`
              SELECT DISTINCT job.session_id,
                CASE WHEN writer.lease_expires_at > ${now} THEN writer.worker_id END AS writer
              FROM planner_jobs AS job
              LEFT JOIN planner_session_writers AS writer ON writer.session_id = job.session_id
              WHERE job.report IS NOT NULL
                AND (job.reported_at < ${storedBefore} OR writer.lease_expires_at IS NULL
                  OR writer.lease_expires_at <= ${now})`
          )
        ).pipe(
          Effect.map((rows) => rows.map((row) => ({ sessionId: row.session_id, writer: row.writer ?? undefined })))
        ),
      listen: (workerId, onReport, onRestart) =>
        listen === undefined
          ? Effect.succeed(Effect.void)
          : Effect.flatMap(Effect.scope, (scope) =>
              ActiveListen.make({
                sql,
                listen,
                channel: writerChannel(channel, workerId),
                scope,
                what: "session writer",
                onPayload: (payload) =>
                  Effect.sync(() => {
                    const notice = readNotice(payload)
                    onReport(notice.sessionId, notice.report)
                  }),
                ...(onRestart === undefined ? {} : { onRestart: Effect.sync(onRestart) })
              })
            )
    }

    /** Starts LISTEN once, on the first wait, and waits until it is active (see `internal/activeListen.ts`). */
    const startListening =
      listen === undefined
        ? Effect.void
        : yield* ActiveListen.make({
            sql,
            listen,
            channel,
            scope,
            what: "task queue",
            // This instance's own writes woke its waiters when they returned.
            onPayload: (payload) => (payload.startsWith(`${instanceId} `) ? Effect.void : wakeUp.signal),
            // Jobs enqueued while LISTEN was down woke nobody here: the waiters look.
            onRestart: wakeUp.signal
          })

    const nextDue = (kinds: ReadonlyArray<NodeKind> | undefined, sessionId: string | undefined) =>
      run(
        "wait for work",
        pg
          ? sql<{ next: number | string | null }>`
              SELECT MIN(GREATEST(run_at, COALESCE(lease_expires_at, 0))) AS next FROM planner_jobs
              WHERE report IS NULL ${kindFilter(kinds)} ${sessionFilter(sessionId)}`
          : sql<{ next: number | string | null }>`
              SELECT MIN(MAX(run_at, COALESCE(lease_expires_at, 0))) AS next FROM planner_jobs
              WHERE report IS NULL ${kindFilter(kinds)} ${sessionFilter(sessionId)}`
      ).pipe(Effect.map((rows) => (rows[0]?.next == null ? undefined : Number(rows[0].next))))

    const awaitWork = hotFn("SqlTaskQueue.awaitWork")(function* (kinds?: ReadonlyArray<NodeKind>, sessionId?: string) {
      yield* startListening
      // The wake-up is taken before looking, so an enqueue between the look and the wait is not missed.
      const woken = yield* wakeUp.next
      const next = kinds?.length === 0 ? undefined : yield* nextDue(kinds, sessionId)
      const now = yield* Clock.currentTimeMillis
      if (next !== undefined && next <= now) return
      const wait = Duration.min(
        pollInterval,
        Duration.millis(next === undefined ? Number.POSITIVE_INFINITY : next - now)
      )
      yield* Effect.raceFirst(woken, Effect.sleep(wait))
    })

    /**
     * PostgreSQL: the job table's dead row versions, reclaimed. Every job leaves several behind (its take and its
     * report are updates of indexed columns, and it is deleted when it ends), and until a vacuum removes them every take
     * walks past their index entries: in the scale benchmark a report with its take read 207 buffers at 19,000 dead
     * versions against 70 with the table kept vacuumed. Autovacuum looks at a database at most once a minute
     * (`autovacuum_naptime`, a server setting), which is a long time for a busy queue, so the workers look themselves:
     * when the statistics count `reclaimAfter` dead versions, and a quarter of the live rows, the table is vacuumed.
     * `SKIP_LOCKED`: a vacuum already under way (another worker's, autovacuum's) is left to finish, not waited for.
     * `TRUNCATE false`: a queue that empties out would otherwise have its file shortened under an exclusive lock that
     * every take waits behind. At most one vacuum in 10 s, whoever ran it: dead versions that a vacuum cannot remove (a
     * long transaction holding the horizon back) or a role that does not own the table (the server only warns) would
     * otherwise have every worker vacuum at every look, for nothing.
     */
    const reclaimAfter = options.reclaimAfter ?? defaultReclaimAfter
    const reclaim = Effect.gen(function* () {
      const rows = yield* sql<{ readonly dead: number | string; readonly live: number | string }>`
        SELECT n_dead_tup AS dead, n_live_tup AS live FROM pg_stat_user_tables
        WHERE relid = to_regclass('planner_jobs')
          AND coalesce(greatest(last_vacuum, last_autovacuum), '-infinity') < now() - interval '10 seconds'`.pipe(
        Effect.mapError(toQueueError("read the job table's statistics"))
      )
      const dead = Number(rows[0]?.dead ?? 0)
      const live = Number(rows[0]?.live ?? 0)
      if (dead < reclaimAfter || dead * 4 < live) return false
      yield* sql`VACUUM (SKIP_LOCKED, TRUNCATE false) planner_jobs`.pipe(
        Effect.mapError(toQueueError("vacuum the job table"))
      )
      return true
    }).pipe(Effect.withSpan("SqlTaskQueue.reclaim"))

    return {
      enqueue,
      take,
      extendLeases,
      heldBy,
      holders,
      complete,
      ...(pg ? { completeAlongside, reports, reclaim } : { changesDirect }),
      release,
      lapse,
      remove,
      awaitWork,
      list,
      replace,
      workers
    }
  })

/** The queue over the event store's `SqlClient` (build it after the store, which runs the migrations). */
export const layer = (options?: SqlTaskQueueOptions): Layer.Layer<TaskQueue, TaskQueueError, SqlClient.SqlClient> =>
  Layer.scoped(TaskQueue, make(options))
