/**
 * The command handler: one command, end to end. Take the session's state (cached; caught up from the store when it
 * may be behind), `decide`, append the events at the sequence the decision was made on, and when another writer got
 * there first, catch up and decide again. This optimistic concurrency is what makes claims safe across workers and
 * machines: two workers deciding on the same state cannot both append.
 */
import { randomUUID } from "node:crypto"
import { Cause, Context, Deferred, Duration, Effect, Either, FiberId, Layer } from "effect"
import type { PlannerCommand } from "../domain/Commands.js"
import type { PlannerError } from "../domain/Errors.js"
import { encodeEvent, type PlannerEvent } from "../domain/Events.js"
import * as Planner from "../domain/Planner.js"
import { EventStore, type NewEvent, type ReadError, type SequenceConflict } from "../infra/EventStore.js"
import { type PlannerAppendMetadata, PlannerStore, plannerStreamId } from "../infra/PlannerStore.js"
import { hotSpanWith } from "../infra/Tracing.js"

export interface Handled {
  /** The events the command produced; empty when it changed nothing (an idempotent repeat). */
  readonly events: ReadonlyArray<PlannerEvent>
  /** The session after the command. `state.version` is its last sequence. */
  readonly state: Planner.PlannerState
}

export interface Tracing {
  /** Ties together everything one request caused; defaults to the session id. */
  readonly correlationId?: string
  /** The event or command that caused this one. */
  readonly causationId?: string
}

export type HandleError = PlannerError | ReadError | SequenceConflict

export interface PlannerServiceShape {
  /**
   * Handles one command. `command` may be a function of the current state, for commands whose content depends on it
   * (a claim names the attempt it claims); it is called again on each retry.
   */
  readonly execute: (
    sessionId: string,
    command: PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand),
    tracing?: Tracing
  ) => Effect.Effect<Handled, HandleError>
  /** The session's current state, read through the cache. */
  readonly state: (sessionId: string) => Effect.Effect<Planner.PlannerState, ReadError>
  /** The session as it was right after event `sequence`, folded from the log (time travel). */
  readonly stateAt: (sessionId: string, sequence: number) => Effect.Effect<Planner.PlannerState, ReadError>
}

export class PlannerService extends Context.Tag("event-sourced-planner/PlannerService")<
  PlannerService,
  PlannerServiceShape
>() {}

export interface PlannerServiceOptions {
  /** How many sessions' states to keep in memory. */
  readonly cacheSize?: number
  /** How many times to decide again after losing a race. */
  readonly maxConflictRetries?: number
}

/** A command waiting for its session's turn, and where its outcome goes. */
interface Pending {
  readonly command: PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand)
  readonly metadata: PlannerAppendMetadata
  readonly outcome: Deferred.Deferred<Handled, HandleError>
}

/** One session's commands in this process: taken in turn, and in batches. */
interface SessionQueue {
  readonly turn: Effect.Semaphore
  readonly waiting: Array<Pending>
}

/** A command's name for traces; one computed from the state is named by what it makes of `state`. */
const commandName = (
  command: PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand),
  state: Planner.PlannerState
): string => {
  if (typeof command !== "function") return command._tag
  try {
    return command(state)._tag
  } catch {
    return "computed"
  }
}

/** The wait before deciding again after conflict number `conflicts`: 2 ms doubling, at most 50 ms, jittered. */
const conflictDelay = (conflicts: number) =>
  Duration.millis(Math.min(50, 2 * 2 ** (conflicts - 1)) * (0.8 + Math.random() * 0.4))

