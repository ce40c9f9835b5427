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
 * - The model may attach only links and files the request names or `--attach` gave: anything else it attaches (or
 *   writes into a description) is dropped, and the drop is recorded in the source's notes, so an executor never
 *   fetches a URL the user did not give.
 *
 * The plan call returns kinds and dependencies with the tasks, checked here by the graph code, so the `Llm` port has
 * no separate classification or dependency-analysis call: a second round trip per plan would only repeat what the
 * plan already says.
 */
import { Effect, Either } from "effect"
import type * as Budget from "../domain/Budget.js"
import type { RequestError } from "../domain/Errors.js"
import type { PlannerSource } from "../domain/Events.js"
import * as Graph from "../domain/Graph.js"
import * as Parser from "../domain/Parser.js"
import { findUnstorableText } from "../domain/SchemaGuard.js"
import type { Attachment, TaskId, TaskPlan } from "../domain/Task.js"
import { Llm, type LlmError, type TaskDraft } from "../infra/Llm.js"
import * as AppBudget from "./Budget.js"

export interface PlanResult {
  readonly tasks: ReadonlyArray<TaskPlan>
  readonly source: PlannerSource
  /** What was corrected or rejected on the way (a dependency cycle, ...); also logged as warnings. */
  readonly notes: ReadonlyArray<string>
  /** What the planning calls used (see `Budget`), for `Initialize.usage`; empty when the model was not asked. */
  readonly usage?: ReadonlyArray<Budget.ModelUsage>
  /**
   * The tasks (ids 1..n) the model marked as sub-plans (#16: a step that is itself a multi-step job), for `run` to
   * expand; a question to the person is never one. Absent when none was marked or the parser planned.
   */
  readonly subPlans?: ReadonlyArray<TaskId>
}

export interface PlanOptions {
  /** `PlannerConfig.systemPrompt`. */
  readonly systemPrompt?: string
  /**
   * The session's budget (`Budget.fromLimits` of its config): a planning call that would cross it is not made, and the
   * parser plans instead, with the reason recorded. The budget applies to every call after that.
   */
  readonly budget?: Budget.BudgetState | undefined
  /** The price table, to price the planning calls. */
  readonly prices?: AppBudget.Prices | undefined
  /**
   * Where `budget` was read (see `AppBudget.budgetFor`): the planning call then takes a hold on it, as every other call
   * of a session does (a child's plan, spending its tree's budget). Absent for a root's first plan: nothing else can
   * spend its budget yet.
   */
  readonly snapshot?: AppBudget.Snapshot | undefined
  /** `budget` is a tree's: a refused call's need carries the tree's figures. */
  readonly tree?: boolean | undefined
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
    case "BudgetExhausted":
      return clip(`the budget is too small for the planning call: ${error.detail}`)
    default:
      return clip(`LLM request failed (${error.reason}): ${error.detail}`)
  }
}

const sameAttachment = (a: Attachment, b: Attachment) => a.kind === b.kind && a.value === b.value

/** What a plan may attach: the request's text (anything it names) and the attachments given with it. */
export interface AttachmentScope {
  readonly request: string
  readonly attachments: ReadonlyArray<Attachment>
}

/** Whether an attachment is one the user gave: named in the request, or given with `--attach`. */
const allowedBy =
  (scope: AttachmentScope) =>
  (attachment: Attachment): boolean =>
    scope.request.includes(attachment.value) || scope.attachments.some((given) => given.value === attachment.value)

export interface FromDrafts {
  readonly tasks: ReadonlyArray<TaskPlan>
  /** Why the proposed dependencies were replaced by a chain, if they were. */
  readonly rejected: string | undefined
  /** One note per attachment dropped because the user never gave it (empty without a scope). */
  readonly dropped: ReadonlyArray<string>
}

/**
 * Turns the model's drafts into tasks 1..n. Dependencies are kept when they form a valid graph, otherwise replaced by
 * a chain; `rejected` says why. With a `scope`, attachments the user did not give are dropped; `dropped` says which.
 */
export const fromDrafts = (drafts: ReadonlyArray<TaskDraft>, scope?: AttachmentScope): FromDrafts => {
  const dropped: Array<string> = []
  const allowed = scope === undefined ? () => true : allowedBy(scope)
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
      if (attachments.some((kept) => sameAttachment(kept, attachment))) continue
      if (allowed(attachment)) attachments.push(attachment)
      else
        dropped.push(
          `attachment dropped from task ${id}: ${attachment.kind} ${attachment.value} (not in the request or --attach)`
        )
    }
    return { id, description: draft.description, kind: draft.kind, dependsOn, attachments }
  })
  return { ...withEdgesChecked(tasks, rejected), dropped }
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

/** The ids of the tasks whose drafts the model marked `subPlan`, leaving out questions (they cannot be expanded). */
export const markedSubPlans = (
  drafts: ReadonlyArray<TaskDraft>,
  tasks: ReadonlyArray<TaskPlan>
): ReadonlyArray<TaskId> =>
  tasks.flatMap((task, index) => (drafts[index]?.subPlan === true && task.kind !== "Clarification" ? [task.id] : []))

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

  const planning = yield* AppBudget.meteredValue(
    llm
      .parseTasks(request, {
        attachments,
        ...(options.systemPrompt === undefined ? {} : { systemPrompt: options.systemPrompt })
      })
      .pipe(Effect.either),
    {
      budget: options.budget,
      prices: options.prices,
      purpose: "planning",
      ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
      ...(options.tree === undefined ? {} : { tree: options.tree })
    }
  )
  const drafts = planning.value
  const usage = planning.usage
  if (Either.isLeft(drafts)) {
    const reason = fallbackReason(drafts.left)
    yield* Effect.logWarning(`Planning with the parser instead of ${model}: ${reason}`)
    return { ...byParser(reason), usage }
  }
  if (drafts.right.length > Graph.MAX_TASKS) {
    return {
      ...byParser(`the LLM proposed ${drafts.right.length} tasks, over the limit of ${Graph.MAX_TASKS}`),
      usage
    }
  }
  // Text no store keeps (a NUL, a lone surrogate) is the model's fault, not the request's: plan with the parser.
  const unstorable = findUnstorableText(drafts.right)
  if (unstorable !== undefined) {
    const reason = `the LLM's plan holds ${unstorable.problem} (in tasks${unstorable.path})`
    yield* Effect.logWarning(`Planning with the parser instead of ${model}: ${reason}`)
    return { ...byParser(reason), usage }
  }
  const planned = fromDrafts(drafts.right, { request, attachments })
  const notes = [...(planned.rejected === undefined ? [] : [dependencyNote(planned.rejected)]), ...planned.dropped]
  for (const note of notes) yield* Effect.logWarning(note)
  const source = notes.length === 0 ? { _tag: "Llm" as const, model } : { _tag: "Llm" as const, model, notes }
  const subPlans = markedSubPlans(drafts.right, planned.tasks)
  return {
    tasks: planned.tasks,
    source,
    notes,
    usage,
    ...(subPlans.length === 0 ? {} : { subPlans })
  } satisfies PlanResult
})
