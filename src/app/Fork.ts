/**
 * Forking a session: a new session that starts from the first events of another, to run part of a plan again (after
 * a failure, with another answer, or with other executors). The CLI's `fork` and the dashboard's "Fork from here" both
 * use it.
 *
 * Two kinds of fork. Given `edits` or `rerun` (even empty), the fork is incremental (`Edits.planFork`, through the
 * writer as a `ForkSession` command): the new session starts from the source's plan at that event with the edits
 * applied, reuses the results of the completed tasks that no edit or re-run reaches (recorded in its `SessionForked`,
 * each naming the source event that completed it), and runs only the rest. `preview` says which tasks would be reused
 * and which run, without writing anything; `rerun` re-runs one task of a session and what depends on it. `edit`
 * applies edits to a live session.
 *
 * Without them, the fork is a copy, as before:
 *
 * The first `at` events are copied through the writer (`PlannerService.fork`), each with a new event id, the new
 * session as its correlation, and `forkedFrom` in its metadata's `extra` (any other `extra` of the source, such as the
 * executor it ran with, is carried over); a `SessionForked` event records where they came from, and the attempts
 * that were running at that point are given up, so they run again. Nothing is run here:
 * the caller drives the new session (the CLI with its executors, the dashboard with its worker, if it has one).
 */
import { Clock, Effect, Either, Schema } from "effect"
import { EditPlan, ForkSession } from "../domain/Commands.js"
import * as Edits from "../domain/Edits.js"
import type { PlannerEvent } from "../domain/Events.js"
import type { EditSource, PlanEdit } from "../domain/PlanEdit.js"
import * as Planner from "../domain/Planner.js"
import type { TaskId } from "../domain/Task.js"
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
  /** Why the running attempts are given up, as recorded; default "forked from SOURCE at AT". A copy fork's only. */
  readonly reason?: string
  /** Edits to the plan as it was at the fork's event; given (even empty), the fork is incremental. */
  readonly edits?: ReadonlyArray<PlanEdit>
  /** Who made the edits; default the user. */
  readonly editSource?: EditSource
  /** Tasks to run again although no edit reaches them, with what is downstream; given, the fork is incremental. */
  readonly rerun?: ReadonlyArray<TaskId>
}

/** Which tasks an incremental fork reuses and which it runs. */
export interface ForkPreview {
  /** Completed in the source and taken over, with their results. */
  readonly reused: ReadonlyArray<TaskId>
  /** Completed in the source and run again: reached by an edit or a re-run, or downstream of one. */
  readonly rerun: ReadonlyArray<TaskId>
  /** Every task the fork runs: the re-run ones, those the source had not completed, and added ones. */
  readonly run: ReadonlyArray<TaskId>
}

export interface Forked {
  readonly sessionId: string
  readonly forkedFrom: ForkOrigin
  /** The new session after the copy and the given-up attempts (a copy fork), or after its plan and edits. */
  readonly state: Planner.PlannerState
  /** An incremental fork's: which tasks it reuses and which it runs. */
  readonly preview?: ForkPreview
}

const isIncremental = (options: ForkOptions): boolean => options.edits !== undefined || options.rerun !== undefined

/** The source's first `at` events, checked: the session exists and `at` names one of its events. */
const sourceEvents = (sourceId: string, at: number) =>
  Effect.gen(function* () {
    const events = yield* EventStore
    const store = yield* PlannerStore
    const lastSequence = yield* events.lastSequence(plannerStreamId, sourceId)
    if (lastSequence === 0) return yield* new UnknownSession({ sessionId: sourceId })
    if (!Number.isInteger(at) || at < 1 || at > lastSequence) {
      return yield* new ForkOutOfRange({ sessionId: sourceId, at, lastSequence })
    }
    return yield* store.load(sourceId, { toSequence: at })
  })

/** The incremental fork of `events` (the source's first `at`) as planned by the domain, or why it is refused. */
const planned = (
  sourceId: string,
  at: number,
  options: ForkOptions,
  events: ReadonlyArray<PlannerEvent>,
  now: number
) =>
  Edits.planFork(Planner.fold(events), events, {
    fromSessionId: sourceId,
    atSequence: at,
    edits: options.edits ?? [],
    editSource: options.editSource ?? { _tag: "User" },
    rerun: options.rerun ?? [],
    at: now
  })

