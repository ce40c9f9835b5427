/**
 * event-sourced-planner: the public entry for Effect programs.
 *
 * The domain (pure): `Planner` (decide, evolve, fold), `Parser`, `Graph`, and the schemas of commands, events, tasks
 * and configuration. The infrastructure: `EventStore` and its layers.
 */
export * as Commands from "./domain/Commands.js"
export * as Config from "./domain/Config.js"
export * as Errors from "./domain/Errors.js"
export * as Events from "./domain/Events.js"
export * as Graph from "./domain/Graph.js"
export * as Parser from "./domain/Parser.js"
export * as Planner from "./domain/Planner.js"
export * as Task from "./domain/Task.js"
export * as EventStore from "./infra/EventStore.js"
