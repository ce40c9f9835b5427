/**
 * Forking a session: a new session that starts from the first events of another, to run part of a plan again (after
 * a failure, with another answer, or with other executors). The CLI's `fork` and the dashboard's "Fork from here" both
 * use it.
 *
 * The first `at` events are copied through the writer (`PlannerService.fork`), each with a new event id, the new
 * session as its correlation, and `forkedFrom` in its metadata's `extra` (any other `extra` of the source, such as the
 * executor it ran with, is carried over); a `SessionForked` event records where they came from, and the attempts
 * that were running at that point are given up, so they run again. Nothing is run here:
 * the caller drives the new session (the CLI with its executors, the dashboard with its worker, if it has one).
 */
import { Clock, Effect, Schema } from "effect"
import type * as Planner from "../domain/Planner.js"
import { EventStore } from "../infra/EventStore.js"
import { PlannerStore, plannerStreamId } from "../infra/PlannerStore.js"
import { PlannerService } from "./PlannerService.js"
import { newSessionId, UnknownSession } from "./Runner.js"

/** Where a fork came from: the source session and the last of its events copied. */
export interface ForkOrigin {
  readonly sessionId: string
  readonly sequence: number
}

/** `at` names no event of the source session. */
export class ForkOutOfRange extends Schema.TaggedError<ForkOutOfRange>()("ForkOutOfRange", {
  sessionId: Schema.String,
  at: Schema.Number,
  lastSequence: Schema.Number
}) {
  override get message() {
    return `Cannot fork session ${this.sessionId} at event ${this.at}: it has events 1 to ${this.lastSequence}; pick one of those.`
  }
}

export interface ForkOptions {
  /** The new session's id; default a fresh one. */
  readonly sessionId?: string
  /** Why the running attempts are given up, as recorded; default "forked from SOURCE at AT". */
  readonly reason?: string
}

export interface Forked {
  readonly sessionId: string
  readonly forkedFrom: ForkOrigin
  /** The new session after the copy and the given-up attempts. */
  readonly state: Planner.PlannerState
}

/** Copies the first `at` events of `sourceId` into a new session and gives up the attempts running at that point. */
export const fork = (sourceId: string, at: number, options: ForkOptions = {}) =>
  Effect.gen(function* () {
    const events = yield* EventStore
    const store = yield* PlannerStore
    const service = yield* PlannerService
    const lastSequence = yield* events.lastSequence(plannerStreamId, sourceId)
    if (lastSequence === 0) return yield* new UnknownSession({ sessionId: sourceId })
    if (!Number.isInteger(at) || at < 1 || at > lastSequence) {
      return yield* new ForkOutOfRange({ sessionId: sourceId, at, lastSequence })
    }
    const now = yield* Clock.currentTimeMillis
    const sessionId = options.sessionId ?? newSessionId(now)
    const forkedFrom: ForkOrigin = { sessionId: sourceId, sequence: at }
    // Through the writer: the copies, `SessionForked` and the given-up attempts in one append, with their jobs.
    const source = yield* store.load(sourceId, { toSequence: at })
    const { state } = yield* service.fork(sessionId, source, {
      fromSessionId: sourceId,
      atSequence: at,
      ...(options.reason === undefined ? {} : { reason: options.reason })
    })
    return { sessionId, forkedFrom, state } satisfies Forked
  }).pipe(Effect.withSpan("Fork.fork", { attributes: { sourceId, at } }))
