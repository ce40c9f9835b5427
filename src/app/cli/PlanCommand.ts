/**
 * `planner plan`: the plan a request would get, printed without running or storing anything. With an LLM configured
 * it is the model's plan (the same `planRequest` as `run`); without one, the deterministic parser's.
 */
import { Effect, Either, Layer, type Option } from "effect"
import * as Graph from "../../domain/Graph.js"
import * as Parser from "../../domain/Parser.js"
import type { TaskPlan } from "../../domain/Task.js"
import { toFailure, usage } from "./Failure.js"
import { llmConfigured, llmLayer } from "./LlmChoice.js"
import { out } from "./Output.js"
import { readRequest } from "./Request.js"

export interface PlanFlags {
  readonly request: Option.Option<string>
  readonly file: Option.Option<string>
  readonly json: boolean
}

/**
 * The plan as text: one line per task; then, when some tasks can run at the same time, the parallel groups and the
 * critical path (the chain of tasks that bounds how soon the plan can finish).
 */
export const renderPlan = (tasks: ReadonlyArray<TaskPlan>): string => {
  const lines = tasks.map((task) => {
    const after = task.dependsOn.length === 0 ? "" : `  (after ${task.dependsOn.join(", ")})`
    const attachments = task.attachments.map((a) => `\n     ${a.kind}: ${a.value}`).join("")
    return `${String(task.id).padStart(3)}. [${task.kind}] ${task.description}${after}${attachments}`
  })
  const groups = Graph.parallelGroups(tasks)
  if (groups.length === tasks.length) return lines.join("\n")
  return [
    ...lines,
    "",
    `Parallel groups: ${groups.map((group) => group.join(", ")).join(" | ")}`,
    `Critical path: ${Graph.criticalPath(tasks).join(" -> ")}`
  ].join("\n")
}

/** The deterministic parser's plan; a request it cannot plan is bad input (exit code 2). */
const parserPlan = (request: string) =>
  Either.match(Parser.parse(request), {
    onLeft: (error) => Effect.fail(usage(error.message)),
    onRight: (tasks) => Effect.succeed(tasks)
  })

const planned = (request: string) =>
  llmConfigured()
    ? Effect.gen(function* () {
        const Planning = yield* Effect.promise(() => import("../Planning.js"))
        const plan = yield* Planning.planRequest(request)
        return plan.tasks
      }).pipe(Effect.provide(Layer.suspend(llmLayer)))
    : parserPlan(request)

const planWith =
  <E, R>(planner: (request: string) => Effect.Effect<ReadonlyArray<TaskPlan>, E, R>) =>
  (flags: PlanFlags) =>
    Effect.gen(function* () {
      const request = yield* readRequest(flags.request, flags.file)
      const tasks = yield* planner(request)
      yield* out(flags.json ? JSON.stringify({ tasks }) : renderPlan(tasks))
    }).pipe(Effect.mapError(toFailure))

// Functions, not `planWith(...)` results: a bundle that uses only one of them then leaves the other (and its imports) out.
export const plan = (flags: PlanFlags) => planWith(planned)(flags)

/**
 * `plan` when no LLM is configured, without the LLM clients: what the small plan bundle (`../PlanMain.ts`) runs, so
 * it does not carry them.
 */
export const planWithParser = (flags: PlanFlags) => planWith(parserPlan)(flags)
