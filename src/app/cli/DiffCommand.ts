/**
 * `planner diff A B`: what differs between two sessions, task by task (plan, status, result, answers), and the first
 * event where their logs part (see `SessionDiff`). Reads the store only.
 */
import { Effect, type Option } from "effect"
import * as Planner from "../../domain/Planner.js"
import { PlannerStore } from "../../infra/PlannerStore.js"
import { diffSessions, type FieldChange, type SessionDiff, type TaskDiff } from "../SessionDiff.js"
import { toFailure, usage } from "./Failure.js"
import { clip, out } from "./Output.js"
import { gist, statusLabel } from "./Render.js"
import { existingState } from "./Session.js"
import { forReading, plannerLayer, resolveExistingStore, type StoreTarget } from "./Store.js"

export interface DiffFlags {
  readonly db: Option.Option<string>
  readonly json: boolean
  readonly a: string
  readonly b: string
}

/**
 * A session's log and the state it folds to, from one read of it; the kept final state alone for a session
 * `planner prune` emptied (its logs are then not compared).
 */
const side = (sessionId: string, store: StoreTarget) =>
  Effect.gen(function* () {
    const records = yield* Effect.flatMap(PlannerStore, (events) => events.load(sessionId))
    if (records.length === 0) return { sessionId, state: yield* existingState(sessionId, store), events: [] }
    const events = records.map((record) => record.event)
    return { sessionId, state: Planner.fold(events), events }
  })

export const diff = (flags: DiffFlags) => {
  const store = forReading(resolveExistingStore(flags.db))
  return Effect.gen(function* () {
    if (flags.a === flags.b) return yield* usage(`Both sessions are ${flags.a}: give two different session ids.`)
    const a = yield* side(flags.a, store)
    const b = yield* side(flags.b, store)
    const result = diffSessions(a, b)
    const lineage = relation(flags.a, a.state, flags.b, b.state)
    yield* out(flags.json ? JSON.stringify(diffJson(result, lineage)) : diffText(result, lineage))
  }).pipe(Effect.provide(plannerLayer(store)), Effect.mapError(toFailure))
}

/** How the two sessions are related, when one was forked from the other. */
export const relation = (
  idA: string,
  a: Planner.PlannerState,
  idB: string,
  b: Planner.PlannerState
): string | undefined => {
  if (b.forkedFrom?.sessionId === idA) return `${idB} was forked from ${idA} at event ${b.forkedFrom.sequence}.`
  if (a.forkedFrom?.sessionId === idB) return `${idA} was forked from ${idB} at event ${a.forkedFrom.sequence}.`
  if (a.forkedFrom !== undefined && a.forkedFrom.sessionId === b.forkedFrom?.sessionId) {
    return `Both were forked from ${a.forkedFrom.sessionId} (at events ${a.forkedFrom.sequence} and ${b.forkedFrom.sequence}).`
  }
  return undefined
}

const show = (field: FieldChange["field"], value: FieldChange["a"]): string => {
  if (value === undefined) return "(none)"
  if (field === "status" && typeof value === "string") return statusLabel[value as keyof typeof statusLabel] ?? value
  if (field === "dependsOn" && Array.isArray(value)) return value.length === 0 ? "(none)" : value.join(", ")
  if (Array.isArray(value)) return value.length === 0 ? "(none)" : value.map((item) => JSON.stringify(item)).join(", ")
  return field === "kind" ? String(value) : JSON.stringify(clip(String(value), 120))
}

const fieldName: Readonly<Record<FieldChange["field"], string>> = {
  description: "description",
  kind: "kind",
  dependsOn: "after",
  status: "status",
  result: "result",
  error: "error",
  answers: "answers"
}

/** "  (reused: the result of event 4 of SESSION)" for a task the fork took over without running it. */
const reusedNote = (task: TaskDiff): string =>
  task.reusedFrom === undefined
    ? ""
    : `  (reused: the result of event ${task.reusedFrom.sequence} of ${task.reusedFrom.sessionId})`

const taskText = (task: TaskDiff, diff: SessionDiff): ReadonlyArray<string> => {
  const head = `${String(task.id).padStart(3)}. `
  switch (task.change) {
    case "same":
      return [`${head}same      ${clip(task.description, 100)}${reusedNote(task)}`]
    case "onlyA":
      return [`${head}only in ${diff.a.sessionId}: ${clip(task.description, 100)}`]
    case "onlyB":
      return [`${head}only in ${diff.b.sessionId}: ${clip(task.description, 100)}`]
    case "changed":
      return [
        `${head}differs   ${clip(task.description, 100)}`,
        ...task.changes.map(
          (change) =>
            `       ${fieldName[change.field].padEnd(11)} ${show(change.field, change.a)} -> ${show(change.field, change.b)}`
        )
      ]
  }
}

export const diffText = (diff: SessionDiff, lineage: string | undefined): string => {
  const lines = [
    `A: ${diff.a.sessionId} (${diff.a.status}, ${diff.a.events} events)`,
    `B: ${diff.b.sessionId} (${diff.b.status}, ${diff.b.events} events)`
  ]
  if (lineage !== undefined) lines.push(lineage)
  if (diff.request !== undefined) {
    lines.push(
      `Requests differ: A ${JSON.stringify(clip(diff.request.a, 100))}, B ${JSON.stringify(clip(diff.request.b, 100))}`
    )
  }
  if (!diff.logsCompared) {
    lines.push("The logs cannot be compared: one of the sessions has no events left (pruned).")
  } else if (diff.divergence === undefined) {
    lines.push("The logs are the same event for event (times and worker ids aside).")
  } else {
    const { sequence, a, b } = diff.divergence
    lines.push(`First difference at event ${sequence}:`)
    lines.push(`  A: ${a === undefined ? "(no event: the log ends here)" : `${a.type}, ${gist(a.event)}`}`)
    lines.push(`  B: ${b === undefined ? "(no event: the log ends here)" : `${b.type}, ${gist(b.event)}`}`)
  }
  const differing = diff.tasks.filter((task) => task.change !== "same").length
  lines.push("")
  lines.push(
    diff.tasks.length === 0
      ? "Neither session has tasks."
      : `Tasks: ${differing === 0 ? "all" : diff.tasks.length - differing} of ${diff.tasks.length} the same${differing === 0 ? "" : `, ${differing} differ`}`
  )
  for (const task of diff.tasks) lines.push(...taskText(task, diff))
  if (diff.identical) lines.push("", "The sessions do not differ.")
  return lines.join("\n")
}

export const diffJson = (diff: SessionDiff, lineage: string | undefined) => ({
  a: diff.a,
  b: diff.b,
  identical: diff.identical,
  ...(lineage === undefined ? {} : { lineage }),
  ...(diff.request === undefined ? {} : { request: diff.request }),
  logsCompared: diff.logsCompared,
  divergence:
    diff.divergence === undefined
      ? null
      : {
          sequence: diff.divergence.sequence,
          a:
            diff.divergence.a === undefined
              ? null
              : { type: diff.divergence.a.type, gist: gist(diff.divergence.a.event), data: diff.divergence.a.event },
          b:
            diff.divergence.b === undefined
              ? null
              : { type: diff.divergence.b.type, gist: gist(diff.divergence.b.event), data: diff.divergence.b.event }
        },
  tasks: diff.tasks
})
