/**
 * Keeps the memory index a projection of the log.
 *
 * `run` is a durable consumer of the planner stream (the store's `consume`, with its saved position under
 * `consumerName`): when a task ends its record goes into the index, when a session finishes its record and all its
 * tasks' records do; a fork's copied prefix is taken back out when `SessionForked` arrives. On the SQL stores the
 * index's writes commit with the checkpoint, so each event is projected exactly once, across restarts.
 *
 * `catchUp` runs the same consumer until it has seen every event already in the log, then stops: what a command
 * that reads the index (recall, stats, planning with memory) runs first. `rebuild` forgets the index and recomputes
 * it from every session's events with the same pure function (`Memory.recordsOf`), so a rebuild equals the live index.
 */
import { Effect, Either, Option, Ref } from "effect"
import type { PlannerEvent } from "../domain/Events.js"
import { isMemoryEvent, memoryEventTypes, recordsOf } from "../domain/Memory.js"
import { type CorruptEvent, EventStore, type ReadError, type StoredEvent, unlessUnreadable } from "./EventStore.js"
import { MemoryIndex, type MemoryIndexError } from "./MemoryIndex.js"
import { decodeRecord, plannerStreamId } from "./PlannerStore.js"
import { raceFirstScoped } from "./Racing.js"
import * as SessionSnapshots from "./SessionSnapshots.js"

/** The durable consumer's name: its saved position is the last event the index has seen. */
export const consumerName = "memory-index"

const query = { streamId: plannerStreamId, eventTypes: memoryEventTypes }

const decodeAll = (stored: ReadonlyArray<StoredEvent>): Effect.Effect<ReadonlyArray<PlannerEvent>, ReadError> =>
  Effect.suspend(() => {
    const events: Array<PlannerEvent> = []
    for (const event of stored) {
      const decoded = decodeRecord(event)
      if (Either.isLeft(decoded)) return Effect.fail(decoded.left)
      events.push(decoded.right.event)
    }
    return Effect.succeed(events)
  })

/** A session's memory events up to and including `toSequence` (all of them when omitted). */
export const sessionEvents = (sessionId: string, toSequence?: number) =>
  Effect.flatMap(EventStore, (store) =>
    Effect.flatMap(
      store.load({
        ...query,
        aggregateId: sessionId,
        ...(toSequence === undefined ? {} : { toSequence })
      }),
      decodeAll
    )
  )

/** A session's records, from its log. */
export const sessionRecords = (sessionId: string) =>
  Effect.map(sessionEvents(sessionId), (events) => recordsOf(sessionId, events))

interface Cached {
  readonly events: Array<PlannerEvent>
  lastSequence: number
}

/**
 * The handler of the consumer: the events of each session seen so far (memory types only) are kept while the
 * session runs, loaded from the log the first time a session is met (after a restart, say), and dropped when it ends.
 */
const makeHandler = Effect.gen(function* () {
  const index = yield* MemoryIndex
  const store = yield* EventStore
  const sessions = new Map<string, Cached>()
  /** Sessions with an event that cannot be read: left out (see `leaveOut`). */
  const unreadable = new Set<string>()
  /**
   * A session whose log holds an event that cannot be read is left out of the index, with a warning, rather than
   * stopping the projection of every other session at it (and with it recall, stats and planning with memory).
   */
  const leaveOut = (corrupt: CorruptEvent): Effect.Effect<void, CorruptEvent> =>
    Effect.suspend(() => {
      // An event of a type or version this build does not know was written by a newer planner: not damage. The
      // consumer stops before it, as before, so that the newer build projects it (the checkpoint is shared).
      if (/\bunknown (event type|version)\b/.test(corrupt.reason)) return Effect.fail(corrupt)
      if (unreadable.has(corrupt.aggregateId)) return Effect.void
      unreadable.add(corrupt.aggregateId)
      sessions.delete(corrupt.aggregateId)
      return Effect.logWarning(
        `memory: session ${corrupt.aggregateId} is left out of the index: ${corrupt.message} Once it is restored, run \`planner memory rebuild\`.`
      )
    })
  const handle = (stored: StoredEvent): Effect.Effect<void, ReadError | MemoryIndexError> =>
    Effect.gen(function* () {
      const sessionId = stored.aggregateId
      if (unreadable.has(sessionId)) return
      const decoded = decodeRecord(stored)
      if (Either.isLeft(decoded)) return yield* leaveOut(decoded.left)
      const event = decoded.right.event
      if (!isMemoryEvent(event)) return
      let cached = sessions.get(sessionId)
      if (cached === undefined) {
        const events = yield* unlessUnreadable(
          Effect.provideService(sessionEvents(sessionId, stored.sequence), EventStore, store)
        )
        if (Either.isLeft(events)) return yield* leaveOut(events.left)
        cached = { events: [...events.right], lastSequence: stored.sequence }
        sessions.set(sessionId, cached)
      } else if (stored.sequence > cached.lastSequence) {
        // A retried handler (a busy SQLite) sees the same event again: keep it once.
        cached.events.push(event)
        cached.lastSequence = stored.sequence
      }
      switch (event._tag) {
        case "TaskStatusUpdated": {
          if (event.status !== "Completed" && event.status !== "Failed") return
          const record = recordsOf(sessionId, cached.events).find(
            (record) => record._tag === "Task" && record.taskId === event.taskId
          )
          if (record !== undefined) yield* index.put([record])
          return
        }
        case "SessionForked":
          yield* index.removeSession(sessionId)
          yield* index.put(recordsOf(sessionId, cached.events))
          return
        case "PlanningCompleted":
          yield* index.put(recordsOf(sessionId, cached.events))
          sessions.delete(sessionId)
          return
        default:
          return
      }
    })
  return { handle, leaveOut }
})

