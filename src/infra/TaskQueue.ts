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
 *
 * Layers: `MemoryTaskQueue.layer` (one process) and `SqlTaskQueue.layer` (SQLite and PostgreSQL, on the event
 * store's `SqlClient`).
 */
import { Context, Effect, Schema } from "effect"
import type { NodeKind } from "../domain/Task.js"
import type { AlongsideStatement } from "./EventStore.js"

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

/** An unfinished job as `list` shows it: with its holder while a worker has it. */
export type ListedJob = Job & { readonly workerId?: string; readonly leaseExpiresAt?: number }

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
   * Give a job back (shutdown): takeable again at once (or at runAt), and its take does not count (see
   * `TakenJob.takes`). Only the worker holding it can.
   */
  readonly release: (key: JobKey, workerId: string) => Effect.Effect<void, TaskQueueError>
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
