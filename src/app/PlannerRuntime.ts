/**
 * The planner, ready to use from another Effect program: one layer per store that gives everything needed to start,
 * run, observe, answer, fork and cancel plans (`Runner`, `Fork`) with the caller's own executors.
 *
 * ```ts
 * const planner = PlannerRuntime.sqlite("./planner.db", { executor: myExecutor })
 * const program = Effect.gen(function* () {
 *   const { sessionId } = yield* Runner.start("Write the code. Then test it.")
 *   return yield* Runner.run(sessionId)
 * })
 * Effect.runPromise(program.pipe(Effect.provide(planner)))
 * ```
 *
 * Planning, compaction and link checks default to what needs no network and no model: the deterministic parser,
 * the heuristic compactor, and file checks only. Pass `llm` and `compactor` layers to plan and compact with a model
 * (`LlmConfig.layerFromEnv`, `LlmCompactor.layer`).
 */
import { Layer, Redacted } from "effect"
import type { NodeKind } from "../domain/Task.js"
import * as AttachmentChecker from "../infra/AttachmentChecker.js"
import type { Compactor } from "../infra/Compactor.js"
import type { EventStore, EventStoreError } from "../infra/EventStore.js"
import { ExecutorRegistry, type ExecutorService, makeRegistry } from "../infra/Executor.js"
import * as HeuristicCompactor from "../infra/HeuristicCompactor.js"
import * as HeuristicLlm from "../infra/HeuristicLlm.js"
import type { Llm } from "../infra/Llm.js"
import * as MemoryEventStore from "../infra/MemoryEventStore.js"
import * as PgEventStore from "../infra/PgEventStore.js"
import * as PlannerStore from "../infra/PlannerStore.js"
import * as SqliteEventStore from "../infra/SqliteEventStore.js"
import type * as PlannerService from "./PlannerService.js"
import * as SubPlans from "./SubPlans.js"

export interface PlannerRuntimeOptions extends PlannerService.PlannerServiceOptions {
  /** Runs every task whose kind has no executor of its own in `executors`. */
  readonly executor?: ExecutorService
  /** Executors by task kind. */
  readonly executors?: Partial<Record<NodeKind, ExecutorService>>
  /** Plans requests and answers `LlmExecutor` steps. Default: the deterministic parser (`HeuristicLlm`). */
  readonly llm?: Layer.Layer<Llm>
  /** Compacts the context passed between steps. Default: the heuristic compactor. */
  readonly compactor?: Layer.Layer<Compactor, never, Llm>
  /** Check that a task's links answer before it runs (over the network). Default false; files are always checked. */
  readonly checkLinks?: boolean
}

/** What the layers give: the services `Runner`, `Fork` and `Worker` need, and the stores under them. */
export type Services =
  | PlannerService.PlannerService
  | PlannerStore.PlannerStore
  | EventStore
  | ExecutorRegistry
  | AttachmentChecker.AttachmentChecker
  | Compactor
  | Llm

/** The planner over any event store layer. */
export const layer = <E>(
  store: Layer.Layer<EventStore, E>,
  options: PlannerRuntimeOptions = {}
): Layer.Layer<Services, E> => {
  const { executor, executors = {}, llm = HeuristicLlm.layer, compactor, checkLinks = false, ...service } = options
  const compaction = (compactor ?? HeuristicCompactor.layer).pipe(Layer.provideMerge(llm))
  return Layer.mergeAll(
    SubPlans.layer(service).pipe(Layer.provideMerge(PlannerStore.layer)),
    Layer.succeed(ExecutorRegistry, makeRegistry(executors, executor)),
    AttachmentChecker.layerNode({ checkLinks }),
    compaction
  ).pipe(Layer.provideMerge(store))
}

/** In memory: nothing outlives the program. For tests, demos and embedding. */
export const memory = (options: PlannerRuntimeOptions = {}): Layer.Layer<Services> =>
  layer(MemoryEventStore.layer(), options)

/** A SQLite file (created with its tables on first use; its folder must exist). */
export const sqlite = (filename: string, options: PlannerRuntimeOptions = {}): Layer.Layer<Services, EventStoreError> =>
  layer(SqliteEventStore.layer({ filename }), options)

/** A PostgreSQL database at `url` (`postgres://user:password@host:port/db`; its tables are created on first use). */
export const postgres = (
  url: string | Redacted.Redacted,
  options: PlannerRuntimeOptions = {}
): Layer.Layer<Services, EventStoreError> =>
  layer(PgEventStore.layer({ url: Redacted.isRedacted(url) ? url : Redacted.make(url) }), options)
