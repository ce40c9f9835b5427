/**
 * Takes back the jobs held by workers of this host whose process is gone (killed, crashed): their attempts fail now,
 * as retryable failures, instead of when their leases in the queue run out. A worker runs it when it starts (`resume`
 * after a crash starts one) and then every `livenessCheckInterval`, reading the queue's holders, never the log.
 */
import { Clock, Effect, Random } from "effect"
import { AbandonTask } from "../../domain/Commands.js"
import { PlannerService } from "../PlannerService.js"
import { isDeadLocalWorker } from "./WorkerIdentity.js"

/** Refusals that mean "it moved on already": nothing to take back. */
const movedOn = (error: { readonly _tag: string }) =>
  error._tag === "TaskAlreadyClaimed" ||
  error._tag === "StaleAttempt" ||
  error._tag === "InvalidTransition" ||
  error._tag === "SessionFinished"

/** Abandons every attempt whose job a dead local worker holds (of one session, or of all). How many it took back. */
export const sweepDeadWorkers = (sessionId?: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const jobs = yield* service.queue.list(sessionId)
    let taken = 0
    for (const job of jobs) {
      const holder = job.workerId
      if (holder === undefined || !isDeadLocalWorker(holder)) continue
      const at = yield* Clock.currentTimeMillis
      const jitter = yield* Random.next
      const abandoned = yield* service
        .execute(
          job.sessionId,
          new AbandonTask({
            taskId: job.taskId,
            attempt: job.attempt,
            workerId: holder,
            reason: `worker ${holder} died while running attempt ${job.attempt} (its process is gone)`,
            jitter,
            at
          })
        )
        .pipe(
          // Nothing recorded: the attempt was not running in the log (see below).
          Effect.map((handled) => handled.events.length > 0),
          Effect.catchIf(movedOn, () => Effect.succeed(false)),
          Effect.catchAll((error) =>
            Effect.logWarning(
              `could not take back task ${job.taskId} from dead worker ${holder}: ${error.message}`
            ).pipe(Effect.as(false))
          )
        )
      if (abandoned) taken += 1
      // Not running in the log (it died between taking the job and recording the start, or the attempt ended):
      // the job goes back to the queue at once instead of when its lease runs out.
      else {
        const key = { sessionId: job.sessionId, taskId: job.taskId, attempt: job.attempt }
        yield* Effect.ignoreLogged(service.queue.release(key, holder))
      }
    }
    return taken
  }).pipe(
    Effect.catchAll((error) =>
      Effect.logWarning(`could not look for dead workers' jobs: ${error.message}`).pipe(Effect.as(0))
    ),
    Effect.withSpan("Worker.sweepDeadWorkers")
  )
