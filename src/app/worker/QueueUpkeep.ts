/**
 * Keeps the task queue quick to take from: every interval in which the worker was busy, it asks the queue to reclaim
 * what ended jobs left behind (`TaskQueue.reclaim`: on PostgreSQL, a vacuum of the job table once enough dead row
 * versions have gathered, which autovacuum would leave for up to a minute). Every busy worker asks, each at its own
 * pace; the queue leaves a vacuum already under way to finish. An idle worker asks nothing: it left nothing behind,
 * and the workers that did ask for themselves. A failure is logged and the worker goes on: upkeep keeps takes fast,
 * nothing waits on it.
 */
import { type Duration, Effect } from "effect"
import type { TaskQueueService } from "../../infra/TaskQueue.js"

export const keepQueueTidy = (
  queue: Pick<TaskQueueService, "reclaim">,
  interval: Duration.DurationInput,
  /** Whether the worker was busy since the last call (see `Pacing.Activity`). */
  busy: () => boolean
): Effect.Effect<void> => {
  const reclaim = queue.reclaim
  if (reclaim === undefined) return Effect.void
  const once = Effect.suspend(() => (busy() ? reclaim : Effect.void)).pipe(
    Effect.catchAll((error) => Effect.logWarning(`could not reclaim the task queue's space: ${error.message}`))
  )
  return Effect.forever(Effect.zipRight(Effect.sleep(interval), once))
}
