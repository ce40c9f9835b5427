/**
 * The command handler: one command, end to end. Load the session (from a cache kept current by catching up from the
 * store), `decide`, append the events at the sequence the decision was made on, and when another writer got there
 * first, catch up and decide again. This optimistic concurrency is what makes claims safe across workers and
 * machines: two workers deciding on the same state cannot both append.
 */
import { randomUUID } from "node:crypto"
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import type { PlannerCommand } from "../domain/Commands.js"
import type { PlannerError } from "../domain/Errors.js"
import type { PlannerEvent } from "../domain/Events.js"
import * as Planner from "../domain/Planner.js"
import { type ReadError, SequenceConflict } from "../infra/EventStore.js"
import { type PlannerAppendMetadata, PlannerStore } from "../infra/PlannerStore.js"

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

export const make = (options: PlannerServiceOptions = {}) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore
    const cacheSize = options.cacheSize ?? 1_000
    // Insertion-ordered: re-inserting on use makes the first key the least recently used.
    const cache = new Map<string, Planner.PlannerState>()
    const remember = (sessionId: string, state: Planner.PlannerState) => {
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
     * Commands on one session from this process run one at a time. Only one of several concurrent deciders can win
     * each sequence, so letting this process's own fibers race each other only produced conflicts: under a busy
     * worker (claims, reports and heartbeats for many tasks of one plan) most appends failed and were retried.
     * Writers in other processes are still handled by the expected sequence.
     */
    const sessionLocks = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
    const oneAtATime = <A, E>(sessionId: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          const entry = sessionLocks.get(sessionId) ?? { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
          entry.users += 1
          sessionLocks.set(sessionId, entry)
          return entry
        }),
        (entry) => entry.semaphore.withPermits(1)(effect),
        (entry) =>
          Effect.sync(() => {
            entry.users -= 1
            if (entry.users === 0) sessionLocks.delete(sessionId)
          })
      )

    const attemptOnce = (
      sessionId: string,
      command: PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand),
      metadata: PlannerAppendMetadata
    ): Effect.Effect<Handled, HandleError> =>
      Effect.gen(function* () {
        const state = yield* current(sessionId)
        const concrete = typeof command === "function" ? command(state) : command
        const events = yield* Planner.decide(state, concrete)
        if (events.length === 0) return { events, state }
        yield* store.append(sessionId, events, state.version, metadata)
        const next = Planner.fold(events, state)
        remember(sessionId, next)
        return { events, state: next }
      })

    // Capped: under heavy competition for one session (many workers claiming and reporting), an uncapped exponential
    // left commands sleeping for seconds, long enough for leases to run out while their holders were waiting.
    const retryConflicts = Schedule.exponential(Duration.millis(2), 2).pipe(
      Schedule.union(Schedule.spaced(Duration.millis(50))),
      Schedule.jittered,
      Schedule.intersect(Schedule.recurs(options.maxConflictRetries ?? 20))
    )

    const execute: PlannerServiceShape["execute"] = (sessionId, command, tracing = {}) => {
      const metadata: PlannerAppendMetadata = {
        correlationId: tracing.correlationId ?? sessionId,
        causationId: tracing.causationId ?? randomUUID()
      }
      return oneAtATime(sessionId, attemptOnce(sessionId, command, metadata)).pipe(
        Effect.retry({ schedule: retryConflicts, while: (error) => error instanceof SequenceConflict }),
        Effect.withSpan("PlannerService.execute", {
          attributes: { sessionId, command: typeof command === "function" ? "computed" : command._tag }
        })
      )
    }

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

export const layer = (options: PlannerServiceOptions = {}): Layer.Layer<PlannerService, never, PlannerStore> =>
  Layer.effect(PlannerService, make(options))
