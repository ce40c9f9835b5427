/**
 * Planning with memory (#17): what past work offers a new plan.
 *
 * - `reusablePlan`: a past successful session whose request closely matches (most of the words in common, after
 *   stemming) lends its plan's structure (`planner run --from-memory`); the new plan's source names it.
 * - `plannerExamples`: the most similar successful past plans, as examples for the LLM planner's prompt.
 * - `clarificationWarnings`: tasks whose similar past tasks usually asked a question, flagged before they run.
 *
 * Each catches the memory index up with the log first. Memory is advice: when it cannot be read, planning goes on
 * without it (a warning is logged), never fails because of it.
 */
import { Effect, Option } from "effect"
import type { PlannerSource } from "../domain/Events.js"
import { clarificationFlag, type SessionMemory, type TaskMemory } from "../domain/Memory.js"
import type { TaskPlan } from "../domain/Task.js"
import type { EventStore } from "../infra/EventStore.js"
import { MemoryIndex, stem, terms } from "../infra/MemoryIndex.js"
import * as MemoryProjection from "../infra/MemoryProjection.js"

/** How alike two texts' words are: shared stemmed words over all of them (Jaccard), from 0 to 1. */
export const overlap = (a: string, b: string): number => {
  const left = new Set(terms(a).map(stem))
  const right = new Set(terms(b).map(stem))
  if (left.size === 0 || right.size === 0) return 0
  let shared = 0
  for (const word of left) if (right.has(word)) shared++
  return shared / (left.size + right.size - shared)
}

/** A request at least this alike a past one may reuse its plan. */
export const closeMatch = 0.5

const advisory = <A>(fallback: A, what: string) =>
  Effect.catchAll((error: { readonly message: string }) =>
    Effect.as(Effect.logWarning(`memory: ${what} skipped: ${error.message}`), fallback)
  )

const caughtUp = Effect.zipRight(MemoryProjection.catchUp, MemoryIndex)

export interface ReusedPlan {
  readonly tasks: ReadonlyArray<TaskPlan>
  readonly source: PlannerSource
  readonly fromSession: SessionMemory
}

/** The plan of the closest past successful session with a closely matching request, if there is one. */
export const reusablePlan = (
  request: string
): Effect.Effect<Option.Option<ReusedPlan>, never, EventStore | MemoryIndex> =>
  Effect.gen(function* () {
    const index = yield* caughtUp
    const hits = yield* index.search({ text: request, kind: "session", succeededOnly: true, limit: 5 })
    const best = hits
      .flatMap((hit) => (hit.record._tag === "Session" ? [hit.record] : []))
      .map((session) => ({ session, similarity: overlap(request, session.request) }))
      .filter(({ session, similarity }) => similarity >= closeMatch && session.plan.length > 0)
      .sort((a, b) => b.similarity - a.similarity)[0]
    if (best === undefined) return Option.none<ReusedPlan>()
    const { session, similarity } = best
    return Option.some({
      tasks: session.plan.map((step) => ({ ...step, dependsOn: [...step.dependsOn], attachments: [] })),
      source: {
        _tag: "Parser",
        reason: `reused the plan of session ${session.sessionId} from memory (its request shares ${Math.round(similarity * 100)}% of the words: ${JSON.stringify(session.request.slice(0, 120))})`
      },
      fromSession: session
    } satisfies ReusedPlan)
  }).pipe(advisory(Option.none<ReusedPlan>(), "reusing a past plan"))

/** The most similar successful past plans, written out as examples for the LLM planner; empty when there are none. */
export const plannerExamples = (request: string, count = 3): Effect.Effect<string, never, EventStore | MemoryIndex> =>
  Effect.gen(function* () {
    const index = yield* caughtUp
    const hits = yield* index.search({ text: request, kind: "session", succeededOnly: true, limit: count })
    const sessions = hits.flatMap((hit) => (hit.record._tag === "Session" ? [hit.record] : []))
    if (sessions.length === 0) return ""
    const examples = sessions.map((session, n) =>
      [
        `Example ${n + 1} (a past request whose plan succeeded): ${JSON.stringify(session.request)}`,
        ...session.plan.map(
          (step) =>
            `  ${step.id}. [${step.kind}] ${step.description}${step.dependsOn.length === 0 ? "" : ` (after ${step.dependsOn.join(", ")})`}`
        )
      ].join("\n")
    )
    return [
      "Plans that worked for similar requests before (follow their structure where the new request is alike; never copy steps it does not ask for):",
      ...examples
    ].join("\n")
  }).pipe(advisory("", "examples from memory"))

/** How many of a plan's tasks `clarificationWarnings` looks up. */
export const maxCheckedTasks = 100

/** A task whose similar past tasks usually asked a question. */
export interface ClarificationWarning {
  readonly taskId: number
  readonly asked: number
  readonly of: number
  readonly line: string
}

/** For each task, its most similar past tasks (up to `neighbours`); flagged when most of them asked. */
export const clarificationWarnings = (
  tasks: ReadonlyArray<Pick<TaskPlan, "id" | "description">>,
  neighbours = 6
): Effect.Effect<ReadonlyArray<ClarificationWarning>, never, EventStore | MemoryIndex> =>
  Effect.gen(function* () {
    const index = yield* caughtUp
    const warnings: Array<ClarificationWarning> = []
    // One search per task: a very long plan is checked on its first tasks only, so start-up stays quick.
    for (const task of tasks.slice(0, maxCheckedTasks)) {
      const hits = yield* index.search({ text: task.description, kind: "task", limit: neighbours })
      const similar = hits
        .flatMap((hit) => (hit.record._tag === "Task" ? [hit.record] : []))
        .filter((record: TaskMemory) => overlap(task.description, record.description) >= 0.3)
      const flag = clarificationFlag(similar)
      if (flag !== undefined) {
        warnings.push({
          taskId: task.id,
          ...flag,
          line: `task ${task.id}: similar tasks asked for clarification ${flag.asked} times in ${flag.of}: consider answering in advance with --answer ${task.id}=...`
        })
      }
    }
    return warnings
  }).pipe(advisory<ReadonlyArray<ClarificationWarning>>([], "clarification warnings"))
