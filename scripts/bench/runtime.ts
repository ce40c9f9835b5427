/**
 * Plans for the benchmarks, recorded through the planner's services (`plannerRuntime` in
 * test/app/fixtures/runtime.ts, the runtime the runner tests use).
 */
import { Clock, Effect } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import type { TaskPlan } from "../../src/domain/Task.js"

/** A plan of `count` tasks; each depends on the one before it when `chain`, else none depends on any. */
export const plan = (count: number, chain: boolean): ReadonlyArray<TaskPlan> =>
  Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    description: `step ${index + 1} of the benchmark plan`,
    kind: "Processing" as const,
    dependsOn: chain && index > 0 ? [index] : [],
    attachments: []
  }))

/** Records a new session with an explicit plan (an LLM's plan, say), bypassing the parser; returns its id. */
export const startSession = (tasks: ReadonlyArray<TaskPlan>, config: Partial<PlannerConfig> = {}) =>
  Effect.gen(function* () {
    const service = yield* PlannerService.PlannerService
    const at = yield* Clock.currentTimeMillis
    const sessionId = Runner.newSessionId(at)
    yield* service.execute(
      sessionId,
      new Initialize({ request: "benchmark plan", tasks, config: { ...defaultConfig, ...config }, at })
    )
    return sessionId
  })
