/**
 * Replanning after a failure (`--on-failure replan`): the app's side of it. The decider records that a revised plan is
 * wanted (`ReplanRequested`: a task failed for good and the bound allows one more) and holds the plan open; it cannot
 * call a model. Here the revised plan is asked for and the answer is sent back as a command, through the writer:
 *
 * - with an LLM configured, the plan call (`Llm.parseTasks`) is asked for steps that replace the failed task and
 *   everything downstream of it, given the request, the results so far, the failure and the steps it held up. Its
 *   answer goes through the same checks as a first plan (`Planning.fromDrafts`: dependencies by the graph code,
 *   attachments only those the user gave) and is sent as `ReviseAfterFailure`, recorded as `TaskReplanned` with the
 *   model as its source. The new tasks that need nothing from each other start after the failed task's own
 *   dependencies, whose results they receive.
 * - without one, or when the model cannot give a usable plan (malformed twice, unreachable, too many steps, text no
 *   store keeps, a revision the decider refuses), `SkipReplan` records why, and the failure is handled as under
 *   `continue`.
 *
 * Crash-safe: a pending replan lives in the session's state, not in this process. Whoever drives the session
 * (`Runner.run`, and so `planner run`/`resume`) settles the pending replans it finds, at start and as they appear; a
 * revision that arrives twice (two processes, a retry after a restart) changes nothing the second time.
 */
import { type Cause, Clock, Effect, Either, Exit, Option } from "effect"
import type * as Budget from "../domain/Budget.js"
import { ReviseAfterFailure, SkipReplan } from "../domain/Commands.js"
import type { PlannerSource } from "../domain/Events.js"
import * as Graph from "../domain/Graph.js"
import * as Planner from "../domain/Planner.js"
import { findUnstorableText } from "../domain/SchemaGuard.js"
import type { TaskId, TaskPlan, TaskState } from "../domain/Task.js"
import * as HeuristicLlm from "../infra/HeuristicLlm.js"
import { Llm, type LlmError, type LlmService } from "../infra/Llm.js"
import * as AppBudget from "./Budget.js"
import { type Handled, type HandleError, PlannerService } from "./PlannerService.js"
import { fallbackReason, fromDrafts } from "./Planning.js"

/** The most tasks one revision may add. A model that answers with more is not trusted with the plan. */
export const maxRevisedTasks = 100

