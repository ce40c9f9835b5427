/**
 * Looking a session up for a command: its state (or a clear "no such session" naming the store), what it recorded
 * about itself in the metadata of its first event (the executor it ran with, the session it was forked from), and how
 * to print follow-up commands for it.
 */
import { Effect, Option } from "effect"
import type * as Planner from "../../domain/Planner.js"
import { PlannerStore } from "../../infra/PlannerStore.js"
import * as SessionSnapshots from "../../infra/SessionSnapshots.js"
import { PlannerService } from "../PlannerService.js"
import { usage } from "./Failure.js"
import type { ForkOrigin } from "./Render.js"
import type { StoreTarget } from "./Store.js"

const noSession = (sessionId: string, store: StoreTarget) =>
  usage(
    `There is no session ${sessionId} in ${store.label}: list the sessions with \`planner sessions${store.flag}\`, or check --db.`
  )

/** The session's current state; exit code 2 when the store has no such session. */
export const existingState = (sessionId: string, store: StoreTarget) =>
  Effect.flatMap(PlannerService, (service) => service.state(sessionId)).pipe(
    // A session pruned by `planner prune` has no events left, only its final snapshot.
    Effect.flatMap((state) => SessionSnapshots.orSnapshot(sessionId, state)),
    Effect.filterOrFail(
      (state): state is Planner.PlannerState => state.status !== "NotStarted",
      () => noSession(sessionId, store)
    )
  )

/**
 * How many events the session's log holds, counted without reading them: the commands that read only its first
 * events (time travel, a fork, the history) go on where a later event cannot be read, as the error for a corrupt event
 * advises. 0 for a session `planner prune` emptied (its final state is kept); exit code 2 when there is no such
 * session.
 */
export const existingLog = (sessionId: string, store: StoreTarget) =>
  Effect.gen(function* () {
    const last = yield* Effect.flatMap(PlannerStore, (events) => events.lastSequence(sessionId))
    if (last > 0) return last
    return (yield* SessionSnapshots.isPruned(sessionId)) ? 0 : yield* noSession(sessionId, store)
  })

/** Exit code 2 for a command that needs the events of a session `planner prune` removed. */
export const pruned = (sessionId: string, store: StoreTarget) =>
  usage(
    `Session ${sessionId} was pruned: its events are gone and only its final state is kept (see \`planner show ${sessionId}${store.flag}\`).`
  )

/**
 * The session's state right after its event `at`, from its first `at` events alone; exit code 2 when there is no such
 * session, when it was pruned, or when `at` is outside its log.
 */
export const existingStateAt = (sessionId: string, store: StoreTarget, at: number) =>
  Effect.gen(function* () {
    const last = yield* existingLog(sessionId, store)
    if (last === 0) return yield* pruned(sessionId, store)
    if (!Number.isInteger(at) || at < 1 || at > last) {
      return yield* usage(
        `--at ${at} is out of range: session ${sessionId} has events 1 to ${last} (see \`planner history ${sessionId}${store.flag}\`).`
      )
    }
    const state = yield* Effect.flatMap(PlannerService, (service) => service.stateAt(sessionId, at))
    return { state, last }
  })

export interface SessionFacts {
  /** When its first event was stored. */
  readonly createdAt: number | undefined
  /** The executor spec it was run with (`auto`, `echo`, `script:/abs/path`). */
  readonly executor: Option.Option<string>
  readonly forkedFrom: ForkOrigin | undefined
  /** The metadata `extra` of its first event, carried over when it is forked. */
  readonly extra: Readonly<Record<string, unknown>> | undefined
}

const isForkOrigin = (value: unknown): value is ForkOrigin =>
  typeof value === "object" &&
  value !== null &&
  "sessionId" in value &&
  typeof value.sessionId === "string" &&
  "sequence" in value &&
  typeof value.sequence === "number"

/** What a session recorded about itself with its first event. */
export const sessionFacts = (sessionId: string) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore
    const [first] = yield* store.load(sessionId, { toSequence: 1 })
    const extra = first?.metadata.extra
    const executor = extra?.executor
    const forkedFrom = extra?.forkedFrom
    return {
      createdAt: first?.createdAt,
      executor: typeof executor === "string" ? Option.some(executor) : Option.none(),
      forkedFrom: isForkOrigin(forkedFrom) ? forkedFrom : undefined,
      extra
    } satisfies SessionFacts
  })

/** `planner`, or `npx planner` when this process was started by `npx`, so printed commands can be pasted as they are. */
export const programName = (env: NodeJS.ProcessEnv = process.env): string =>
  env.npm_command === "exec" ? "npx planner" : "planner"
