/**
 * The task queue hands out work. A job is one attempt of one task: the writer enqueues it when it records
 * `TaskDispatched` (on SQL layers in the same transaction as the append), a worker takes it under a lease, runs the
 * executor, reports the outcome through the writer, and completes the job.
 *
 * The event log stays the record of every decision; the queue is a projection of it (`Jobs.jobsFromState` says which
 * jobs a session's state implies, `Jobs.rebuild` puts them back), so a lost or damaged queue is rebuilt from the log.
 *
 * Guarantees, on every layer (the contract suite in test/infra/TaskQueueContract.ts checks them):
 * - A job is identified by (sessionId, taskId, attempt); enqueueing it again changes nothing.
 * - `take` hands a job to exactly one taker at a time: while its lease is live nobody else gets it; once the lease
 *   has run out (by the `Clock`, so TestClock drives it in tests) it is takeable again.
 * - A job is never taken before its `runAt`: retry backoff lives in the row, so no worker runs a timer loop.
 * - A completed job is gone: never handed out again. (Its key is not kept: the writer enqueues an attempt once, in the
 *   transaction that dispatched it, so a key never comes back after its attempt ended.)
 * - Leases are columns of the job row, never events; `extendLeases` renews all of a worker's leases at once.
 * - PostgreSQL: a worker may report its outcome into its job's row for the session's writer to record (`reports`);
 *   a reported job is never taken or given back again, and ends like any other when the outcome's append completes it.
 *
 * Layers: `MemoryTaskQueue.layer` (one process) and `SqlTaskQueue.layer` (SQLite and PostgreSQL, on the event
 * store's `SqlClient`).
 */
import { Context, Effect, Schema, type Scope } from "effect"
import type { NodeKind } from "../domain/Task.js"
import type { AlongsideDirect, AlongsideStatement } from "./EventStore.js"

// --- Data -----------------------------------------------------------------------------------------------------------

export interface Job {
  readonly sessionId: string
  readonly taskId: number
  readonly attempt: number
  readonly kind: NodeKind
  /** Not taken before this time (epoch ms): retry backoff lives here, so no worker runs a timer loop. */
  readonly runAt: number
  /** What the executor needs, built by the writer from the state at dispatch (JSON-serialisable). */
  readonly payload: unknown
}

export interface TakenJob extends Job {
  readonly workerId: string
  readonly leaseExpiresAt: number
  /**
   * How many times this job has been taken and not given back: 1 on the first take, and after a `release`; more when
   * the lease of a worker that had it ran out (that worker stopped renewing it while it had the job).
   */
  readonly takes: number
}

/**
 * An unfinished job as `list` shows it: with its holder while a worker has it, and `reported` once that worker has
 * reported its outcome for the session's writer to record (`reports`).
 */
export type ListedJob = Job & {
  readonly workerId?: string
  readonly leaseExpiresAt?: number
  readonly reported?: true
}

export type JobKey = { readonly sessionId: string; readonly taskId: number; readonly attempt: number }

export interface TakeOptions {
  readonly workerId: string
  /** Only jobs of these kinds; omitted: every kind. */
  readonly kinds?: ReadonlyArray<NodeKind>
  readonly limit: number
  /** The lease given to each job taken, from now. */
  readonly leaseMs: number
  /** Only jobs of this session. */
  readonly sessionId?: string
}

export interface EnqueueOptions {
  /**
   * The jobs go in already taken by this worker, under this lease (epoch ms), as if it had taken them at once: the
   * writer's hand-off of a freshly dispatched job to an idle worker of its own process, in the dispatch's transaction
   * (see `PlannerService`). Nobody is woken for them; once the lease runs out they are takeable like any other job.
   */
  readonly takenBy?: { readonly workerId: string; readonly leaseExpiresAt: number }
}

/** Jobs to take in an append's statement (`completeAlongside`), and where they go once it has committed. */
export interface AlongsideTake {
  readonly options: TakeOptions
  /** The time the take is as of (epoch ms): due jobs only, leases from then. */
  readonly now: number
  /** The jobs taken, once the append has committed (none when it went the transaction way). */
  readonly taken: (jobs: ReadonlyArray<TakenJob>) => void
  /**
   * The same worker's take for an append that records `count` of its outcomes at once (each frees its slot), asked
   * as the append is made; undefined when it wants none by then. Absent: this take whatever the count.
   */
  readonly forOutcomes?: (count: number) => AlongsideTake | undefined
}

/** How an append changes the queue (see `changesDirect`). */
export interface QueueChanges {
  /** Jobs of attempts that ended, to complete. */
  readonly ended: ReadonlyArray<JobKey>
  /** Jobs of attempts dispatched, to enqueue for any worker. */
  readonly dispatched: ReadonlyArray<Job>
  /** Jobs of attempts dispatched and handed to a worker of this process, to enqueue already taken by it. */
  readonly taken: ReadonlyArray<TakenJob>
}