const previewOf = (plan: Edits.ForkPlan): ForkPreview => ({ reused: plan.reused, rerun: plan.rerun, run: plan.run })

/**
 * Which tasks an incremental fork of `sourceId` at `at` with these edits would reuse and which it would run, and the
 * refusal it would meet, without writing anything (`--dry-run`).
 */
export const preview = (sourceId: string, at: number, options: Pick<ForkOptions, "edits" | "rerun"> = {}) =>
  Effect.gen(function* () {
    const records = yield* sourceEvents(sourceId, at)
    const now = yield* Clock.currentTimeMillis
    const plan = planned(
      sourceId,
      at,
      options,
      records.map((record) => record.event),
      now
    )
    return Either.isLeft(plan) ? yield* Effect.fail(plan.left) : previewOf(plan.right)
  }).pipe(Effect.withSpan("Fork.preview", { attributes: { sourceId, at } }))

/** Starts an incremental fork through the writer: one append, its jobs with it. */
const forkIncremental = (sourceId: string, at: number, options: ForkOptions) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const records = yield* sourceEvents(sourceId, at)
    const now = yield* Clock.currentTimeMillis
    const sessionId = options.sessionId ?? newSessionId(now)
    const forkedFrom: ForkOrigin = { sessionId: sourceId, sequence: at }
    const events = records.map((record) => record.event)
    // Planned here too, for the preview the caller gets; the writer decides the same command on the empty session.
    const plan = planned(sourceId, at, options, events, now)
    if (Either.isLeft(plan)) return yield* Effect.fail(plan.left)
    const executor = records[0]?.metadata.extra?.executor
    const { state } = yield* service.execute(
      sessionId,
      new ForkSession({
        fromSessionId: sourceId,
        atSequence: at,
        sourceEvents: events,
        edits: options.edits ?? [],
        editSource: options.editSource ?? { _tag: "User" },
        rerun: options.rerun ?? [],
        intoSessionId: sessionId,
        at: now
      }),
      { extra: { forkedFrom, ...(executor === undefined ? {} : { executor }) } }
    )
    const forked: Forked = { sessionId, forkedFrom, state, preview: previewOf(plan.right) }
    return forked
  })

/**
 * Re-runs task `taskId` of `sourceId`, and what depends on it, in a new session that keeps every other result: an
 * incremental fork at the source's last event with `rerun: [taskId]` (`planner rerun SESSION --task N`).
 */
export const rerun = (sourceId: string, taskId: TaskId, options: Omit<ForkOptions, "rerun" | "reason"> = {}) =>
  Effect.gen(function* () {
    const events = yield* EventStore
    const lastSequence = yield* events.lastSequence(plannerStreamId, sourceId)
    if (lastSequence === 0) return yield* new UnknownSession({ sessionId: sourceId })
    return yield* forkIncremental(sourceId, lastSequence, { ...options, rerun: [taskId] })
  }).pipe(Effect.withSpan("Fork.rerun", { attributes: { sourceId, taskId } }))

/**
 * Edits a live session's plan through the writer (`planner edit`): recorded as `PlanEdited`, and the tasks it makes
 * ready are dispatched with it. Refused, with a typed error, when an edit would break the plan.
 */
export const edit = (sessionId: string, edits: ReadonlyArray<PlanEdit>, source: EditSource = { _tag: "User" }) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const now = yield* Clock.currentTimeMillis
    return yield* service.execute(sessionId, new EditPlan({ edits, source, at: now }))
  }).pipe(Effect.withSpan("Fork.edit", { attributes: { sessionId } }))

/**
 * Forks `sourceId` at its event `at`: incrementally when `options` has `edits` or `rerun`; otherwise copies the first
 * `at` events into a new session and gives up the attempts running at that point.
 */
export const fork = (sourceId: string, at: number, options: ForkOptions = {}) =>
  Effect.gen(function* () {
    if (isIncremental(options)) return yield* forkIncremental(sourceId, at, options)
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
    const forked: Forked = { sessionId, forkedFrom, state }
    return forked
  }).pipe(Effect.withSpan("Fork.fork", { attributes: { sourceId, at } }))
