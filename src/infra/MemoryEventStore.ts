/**
 * The in-memory `EventStore`, for tests and embedding. It keeps the SQL layers' semantics exactly: payloads are
 * stored as JSON text (so what reads back is what a database would give), conflicts are checked per append, and
 * subscribers are woken as soon as an append lands.
 *
 * The storage is a separate value so that two store instances can share it, as two processes share a database file:
 * that is how a "restarted" consumer is tested here.
 */
import { Clock, Effect, Either, Layer, Option, Stream } from "effect"
import {
  type AggregateInfo,
  type AggregatePage,
  type AppendAlongside,
  type AppendResult,
  EventStore,
  type EventStoreError,
  type EventStoreService,
  type ExpectedSequence,
  type LoadQuery,
  type NewEvent,
  type ReadError,
  type SequenceConflict,
  type StoredEvent,
  type SubscribeQuery
} from "./EventStore.js"
import {
  checkExpected,
  decodePage,
  defaultPageSize,
  encodeAppend,
  liveRead,
  makeWakeUp,
  matchesQuery,
  type Page,
  pagedLoad,
  pagedRead,
  type RawEvent,
  type WakeUp
} from "./internal/eventStore.js"
import { hotSpanWith } from "./Tracing.js"

/**
 * The events, aggregates and checkpoints of one in-memory store. Plain mutable structures: every change happens
 * inside one `Effect.sync`, which runs to completion without any other fiber interleaving, so an append's check and
 * write are atomic, and an append costs O(events appended), not O(history).
 */
export interface MemoryEventStoreStorage {
  /** Every event; `rows[p - 1]` has position `p`. */
  readonly rows: Array<RawEvent>
  /** stream id -> aggregate id -> the aggregate's events; `events[s - 1]` has sequence `s`. */
  readonly streams: Map<string, Map<string, Array<RawEvent>>>
  readonly checkpoints: Map<string, number>
  readonly wakeUp: WakeUp
}

export const makeStorage: Effect.Effect<MemoryEventStoreStorage> = Effect.map(makeWakeUp, (wakeUp) => ({
  rows: [],
  streams: new Map(),
  checkpoints: new Map(),
  wakeUp
}))

export interface MemoryEventStoreOptions {
  /** Rows per page of a read; defaults to 1,000. */
  readonly pageSize?: number
}