/** A worker as it announces itself: what it serves, and until when it says so. */
export interface WorkerAnnouncement {
  readonly workerId: string
  /** The kinds of task it takes. */
  readonly kinds: ReadonlyArray<NodeKind>
  /** The one session it serves (`planner run`'s own worker); every session when absent. */
  readonly sessionId?: string
  /** Epoch milliseconds: it announces itself again before then, or it is taken to be gone. */
  readonly expiresAt: number
}

export interface WorkerRegistry {
  /** Records or renews the worker's announcement; those that ran out are removed meanwhile. */
  readonly announce: (announcement: WorkerAnnouncement) => Effect.Effect<void, TaskQueueError>
  /** The worker stopped. */
  readonly withdraw: (workerId: string) => Effect.Effect<void, TaskQueueError>
  /** The announcements that have not run out at `now`, by worker id. Reads only (a read-only store can answer). */
  readonly live: (now: number) => Effect.Effect<ReadonlyArray<WorkerAnnouncement>, TaskQueueError>
}

/** An outcome a worker reported into its job's row, waiting for the session's writer to record it. */
export interface PendingReport {
  readonly key: JobKey
  /** The worker that ran the attempt and reported it. */
  readonly workerId: string
  /** What the worker stored (JSON-serialisable): the writer decodes it. */
  readonly outcome: unknown
}

/** An outcome to report into its job's row: what the worker stores (JSON-serialisable), for the writer to decode. */
export interface ReportedOutcome {
  readonly key: JobKey
  readonly outcome: unknown
}

/**
 * The most reports a worker hands `OutcomeReports.reportAll` at once (`app/worker/ReportGroups`); the PostgreSQL queue
 * stores that many in one statement, so that a group is stored whole or not at all.
 */
export const reportsPerGroup = 16

/** What storing a report found. */
export interface Reported {
  /**
   * True when the job holds the reporter's report: stored now, or by an earlier try of the same report whose answer
   * was lost. False when the job is no longer the reporter's (the attempt ended otherwise, or its lease ran out and
   * another worker took it).
   */
  readonly stored: boolean
  /** The session's writer while its lease is live; undefined when it has none, so the reporter should become it. */
  readonly writer: string | undefined
}

/**
 * Outcomes reported into job rows, recorded by one writer per session (PostgreSQL). With several worker processes
 * on one session, each of them appending its own outcomes made every append race the others' and catch up on what
 * they wrote (several statements per attempt, and every process folding every event). Instead a worker that is not
 * the session's writer stores the outcome in its job's row (one statement, which also takes its next jobs), and the
 * session's writer, one worker elected by a lease row, records the reports in batches, in appends that complete
 * their jobs in the same transaction: the way a Temporal worker reports an activity's result to the history service,
 * the one writer of a workflow's history.
 *
 * - `report` stores the outcome only while the job is the reporter's; a reported job is never taken again, whatever
 *   becomes of its lease, and ends when the writer's append completes it. `reportAll` stores several in one statement
 *   (a worker sends the reports made while its previous statement was out together: `worker/ReportGroups`).
 * - The writer's lease is a row (`claimWriter`, `extendWriter`): whoever finds no live writer claims it; when the
 *   writer's process dies, the lease runs out and the next report, or the sweep of `unrecorded`, elects another (a
 *   writer known dead, a process of the same host that is gone, is replaced at once).
 *   Two writers for a moment cost nothing but a conflict: appends are guarded by the session's sequence.
 * - `listen` wakes the writer when a report of a session it writes was stored (LISTEN/NOTIFY, on a channel of the
 *   writer's own), `pending` reads them.
 */
