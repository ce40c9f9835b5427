/**
 * The work of the run-like commands, once their input is checked (see `RunCommands`): record a new session, an
 * answer or a fork, then drive the session with the chosen executors. Loaded only when there is work to do.
 */
import { Clock, Effect } from "effect"
import * as Budget from "../../domain/Budget.js"
import { ClarificationProvided, HandleExecutorEvent, Initialize } from "../../domain/Commands.js"
import type { PlannerConfig } from "../../domain/Config.js"
import type { PlannerSource } from "../../domain/Events.js"
import { childSessionId, type Expansion, multiStepExpansions } from "../../domain/SubPlans.js"
import type { Attachment, TaskPlan } from "../../domain/Task.js"
import { ExecutorRegistry } from "../../infra/Executor.js"
import { Llm } from "../../infra/Llm.js"
import * as AppBudget from "../Budget.js"
import { fork } from "../Fork.js"
import { clarificationWarnings, plannerExamples } from "../MemoryPlanning.js"
import { PlannerService } from "../PlannerService.js"
import { type PlanResult, planRequest } from "../Planning.js"
import { newSessionId } from "../Runner.js"
import { type DriveOptions, drive } from "./Drive.js"
import { withEventLoopTurns } from "./EventLoop.js"
import { type ExecutorSpec, makeExecutors, specText } from "./Executors.js"
import { usage } from "./Failure.js"
import { indexLayer } from "./MemoryCommands.js"
import { err, out } from "./Output.js"
import { checkPresets } from "./Presets.js"
import { runServices } from "./Services.js"

/** How a session is run: who does its tasks, and how progress and questions are handled. */
export interface RunSettings {
  readonly spec: ExecutorSpec
  readonly allowShell: boolean
  readonly checkLinks: boolean
  readonly drive: DriveOptions
  /** `run --expand`: the multi-step tasks of the plan run as sub-plans, nested at most this deep. */
  readonly expandMaxDepth?: number
  /** `--max-depth`: how deep the steps an LLM plan marks as sub-plans may nest (#16); the default bound without it. */
  readonly maxDepth?: number
}

/**
 * Runs `body` with the LLM, compactor, attachment checker and the executors of `settings`, on a scheduler that lets
 * the event loop turn (see `EventLoop`), so a signal stops even a run whose tasks all complete at once.
 */
export const withRunServices =
  (settings: RunSettings) =>
  <A, E, R>(body: Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const registry = yield* makeExecutors({ spec: settings.spec, allowShell: settings.allowShell })
      return yield* Effect.provideService(body, ExecutorRegistry, registry)
    }).pipe(Effect.provide(runServices({ checkLinks: settings.checkLinks })), withEventLoopTurns())

const driveSession = (sessionId: string, settings: RunSettings) =>
  Effect.gen(function* () {
    const state = yield* Effect.flatMap(PlannerService, (service) => service.state(sessionId))
    yield* drive(sessionId, state, settings.drive)
  })

/**
 * What the new session expands as it is recorded: with `--expand`, every multi-step task; and always the steps the LLM
 * plan marked as sub-plans (#16). Nothing (not even a bound) when there is neither, as before.
 */
const expansions = (
  sessionId: string,
  plan: Pick<PlanResult, "tasks" | "subPlans">,
  settings: RunSettings
): { readonly expand?: ReadonlyArray<Expansion>; readonly maxDepth?: number } => {
  const marked = (plan.subPlans ?? []).map((taskId) => ({ taskId, childSessionId: childSessionId(sessionId, taskId) }))
  if (settings.expandMaxDepth === undefined && marked.length === 0) return {}
  const byParser = settings.expandMaxDepth === undefined ? [] : multiStepExpansions(sessionId, plan.tasks)
  const expand = [...byParser, ...marked.filter((one) => !byParser.some((other) => other.taskId === one.taskId))]
  expand.sort((a, b) => a.taskId - b.taskId)
  const maxDepth = settings.expandMaxDepth ?? settings.maxDepth
  return maxDepth === undefined ? { expand } : { expand, maxDepth }
}

