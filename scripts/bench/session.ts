/**
 * A long planner session for the replay benchmark: one plan of 200 tasks whose attempts are dispatched, claimed,
 * extended, retried and completed over and over. The state stays the same size however long the log grows, so the
 * memory a replay needs should not grow with the log either.
 */
import { defaultConfig } from "../../src/domain/Config.js"
import {
  ContextCompacted,
  type PlannerEvent,
  TaskClaimed,
  TaskDispatched,
  TaskLeaseExtended,
  TaskRetryScheduled,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"

const taskCount = 200
const start = 1_760_000_000_000
const workerId = "bench-host/4242/0badcafe"
const result = "Summarised the module's public API and listed the three functions whose error handling needs a test."

const planned = new TasksPlanned({
  request: "A long-running plan for the replay benchmark",
  attachments: [],
  tasks: Array.from({ length: taskCount }, (_, index) => ({
    id: index + 1,
    description: `step ${index + 1}: do the next part of the work`,
    kind: "Processing" as const,
    dependsOn: index === 0 ? [] : [index],
    attachments: []
  })),
  config: defaultConfig,
  source: { _tag: "Parser" },
  at: start
})

/** Event `index` (0-based) of the session, after `TasksPlanned`. One attempt of a task is nine events. */
const eventAt = (index: number): PlannerEvent => {
  const step = index % 9
  const round = Math.floor(index / 9)
  const taskId = (round % taskCount) + 1
  const attempt = Math.floor(round / taskCount) + 1
  const at = start + index * 10
  switch (step) {
    case 0:
      return new TaskDispatched({
        taskId,
        attempt,
        kind: "Processing",
        description: `step ${taskId}: do the next part of the work`,
        clarifications: [],
        at
      })
    case 1:
      return new TaskClaimed({ taskId, attempt, workerId, leaseExpiresAt: at + 60_000, at })
    case 2:
    case 3:
    case 4:
    case 5:
      return new TaskLeaseExtended({ taskId, attempt, workerId, leaseExpiresAt: at + 60_000, at })
    case 6:
      return new TaskRetryScheduled({ taskId, attempt, error: "upstream timed out", retryAt: at + 1_000, at })
    case 7:
      return new TaskStatusUpdated({ taskId, status: "Completed", attempt, result, at })
    default:
      return new ContextCompacted({
        summary: `Through step ${taskId}: ${result}`,
        removedTaskIds: [taskId],
        tokenBudget: 2_000,
        at
      })
  }
}

/** The session's events in appends of `batch`, `total` events in all (the first is `TasksPlanned`). */
export function* sessionBatches(total: number, batch: number): Generator<ReadonlyArray<PlannerEvent>> {
  let next = 0
  while (next < total) {
    const size = Math.min(batch, total - next)
    const events: Array<PlannerEvent> = []
    for (let i = 0; i < size; i++, next++) events.push(next === 0 ? planned : eventAt(next - 1))
    yield events
  }
}