export interface OutcomeReports {
  readonly report: (
    key: JobKey,
    workerId: string,
    outcome: unknown,
    take?: AlongsideTake
  ) => Effect.Effect<Reported, TaskQueueError>
  /**
   * Stores several of the worker's reports in one statement (what it found for each, in their order), with one
   * take of its next jobs: a worker whose attempts end together sends one round trip, not one each.
   */
  readonly reportAll: (
    outcomes: ReadonlyArray<ReportedOutcome>,
    workerId: string,
    take?: AlongsideTake
  ) => Effect.Effect<ReadonlyArray<Reported>, TaskQueueError>
  /**
   * Makes `workerId` the session's writer unless another worker's lease on it is live (or that worker is `replacing`:
   * one known dead). True when it is the writer.
   */
  readonly claimWriter: (
    sessionId: string,
    workerId: string,
    leaseMs: number,
    replacing?: string
  ) => Effect.Effect<boolean, TaskQueueError>
  /** Renews the worker's leases on these sessions; returns the sessions it still writes. */
  readonly extendWriter: (
    workerId: string,
    sessionIds: ReadonlyArray<string>,
    leaseMs: number
  ) => Effect.Effect<ReadonlyArray<string>, TaskQueueError>
  /** Gives up being the writer of these sessions (its process stops, or the sessions ended). */
  readonly releaseWriter: (workerId: string, sessionIds: ReadonlyArray<string>) => Effect.Effect<void, TaskQueueError>
  /** The session's reports, oldest first, at most `limit`. */
  readonly pending: (sessionId: string, limit: number) => Effect.Effect<ReadonlyArray<PendingReport>, TaskQueueError>
  /**
   * Sessions with reports nobody seems to record: a report with no live writer, or one stored before `storedBefore`
   * (epoch ms; its writer may be gone without its lease having run out). With the live writer, if any.
   */
  readonly unrecorded: (
    storedBefore: number
  ) => Effect.Effect<ReadonlyArray<{ readonly sessionId: string; readonly writer: string | undefined }>, TaskQueueError>
  /**
   * Prepares to call `onReport` with the session of each report stored for a session `workerId` writes (its writer
   * row names it), and the report itself when the notification could carry it, for as long as the scope lasts, and
   * returns the start: the first run starts listening, and every run completes once listening is active (reports
   * stored before are found with `pending`). Only the session's writer hears of a report: each writer has a channel
   * of its own. Safe to interrupt: the start goes on in the scope. `onRestart` is called when listening is active
   * again after it was lost (the server or the network ended its connection): what was reported meanwhile notified
   * nobody, so the writer reads back what waits.
   */
  readonly listen: (
    workerId: string,
    onReport: (sessionId: string, report: PendingReport | undefined) => void,
    onRestart?: () => void
  ) => Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
}

/** A stable text for a job's key, for maps and logs. */
export const jobKeyString = (key: JobKey): string => `${key.sessionId}/${key.taskId}/${key.attempt}`

// --- Errors ---------------------------------------------------------------------------------------------------------

/** The queue could not be reached or refused an operation. */
export class TaskQueueError extends Schema.TaggedError<TaskQueueError>()("TaskQueueError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `The task queue failed to ${this.operation}: ${this.reason}`
  }
}

// --- The service ----------------------------------------------------------------------------------------------------

