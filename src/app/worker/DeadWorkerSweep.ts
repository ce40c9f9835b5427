/**
 * Takes back the jobs held by workers of this host whose process is gone (killed, crashed): their attempts fail now,
 * as retryable failures, instead of when their leases in the queue run out. A worker runs it when it starts (`resume`
 * after a crash starts one) and then every `livenessCheckInterval` while another process of this host holds jobs, less
 * often while none does (see `Pacing`), reading the queue's holders, never the log.
 */
import { Effect, Either } from "effect"
import { PlannerService } from "../PlannerService.js"
import { abandonAttempt, lostRace } from "./AttemptRunner.js"
import { isDeadLocalWorker, isOtherLocalWorker } from "./WorkerIdentity.js"

/** What a sweep did: how many attempts it took back, and whether another process of this host holds jobs. */
export interface Swept {
  readonly taken: number
  /** Another worker of this host (alive or not) holds jobs: one whose death the next sweep should see soon. */
  readonly watching: boolean
}

/**
 * Abandons every attempt whose job a dead local worker holds (of one session, or of all). How many it took back, and
 * whether there is a local worker to watch.
 */
export const sweepDeadWorkers = (sessionId?: string): Effect.Effect<Swept, never, PlannerService> =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    // Most of the time no holder is dead: the queue names its holders, and the jobs are read only when one is.
    const holders = service.queue.holders
    if (holders !== undefined) {
      const names = yield* holders(sessionId)
      if (!names.some(isDeadLocalWorker)) return { taken: 0, watching: names.some(isOtherLocalWorker) }
    }
    const jobs = yield* service.queue.list(sessionId)
    let taken = 0
    for (const job of jobs) {
      const holder = job.workerId
      // A reported outcome is the session writer's to record, whatever became of the worker that reported it.
      if (holder === undefined || job.reported === true || !isDeadLocalWorker(holder)) continue
      // A job taken from the queue has its start recorded with its outcome: a worker that died running it has none
      // on record, so its start goes in first, with the time of the sweep (a start on record already makes it a no-op).
      // The attempt thus fails like any attempt whose worker died, and counts against the task's retries.
      const abandoned = yield* service
        .executeAll(
          job.sessionId,
          yield* abandonAttempt(
            job,
            holder,
            `worker ${holder} died while running attempt ${job.attempt} (its process is gone)`
          )
        )
        .pipe(
          // Nothing recorded: the attempt had ended in the log already (see below).
          Effect.flatMap(([, outcome]) =>
            outcome === undefined || Either.isRight(outcome)
              ? Effect.succeed((outcome?.right.events.length ?? 0) > 0)
              : Effect.fail(outcome.left)
          ),
          Effect.catchIf(lostRace, () => Effect.succeed(false)),
          Effect.catchAll((error) =>
            Effect.logWarning(
              `could not take back task ${job.taskId} from dead worker ${holder}: ${error.message}`
            ).pipe(Effect.as(false))
          )
        )
      if (abandoned) taken += 1
      // Nothing to abandon (the attempt ended meanwhile): the job goes back to the queue at once instead of when its
      // lease runs out, and is completed by whoever takes it.
      else {
        const key = { sessionId: job.sessionId, taskId: job.taskId, attempt: job.attempt }
        yield* Effect.ignoreLogged(service.queue.release(key, holder))
      }
    }
    return { taken, watching: true }
  }).pipe(
    // The queue could not be asked: looked at again soon.
    Effect.catchAll((error) =>
      Effect.logWarning(`could not look for dead workers' jobs: ${error.message}`).pipe(
        Effect.as<Swept>({ taken: 0, watching: true })
      )
    ),
    Effect.withSpan("Worker.sweepDeadWorkers")
  )
