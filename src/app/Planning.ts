/**
 * Planning a request: ask the `Llm` for tasks when one is configured, check them with the graph code, and fall back
 * to the deterministic parser when the model cannot give a usable plan. The result is what goes into the
 * `Initialize` command (tasks and source), so the plan is recorded once and replay never asks the model again.
 *
 * - The model's ids are its own; tasks are renumbered 1..n in the model's order and dependencies mapped along.
 * - Proposed dependencies that name unknown tasks, repeat ids or form a cycle are rejected as a whole (with the reason
 *   in `notes`) and the tasks run as a chain, each after the one before.
 * - When the model fails (malformed twice, circuit open, timeouts, ...) the parser plans instead and the source says
 *   why: `{ _tag: "Parser", reason: "LLM output was malformed twice: ..." }`.
 */
import { Effect, Either } from "effect"
import type { RequestError } from "../domain/Errors.js"
import type { PlannerSource } from "../domain/Events.js"
import * as Graph from "../domain/Graph.js"
import * as Parser from "../domain/Parser.js"
import { findUnstorableText } from "../domain/SchemaGuard.js"
import type { Attachment, NodeKind, TaskId, TaskPlan } from "../domain/Task.js"
import { Llm, type LlmError, type ProposedEdge, type TaskDraft } from "../infra/Llm.js"

export interface PlanResult {
  readonly tasks: ReadonlyArray<TaskPlan>
  readonly source: PlannerSource
  /** What was corrected or rejected on the way (a dependency cycle, ...); also logged as warnings. */
  readonly notes: ReadonlyArray<string>
}

export interface PlanOptions {
  /** `PlannerConfig.systemPrompt`. */
  readonly systemPrompt?: string
}

const maxReasonLength = 500
const clip = (text: string) => (text.length <= maxReasonLength ? text : `${text.slice(0, maxReasonLength - 1)}…`)

/** Why the parser planned instead of the model, for the plan's recorded source. */
export const fallbackReason = (error: LlmError): string => {
  switch (error.reason) {
    case "MalformedOutput":
      return clip(`LLM output was malformed twice: ${error.detail}`)
    case "CircuitOpen":
      return clip(`LLM circuit breaker is open: ${error.detail}`)
    default:
      return clip(`LLM request failed (${error.reason}): ${error.detail}`)
  }
}

const sameAttachment = (a: Attachment, b: Attachment) => a.kind === b.kind && a.value === b.value

/**
 * Turns the model's drafts into tasks 1..n. Dependencies are kept when they form a valid graph, otherwise replaced by
 * a chain; `rejected` says why.
 */
export const fromDrafts = (
  drafts: ReadonlyArray<TaskDraft>
): { readonly tasks: ReadonlyArray<TaskPlan>; readonly rejected: string | undefined } => {
  const idOf = new Map<string, TaskId>()
  let rejected: string | undefined
  for (const [index, draft] of drafts.entries()) {
    const previous = idOf.get(draft.id)
    if (previous !== undefined) {
      rejected ??= `tasks ${previous} and ${index + 1} both have the id ${JSON.stringify(draft.id)}`
      continue
    }
    idOf.set(draft.id, index + 1)
  }
  const tasks = drafts.map((draft, index): TaskPlan => {
    const id = index + 1
    const dependsOn: Array<TaskId> = []
    for (const dep of draft.dependsOn) {
      const target = idOf.get(dep)
      if (target === undefined) {
        rejected ??= `task ${id} depends on unknown task ${JSON.stringify(dep)}`
        continue
      }
      if (!dependsOn.includes(target)) dependsOn.push(target)
    }
    const attachments: Array<Attachment> = []
    for (const attachment of [...draft.attachments, ...Parser.extractAttachments(draft.description)]) {
      if (!attachments.some((kept) => sameAttachment(kept, attachment))) attachments.push(attachment)
    }
    return { id, description: draft.description, kind: draft.kind, dependsOn, attachments }
  })
  return withEdgesChecked(tasks, rejected)
}

/** Keeps the tasks' dependencies when the graph is valid; otherwise a chain, with the reason. */
const withEdgesChecked = (
  tasks: ReadonlyArray<TaskPlan>,
  rejected: string | undefined
): { readonly tasks: ReadonlyArray<TaskPlan>; readonly rejected: string | undefined } => {
  if (rejected !== undefined) return { tasks: Graph.chain(tasks), rejected }
  const valid = Graph.validate(tasks)
  return Either.isRight(valid)
    ? { tasks, rejected: undefined }
    : { tasks: Graph.chain(tasks), rejected: valid.left.reason }
}

/** Replaces the tasks' dependencies with `edges` when they form a valid graph, otherwise with a chain. */
export const applyEdges = (
  tasks: ReadonlyArray<TaskPlan>,
  edges: ReadonlyArray<ProposedEdge>
): { readonly tasks: ReadonlyArray<TaskPlan>; readonly rejected: string | undefined } => {
  const known = new Set(tasks.map((task) => task.id))
  const unknown = edges.find((edge) => !known.has(edge.task) || !known.has(edge.dependsOn))
  if (unknown !== undefined) {
    const missing = known.has(unknown.task) ? unknown.dependsOn : unknown.task
    return {
      tasks: Graph.chain(tasks),
      rejected: `the edge ${unknown.task} -> ${unknown.dependsOn} names unknown task ${missing}`
    }
  }
  const proposed = tasks.map((task) => ({
    ...task,
    dependsOn: [...new Set(edges.filter((edge) => edge.task === task.id).map((edge) => edge.dependsOn))]
  }))
  return withEdgesChecked(proposed, undefined)
}

