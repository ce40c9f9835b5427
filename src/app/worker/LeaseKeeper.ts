/**
 * Keeps a worker's leases in the task queue: one `extendLeases` statement per interval renews the leases of every job
 * the worker holds (never an event). When fewer leases were renewed than the worker holds jobs, some job is no longer
 * its own (the planner ended the attempt, or the lease ran out and another worker took it): the keeper finds which
 * and stops those attempts, which give nothing back.
 */
import { Duration, Effect } from "effect"
import type { JobKey, TaskQueueService } from "../../infra/TaskQueue.js"

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
  const beat = Effect.gen(function* () {
    const held = options.held()
    if (held.length === 0) return
    const renewed = yield* queue.extendLeases(workerId, leaseMs)
    if (renewed >= held.length) return
    // Which jobs are gone: look at the sessions of the jobs held.
    const sessions = new Set(held.map((job) => job.key.sessionId))
    const mine = new Set<string>()
    for (const sessionId of sessions) {
      for (const job of yield* queue.list(sessionId)) {
        if (job.workerId === workerId) mine.add(`${job.sessionId}/${job.taskId}/${job.attempt}`)
      }
    }
    for (const job of options.held()) {
      if (!mine.has(`${job.key.sessionId}/${job.key.taskId}/${job.key.attempt}`)) {
        yield* Effect.logWarning(
          `task ${job.key.taskId} attempt ${job.key.attempt} of session ${job.key.sessionId} is no longer this worker's; stopped it`
        )
        yield* job.drop
      }
    }
  }).pipe(Effect.catchAll((error) => Effect.logWarning(`could not extend leases: ${error.message}`)))
  return Effect.forever(Effect.zipRight(Effect.sleep(interval), beat))
}
