/**
 * What differs between two sessions (#15): task by task, their plans (description, kind, dependencies), where each
 * task stands (status, result, error), and the answers it was given; and the first event where the two logs part.
 * `planner diff`, the dashboard's diff view and anything comparing a fork with its origin (or two planning strategies,
 * `fork --at 0 --replan`) read the same value.
 *
 * Pure: it takes the two states and the two logs. Tasks are matched by id, since a fork keeps its origin's ids and an
 * edit that adds a task gives it the next free id. Two logs are compared event by event, ignoring what naturally
 * differs between two runs of the same thing (the time of each event, lease and retry times, worker ids and backoff
 * draws), so two runs of one request part where something happened differently, not at their first timestamp.
 */
import type { PlannerEvent } from "../domain/Events.js"
import type * as Planner from "../domain/Planner.js"
import type { TaskState } from "../domain/Task.js"

/** The fields of a task that are compared, in the order they are shown. */
export const taskFields = ["description", "kind", "dependsOn", "status", "result", "error", "answers"] as const
export type TaskField = (typeof taskFields)[number]

/** Which part of a task a field belongs to: what was planned, or what happened. */
export const fieldPart: Readonly<Record<TaskField, "plan" | "outcome">> = {
  description: "plan",
  kind: "plan",
  dependsOn: "plan",
  status: "outcome",
  result: "outcome",
  error: "outcome",
  answers: "outcome"
}

export interface FieldChange {
  readonly field: TaskField
  /** The value in the first session; undefined when it has none (no result, no error). */
  readonly a: string | ReadonlyArray<number> | ReadonlyArray<string> | undefined
  readonly b: string | ReadonlyArray<number> | ReadonlyArray<string> | undefined
}

export interface TaskDiff {
  readonly id: number
  /** `onlyA`: the second session has no such task (removed, or planned differently); `onlyB` the other way round. */
  readonly change: "same" | "changed" | "onlyA" | "onlyB"
  /** The task's description in the first session, else in the second. */
  readonly description: string
  readonly changes: ReadonlyArray<FieldChange>
  /**
   * When the second session is an incremental fork that took this task's result over without running it: the session
   * and the event (its sequence there) that recorded the result.
   */
  readonly reusedFrom?: { readonly sessionId: string; readonly sequence: number }
}

/** One side of the first difference between the logs: the event at that sequence, if the log has one. */
export interface DivergentEvent {
  readonly type: PlannerEvent["_tag"]
  readonly event: PlannerEvent
}

export interface Divergence {
  /** The first sequence at which the logs differ. */
  readonly sequence: number
  readonly a: DivergentEvent | undefined
  readonly b: DivergentEvent | undefined
}

export interface SessionSide {
  readonly sessionId: string
  readonly state: Planner.PlannerState
  /** The session's events in order (sequence 1 first). Empty when they are not available (a pruned session). */
  readonly events: ReadonlyArray<PlannerEvent>
}

export interface SessionDiff {
  readonly a: { readonly sessionId: string; readonly status: string; readonly events: number }
  readonly b: { readonly sessionId: string; readonly status: string; readonly events: number }
  /** Both requests, when they differ. */
  readonly request: { readonly a: string; readonly b: string } | undefined
  /** Each task of either session, by id. */
  readonly tasks: ReadonlyArray<TaskDiff>
  /** Undefined when the logs are the same event for event (and as long). */
  readonly divergence: Divergence | undefined
  /** True when the two logs could be compared (both sessions still have their events). */
  readonly logsCompared: boolean
  /** Nothing differs: same request, every task the same, and the logs the same. */
  readonly identical: boolean
}

const answersOf = (task: TaskState): ReadonlyArray<string> =>
  task.clarifications.flatMap((clarification) => (clarification.answer === undefined ? [] : [clarification.answer]))

const fieldValue = (task: TaskState, field: TaskField): FieldChange["a"] => {
  switch (field) {
    case "description":
      return task.description
    case "kind":
      return task.kind
    case "dependsOn":
      return [...task.dependsOn].sort((x, y) => x - y)
    case "status":
      return task.status
    case "result":
      return task.result
    case "error":
      // A completed task may keep the error of an earlier attempt; what it ended with is its result.
      return task.status === "Completed" ? undefined : task.error
    case "answers":
      return answersOf(task)
  }
}

const sameValue = (a: FieldChange["a"], b: FieldChange["a"]): boolean => {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => item === b[i])
  return a === b
}