const dependencyNote = (reason: string) =>
  `LLM dependencies rejected (${reason}); the tasks run one after another instead`

/**
 * Plans `request`: the model's plan when an LLM is configured and answers usably, the parser's otherwise. Fails only
 * for requests the planner would refuse anyway (empty, too large).
 */
export const planRequest: (
  request: string,
  attachments?: ReadonlyArray<Attachment>,
  options?: PlanOptions
) => Effect.Effect<PlanResult, RequestError, Llm> = Effect.fn("Planning.planRequest")(function* (
  request: string,
  attachments: ReadonlyArray<Attachment> = [],
  options: PlanOptions = {}
) {
  const parsed = Parser.parse(request)
  if (Either.isLeft(parsed)) return yield* Effect.fail<RequestError>(parsed.left)
  const llm = yield* Llm
  const byParser = (reason: string): PlanResult => ({
    tasks: parsed.right,
    source: { _tag: "Parser", reason },
    notes: []
  })
  if (llm.provider._tag === "Heuristic") return byParser("no LLM configured")
  const model = llm.provider.model

  const drafts = yield* llm
    .parseTasks(request, {
      attachments,
      ...(options.systemPrompt === undefined ? {} : { systemPrompt: options.systemPrompt })
    })
    .pipe(Effect.either)
  if (Either.isLeft(drafts)) {
    const reason = fallbackReason(drafts.left)
    yield* Effect.logWarning(`Planning with the parser instead of ${model}: ${reason}`)
    return byParser(reason)
  }
  if (drafts.right.length > Graph.MAX_TASKS) {
    return byParser(`the LLM proposed ${drafts.right.length} tasks, over the limit of ${Graph.MAX_TASKS}`)
  }
  // Text no store keeps (a NUL, a lone surrogate) is the model's fault, not the request's: plan with the parser.
  const unstorable = findUnstorableText(drafts.right)
  if (unstorable !== undefined) {
    const reason = `the LLM's plan holds ${unstorable.problem} (in tasks${unstorable.path})`
    yield* Effect.logWarning(`Planning with the parser instead of ${model}: ${reason}`)
    return byParser(reason)
  }
  const planned = fromDrafts(drafts.right)
  const notes = planned.rejected === undefined ? [] : [dependencyNote(planned.rejected)]
  for (const note of notes) yield* Effect.logWarning(note)
  const source = notes.length === 0 ? { _tag: "Llm" as const, model } : { _tag: "Llm" as const, model, notes }
  return { tasks: planned.tasks, source, notes } satisfies PlanResult
})

export interface DependencyAnalysis {
  readonly tasks: ReadonlyArray<TaskPlan>
  /** Tasks that may run at the same time, group by group (from `Graph`, not from the model). */
  readonly parallelGroups: ReadonlyArray<ReadonlyArray<TaskId>>
  readonly criticalPath: ReadonlyArray<TaskId>
  readonly notes: ReadonlyArray<string>
}

/**
 * Asks the model which tasks depend on which, and lets the graph code judge: valid edges replace the tasks'
 * dependencies; invalid ones give a chain; a failed call keeps the dependencies the tasks had.
 */
export const analyzeDependencies: (tasks: ReadonlyArray<TaskPlan>) => Effect.Effect<DependencyAnalysis, never, Llm> =
  Effect.fn("Planning.analyzeDependencies")(function* (tasks: ReadonlyArray<TaskPlan>) {
    const llm = yield* Llm
    const proposed = yield* llm
      .analyzeDependencies(tasks.map((task) => ({ id: task.id, description: task.description, kind: task.kind })))
      .pipe(Effect.either)
    let result: ReadonlyArray<TaskPlan> = tasks
    const notes: Array<string> = []
    if (Either.isLeft(proposed)) {
      notes.push(`dependencies kept as planned: ${proposed.left.message}`)
    } else {
      const applied = applyEdges(tasks, proposed.right)
      result = applied.tasks
      if (applied.rejected !== undefined) notes.push(dependencyNote(applied.rejected))
    }
    if (Either.isLeft(Graph.validate(result))) result = Graph.chain(result)
    for (const note of notes) yield* Effect.logWarning(note)
    return {
      tasks: result,
      parallelGroups: Graph.parallelGroups(result),
      criticalPath: Graph.criticalPath(result),
      notes
    } satisfies DependencyAnalysis
  })

/** The model's classification of a step, or the parser's rules when the model cannot answer. */
export const classifyTask: (description: string) => Effect.Effect<NodeKind, never, Llm> = Effect.fn(
  "Planning.classifyTask"
)(function* (description: string) {
  const llm = yield* Llm
  const kind = yield* llm.classifyNodeKind(description).pipe(Effect.orElseSucceed(() => Parser.classify(description)))
  return kind
})
