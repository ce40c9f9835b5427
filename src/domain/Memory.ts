/**
 * Memory of past work: what the memory index keeps of a session, computed from its events alone.
 *
 * A pure projection of the log: for each task that ended (Completed or Failed) its description, kind, result,
 * attempts, duration and the questions it asked; for each finished session its request, the shape of its plan and
 * its outcome. A fork's copied prefix is the source session's work, so tasks that ended before `SessionForked` are not
 * recorded again under the fork.
 */
import type { PlannerEvent, PlanOutcome } from "./Events.js"
import type { NodeKind, TaskId } from "./Task.js"

/** A task that ended, as memory keeps it. */
export interface TaskMemory {
  readonly _tag: "Task"
  readonly sessionId: string
  readonly taskId: TaskId
  readonly description: string
  readonly kind: NodeKind
  readonly status: "Completed" | "Failed"
  /** The result, or the error of a failed task; empty when it had neither. */
  readonly result: string
  readonly attempts: number
  /** From its first dispatch to its end, in milliseconds. */
  readonly durationMs: number
  /** The questions it asked, in order. */
  readonly questions: ReadonlyArray<string>
  readonly finishedAt: number
}

/** A task of a plan, as far as its shape goes. */
export interface PlanStep {
  readonly id: TaskId
  readonly description: string
  readonly kind: NodeKind
  readonly dependsOn: ReadonlyArray<TaskId>
}

/** A finished session, as memory keeps it. */
export interface SessionMemory {
  readonly _tag: "Session"
  readonly sessionId: string
  readonly request: string
  readonly outcome: PlanOutcome
  readonly summary: string
  readonly plan: ReadonlyArray<PlanStep>
  readonly durationMs: number
  readonly finishedAt: number
}

export type MemoryRecord = TaskMemory | SessionMemory

/** The stable key of a record: one per task of a session, one per session. */
export const recordKey = (record: MemoryRecord): string =>
  record._tag === "Task" ? `task:${record.sessionId}:${record.taskId}` : `session:${record.sessionId}`

/** The text a record is searched by. */
export const recordText = (record: MemoryRecord): string =>
  record._tag === "Task"
    ? [record.description, record.result, ...record.questions].filter((part) => part.length > 0).join("\n")
    : [record.request, ...record.plan.map((step) => step.description)].join("\n")

/** The event types `recordsOf` reads; a projection may subscribe to these alone. */
export const memoryEventTypes = [
  "TasksPlanned",
  "TaskDispatched",
  "TaskStatusUpdated",
  "ClarificationRequested",
  "SessionForked",
  "PlanningCompleted",
  "TaskReplanned",
  "PlanEdited"
] as const satisfies ReadonlyArray<PlannerEvent["_tag"]>

const memoryEventSet: ReadonlySet<string> = new Set(memoryEventTypes)

/** Whether an event can change what memory keeps of its session. */
export const isMemoryEvent = (event: PlannerEvent): boolean => memoryEventSet.has(event._tag)

interface TaskTrack {
  description: string
  kind: NodeKind
  firstDispatchedAt: number | undefined
  questions: Array<string>
  ended: TaskMemory | undefined
}

/**
 * Every record a session's events give, tasks in id order then the session when it finished. Events of other types
 * than `memoryEventTypes` are ignored, so a caller may pass all of a session's events or only those.
 */
