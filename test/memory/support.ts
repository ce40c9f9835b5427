/** Sessions written straight into a store as planner events, for the memory index's tests. */
import { Effect } from "effect"
import { defaultConfig } from "../../src/domain/Config.js"
import {
  ClarificationReceived,
  ClarificationRequested,
  type PlannerEvent,
  PlanningCompleted,
  SessionForked,
  TaskDispatched,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"
import type { SubPlanOf } from "../../src/domain/SubPlanLink.js"
import type { NodeKind } from "../../src/domain/Task.js"
import { EventStore } from "../../src/infra/EventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"

export interface TaskScript {
  readonly description: string
  readonly kind?: NodeKind
  readonly outcome?: "Completed" | "Failed" | "open"
  readonly result?: string
  readonly attempts?: number
  readonly questions?: ReadonlyArray<string>
  /** Milliseconds from dispatch to end. */
  readonly duration?: number
}

export const planned = (
  request: string,
  tasks: ReadonlyArray<TaskScript>,
  at = 1_000,
  subPlanOf?: SubPlanOf
): TasksPlanned =>
  new TasksPlanned({
    ...(subPlanOf === undefined ? {} : { subPlanOf }),
    request,
    attachments: [],
    tasks: tasks.map((task, index) => ({
      id: index + 1,
      description: task.description,
      kind: task.kind ?? "Processing",
      dependsOn: index === 0 ? [] : [index],
      attachments: []
    })),
    config: defaultConfig,
    source: { _tag: "Parser" },
    at
  })

/** The events of one task's life, from its first dispatch at `at`. */
export const taskEvents = (id: number, task: TaskScript, at: number): ReadonlyArray<PlannerEvent> => {
  const kind = task.kind ?? "Processing"
  const events: Array<PlannerEvent> = []
  const dispatch = (attempt: number, time: number) =>
    new TaskDispatched({ taskId: id, attempt, kind, description: task.description, clarifications: [], at: time })
  events.push(dispatch(1, at))
  for (const question of task.questions ?? []) {
    events.push(new ClarificationRequested({ taskId: id, question, at }))
    events.push(new ClarificationReceived({ taskId: id, answer: "yes", at }))
  }
  const attempts = task.attempts ?? 1
  for (let attempt = 2; attempt <= attempts; attempt++) events.push(dispatch(attempt, at))
  const outcome = task.outcome ?? "Completed"
  if (outcome !== "open") {
    events.push(
      new TaskStatusUpdated({
        taskId: id,
        status: outcome,
        attempt: attempts,
        ...(outcome === "Completed" ? { result: task.result ?? `done: ${task.description}` } : { error: "it broke" }),
        at: at + (task.duration ?? 100)
      })
    )
  }
  return events
}

/** A whole session: planned, each task in turn, then finished (unless a task stays open). */
export const sessionEvents = (request: string, tasks: ReadonlyArray<TaskScript>): ReadonlyArray<PlannerEvent> => {
  const events: Array<PlannerEvent> = [planned(request, tasks)]
  let at = 2_000
  tasks.forEach((task, index) => {
    events.push(...taskEvents(index + 1, task, at))
    at += 1_000
  })
  if (tasks.every((task) => task.outcome !== "open")) {
    const failed = tasks.some((task) => task.outcome === "Failed")
    events.push(
      new PlanningCompleted({ outcome: failed ? "Failed" : "Succeeded", summary: `${request}: finished`, at })
    )
  }
  return events
}

export const forked = (fromSessionId: string, atSequence: number) =>
  new SessionForked({ fromSessionId, atSequence, at: 9_000 })

/** Appends events to a session, after what it already has. */
export const append = (sessionId: string, events: ReadonlyArray<PlannerEvent>) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore.make
    const last = yield* store.lastSequence(sessionId)
    yield* store.append(sessionId, events, last)
  })

export const writeSession = (sessionId: string, request: string, tasks: ReadonlyArray<TaskScript>) =>
  append(sessionId, sessionEvents(request, tasks))

export const headPosition = Effect.flatMap(EventStore, (store) => store.headPosition)
