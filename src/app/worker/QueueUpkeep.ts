/**
 * Keeps the task queue quick to take from: every interval the worker asks the queue to reclaim what ended jobs left
 * behind (`TaskQueue.reclaim`: on PostgreSQL, a vacuum of the job table once enough dead row versions have gathered,
 * which autovacuum would leave for up to a minute). Every worker asks, each at its own pace; the queue leaves a vacuum
 * already under way to finish. A failure is logged and the worker goes on: upkeep keeps takes fast, nothing waits on it.
 */
import { type Duration, Effect } from "effect"
import type { TaskQueueService } from "../../infra/TaskQueue.js"

export const keepQueueTidy = (
  queue: Pick<TaskQueueService, "reclaim">,
  interval: Duration.DurationInput
): Effect.Effect<void> => {
  const reclaim = queue.reclaim
  if (reclaim === undefined) return Effect.void
  const once = reclaim.pipe(
    Effect.catchAll((error) => Effect.logWarning(`could not reclaim the task queue's space: ${error.message}`))
  )
  return Effect.forever(Effect.zipRight(Effect.sleep(interval), once))
}