/** What the replan of one failed task comes to: tasks to record, or why there are none. */
export type Revision =
  | { readonly _tag: "Revised"; readonly tasks: ReadonlyArray<TaskPlan>; readonly source: PlannerSource }
  | { readonly _tag: "Skipped"; readonly reason: string }

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`)

const resultLimit = 600

/** The tasks a revision replaces: the failed task's unfinished dependents (what `ReviseAfterFailure` supersedes). */
export const replacedBy = (state: Planner.PlannerState, taskId: TaskId): ReadonlyArray<TaskState> =>
  Graph.dependentsOf(state.tasks, taskId).flatMap((id) => {
    const dependent = Planner.task(state, id)
    return dependent !== undefined && dependent.status === "Planned" ? [dependent] : []
  })

/**
 * What the model is asked: the request, what has been done, what failed and why, and what waited on it. Sent as the
 * request of the plan call, so the model answers in the plan's schema.
 */
export const revisionPrompt = (state: Planner.PlannerState, failed: TaskState): string => {
  const done = state.tasks.filter((task) => task.status === "Completed")
  const waiting = replacedBy(state, failed.id)
  return [
    `A plan is being carried out for this request:\n${state.request}`,
    done.length > 0
      ? `Steps already done, with their results (do not repeat them; later steps receive their results):\n${done
          .map((task) => `- Step ${task.id}: ${task.description}\n  Result: ${clip(task.result ?? "", resultLimit)}`)
          .join("\n")}`
      : "No step has been completed yet.",
    `This step failed for good after ${Math.max(1, failed.attempt)} attempt${failed.attempt === 1 ? "" : "s"}:\n- Step ${failed.id} (${failed.kind}): ${failed.description}\n  Error: ${clip(failed.error ?? "unknown error", 1_000)}`,
    waiting.length > 0
      ? `These later steps depended on it and have not run:\n${waiting.map((task) => `- Step ${task.id} (${task.kind}): ${task.description}`).join("\n")}`
      : "No later step depended on it.",
    `Give a revised plan for the failed step${waiting.length > 0 ? " and the steps that depended on it" : ""}: steps that reach what the failed step was for in another way, avoiding what made it fail, then the later steps, revised as needed. The revised steps replace those steps; the steps already done stay as they are.`
  ].join("\n\n")
}

/**
 * The tasks of a revision: the model's drafts checked like a first plan, renumbered after the plan's last task, the
 * ones that need nothing from each other starting after the failed task's own dependencies.
 */
export const revisionTasks = (
  state: Planner.PlannerState,
  failed: TaskState,
  drafts: Parameters<typeof fromDrafts>[0]
): { readonly tasks: ReadonlyArray<TaskPlan>; readonly notes: ReadonlyArray<string> } => {
  const scope = {
    request: [state.request, failed.description, ...replacedBy(state, failed.id).map((task) => task.description)].join(
      "\n"
    ),
    attachments: state.attachments
  }
  const planned = fromDrafts(drafts, scope)
  const offset = state.tasks.length
  const tasks = planned.tasks.map(
    (task): TaskPlan => ({
      ...task,
      id: task.id + offset,
      dependsOn: task.dependsOn.length === 0 ? failed.dependsOn : task.dependsOn.map((id) => id + offset)
    })
  )
  const notes = [
    ...(planned.rejected === undefined
      ? []
      : [`LLM dependencies rejected (${planned.rejected}); the revised tasks run one after another instead`]),
    ...planned.dropped
  ]
  return { tasks, notes }
}

/**
 * Asks `llm` for the revision of failed task `taskId`. Never fails: what goes wrong becomes the reason to skip. The
 * call is metered against the session's budget (see `Budget`), and `usage` says what it used.
 */
export const revise = (
  llm: LlmService,
  state: Planner.PlannerState,
  taskId: TaskId,
  prices?: AppBudget.Prices,
  snapshot?: AppBudget.Snapshot
): Effect.Effect<Revision & { readonly usage: ReadonlyArray<Budget.ModelUsage> }> =>
  Effect.gen(function* () {
    let usage: ReadonlyArray<Budget.ModelUsage> = []
    const ask = (text: string, systemPrompt: string) =>
      Effect.flatMap(
        AppBudget.metered(
          llm.parseTasks(text, {
            attachments: state.attachments,
            ...(systemPrompt.trim().length === 0 ? {} : { systemPrompt })
          }),
          {
            budget: state.budget,
            prices,
            purpose: "replanning",
            taskId,
            ...(snapshot === undefined ? {} : { snapshot })
          }
        ),
        (metered) => {
          usage = metered.usage
          return Exit.isSuccess(metered.exit)
            ? Effect.succeed(metered.exit.value)
            : Effect.failCause(metered.exit.cause as Cause.Cause<LlmError>)
        }
      )
    const revision = yield* reviseWith(ask, llm, state, taskId)
    return { ...revision, usage }
  })

const reviseWith = (
  ask: (text: string, systemPrompt: string) => ReturnType<LlmService["parseTasks"]>,
  llm: LlmService,
  state: Planner.PlannerState,
  taskId: TaskId
): Effect.Effect<Revision> =>
  Effect.gen(function* () {
    const failed = Planner.task(state, taskId)
    if (failed === undefined) return { _tag: "Skipped", reason: `task ${taskId} is not in the plan` } as const
    if (llm.provider._tag === "Heuristic") {
      return {
        _tag: "Skipped",
        reason: "no LLM is configured to revise the plan (set PLANNER_LLM_BASE_URL and PLANNER_LLM_MODEL)"
      } as const
    }
    const model = llm.provider.model
    const systemPrompt = state.config.systemPrompt
    const answer = yield* ask(revisionPrompt(state, failed), systemPrompt).pipe(Effect.either)
    if (Either.isLeft(answer)) return { _tag: "Skipped", reason: fallbackReason(answer.left) } as const
    if (answer.right.length > maxRevisedTasks) {
      return {
        _tag: "Skipped",
        reason: `the LLM proposed ${answer.right.length} tasks for the revision, over the limit of ${maxRevisedTasks}`
      } as const
    }
    const unstorable = findUnstorableText(answer.right)
    if (unstorable !== undefined) {
      return {
        _tag: "Skipped",
        reason: `the LLM's revision holds ${unstorable.problem} (in tasks${unstorable.path})`
      } as const
    }
    const { tasks, notes } = revisionTasks(state, failed, answer.right)
    for (const note of notes) yield* Effect.logWarning(note)
    const source: PlannerSource = notes.length === 0 ? { _tag: "Llm", model } : { _tag: "Llm", model, notes }
    return { _tag: "Revised", tasks, source } as const
  }).pipe(Effect.withSpan("Replan.revise", { attributes: { taskId } }))