/** The differences between two versions of one task, field by field. */
export const diffTask = (a: TaskState | undefined, b: TaskState | undefined, id: number): TaskDiff => {
  if (a === undefined || b === undefined) {
    const only = (a ?? b) as TaskState
    return { id, change: a === undefined ? "onlyB" : "onlyA", description: only.description, changes: [] }
  }
  const changes = taskFields.flatMap((field): ReadonlyArray<FieldChange> => {
    const before = fieldValue(a, field)
    const after = fieldValue(b, field)
    return sameValue(before, after) ? [] : [{ field, a: before, b: after }]
  })
  return { id, change: changes.length === 0 ? "same" : "changed", description: a.description, changes }
}

/** Fields that differ between two runs of the same thing without anything happening differently. */
const incidental: ReadonlySet<string> = new Set(["at", "leaseExpiresAt", "retryAt", "runAt", "workerId", "jitter"])

/** An event as compared: its payload without incidental fields, keys in a stable order. */
const comparable = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(comparable)
  if (typeof value !== "object" || value === null) return value
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([key, field]) => !incidental.has(key) && field !== undefined)
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([key, field]) => [key, comparable(field)] as const)
  return Object.fromEntries(entries)
}

/** Whether two events record the same thing (ignoring times, worker ids and backoff draws). */
export const sameEvent = (a: PlannerEvent, b: PlannerEvent): boolean =>
  a._tag === b._tag && JSON.stringify(comparable(a)) === JSON.stringify(comparable(b))

/** The first sequence at which two logs differ; undefined when they are the same event for event. */
export const firstDivergence = (
  a: ReadonlyArray<PlannerEvent>,
  b: ReadonlyArray<PlannerEvent>
): Divergence | undefined => {
  const length = Math.max(a.length, b.length)
  for (let index = 0; index < length; index++) {
    const left = a[index]
    const right = b[index]
    if (left !== undefined && right !== undefined && sameEvent(left, right)) continue
    return {
      sequence: index + 1,
      a: left === undefined ? undefined : { type: left._tag, event: left },
      b: right === undefined ? undefined : { type: right._tag, event: right }
    }
  }
  return undefined
}

/** The tasks a session took over from its origin without running them (its `SessionForked.reused`), by id. */
export const reusedTasks = (
  events: ReadonlyArray<PlannerEvent>
): ReadonlyMap<number, { readonly sessionId: string; readonly sequence: number }> => {
  const found = new Map<number, { readonly sessionId: string; readonly sequence: number }>()
  for (const event of events) {
    if (event._tag !== "SessionForked") continue
    for (const reused of event.reused ?? []) {
      found.set(reused.taskId, { sessionId: event.fromSessionId, sequence: reused.sequence })
    }
  }
  return found
}

/** What differs between session `a` and session `b`. */
export const diffSessions = (a: SessionSide, b: SessionSide): SessionDiff => {
  const count = Math.max(a.state.tasks.length, b.state.tasks.length)
  const reused = reusedTasks(b.events)
  const tasks: Array<TaskDiff> = []
  for (let id = 1; id <= count; id++) {
    const task = diffTask(a.state.tasks[id - 1], b.state.tasks[id - 1], id)
    const from = reused.get(id)
    tasks.push(from === undefined ? task : { ...task, reusedFrom: from })
  }
  const logsCompared = a.events.length > 0 && b.events.length > 0
  const divergence = logsCompared ? firstDivergence(a.events, b.events) : undefined
  const request = a.state.request === b.state.request ? undefined : { a: a.state.request, b: b.state.request }
  return {
    a: { sessionId: a.sessionId, status: a.state.status, events: a.state.version },
    b: { sessionId: b.sessionId, status: b.state.status, events: b.state.version },
    request,
    tasks,
    divergence,
    logsCompared,
    identical:
      request === undefined &&
      tasks.every((task) => task.change === "same") &&
      logsCompared &&
      divergence === undefined &&
      a.state.status === b.state.status
  }
}

/** The tasks that differ in their plan, and those whose plan is the same but whose outcome differs. */
export const changedTasks = (diff: SessionDiff) => ({
  plan: diff.tasks.filter(
    (task) =>
      task.change === "onlyA" || task.change === "onlyB" || task.changes.some((c) => fieldPart[c.field] === "plan")
  ),
  outcome: diff.tasks.filter(
    (task) => task.change === "changed" && task.changes.every((c) => fieldPart[c.field] === "outcome")
  )
})
