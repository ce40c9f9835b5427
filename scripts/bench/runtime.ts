/**
 * The planner's runtime over a store, assembled as the runner tests assemble it (test/app/runnerSuite.ts): the
 * command handler, the typed store, an executor registry routing every kind to one executor, the attachment checker
 * and the heuristic compactor and LLM.
 */
import { Clock, Effect, Layer } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import * as AttachmentChecker from "../../src/infra/AttachmentChecker.js"
import type { EventStore } from "../../src/infra/EventStore.js"
import { ExecutorRegistry, type ExecutorService, makeRegistry } from "../../src/infra/Executor.js"
import * as HeuristicCompactor from "../../src/infra/HeuristicCompactor.js"
import * as HeuristicLlm from "../../src/infra/HeuristicLlm.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"

export const runtime = <E>(store: Layer.Layer<EventStore, E>, executor: ExecutorService) =>
  Layer.mergeAll(
    PlannerService.layer().pipe(Layer.provideMerge(PlannerStore.layer)),
    Layer.succeed(ExecutorRegistry, makeRegistry({}, executor)),
    AttachmentChecker.layerNode({ checkLinks: false }),
    HeuristicCompactor.layer,
    HeuristicLlm.layer
  ).pipe(Layer.provideMerge(store))

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
