/**
 * The dashboard's view of the memory of past work (#17), for `Server`'s routes:
 *
 * - `recall`: the same search as `planner recall` (the index caught up with the log first), as
 *   `{ query, hits: [{ score, ...record }] }`;
 * - `sessionFlags`: the clarification flags of a session's tasks that have not ended (similar past tasks usually
 *   asked a question), as `{ flags: [{ taskId, asked, of }] }`.
 *
 * The server reads one index for its whole life (`serverIndex`): the one `planner serve` keeps live, else one built
 * on the store's database when the server starts.
 */
import { Context, Effect, Layer, Option, type Scope } from "effect"
import { isTerminal, nodeKinds } from "../domain/Task.js"
import type { RecallKind } from "../infra/MemoryIndex.js"
import { MemoryIndex, type MemoryIndexService } from "../infra/MemoryIndex.js"
import * as MemoryProjection from "../infra/MemoryProjection.js"
import * as MemoryLive from "./MemoryLive.js"
import { clarificationWarnings } from "./MemoryPlanning.js"
import { PlannerService } from "./PlannerService.js"

/** The `kind` a search may ask for: tasks, sessions, or tasks of one kind. */
export const recallKinds: ReadonlyArray<RecallKind> = ["task", "session", ...nodeKinds]

/** The index in context (`planner serve` provides the live one), else one on the store's database. */
export const serverIndex: Effect.Effect<MemoryIndexService, never, Scope.Scope> = Effect.flatMap(
  Effect.serviceOption(MemoryIndex),
  Option.match({
    onSome: Effect.succeed,
    onNone: () => Effect.map(Layer.build(MemoryLive.indexLayer), (context) => Context.get(context, MemoryIndex))
  })
)

export interface RecallQuery {
  readonly text: string
  readonly limit: number
  readonly kind: RecallKind | undefined
}

export const recall = (query: RecallQuery) =>
  Effect.gen(function* () {
    yield* MemoryProjection.catchUp
    const index = yield* MemoryIndex
    const hits =
      query.text === ""
        ? []
        : yield* index.search({
            text: query.text,
            limit: query.limit,
            ...(query.kind === undefined ? {} : { kind: query.kind })
          })
    return { query: query.text, hits: hits.map(({ record, score }) => ({ score, ...record })) }
  })

/** The flags of the session's tasks that have not ended yet (memory is advice: none when it cannot be read). */
export const sessionFlags = (sessionId: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const state = yield* service.state(sessionId)
    const open = state.tasks.filter((task) => !isTerminal(task.status))
    const warnings = yield* clarificationWarnings(open)
    return { flags: warnings.map(({ taskId, asked, of }) => ({ taskId, asked, of })) }
  })
