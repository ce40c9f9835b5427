/**
 * Where each task's time went, read from the session's events: its attempts as segments on a time axis, queued
 * (dispatched, waiting for a worker), running (held by a worker), waiting for an answer, and retry backoff (between a
 * failure and the time its next attempt may start).
 */

/** Segment kinds, in legend order, with their labels. */
export const segmentLabels = {
  queued: "Queued",
  running: "Running",
  waiting: "Waiting for an answer",
  backoff: "Retry backoff"
}

/**
 * @typedef {{ kind: keyof typeof segmentLabels, attempt: number, start: number, end: number | undefined }} Segment
 * @param {ReadonlyArray<{ type: string, data: any, createdAt: number }>} events in sequence order
 * @returns {{ tasks: Map<number, Segment[]>, start: number | undefined, end: number | undefined }}
 */
export function taskSegments(events) {
  const tasks = new Map()
  const open = new Map()
  let start
  let end
  const list = (taskId) => {
    let segments = tasks.get(taskId)
    if (segments === undefined) {
      segments = []
      tasks.set(taskId, segments)
    }
    return segments
  }
  const close = (taskId, at) => {
    const segment = open.get(taskId)
    if (segment === undefined) return
    segment.end = Math.max(segment.start, at)
    open.delete(taskId)
  }
  const begin = (taskId, kind, attempt, at) => {
    const segment = { kind, attempt, start: at, end: undefined }
    list(taskId).push(segment)
    open.set(taskId, segment)
  }
  for (const record of events) {
    const data = record.data
    const at = data.at ?? record.createdAt
    if (start === undefined) start = at
    end = at
    const id = data.taskId
    switch (record.type) {
      case "TasksPlanned":
        for (const task of data.tasks ?? []) list(task.id)
        break
      case "TaskDispatched":
        // Already queued (an answer re-queues it, then it is dispatched): one segment.
        if (open.get(id)?.kind !== "queued") {
          close(id, at)
          begin(id, "queued", data.attempt, at)
        }
        break
      case "TaskClaimed":
        close(id, at)
        begin(id, "running", data.attempt, at)
        break
      case "TaskReleased":
        close(id, at)
        begin(id, "queued", data.attempt, at)
        break
      case "ClarificationRequested":
        close(id, at)
        begin(id, "waiting", open.get(id)?.attempt ?? lastAttempt(list(id)), at)
        break
      case "ClarificationReceived":
        close(id, at)
        begin(id, "queued", lastAttempt(list(id)), at)
        break
      case "TaskRetryScheduled": {
        close(id, at)
        list(id).push({ kind: "backoff", attempt: data.attempt, start: at, end: Math.max(at, data.retryAt) })
        begin(id, "queued", data.attempt + 1, Math.max(at, data.retryAt))
        break
      }
      case "TaskStatusUpdated":
        close(id, at)
        break
      case "PlanningCompleted":
        for (const taskId of [...open.keys()]) close(taskId, at)
        break
      default:
        break
    }
  }
  return { tasks, start, end }
}

const lastAttempt = (segments) => segments.at(-1)?.attempt ?? 1

/** How long a task has taken so far: the sum of its segments, an open one counted up to `now`. */
export function taskDuration(segments, now) {
  let total = 0
  for (const segment of segments ?? []) total += Math.max(0, (segment.end ?? now) - segment.start)
  return total
}