export const recordsOf = (sessionId: string, events: Iterable<PlannerEvent>): ReadonlyArray<MemoryRecord> => {
  const tasks = new Map<TaskId, TaskTrack>()
  let request = ""
  let plan: ReadonlyArray<PlanStep> = []
  let plannedAt: number | undefined
  let session: SessionMemory | undefined
  const track = (id: TaskId): TaskTrack | undefined => tasks.get(id)
  /** Planned steps (a plan, or a revision's new tasks) join the plan and are tracked from now on. */
  const remember = (steps: ReadonlyArray<PlanStep>): void => {
    plan = [...plan, ...steps.map(({ id, description, kind, dependsOn }) => ({ id, description, kind, dependsOn }))]
    for (const step of steps) {
      tasks.set(step.id, {
        description: step.description,
        kind: step.kind,
        firstDispatchedAt: undefined,
        questions: [],
        ended: undefined
      })
    }
  }
  for (const event of events) {
    switch (event._tag) {
      case "TasksPlanned":
        request = event.request
        plannedAt = event.at
        plan = []
        tasks.clear()
        remember(event.tasks)
        break
      case "PlanEdited":
        // A live edit (`planner edit`, a fork's edits): added tasks are remembered, changed ones under their new text.
        for (const edit of event.edits) {
          switch (edit._tag) {
            case "AddTask":
              if (edit.id !== undefined) remember([{ ...edit, id: edit.id }])
              break
            case "SetTask": {
              const current = track(edit.taskId)
              if (current !== undefined) {
                if (edit.description !== undefined) current.description = edit.description
                if (edit.kind !== undefined) current.kind = edit.kind
              }
              plan = plan.map((step) =>
                step.id === edit.taskId
                  ? { ...step, description: edit.description ?? step.description, kind: edit.kind ?? step.kind }
                  : step
              )
              break
            }
            case "SetDependencies":
              plan = plan.map((step) => (step.id === edit.taskId ? { ...step, dependsOn: edit.dependsOn } : step))
              break
            case "RemoveTask":
              plan = plan.filter((step) => step.id !== edit.taskId)
              tasks.delete(edit.taskId)
              break
            case "SetAnswer":
              break
          }
        }
        break
      case "TaskReplanned":
        // A revised plan after a failure (`--on-failure replan`): its tasks join the plan and are remembered too.
        remember(event.tasks)
        break
      case "TaskDispatched": {
        const current = track(event.taskId)
        if (current !== undefined) {
          current.description = event.description
          current.kind = event.kind
          if (current.firstDispatchedAt === undefined) current.firstDispatchedAt = event.at
        }
        break
      }
      case "ClarificationRequested":
        track(event.taskId)?.questions.push(event.question)
        break
      case "TaskStatusUpdated": {
        const current = track(event.taskId)
        if (current === undefined) break
        if (event.status !== "Completed" && event.status !== "Failed") break
        const started = current.firstDispatchedAt ?? event.at
        current.ended = {
          _tag: "Task",
          sessionId,
          taskId: event.taskId,
          description: current.description,
          kind: current.kind,
          status: event.status,
          result: (event.status === "Completed" ? event.result : (event.error ?? event.result)) ?? "",
          attempts: Math.max(1, event.attempt),
          durationMs: Math.max(0, event.at - started),
          questions: [...current.questions],
          finishedAt: event.at
        }
        break
      }
      case "SessionForked":
        // Work that ended before the fork belongs to the source session's memory.
        for (const current of tasks.values()) current.ended = undefined
        break
      case "PlanningCompleted":
        session = {
          _tag: "Session",
          sessionId,
          request,
          outcome: event.outcome,
          summary: event.summary,
          plan,
          durationMs: Math.max(0, event.at - (plannedAt ?? event.at)),
          finishedAt: event.at
        }
        break
      default:
        break
    }
  }
  const records: Array<MemoryRecord> = []
  for (const id of [...tasks.keys()].sort((a, b) => a - b)) {
    const ended = tasks.get(id)?.ended
    if (ended !== undefined) records.push(ended)
  }
  if (session !== undefined) records.push(session)
  return records
}

/** Per-kind and overall figures over task records. */
export interface KindStats {
  readonly tasks: number
  readonly succeeded: number
  readonly successRate: number
  readonly meanAttempts: number
  readonly meanDurationMs: number
  /** Tasks that asked at least one question. */
  readonly askedClarification: number
  readonly clarificationRate: number
}

export interface MemoryStats {
  readonly overall: KindStats
  readonly byKind: Readonly<Partial<Record<NodeKind, KindStats>>>
  readonly sessions: { readonly finished: number; readonly succeeded: number; readonly successRate: number }
}

const kindStats = (tasks: ReadonlyArray<TaskMemory>): KindStats => {
  const n = tasks.length
  const succeeded = tasks.filter((task) => task.status === "Completed").length
  const asked = tasks.filter((task) => task.questions.length > 0).length
  const sum = (f: (task: TaskMemory) => number) => tasks.reduce((total, task) => total + f(task), 0)
  return {
    tasks: n,
    succeeded,
    successRate: n === 0 ? 0 : succeeded / n,
    meanAttempts: n === 0 ? 0 : sum((task) => task.attempts) / n,
    meanDurationMs: n === 0 ? 0 : sum((task) => task.durationMs) / n,
    askedClarification: asked,
    clarificationRate: n === 0 ? 0 : asked / n
  }
}

/** Success rate, mean attempts and duration, and how often tasks asked, per kind and overall. */
export const stats = (records: ReadonlyArray<MemoryRecord>): MemoryStats => {
  const tasks = records.filter((record): record is TaskMemory => record._tag === "Task")
  const sessions = records.filter((record): record is SessionMemory => record._tag === "Session")
  const byKind: Partial<Record<NodeKind, KindStats>> = {}
  const kinds = [...new Set(tasks.map((task) => task.kind))].sort()
  for (const kind of kinds) byKind[kind] = kindStats(tasks.filter((task) => task.kind === kind))
  const succeeded = sessions.filter((session) => session.outcome === "Succeeded").length
  return {
    overall: kindStats(tasks),
    byKind,
    sessions: {
      finished: sessions.length,
      succeeded,
      successRate: sessions.length === 0 ? 0 : succeeded / sessions.length
    }
  }
}

/**
 * Whether a task's neighbours in memory usually asked a question: more than half of at least `minimum` similar
 * ended tasks did. Gives the counts for the warning ("asked 4 times in 6").
 */
export const clarificationFlag = (
  similar: ReadonlyArray<TaskMemory>,
  minimum = 2
): { readonly asked: number; readonly of: number } | undefined => {
  const asked = similar.filter((task) => task.questions.length > 0).length
  return similar.length >= minimum && asked * 2 > similar.length ? { asked, of: similar.length } : undefined
}
