/**
 * The dashboard under test: the real server on a free port of 127.0.0.1, over a fresh SQLite file, with the
 * planner's real services and the script executor, so plans really run while the page or the API watches.
 */
import { Clock, Effect, Layer } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Server from "../../src/app/Server.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { plannerRuntime } from "../app/fixtures/runtime.js"
import { fast } from "../app/runnerSuite.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"

/** The planner's services over a fresh SQLite file, with a script executor for `script` (its JSON form). */
export const plannerWithScript = (script: unknown) =>
  Layer.unwrapScoped(Effect.map(freshSqliteFile, (filename) => plannerOnFile(filename, script)))

/** The planner's services over this SQLite file: each use builds them anew, as another process over the file would. */
export const plannerOnFile = (filename: string, script: unknown) =>
  Layer.unwrapEffect(
    Effect.map(ScriptExecutor.parse(JSON.stringify(script), "dashboard-script.json"), (parsed) =>
      plannerRuntime(SqliteEventStore.layer({ filename }), ScriptExecutor.make(parsed))
    )
  )

/** The dashboard in the current scope, on a free port. */
export const startServer = Server.start({ host: "127.0.0.1", port: 0 })

/**
 * A session with exactly these tasks (an LLM's plan, bypassing the parser); the `expanded` ones run as child sessions
 * (sub-plans, each started when its task is dispatched).
 */
export const startPlan = (
  request: string,
  tasks: ReadonlyArray<TaskPlan>,
  config: Partial<PlannerConfig> = {},
  expanded: ReadonlyArray<number> = []
) =>
  Effect.gen(function* () {
    const service = yield* PlannerService.PlannerService
    const at = yield* Clock.currentTimeMillis
    const sessionId = Runner.newSessionId(at)
    yield* service.execute(
      sessionId,
      new Initialize({
        request,
        tasks,
        source: { _tag: "Llm", model: "script-demo" },
        config: { ...defaultConfig, ...fast, ...config },
        ...(expanded.length === 0
          ? {}
          : { expand: expanded.map((taskId) => ({ taskId, childSessionId: childSessionId(sessionId, taskId) })) }),
        at
      })
    )
    return sessionId
  })

export const task = (
  id: number,
  kind: TaskPlan["kind"],
  description: string,
  dependsOn: ReadonlyArray<number> = []
): TaskPlan => ({ id, kind, description, dependsOn, attachments: [] })

/** A JSON request to the server, answered as status and parsed body. */
export const fetchJson = (url: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      body = text
    }
    return { status: response.status, headers: response.headers, body }
  })

export const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetchJson(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })
