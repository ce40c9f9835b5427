/**
 * Keeps a worker's leases in the task queue: one `extendLeases` statement per interval renews the leases of every job
 * the worker holds (never an event).
 *
 * - Fewer leases renewed than the worker holds jobs: some job is no longer its own (the planner ended the attempt, or
 *   the lease ran out and another worker took it). The keeper finds which and stops those attempts, which give
 *   nothing back.
 * - More renewed than it holds: the queue has jobs under this worker's name that it does not know of. A take in flight
 *   explains that for a moment. A take whose answer was lost (the statement committed, the connection failed before
 *   its rows came back: a report's or an outcome's take as well as one of its own) explains it for good: such a job
 *   was renewed with the others while the worker had other jobs, never run, and once its lease ran out its attempt
 *   counted as lost, a failure it never had. A job this worker never started that stays unknown to it for a whole
 *   lease is given back (`release`: takeable at once, its take not counted), so that any worker runs it as the attempt
 *   it is. A whole lease: a take's answer later than that would have found the job's lease run out anyway, had the
 *   keeper not renewed it.
 * - A job the worker started and no longer runs, still under its name for a whole lease, was lost here: its attempt
 *   died of a defect, or its report's commit was lost with a server crash (reports do not wait for the disk, see
 *   `SqlTaskQueue`). Its lease is ended (`lapse`): the job is takeable again and the attempt counts as lost, as if
 *   the worker had died, so that a task that kills whatever runs it counts its attempts and in the end fails. Before,
 *   the keeper renewed it with the worker's other jobs for as long as the worker had any.
 *
 * A worker with no job of its own renews nothing and looks for nothing: a lost take's jobs then run out with their
 * lease, and their attempts count as lost.
 */
import { Clock, Duration, Effect } from "effect"
import { type JobKey, jobKeyString, type TaskQueueService } from "../../infra/TaskQueue.js"

export interface HeldJob {
  readonly key: JobKey
  /** Stops the attempt without giving it back. */
  readonly drop: Effect.Effect<void>
}

/** How often a lease of `leaseMs` is renewed: three times a lease, so that one late or failed renewal loses nothing. */
export const renewalInterval = (leaseMs: number): Duration.Duration =>
  Duration.millis(Math.max(50, Math.floor(leaseMs / 3)))

export const keepLeases = (options: {
  readonly queue: TaskQueueService
  readonly workerId: string
  readonly leaseMs: number
  readonly held: () => ReadonlyArray<HeldJob>
  /**
   * Whether this worker started the job's attempt: it runs here, or ended here lately (at least a lease and a beat
   * ago must still count: see `StartedAttempts`).
   */
  readonly startedHere: (key: string) => boolean
}): Effect.Effect<never> => {
  const { queue, workerId, leaseMs } = options
  const interval = renewalInterval(leaseMs)
  /** Jobs under this worker's name it has not known of, by key: since when (epoch ms). */
  let unknownSince = new Map<string, number>()
  const known = () => new Set(options.held().map((job) => jobKeyString(job.key)))

  /** Gives back the jobs under this worker's name it never started and has not known of for a whole lease. */
  const giveBackUnknown = Effect.gen(function* () {
    const listed: ReadonlyArray<JobKey> =
      queue.heldBy === undefined
        ? (yield* queue.list()).filter((job) => job.workerId === workerId && job.reported !== true)
        : yield* queue.heldBy(workerId)
    const now = yield* Clock.currentTimeMillis
    const holding = known()
    const since = new Map<string, number>()
    for (const job of listed) {
      const key = jobKeyString(job)
      if (holding.has(key)) continue
      const first = unknownSince.get(key) ?? now
      if (now - first < leaseMs) {
        since.set(key, first)
        continue
      }
      // Known meanwhile (its take's answer came while the queue was read): it runs here.
      if (known().has(key)) continue
      const what = `task ${job.taskId} attempt ${job.attempt} of session ${job.sessionId}`
      const jobKey = { sessionId: job.sessionId, taskId: job.taskId, attempt: job.attempt }
      const seconds = Math.round((now - first) / 1000)
      if (options.startedHere(key)) {
        if (queue.lapse === undefined) continue
        yield* Effect.logWarning(
          `${what} ran here, has not run here for ${seconds} s and is still this worker's in the queue (its attempt died, or a server crash lost its report); its lease is ended and the attempt counts as lost`
        )
        yield* queue.lapse(jobKey, workerId)
      } else {
        yield* Effect.logWarning(
          `${what} was this worker's without its knowing for ${seconds} s (a take whose answer was lost); given back`
        )
        yield* queue.release(jobKey, workerId)
      }
    }
    unknownSince = since
  }).pipe(
    Effect.catchAll((error) =>
      Effect.logWarning(`could not look for jobs this worker holds without knowing: ${error.message}`)
    )
  )

  /** When the jobs under this worker's name were last looked at. */
  let lastLook: number | undefined
  const beat = Effect.gen(function* () {
    const held = options.held()
    if (held.length === 0) return
    const renewed = yield* queue.extendLeases(workerId, leaseMs)
    const now = yield* Clock.currentTimeMillis
    lastLook ??= now
    // More renewed than held: a job under this worker's name it does not know of. The counts can also hide one (a
    // held job gone from the queue while an unknown one is renewed), so the jobs are looked at once a lease anyway.
    if (renewed > held.length || now - lastLook >= leaseMs) {
      lastLook = now
      yield* giveBackUnknown
    }
    if (renewed >= held.length) return
    // Which jobs are gone: look at the sessions of the jobs held.
    const sessions = new Set(held.map((job) => job.key.sessionId))
    const mine = new Set<string>()
    for (const sessionId of sessions) {
      for (const job of yield* queue.list(sessionId)) {
        if (job.workerId === workerId) mine.add(jobKeyString(job))
      }
    }
    for (const job of options.held()) {
      if (!mine.has(jobKeyString(job.key))) {
        yield* Effect.logWarning(
          `task ${job.key.taskId} attempt ${job.key.attempt} of session ${job.key.sessionId} is no longer this worker's; stopped it`
        )
        yield* job.drop
      }
    }
  }).pipe(Effect.catchAll((error) => Effect.logWarning(`could not extend leases: ${error.message}`)))
  return Effect.forever(Effect.zipRight(Effect.sleep(interval), beat))
}
