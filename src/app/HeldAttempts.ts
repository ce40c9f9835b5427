/**
 * What the task queue adds to a session's log for those who look at it: which of its dispatched tasks a worker runs
 * now. A worker on a session that other processes write too records an attempt's start with its outcome, in one
 * append, so until then only the queue's lease says who runs it (`Planner.withHeldAttempts`).
 */
import { Clock, Effect } from "effect"
import * as Planner from "../domain/Planner.js"
import type { NodeKind } from "../domain/Task.js"
import type { ListedJob, TaskQueueError, TaskQueueService, WorkerAnnouncement } from "../infra/TaskQueue.js"
import { PlannerService } from "./PlannerService.js"
import { isDeadLocalWorker } from "./worker/WorkerIdentity.js"

/** The attempts workers hold under leases that have not run out, from a listing of the queue's jobs. */
export const heldAttempts = (jobs: ReadonlyArray<ListedJob>, now: number): ReadonlyArray<Planner.HeldAttempt> =>
  jobs.flatMap((job) =>
    job.workerId !== undefined && job.leaseExpiresAt !== undefined && job.leaseExpiresAt > now
      ? [{ taskId: job.taskId, attempt: job.attempt, workerId: job.workerId, leaseExpiresAt: job.leaseExpiresAt }]
      : []
  )

/**
 * A session as `show` presents it: its state, with the dispatched tasks that a worker holds in the queue shown running
 * on it (`Planner.withHeldAttempts`; their start is recorded with their outcome when other processes write the session).
 */
export const asShown = (sessionId: string, state: Planner.PlannerState) =>
  Effect.gen(function* () {
    if (Planner.isFinished(state) || state.index.counts.Dispatched === 0) return state
    const service = yield* PlannerService
    const jobs = yield* service.queue.list(sessionId)
    return Planner.withHeldAttempts(state, heldAttempts(jobs, yield* Clock.currentTimeMillis))
  })

/** How long a job may stay takeable and untaken before its session counts as stalled: a live run takes it at once. */
export const stalledAfterMs = 5_000

/** Whether a job is held under a live lease by a worker that may be alive (not one of this host's ended processes). */
const heldByLiveWorker = (job: ListedJob, now: number): boolean =>
  job.workerId !== undefined &&
  job.leaseExpiresAt !== undefined &&
  job.leaseExpiresAt > now &&
  !isDeadLocalWorker(job.workerId)

/**
 * Whether nobody serves a running session, from its jobs: no worker holds one under a live lease (a worker of this
 * host whose process is gone holds nothing), and one of them has been takeable for `stalledAfterMs` or was held by such
 * a dead worker. So a run stopped by Ctrl-C or killed, or a session started with `--no-local-worker` that no worker
 * takes. A retry waiting out its backoff, or a task waiting for a sub-plan, is not stalled.
 */
export const isStalled = (jobs: ReadonlyArray<ListedJob>, now: number): boolean =>
  !jobs.some((job) => heldByLiveWorker(job, now)) && jobs.some((job) => isStuck(job, now))

/** A job takeable for `stalledAfterMs` and taken by nobody, or held by a process of this host that is gone. */
const isStuck = (job: ListedJob, now: number): boolean => {
  if (heldByLiveWorker(job, now)) return false
  const held = job.workerId !== undefined && job.leaseExpiresAt !== undefined && job.leaseExpiresAt > now
  return held || job.runAt <= now - stalledAfterMs
}

/**
 * The workers' announcements that have not run out at `now` (`TaskQueue.workers`), less those of this host's processes
 * that are gone; none when the queue keeps no announcements.
 */
export const liveAnnouncements = (
  queue: TaskQueueService,
  now: number
): Effect.Effect<ReadonlyArray<WorkerAnnouncement>, TaskQueueError> =>
  queue.workers === undefined
    ? Effect.succeed<ReadonlyArray<WorkerAnnouncement>>([])
    : Effect.map(queue.workers.live(now), (announced) =>
        announced.filter((worker) => !isDeadLocalWorker(worker.workerId))
      )

/** Whether an announced worker takes tasks of session `sessionId`: it serves every session, or that one. */
export const servesSession = (worker: WorkerAnnouncement, sessionId: string): boolean =>
  worker.sessionId === undefined || worker.sessionId === sessionId

/**
 * `isStalled` for sessions, with one look at the whole queue shared by every session asked about. A session whose jobs
 * wait while a live worker that serves their kinds is busy elsewhere waits its turn (that worker takes them when it
 * has room, and its dead-worker sweep frees what a dead one held), so it is not called stalled; one with a job of a
 * kind no live worker serves is, however busy the others are. What the workers serve comes from their announcements
 * (`TaskQueue.workers`); with none to read (workers of an older version, a queue of one's own), a live worker busy
 * anywhere is taken to serve every kind. False unless the session's plan is running and not just waiting for answers.
 */
export const makeStalled = Effect.gen(function* () {
  const service = yield* PlannerService
  const fleet = yield* Effect.cached(
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const jobs = yield* service.queue.list()
      return {
        busyAnywhere: jobs.some((job) => heldByLiveWorker(job, now)),
        announced: yield* liveAnnouncements(service.queue, now)
      }
    })
  )
  return (sessionId: string, state: Planner.PlannerState) =>
    Effect.gen(function* () {
      if (state.status !== "Running" || Planner.isWaiting(state)) return false
      const now = yield* Clock.currentTimeMillis
      const jobs = yield* service.queue.list(sessionId)
      if (!isStalled(jobs, now)) return false
      const { busyAnywhere, announced } = yield* fleet
      if (announced.length === 0) return !busyAnywhere
      const served = (kind: NodeKind) =>
        announced.some((worker) => worker.kinds.includes(kind) && servesSession(worker, sessionId))
      return jobs.some((job) => isStuck(job, now) && !served(job.kind))
    })
})