export const make = (storage: MemoryEventStoreStorage, options: MemoryEventStoreOptions = {}): EventStoreService => {
  const pageSize = options.pageSize ?? defaultPageSize
  const aggregateRows = (streamId: string, aggregateId: string): ReadonlyArray<RawEvent> =>
    storage.streams.get(streamId)?.get(aggregateId) ?? []
  const page = (rows: ReadonlyArray<RawEvent>) => decodePage(rows, Either.right, pageSize, true)

  const append = (
    streamId: string,
    aggregateId: string,
    events: ReadonlyArray<NewEvent>,
    expected: ExpectedSequence,
    alongside?: AppendAlongside
  ): Effect.Effect<AppendResult, SequenceConflict | EventStoreError> =>
    hotSpanWith(
      Effect.gen(function* () {
        const encoded = yield* encodeAppend(streamId, aggregateId, events, expected)
        const createdAt = yield* Clock.currentTimeMillis
        const result = yield* Effect.suspend((): Effect.Effect<AppendResult, SequenceConflict> => {
          let aggregates = storage.streams.get(streamId)
          const existing = aggregates?.get(aggregateId) ?? []
          const conflict = checkExpected(streamId, aggregateId, expected, existing.length)
          if (conflict !== undefined) return Effect.fail(conflict)
          if (encoded.length === 0) return Effect.succeed({ lastSequence: existing.length, positions: [] })
          if (aggregates === undefined) {
            aggregates = new Map()
            storage.streams.set(streamId, aggregates)
          }
          const rows = aggregates.get(aggregateId) ?? []
          aggregates.set(aggregateId, rows)
          const positions: Array<number> = []
          for (const event of encoded) {
            const row: RawEvent = {
              position: storage.rows.length + 1,
              streamId,
              aggregateId,
              sequence: rows.length + 1,
              type: event.type,
              version: event.version,
              data: event.data,
              metadata: event.metadata,
              createdAt
            }
            storage.rows.push(row)
            rows.push(row)
            positions.push(row.position)
          }
          return Effect.succeed({ lastSequence: rows.length, positions })
        })
        // Nothing that can fail comes between the events and what commits with them.
        if (alongside !== undefined) yield* Effect.orDie(alongside(result))
        if (result.positions.length > 0) yield* storage.wakeUp.signal
        return result
      }),
      "EventStore.append",
      () => ({ streamId, aggregateId, events: events.length })
    )

  const inBounds = (query: LoadQuery) => (row: RawEvent) =>
    (query.fromSequence === undefined || row.sequence >= query.fromSequence) &&
    (query.toSequence === undefined || row.sequence <= query.toSequence) &&
    (query.afterPosition === undefined || row.position > query.afterPosition) &&
    (query.eventTypes === undefined || query.eventTypes.includes(row.type))

  /** Up to a page of rows from `rows[from]` on that pass `keep`. */
  const scan = (rows: ReadonlyArray<RawEvent>, from: number, keep: (row: RawEvent) => boolean): Page => {
    const found: Array<RawEvent> = []
    for (let index = Math.max(0, from); index < rows.length && found.length < pageSize; index++) {
      const row = rows[index]
      if (row !== undefined && keep(row)) found.push(row)
    }
    return page(found)
  }

  /** Where a read starts, how it fetches the page after a cursor, and the cursor after an event. */
  const paging = (query: LoadQuery) => {
    const keep = inBounds(query)
    if (query.aggregateId !== undefined) {
      const aggregateId = query.aggregateId
      // Per aggregate, the cursor is the last sequence read: `rows[sequence]` is the next event.
      return {
        start: Math.max(0, (query.fromSequence ?? 1) - 1),
        fetch: (sequence: number) =>
          Effect.sync(() => scan(aggregateRows(query.streamId, aggregateId), sequence, keep)),
        cursorAfter: (last: StoredEvent) => last.sequence
      }
    }
    const keepInStream = (row: RawEvent) => row.streamId === query.streamId && keep(row)
    return {
      start: query.afterPosition ?? 0,
      fetch: (position: number) => Effect.sync(() => scan(storage.rows, position, keepInStream)),
      cursorAfter: (last: StoredEvent) => last.position
    }
  }

  const read = (query: LoadQuery): Stream.Stream<StoredEvent, ReadError> => {
    const { start, fetch, cursorAfter } = paging(query)
    return pagedRead(start, fetch, cursorAfter).pipe(Stream.withSpan("EventStore.read"))
  }

  const load = (query: LoadQuery): Effect.Effect<ReadonlyArray<StoredEvent>, ReadError> => {
    const { start, fetch, cursorAfter } = paging(query)
    return hotSpanWith(pagedLoad(start, fetch, cursorAfter), "EventStore.load", () => ({ ...query }))
  }

  const subscribe = (query: SubscribeQuery) =>
    query.eventTypes !== undefined && query.eventTypes.length === 0
      ? Stream.never
      : liveRead({
          afterPosition: query.afterPosition ?? 0,
          fetchAfter: (position) => Effect.sync(() => scan(storage.rows, position, matchesQuery(query))),
          // Every writer is in this process and signals: nothing to poll for.
          wakeUp: storage.wakeUp
        })

  const checkpoint = Effect.fn("EventStore.checkpoint")((consumer: string) =>
    Effect.sync(() => Option.fromNullable(storage.checkpoints.get(consumer)))
  )

  return {
    append,
    read,
    load,
    lastSequence: Effect.fn("EventStore.lastSequence")((streamId: string, aggregateId: string) =>
      Effect.sync(() => aggregateRows(streamId, aggregateId).length)
    ),
    headPosition: Effect.sync(() => storage.rows.length).pipe(Effect.withSpan("EventStore.headPosition")),
    // Retention (`planner prune`): the aggregate's rows leave holes in `rows`, which every scan skips, so positions
    // stay what they were.
    deleteAggregate: Effect.fn("EventStore.deleteAggregate")(
      (streamId: string, aggregateId: string, expected: number) =>
        Effect.suspend(() => {
          const rows = aggregateRows(streamId, aggregateId)
          const conflict = checkExpected(streamId, aggregateId, expected, rows.length)
          if (conflict !== undefined) return Effect.fail(conflict)
          for (const row of rows) delete storage.rows[row.position - 1]
          storage.streams.get(streamId)?.delete(aggregateId)
          return Effect.succeed(rows.length)
        })
    ),
    aggregates: Effect.fn("EventStore.aggregates")((streamId: string, page?: AggregatePage) =>
      Effect.sync(() => {
        const infos: Array<AggregateInfo & { readonly lastPosition: number }> = []
        for (const [aggregateId, rows] of storage.streams.get(streamId) ?? []) {
          const first = rows[0]
          const last = rows[rows.length - 1]
          if (first === undefined || last === undefined) continue
          infos.push({
            streamId,
            aggregateId,
            lastSequence: last.sequence,
            firstCreatedAt: first.createdAt,
            lastCreatedAt: last.createdAt,
            firstPosition: first.position,
            lastPosition: last.position
          })
        }
        const sorted = infos.sort((a, b) => b.lastPosition - a.lastPosition)
        return (page === undefined ? sorted : sorted.slice(page.offset, page.offset + page.limit)).map(
          ({ lastPosition: _, ...info }): AggregateInfo => info
        )
      })
    ),
    aggregateCount: Effect.fn("EventStore.aggregateCount")((streamId: string) =>
      Effect.sync(() => {
        let count = 0
        for (const rows of storage.streams.get(streamId)?.values() ?? []) if (rows.length > 0) count++
        return count
      })
    ),
    subscribe,
    checkpoint,
    consume: <E, R>(
      consumer: string,
      query: Omit<SubscribeQuery, "afterPosition">,
      handle: (event: StoredEvent) => Effect.Effect<void, E, R>
    ) =>
      Effect.gen(function* () {
        const after = Option.getOrElse(yield* checkpoint(consumer), () => 0)
        yield* subscribe({ ...query, afterPosition: after }).pipe(
          Stream.runForEach((event) =>
            handle(event).pipe(Effect.zipRight(Effect.sync(() => storage.checkpoints.set(consumer, event.position))))
          )
        )
        return yield* Effect.never
      }).pipe(Effect.withSpan("EventStore.consume", { attributes: { consumer } }))
  }
}

/** An in-memory store over `storage`; build it twice over the same storage for two instances of one "database". */
export const layerWith = (
  storage: MemoryEventStoreStorage,
  options?: MemoryEventStoreOptions
): Layer.Layer<EventStore> => Layer.succeed(EventStore, make(storage, options))

/** A fresh, empty in-memory store. */
export const layer = (options?: MemoryEventStoreOptions): Layer.Layer<EventStore> =>
  Layer.effect(
    EventStore,
    Effect.map(makeStorage, (storage) => make(storage, options))
  )
