/**
 * event-sourced-planner: the public entry for Effect programs.
 *
 * Start here: `PlannerRuntime` gives a ready layer per store (`memory`, `sqlite`, `postgres`) with everything `Runner`
 * (start, run, observe, answer, cancel) and `Fork` (forks, incremental forks and re-runs, live plan edits) need, with
 * your own executors (`Executor`). `Telemetry` exports traces over OTLP. The domain (pure): `Planner` (decide, evolve,
 * fold), `Parser`, `Graph`, `Edits` (plan edits and what an incremental fork reuses), and the schemas of commands,
 * events, tasks, plan edits (`PlanEdit`) and configuration. The infrastructure: `EventStore` and its layers.
 *
 * `PgEventStore` (the PostgreSQL store with its `PgClient`) is its own entry, `event-sourced-planner/PgEventStore`:
 * its types come from `pg`, so using it takes `@types/pg` and `@types/node`. `PlannerRuntime.postgres` needs neither.
 *
 * Effect line: v3 (`effect` ^3.22 and the `@effect/*` packages of that line, as peer dependencies).
 */

export * as Fork from "./app/Fork.js"
export * as PlannerRuntime from "./app/PlannerRuntime.js"
export * as PlannerService from "./app/PlannerService.js"
export * as Planning from "./app/Planning.js"
export * as Runner from "./app/Runner.js"
export * as Telemetry from "./app/Telemetry.js"
export * as Worker from "./app/Worker.js"
export * as Commands from "./domain/Commands.js"
export * as Config from "./domain/Config.js"
export * as Edits from "./domain/Edits.js"
export * as Errors from "./domain/Errors.js"
export * as Events from "./domain/Events.js"
export * as Graph from "./domain/Graph.js"
export * as Parser from "./domain/Parser.js"
export * as PlanEdit from "./domain/PlanEdit.js"
export * as Planner from "./domain/Planner.js"
export * as Task from "./domain/Task.js"
export * as AttachmentChecker from "./infra/AttachmentChecker.js"
export * as ChatCompletionsLlm from "./infra/ChatCompletionsLlm.js"
export * as CircuitBreaker from "./infra/CircuitBreaker.js"
export * as Compactor from "./infra/Compactor.js"
export * as EchoExecutor from "./infra/EchoExecutor.js"
export * as EventStore from "./infra/EventStore.js"
export * as Executor from "./infra/Executor.js"
export * as HeuristicCompactor from "./infra/HeuristicCompactor.js"
export * as HeuristicLlm from "./infra/HeuristicLlm.js"
export * as Llm from "./infra/Llm.js"
export * as LlmCompactor from "./infra/LlmCompactor.js"
export * as LlmConfig from "./infra/LlmConfig.js"
export * as LlmExecutor from "./infra/LlmExecutor.js"
export * as MemoryEventStore from "./infra/MemoryEventStore.js"
export * as OpenAiLlm from "./infra/OpenAiLlm.js"
export * as PlannerStore from "./infra/PlannerStore.js"
export * as ScriptExecutor from "./infra/ScriptExecutor.js"
export * as ShellExecutor from "./infra/ShellExecutor.js"
export * as SqlEventStore from "./infra/SqlEventStore.js"
export * as SqliteEventStore from "./infra/SqliteEventStore.js"
export * as Tokenizer from "./infra/Tokenizer.js"