/** Plans the request and records the new session, with the executor it runs with in its first event's metadata. */
export const start = (
  request: string,
  attachments: ReadonlyArray<Attachment>,
  config: PlannerConfig,
  settings: RunSettings,
  /** A plan already made (`run --plan FILE`): recorded as it is, without planning the request. */
  given?: { readonly tasks: ReadonlyArray<TaskPlan>; readonly source: PlannerSource }
) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const at = yield* Clock.currentTimeMillis
    // Memory (#17): an LLM planner sees the most similar successful past plans as examples.
    const examples =
      given === undefined && (yield* Llm).provider._tag !== "Heuristic"
        ? yield* Effect.provide(plannerExamples(request), indexLayer)
        : ""
    const systemPrompt = [config.systemPrompt.trim(), examples].filter((part) => part.length > 0).join("\n\n")
    // #16: the planning call is checked against the budget and priced like any other; its usage goes in with the plan.
    const prices = yield* AppBudget.loadPrices.pipe(Effect.mapError((error) => usage(error.message)))
    const plan: Pick<PlanResult, "tasks" | "source" | "usage" | "subPlans"> =
      given ?? (yield* planRequest(request, attachments, { systemPrompt, budget: Budget.fromLimits(config), prices }))
    const planningUsage = plan.usage !== undefined && plan.usage.length > 0 ? { usage: plan.usage } : {}
    yield* checkPresets(settings.drive.presets, plan.tasks.length, "the plan")
    if (settings.drive.mode !== "json") {
      const warnings = yield* Effect.provide(clarificationWarnings(plan.tasks), indexLayer)
      for (const warning of warnings) {
        if (!settings.drive.presets.has(warning.taskId)) yield* err(`Note: ${warning.line}`)
      }
    }
    const sessionId = newSessionId(at)
    // Through the writer: the plan records the executor, and the jobs of what it dispatches go in with it.
    const executor = specText(settings.spec)
    const handled = yield* service.execute(
      sessionId,
      new Initialize({
        request,
        attachments,
        tasks: plan.tasks,
        source: plan.source,
        executor,
        config,
        ...planningUsage,
        ...expansions(sessionId, plan, settings),
        at
      }),
      { correlationId: sessionId, extra: { executor } }
    )
    yield* drive(sessionId, handled.state, settings.drive)
  }).pipe(withRunServices(settings))

/** Continues a session that stopped. */
export const continueSession = (sessionId: string, settings: RunSettings) =>
  driveSession(sessionId, settings).pipe(withRunServices(settings))

/** Records a person's answer to a task's question, then continues the session. */
export const answerAndContinue = (
  sessionId: string,
  taskId: number,
  text: string,
  settings: RunSettings,
  /** The session whose task asked: `sessionId` itself, or a sub-plan under it. */
  holder = sessionId
) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const at = yield* Clock.currentTimeMillis
    yield* service.execute(
      holder,
      new HandleExecutorEvent({ event: new ClarificationProvided({ taskId, answer: text }), at })
    )
    if (settings.drive.mode !== "json") {
      yield* out(`Recorded the answer to task ${taskId}${holder === sessionId ? "" : ` of sub-plan ${holder}`}.`)
    }
    yield* driveSession(sessionId, settings)
  }).pipe(withRunServices(settings))

/**
 * Copies the first `at` events of `sourceId` into a new session (see `Fork.fork`: each with its origin in its
 * metadata, the attempts running at that point given up so they run again); then runs it.
 */
export const forkAndContinue = (sourceId: string, at: number, settings: RunSettings) =>
  Effect.gen(function* () {
    const { sessionId } = yield* fork(sourceId, at)
    if (settings.drive.mode !== "json") yield* out(`Forked session ${sourceId} at event ${at} into ${sessionId}.`)
    yield* driveSession(sessionId, settings)
  }).pipe(withRunServices(settings))

/** Runs a session just forked with edits (an incremental fork: see `EditCommands`), like resume (#15). */
export const continueForked = (sessionId: string, sourceId: string, at: number, settings: RunSettings) =>
  Effect.gen(function* () {
    if (settings.drive.mode !== "json") yield* out(`Forked session ${sourceId} at event ${at} into ${sessionId}.`)
    yield* driveSession(sessionId, settings)
  }).pipe(withRunServices(settings))
