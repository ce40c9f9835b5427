/**
 * Forking a session: a new session that starts from the first events of another, to run part of a plan again (after
 * a failure, with another answer, or with other executors). The CLI's `fork` and the dashboard's "Fork from here" both
 * use it.
 *
 * The first `at` events are copied as stored (types, versions, data), each with a new event id, the new session as
 * its correlation, the event it copies as its causation, and `forkedFrom` in its metadata's `extra` (the source
 * session and sequence; any other `extra` of the source, such as the executor it ran with, is carried over). The
 * attempts that were running at that point are then given up (`AbandonTask`), so they run again. Nothing is run here:
 * the caller drives the new session (the CLI with its executors, the dashboard with its worker, if it has one).
 */
import { randomUUID } from "node:crypto"
import { Clock, Effect, Schema } from "effect"
import { AbandonTask } from "../domain/Commands.js"
import type * as Planner from "../domain/Planner.js"
import { EventStore } from "../infra/EventStore.js"
import { plannerStreamId } from "../infra/PlannerStore.js"
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
    const service = yield* PlannerService
    const lastSequence = yield* events.lastSequence(plannerStreamId, sourceId)
    if (lastSequence === 0) return yield* new UnknownSession({ sessionId: sourceId })
    if (!Number.isInteger(at) || at < 1 || at > lastSequence) {
      return yield* new ForkOutOfRange({ sessionId: sourceId, at, lastSequence })
    }
    const now = yield* Clock.currentTimeMillis
    const sessionId = options.sessionId ?? newSessionId(now)
    const forkedFrom: ForkOrigin = { sessionId: sourceId, sequence: at }
    const stored = yield* events.load({ streamId: plannerStreamId, aggregateId: sourceId, toSequence: at })
    yield* events.append(
      plannerStreamId,
      sessionId,
      stored.map((event) => ({
        type: event.type,
        version: event.version,
        data: event.data,
        metadata: {
          eventId: randomUUID(),
          correlationId: sessionId,
          causationId: event.metadata.eventId,
          extra: { ...event.metadata.extra, forkedFrom }
        }
      })),
      0
    )
    let state = yield* service.state(sessionId)
    for (const task of state.tasks) {
      const holder = task.lease?.workerId
      if (task.status !== "Running" || holder === undefined) continue
      const handled = yield* service.execute(
        sessionId,
        new AbandonTask({
          taskId: task.id,
          attempt: task.attempt,
          workerId: holder,
          reason: options.reason ?? `forked from ${sourceId} at ${at}`,
          at: now
        })
      )
      state = handled.state
    }
    return { sessionId, forkedFrom, state } satisfies Forked
  }).pipe(Effect.withSpan("Fork.fork", { attributes: { sourceId, at } }))