export interface TaskQueueService {
  /** Idempotent on (sessionId, taskId, attempt). On SQL layers it uses the same SqlClient as the event store, so a
   *  caller can run it inside `sql.withTransaction` together with the event append (dispatch atomic with the log). */
  readonly enqueue: (jobs: ReadonlyArray<Job>, options?: EnqueueOptions) => Effect.Effect<void, TaskQueueError>
  /** Takes up to `limit` due jobs (runAt <= now, not held under a live lease, not completed) of these kinds,
   *  oldest runAt first; PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one short UPDATE ... RETURNING. */
  readonly take: (options: TakeOptions) => Effect.Effect<ReadonlyArray<TakenJob>, TaskQueueError>
  /** One statement extends every lease this worker holds. Returns how many. */
  readonly extendLeases: (workerId: string, leaseMs: number) => Effect.Effect<number, TaskQueueError>
  /**
   * The jobs `extendLeases` would renew for this worker (its live leases, reports aside), keys only: for its lease
   * keeper to find the jobs it holds without knowing (see `app/worker/LeaseKeeper`). Optional for queues of one's own:
   * the keeper then reads `list`.
   */
  readonly heldBy?: (workerId: string) => Effect.Effect<ReadonlyArray<JobKey>, TaskQueueError>
  /**
   * The workers named on unfinished jobs (of one session, or of all), each once, reported jobs aside: what `list` would
   * give as holders, without reading every job. For the dead-worker sweep, which runs every second in every worker (see
   * `app/worker/DeadWorkerSweep`). Optional for queues of one's own: the sweep then reads `list`.
   */
  readonly holders?: (sessionId?: string) => Effect.Effect<ReadonlyArray<string>, TaskQueueError>
  /**
   * The jobs' outcomes were recorded: the jobs are removed, never handed out again. Idempotent. Several keys go in one
   * statement (the writer ends several attempts in one append).
   */
  readonly complete: (keys: JobKey | ReadonlyArray<JobKey>) => Effect.Effect<void, TaskQueueError>
  /**
   * PostgreSQL: `complete` as a statement the event store sends inside an append's own statement (see
   * `AlongsideStatement`), so that an append that ends attempts costs one round trip. With `take`, the same statement
   * also takes jobs for that worker, as `take` would, once the append has written its events (the writer recording a
   * worker's outcome takes the worker's next job: a round trip less per attempt). Undefined where the queue has no
   * such statement (another database, a queue of its own) or for more jobs than one statement should carry.
   */
  readonly completeAlongside?: (keys: ReadonlyArray<JobKey>, take?: AlongsideTake) => AlongsideStatement | undefined
  /**
   * SQLite: the queue's side of an append as statements the event store runs at once inside the append's transaction
   * (see `AlongsideDirect`): `complete` for `ended`, `enqueue` for `dispatched`, and `enqueue` with `takenBy` for
   * `taken` (each job under its own worker and lease). Undefined where the queue has no such way (another database,
   * a queue of its own) or when a payload cannot be stored as JSON (the effect way then says so).
   */
  readonly changesDirect?: (changes: QueueChanges) => AlongsideDirect | undefined
  /**
   * Give a job back (shutdown): takeable again at once (or at runAt), and its take does not count (see
   * `TakenJob.takes`). Only the worker holding it can.
   */
  readonly release: (key: JobKey, workerId: string) => Effect.Effect<void, TaskQueueError>
  /**
   * Ends the worker's lease on the job now, as if it had run out: takeable again at once, and its take counts (the
   * attempt is lost). Only the worker holding it, never a reported job. For the lease keeper (`app/worker/LeaseKeeper`):
   * a job the worker started and no longer runs (its attempt died of a defect, or its report was lost with a server
   * crash: reports commit without waiting for the disk) would otherwise be renewed with the worker's other jobs for as
   * long as it has any. Optional for queues of one's own: the keeper then leaves such a job to be renewed until the
   * worker has no other job.
   */
  readonly lapse?: (key: JobKey, workerId: string) => Effect.Effect<void, TaskQueueError>
  /** Remove the unfinished jobs of a session (cancel), or of some of its tasks. */
  readonly remove: (sessionId: string, taskIds?: ReadonlyArray<number>) => Effect.Effect<void, TaskQueueError>
  /** Resolves when a job (of these kinds, of this session) may be waiting: at once when one is due, else on a wake-up
   *  (LISTEN/NOTIFY on PostgreSQL, in-process signal otherwise), when the next one falls due, or after a slow poll of
   *  a few seconds, only a safety net; the caller then calls `take` with the same filters. */
  readonly awaitWork: (kinds?: ReadonlyArray<NodeKind>, sessionId?: string) => Effect.Effect<void, TaskQueueError>
  /** Every unfinished job (optionally of one session), in (sessionId, taskId, attempt) order: for the rebuild check,
   *  liveness ("a live worker holds a job of this session") and `planner doctor`. */
  readonly list: (sessionId?: string) => Effect.Effect<ReadonlyArray<ListedJob>, TaskQueueError>
  /** Replace a session's unfinished jobs with these (the rebuild from the log). */
  readonly replace: (sessionId: string, jobs: ReadonlyArray<Job>) => Effect.Effect<void, TaskQueueError>
  /**
   * The workers that serve this queue, as each says of itself (see `WorkerAnnouncement`): a worker announces itself when
   * it starts and again before its announcement runs out, and withdraws when it stops. What `planner show` and
   * `sessions` read to tell a session nobody will serve (its tasks of a kind no live worker takes) from one waiting for
   * a busy worker. Optional for queues of one's own: they then judge from the jobs alone.
   */
  readonly workers?: WorkerRegistry
  /** Outcomes reported into job rows for one writer per session (see `OutcomeReports`); PostgreSQL only. */
  readonly reports?: OutcomeReports
  /**
   * Reclaims the space ended jobs left behind when there is enough of it to slow takes down; whether it tried (a vacuum
   * may still skip the table, another being under way, or the role not owning it). Workers
   * call it now and then (see `app/worker/QueueUpkeep`). PostgreSQL only: a memory queue has nothing to reclaim, and
   * SQLite removes a deleted row and its index entries at once.
   */
  readonly reclaim?: Effect.Effect<boolean, TaskQueueError>
}

export class TaskQueue extends Context.Tag("event-sourced-planner/TaskQueue")<TaskQueue, TaskQueueService>() {}

/** Fails with a clear error when a job given to `replace` is of another session (a caller's bug). */
export const checkSession = (sessionId: string, jobs: ReadonlyArray<Job>): Effect.Effect<void, TaskQueueError> => {
  const stray = jobs.find((job) => job.sessionId !== sessionId)
  return stray === undefined
    ? Effect.void
    : Effect.fail(
        new TaskQueueError({
          operation: "replace",
          reason: `job ${jobKeyString(stray)} is not of session ${sessionId}; pass only that session's jobs`
        })
      )
}
