/**
 * Keeps a worker's leases in the task queue: one `extendLeases` statement per interval renews the leases of every job
 * the worker holds (never an event).
 *
 * - Fewer leases renewed than the worker holds jobs: some job is no longer its own (the planner ended the attempt, or
 *   the lease ran out and another worker took it). The keeper finds which and stops those attempts, which give
 *   nothing back.
 * - More renewed than it holds: the queue has jobs under this worker's name that it does not know of. A take in flight
 *   explains that for a moment; a take whose answer was lost (the statement committed, the connection failed before
 *   its rows came back: a report's or an outcome's take as well as one of its own) explains it for good. Such a job
 *   was renewed for as long as the worker had other jobs, never run, and once its lease ran out its attempt counted
 *   as lost, a failure. A job still unknown at the next beat is given back (`release`: takeable at once, its take not
 *   counted), so any worker takes and runs it as the attempt it is.
 */
import { Duration, Effect } from "effect"
import { type JobKey, jobKeyString, type TaskQueueService } from "../../infra/TaskQueue.js"

export interface HeldJob {
  readonly key: JobKey
  /** Stops the attempt without giving it back. */
  readonly drop: Effect.Effect<void>
}

export const keepLeases = (options: {
  readonly queue: TaskQueueService
  readonly workerId: string
  readonly leaseMs: number
  readonly held: () => ReadonlyArray<HeldJob>
}): Effect.Effect<never> => {
  const { queue, workerId, leaseMs } = options
  const interval = Duration.millis(Math.max(50, Math.floor(leaseMs / 3)))
  /** Jobs under this worker's name it did not know of at the last beat. */
  let unknown = new Set<string>()

  /** Gives back the jobs under this worker's name it has not known of for a whole beat. */
  const giveBackUnknown = Effect.gen(function* () {
    const known = new Set(options.held().map((job) => jobKeyString(job.key)))
    const strays = (yield* queue.list()).filter(
      (job) => job.workerId === workerId && job.reported !== true && !known.has(jobKeyString(job))
    )
    const seenBefore = unknown
    unknown = new Set()
    for (const job of strays) {
      const key = jobKeyString(job)
      if (!seenBefore.has(key)) {
        unknown.add(key)
        continue
      }
      yield* Effect.logWarning(
        `task ${job.taskId} attempt ${job.attempt} of session ${job.sessionId} was this worker's without its knowing (a take whose answer was lost); given back`
      )
      yield* queue.release({ sessionId: job.sessionId, taskId: job.taskId, attempt: job.attempt }, workerId)
    }
  })

  const beat = Effect.gen(function* () {
    const held = options.held()
    if (held.length === 0) {
      unknown = new Set()
      return
    }
    const renewed = yield* queue.extendLeases(workerId, leaseMs)
    if (renewed > held.length) return yield* giveBackUnknown
    unknown = new Set()
    if (renewed === held.length) return
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
