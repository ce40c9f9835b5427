/**
 * A/B planning strategies (seed section 2, "fork event streams to test different planning strategies"): a new session
 * that plans the same request as another one again, with another planner (the parser, or an LLM with another model or
 * system prompt), and runs it. The CLI's `planner fork SESSION --at 0 --replan`; `planner diff` then compares the two
 * runs' plans and outcomes.
 *
 * Nothing of the source's log is copied (a fork at sequence 0): the new session's first event is `SessionForked` at 0,
 * recorded with its plan in one append (`Initialize.forkedFrom`), so lineage and diff find the pair. The request, its
 * attachments, the settings and the executor come from the source's plan; `systemPrompt` replaces the recorded one.
 */
import { Clock, Effect, Either, Schema } from "effect"
import { Initialize } from "../domain/Commands.js"
import type { PlannerConfig } from "../domain/Config.js"
import type { PlannerSource } from "../domain/Events.js"
import * as Parser from "../domain/Parser.js"
import type * as Planner from "../domain/Planner.js"
import type { TaskPlan } from "../domain/Task.js"
import { Llm } from "../infra/Llm.js"
import { PlannerService } from "./PlannerService.js"
import { planRequest } from "./Planning.js"
import { existing, newSessionId } from "./Runner.js"

/** Who plans the request again. */
export type ReplanPlanner = "parser" | "llm"

export interface ReplanForkOptions {
  readonly planner: ReplanPlanner
  /** Replaces the source's system prompt (it guides the LLM's planning, and is recorded with the plan). */
  readonly systemPrompt?: string
  /** The new session's id; default a fresh one. */
  readonly sessionId?: string
}

/** `--planner llm` with no model configured: there is nobody to plan with. */
export class NoLlmToReplan extends Schema.TaggedError<NoLlmToReplan>()("NoLlmToReplan", {}) {
  override get message() {
    return "No LLM is configured to plan with: set PLANNER_LLM_BASE_URL and PLANNER_LLM_MODEL, or replan with --planner parser."
  }
}

export interface ReplanForked {
  readonly sessionId: string
  readonly fromSessionId: string
  readonly state: Planner.PlannerState
}

/** Plans `sourceId`'s request again with `options.planner` and records it as a new session forked at 0. */
export const replanFork = (sourceId: string, options: ReplanForkOptions) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const source = yield* existing(sourceId)
    const config: PlannerConfig =
      options.systemPrompt === undefined ? source.config : { ...source.config, systemPrompt: options.systemPrompt }
    let plan: { readonly tasks: ReadonlyArray<TaskPlan>; readonly source: PlannerSource }
    if (options.planner === "parser") {
      const parsed = Parser.parse(source.request)
      if (Either.isLeft(parsed)) return yield* Effect.fail(parsed.left)
      plan = { tasks: parsed.right, source: { _tag: "Parser", reason: `replanned from session ${sourceId}` } }
    } else {
      if ((yield* Llm).provider._tag === "Heuristic") return yield* new NoLlmToReplan()
      // The plan call as for a new run; when the model cannot plan, the parser does, and the source says why.
      plan = yield* planRequest(source.request, source.attachments, { systemPrompt: config.systemPrompt })
    }
    const at = yield* Clock.currentTimeMillis
    const sessionId = options.sessionId ?? newSessionId(at)
    const handled = yield* service.execute(
      sessionId,
      new Initialize({
        request: source.request,
        attachments: source.attachments,
        tasks: plan.tasks,
        source: plan.source,
        ...(source.executor === undefined ? {} : { executor: source.executor }),
        config,
        forkedFrom: { sessionId: sourceId },
        at
      }),
      { correlationId: sessionId, ...(source.executor === undefined ? {} : { extra: { executor: source.executor } }) }
    )
    return { sessionId, fromSessionId: sourceId, state: handled.state } satisfies ReplanForked
  }).pipe(Effect.withSpan("ReplanFork.replanFork", { attributes: { sourceId, planner: options.planner } }))