export const make = (options: PlannerServiceOptions = {}) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore
    const events = yield* EventStore
    const cacheSize = options.cacheSize ?? 1_000
    const maxConflictRetries = options.maxConflictRetries ?? 20
    // Insertion-ordered: re-inserting on use makes the first key the least recently used.
    const cache = new Map<string, Planner.PlannerState>()
    const remember = (sessionId: string, state: Planner.PlannerState) => {
      // Concurrent readers may finish out of order: never replace a newer state with an older one.
      if ((cache.get(sessionId)?.version ?? -1) > state.version) return
      cache.delete(sessionId)
      cache.set(sessionId, state)
      if (cache.size > cacheSize) {
        const oldest = cache.keys().next()
        if (!oldest.done) cache.delete(oldest.value)
      }
    }

    /** The cached state brought up to date with whatever the store has after it. */
    const current = (sessionId: string): Effect.Effect<Planner.PlannerState, ReadError> =>
      Effect.gen(function* () {
        const known = cache.get(sessionId) ?? Planner.initialState
        const newer = yield* store.load(sessionId, { fromSequence: known.version + 1 })
        if (newer.length === 0) return known
        const state = Planner.fold(
          newer.map((record) => record.event),
          known
        )
        remember(sessionId, state)
        return state
      })

    /**
     * Commands on one session from this process take turns, and whoever has the turn decides every command waiting
     * at that moment, each on the state the previous ones left, and appends all their events at once (a group
     * commit). Only one of several concurrent deciders can win each sequence: letting this process's own fibers race
     * each other only produced conflicts, and under a busy worker (claims, outcomes and heartbeats for many tasks of
     * one plan) most appends failed and were retried. Writers in other processes are still kept apart by the
     * expected sequence.
     */
    const queues = new Map<string, SessionQueue>()

    /**
     * Sessions whose cached state was recently found behind the store (another process appends to them): their next
     * commands catch up first instead of appending at the cached sequence, by how many commands are left to do so.
     */
    const contended = new Map<string, number>()
    const catchUpFirst = 16

    /**
     * Decides a batch and appends its events, deciding again after conflicts. Completes every command's outcome (and
     * calls `settled`) in the step that records them, so an interruption either comes before or finds all done.
     *
     * The batch is first decided on the cached state, without reading the store: in the usual case (this process is
     * the session's only writer, or the others are idle) the cache is current and the append at its sequence
     * succeeds. When another writer got there first, the append is refused with nothing written and the batch is
     * decided again on the caught-up state. A refusal or a no-op decided on the cache is not trusted either: the
     * store may hold what makes the command valid (a task another process dispatched), so it is decided again on the
     * caught-up state before anybody is told.
     */
    const decideAndAppend = (
      sessionId: string,
      batch: ReadonlyArray<Pending>,
      settled: () => void
    ): Effect.Effect<void, HandleError> => {
      // Written without a generator: every command passes through here.
      const attempt = (conflicts: number, trustCache: boolean): Effect.Effect<void, HandleError> => {
        const cached = trustCache ? cache.get(sessionId) : undefined
        return cached !== undefined
          ? decideOn(cached, true, conflicts)
          : Effect.flatMap(current(sessionId), (state) => decideOn(state, false, conflicts))
      }
      const decideOn = (
        state: Planner.PlannerState,
        unverified: boolean,
        conflicts: number
      ): Effect.Effect<void, HandleError> => {
        let working = state
        let allAppend = true
        const decided: Array<Effect.Effect<Handled, PlannerError>> = []
        const appended: Array<NewEvent> = []
        for (const pending of batch) {
          let outcome: ReturnType<typeof Planner.decideAndEvolve>
          try {
            const concrete = typeof pending.command === "function" ? pending.command(working) : pending.command
            outcome = Planner.decideAndEvolve(working, concrete)
          } catch (defect) {
            // A command function that throws is its caller's bug: it fails that caller alone.
            decided.push(Effect.die(defect))
            allAppend = false
            continue
          }
          if (Either.isLeft(outcome)) {
            decided.push(Either.left(outcome.left))
            allAppend = false
            continue
          }
          if (outcome.right.events.length === 0) allAppend = false
          working = outcome.right.state
          decided.push(Either.right(outcome.right))
          for (const event of outcome.right.events) {
            appended.push({ ...encodeEvent(event), metadata: { ...pending.metadata, eventId: randomUUID() } })
          }
        }
        if (unverified && !allAppend) return attempt(conflicts, false)
        const settle = Effect.sync(() => {
          settled()
          remember(sessionId, working)
          batch.forEach((pending, index) => {
            const outcome = decided[index]
            if (outcome !== undefined) Deferred.unsafeDone(pending.outcome, outcome)
          })
        })
        if (appended.length === 0) return settle
        // Not interrupted midway: whether an append that was cut off committed would be unknown, to the callers
        // and to the cache. (On PostgreSQL, interrupting a statement also costs a cancel request elsewhere.)
        const appendOrConflict = Effect.uninterruptible(
          hotSpanWith(
            events.append(plannerStreamId, sessionId, appended, state.version).pipe(
              Effect.zipRight(settle),
              Effect.as<SequenceConflict | undefined>(undefined),
              Effect.catchTag("SequenceConflict", (error) => Effect.succeed(error))
            ),
            "PlannerService.append",
            () => ({ sessionId, commands: batch.length, events: appended.length })
          )
        )
        return Effect.flatMap(appendOrConflict, (conflict) => {
          if (conflict === undefined) return Effect.void
          // The cache was behind: catch up and decide again at once. Somebody else writes to this session, so catch
          // up first for a while.
          if (unverified) {
            contended.set(sessionId, catchUpFirst)
            return attempt(conflicts, false)
          }
          if (conflicts + 1 > maxConflictRetries) return Effect.fail(conflict)
          return Effect.zipRight(Effect.sleep(conflictDelay(conflicts + 1)), attempt(conflicts + 1, false))
        })
      }
      return Effect.suspend(() => {
        const left = contended.get(sessionId) ?? 0
        if (left > 0) contended.set(sessionId, left - 1)
        else contended.delete(sessionId)
        return attempt(0, left === 0)
      })
    }

    /** Takes every command waiting for the session and handles them; with the session's turn held. */
    const drain = (sessionId: string, queue: SessionQueue, own: Pending): Effect.Effect<void, HandleError> =>
      Effect.suspend(() => {
        const batch = queue.waiting.splice(0)
        if (batch.length === 0) return Effect.void
        let done = false
        return decideAndAppend(sessionId, batch, () => {
          done = true
        }).pipe(
          // A store failure (or a defect) fails every command of the batch: none of them was recorded.
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.failCause(cause)
              : Effect.sync(() => {
                  done = true
                  for (const pending of batch) Deferred.unsafeDone(pending.outcome, Effect.failCause(cause))
                })
          ),
          // Nothing is left for this session's turn to do: forget the queue. Only the holder of the turn does this,
          // and only with nothing waiting, so a queue made afresh by the next command never overlaps an append.
          Effect.zipRight(
            Effect.sync(() => {
              if (queue.waiting.length === 0 && queues.get(sessionId) === queue) queues.delete(sessionId)
            })
          ),
          // Interrupted before anything was recorded: the others go back to the queue for whoever takes the turn
          // next; this caller's own command is dropped with it.
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              if (!done) queue.waiting.unshift(...batch.filter((pending) => pending !== own))
            })
          )
        )
      })

    const execute: PlannerServiceShape["execute"] = (sessionId, command, tracing = {}) =>
      hotSpanWith(
        Effect.suspend(() => {
          const metadata: PlannerAppendMetadata = {
            correlationId: tracing.correlationId ?? sessionId,
            causationId: tracing.causationId ?? randomUUID()
          }
          let queue = queues.get(sessionId)
          if (queue === undefined) {
            queue = { turn: Effect.unsafeMakeSemaphore(1), waiting: [] }
            queues.set(sessionId, queue)
          }
          const pending: Pending = { command, metadata, outcome: Deferred.unsafeMake(FiberId.none) }
          const waiting = queue.waiting
          waiting.push(pending)
          return queue.turn
            .withPermits(1)(drain(sessionId, queue, pending))
            .pipe(
              Effect.onInterrupt(() =>
                Effect.sync(() => {
                  const index = waiting.indexOf(pending)
                  if (index >= 0) waiting.splice(index, 1)
                })
              ),
              // Handled by now: by this caller's turn, or by an earlier one that took it along.
              Effect.zipRight(Deferred.await(pending.outcome))
            )
        }),
        "PlannerService.execute",
        () => ({ sessionId, command: commandName(command, cache.get(sessionId) ?? Planner.initialState) })
      )

    return {
      execute,
      state: (sessionId) =>
        current(sessionId).pipe(Effect.withSpan("PlannerService.state", { attributes: { sessionId } })),
      stateAt: (sessionId, sequence) =>
        store.load(sessionId, { toSequence: sequence }).pipe(
          Effect.map((records) => Planner.fold(records.map((record) => record.event))),
          Effect.withSpan("PlannerService.stateAt", { attributes: { sessionId, sequence } })
        )
    } satisfies PlannerServiceShape
  })

export const layer = (
  options: PlannerServiceOptions = {}
): Layer.Layer<PlannerService, never, PlannerStore | EventStore> => Layer.effect(PlannerService, make(options))