/** The durable consumer, forever. */
export const run: Effect.Effect<never, ReadError | MemoryIndexError, EventStore | MemoryIndex> = Effect.gen(
  function* () {
    const store = yield* EventStore
    const { handle, leaveOut } = yield* makeHandler
    return yield* store.consume(consumerName, query, handle, { onCorrupt: leaveOut })
  }
)

/** The position of the last memory event after `after` (one that cannot be read counts), if there is one. */
const lastPosition = (after: number): Effect.Effect<number | undefined, ReadError, EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    let from = after
    let last: number | undefined
    for (;;) {
      const pending = yield* unlessUnreadable(store.load({ ...query, afterPosition: from }))
      if (Either.isRight(pending)) return pending.right.at(-1)?.position ?? last
      // Read on past a row that cannot be read: the consumer leaves its session out and goes on.
      last = pending.left.position
      from = pending.left.position
    }
  })

/**
 * Runs the consumer until it has projected every memory event in the log when called, then stops. Returns how many
 * events it projected.
 */
export const catchUp: Effect.Effect<number, ReadError | MemoryIndexError, EventStore | MemoryIndex> = Effect.gen(
  function* () {
    const store = yield* EventStore
    const after = Option.getOrElse(yield* store.checkpoint(consumerName), () => 0)
    const target = yield* lastPosition(after)
    if (target === undefined) return 0
    const { handle, leaveOut } = yield* makeHandler
    const seen = yield* Ref.make(0)
    const done = yield* Effect.makeLatch(false)
    // The handler sees the last event before its checkpoint commits: stop only once the checkpoint is there.
    const committed: Effect.Effect<void, ReadError> = Effect.zipRight(
      done.await,
      Effect.iterate(0, {
        while: (position) => position < target,
        body: () =>
          Effect.zipRight(
            Effect.yieldNow(),
            Effect.map(
              store.checkpoint(consumerName),
              Option.getOrElse(() => 0)
            )
          )
      })
    )
    /** One more event seen, in the consumer's transaction: at the target, the wait above may end. */
    const counted = (position: number) =>
      Effect.flatMap(
        Ref.updateAndGet(seen, (n) => n + 1),
        () => (position >= target ? done.open : Effect.void)
      )
    yield* store
      .consume(consumerName, query, (event) => Effect.zipRight(handle(event), counted(event.position)), {
        onCorrupt: (corrupt) => Effect.zipRight(leaveOut(corrupt), counted(corrupt.position))
      })
      .pipe((consuming) => raceFirstScoped(consuming, committed))
    return yield* Ref.get(seen)
  }
)

/** What `rebuild` did: the sessions and records the index holds now, and the sessions it had to leave out. */
export interface Rebuilt {
  readonly sessions: number
  readonly records: number
  /** Sessions whose log holds an event that cannot be read: left out of the index, the rest rebuilt without them. */
  readonly unreadable: ReadonlyArray<CorruptEvent>
}

/** Forgets the index and recomputes it from the log. */
export const rebuild: Effect.Effect<Rebuilt, ReadError | MemoryIndexError, EventStore | MemoryIndex> = Effect.gen(
  function* () {
    const store = yield* EventStore
    const index = yield* MemoryIndex
    const sessions = yield* store.aggregates(plannerStreamId)
    yield* index.clear
    let records = 0
    let indexed = 0
    const unreadable: Array<CorruptEvent> = []
    for (const session of sessions) {
      const found = yield* unlessUnreadable(sessionRecords(session.aggregateId))
      if (Either.isLeft(found)) {
        unreadable.push(found.left)
        continue
      }
      yield* index.put(found.right)
      records += found.right.length
      indexed += 1
    }
    // Pruned sessions (`planner prune`) have no events left: their records come from their final snapshots.
    const inLog = new Set(sessions.map((session) => session.aggregateId))
    const kept = (yield* SessionSnapshots.allRecords).filter((record) => !inLog.has(record.sessionId))
    yield* index.put(kept)
    records += kept.length
    return { sessions: indexed + new Set(kept.map((record) => record.sessionId)).size, records, unreadable }
  }
)