/**
 * Settles the pending replan of `taskId` in `sessionId`: asks for the revision and records it, or records why there is
 * none. A revision the decider refuses (a dependency it cannot accept) is recorded as a skip with the refusal. Does
 * nothing when the replan is no longer pending. `llm` defaults to the context's `Llm`, else the heuristic one, which has
 * no model, so the replan is skipped. What the model call used is recorded (`RecordUsage`) before the revision.
 */
export const settle = (
  sessionId: string,
  taskId: TaskId,
  llm?: LlmService
): Effect.Effect<Option.Option<Handled>, HandleError, PlannerService> =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const model = llm ?? Option.getOrElse(yield* Effect.serviceOption(Llm), () => HeuristicLlm.service)
    const state = yield* service.state(sessionId)
    if (Planner.isFinished(state) || !Planner.pendingReplans(state).includes(taskId)) return Option.none()
    const prices = model.provider._tag === "Heuristic" ? undefined : yield* AppBudget.pricesOrWarn
    const revision = yield* revise(model, state, taskId, prices, {
      sessionId,
      root: state.subPlanOf?.rootSessionId ?? sessionId,
      versions: new Map([[sessionId, state.version]])
    })
    yield* AppBudget.record(service, sessionId, revision.usage)
    const at = yield* Clock.currentTimeMillis
    const skip = (reason: string) => {
      const recorded = `no revised plan for task ${taskId}: ${reason}; continuing without it`
      return Effect.zipRight(
        Effect.logWarning(recorded),
        service.execute(sessionId, new SkipReplan({ taskId, reason: clip(recorded, 1_000), at }))
      )
    }
    if (revision._tag === "Skipped") return Option.some(yield* skip(revision.reason))
    // The new tasks take the plan's next ids as of the decision: another revision recorded meanwhile moves them on.
    const planned = state.tasks.length
    const renumber = (shift: number) => (id: TaskId) => (id > planned ? id + shift : id)
    const revised = yield* service
      .execute(sessionId, (current) => {
        const shift = renumber(current.tasks.length - planned)
        const tasks = revision.tasks.map((task) => ({
          ...task,
          id: shift(task.id),
          dependsOn: task.dependsOn.map(shift)
        }))
        return new ReviseAfterFailure({ taskId, tasks, source: revision.source, at })
      })
      .pipe(Effect.either)
    if (Either.isRight(revised)) return Option.some(revised.right)
    const refused = revised.left
    if (refused._tag === "InvalidPlan" || refused._tag === "InvalidTransition") {
      return Option.some(yield* skip(`the revision was refused: ${refused.message}`))
    }
    return yield* Effect.fail(refused)
  }).pipe(Effect.withSpan("Replan.settle", { attributes: { sessionId, taskId } }))

/** The replans this process is settling, by `session/task`: a worker and a run of one session both react to one. */
const inFlight = new Set<string>()

/**
 * `settle`, unless this process is settling that replan already; failures are logged, not raised: the replan stays
 * pending in the log, and the next driver of the session settles it.
 */
export const settleOnce = (
  sessionId: string,
  taskId: TaskId,
  llm?: LlmService
): Effect.Effect<void, never, PlannerService> =>
  Effect.suspend(() => {
    const key = `${sessionId}/${taskId}`
    if (inFlight.has(key)) return Effect.void
    inFlight.add(key)
    return settle(sessionId, taskId, llm).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning(`the replan of ${sessionId} task ${taskId} was not recorded: ${error.message}`)
      ),
      Effect.asVoid,
      Effect.ensuring(Effect.sync(() => inFlight.delete(key)))
    )
  })

/**
 * Makes a settler for a run: `(sessionId, state)` settles every replan pending in `state` in the background of the
 * caller's scope (`settleOnce`, with the model of the process, resolved here).
 */
export const makeSettler = Effect.gen(function* () {
  const llm = Option.getOrElse(yield* Effect.serviceOption(Llm), () => HeuristicLlm.service)
  return (sessionId: string, state: Planner.PlannerState) =>
    Effect.gen(function* () {
      if (Planner.isFinished(state)) return
      for (const taskId of Planner.pendingReplans(state)) {
        if (inFlight.has(`${sessionId}/${taskId}`)) continue
        yield* Effect.forkScoped(settleOnce(sessionId, taskId, llm))
      }
    })
})
