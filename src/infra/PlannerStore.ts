/**
 * The planner's view of the event store: sessions are aggregates of the "planner" stream, and events go in and come
 * out as `PlannerEvent`s. Each event is stored under its own type name and version (`encodeEvent`) and read back
 * through its upcasters (`decodeEvent`); one that no longer decodes is a `CorruptEvent` naming its position.
 */
import { randomUUID } from "node:crypto"
import { Channel, Chunk, Context, Effect, Either, Layer, Stream } from "effect"
import { decodeEvent, encodeEvent, type PlannerEvent, type PlannerEventType } from "../domain/Events.js"
import {
  type AggregateInfo,
  type AppendResult,
  CorruptEvent,
  type EventMetadata,
  EventStore,
  type EventStoreError,
  type ExpectedSequence,
  type ReadError,
  type SequenceConflict,
  type StoredEvent
} from "./EventStore.js"
import { hotSpanWith } from "./Tracing.js"

export const plannerStreamId = "planner"

/** A planner event as stored: decoded, with where and when it was stored. */
export interface PlannerEventRecord {
  readonly position: number
  readonly sessionId: string
  readonly sequence: number
  readonly event: PlannerEvent
  readonly metadata: EventMetadata
  readonly createdAt: number
}

/** Tracing data for an append; every event also gets its own id. */
export interface PlannerAppendMetadata {
  readonly correlationId?: string
  readonly causationId?: string
  readonly extra?: Readonly<Record<string, unknown>>
}

/** Inclusive bounds: `toSequence: n` is the session as it was after event n. */
export interface SessionRange {
  readonly fromSequence?: number
  readonly toSequence?: number
}

export interface PlannerSubscribeQuery {
  /** Omitted: every session. */
  readonly sessionId?: string
  readonly eventTypes?: ReadonlyArray<PlannerEventType>
  /** Strictly after this global position; omitted: from the start. */
  readonly afterPosition?: number
}

export interface PlannerStoreService {
  readonly append: (
    sessionId: string,
    events: ReadonlyArray<PlannerEvent>,
    expected: ExpectedSequence,
    metadata?: PlannerAppendMetadata
  ) => Effect.Effect<AppendResult, SequenceConflict | EventStoreError>
  readonly load: (
    sessionId: string,
    range?: SessionRange
  ) => Effect.Effect<ReadonlyArray<PlannerEventRecord>, ReadError>
  readonly read: (sessionId: string, range?: SessionRange) => Stream.Stream<PlannerEventRecord, ReadError>
  readonly subscribe: (query?: PlannerSubscribeQuery) => Stream.Stream<PlannerEventRecord, ReadError>
  readonly lastSequence: (sessionId: string) => Effect.Effect<number, EventStoreError>
  /**
   * When the session's event `sequence` happened (its `at`); undefined when there is no such event. One that cannot
   * be decoded still has its moment, read from the stored row (its `at` when that is a number, else when it was
   * stored): a fork or time travel to just before such an event needs no more of it. A row that is not even JSON
   * fails as it would when read.
   */
  readonly momentOf: (sessionId: string, sequence: number) => Effect.Effect<number | undefined, ReadError>
  /** Sessions, most recently written first. */
  readonly sessions: Effect.Effect<ReadonlyArray<AggregateInfo>, EventStoreError>
  /** One page of `sessions` (paged in the store, not in memory), with how many sessions there are in all. */
  readonly sessionPage: (page: SessionPageQuery) => Effect.Effect<SessionPage, EventStoreError>
}

/** Which slice of the session list: skip `offset` sessions (newest first), then at most `limit`. */
export interface SessionPageQuery {
  readonly limit: number
  readonly offset: number
}

export interface SessionPage {
  /** How many sessions the store has, whatever the page. */
  readonly total: number
  readonly sessions: ReadonlyArray<AggregateInfo>
}

export class PlannerStore extends Context.Tag("event-sourced-planner/PlannerStore")<
  PlannerStore,
  PlannerStoreService
>() {}

export const decodeRecord = (stored: StoredEvent): Either.Either<PlannerEventRecord, CorruptEvent> => {
  // Written out rather than piped: replays call this for every event.
  const decoded = decodeEvent(stored.type, stored.version, stored.data)
  if (Either.isLeft(decoded)) {
    return Either.left(
      new CorruptEvent({
        position: stored.position,
        streamId: stored.streamId,
        aggregateId: stored.aggregateId,
        sequence: stored.sequence,
        type: stored.type,
        reason: decoded.left.message
      })
    )
  }
  return Either.right({
    position: stored.position,
    sessionId: stored.aggregateId,
    sequence: stored.sequence,
    event: decoded.right,
    metadata: stored.metadata,
    createdAt: stored.createdAt
  })
}

/**
 * A session's events are numbered 1, 2, 3, ... without holes: a row missing from the middle (or the start) of a read
 * is a corrupt log, reported like an undecodable event, at the first event after the hole. (A missing last row cannot
 * be told from a shorter log here.)
 */
export const sequenceGap = (stored: StoredEvent, expected: number): CorruptEvent | undefined =>
  stored.sequence === expected
    ? undefined
    : new CorruptEvent({
        position: stored.position,
        streamId: stored.streamId,
        aggregateId: stored.aggregateId,
        sequence: stored.sequence,
        type: stored.type,
        expectedSequence: expected,
        reason:
          stored.sequence > expected
            ? `the session's log has a gap: ${
                stored.sequence - expected === 1
                  ? `event ${expected} is`
                  : `events ${expected} to ${stored.sequence - 1} are`
              } missing before it`
            : `the session's log is out of order: expected event ${expected}`
      })

/**
 * Decodes a chunk at a time, in one channel stage (a stream per chunk cost more than the decoding); an undecodable
 * event fails the stream after the events before it.
 */
const decodeStream = <E>(
  stream: Stream.Stream<StoredEvent, E>,
  /** For one session's read: the sequence its first event must have; later ones follow without gaps. */
  firstSequence?: number
): Stream.Stream<PlannerEventRecord, E | CorruptEvent> => {
  let expected = firstSequence
  const decodeChunks: Channel.Channel<
    Chunk.Chunk<PlannerEventRecord>,
    Chunk.Chunk<StoredEvent>,
    E | CorruptEvent,
    E,
    unknown,
    unknown
  > = Channel.readWithCause({
    onInput: (chunk: Chunk.Chunk<StoredEvent>) => {
      const records: Array<PlannerEventRecord> = []
      for (const stored of chunk) {
        const gap = expected === undefined ? undefined : sequenceGap(stored, expected)
        const decoded = gap === undefined ? decodeRecord(stored) : Either.left(gap)
        if (Either.isLeft(decoded)) {
          return Channel.zipRight(Channel.write(Chunk.unsafeFromArray(records)), Channel.fail(decoded.left))
        }
        if (expected !== undefined) expected++
        records.push(decoded.right)
      }
      return Channel.zipRight(
        Channel.write(Chunk.unsafeFromArray(records)),
        Channel.suspend(() => decodeChunks)
      )
    },
    onFailure: Channel.failCause,
    onDone: () => Channel.void
  })
  return Stream.pipeThroughChannel(stream, decodeChunks)
}

const sessionQuery = (sessionId: string, range: SessionRange = {}) => ({
  streamId: plannerStreamId,
  aggregateId: sessionId,
  ...(range.fromSequence === undefined ? {} : { fromSequence: range.fromSequence }),
  ...(range.toSequence === undefined ? {} : { toSequence: range.toSequence })
})

export const make: Effect.Effect<PlannerStoreService, never, EventStore> = Effect.gen(function* () {
  const store = yield* EventStore
  return {
    append: (sessionId, events, expected, metadata = {}) =>
      hotSpanWith(
        Effect.suspend(() =>
          store.append(
            plannerStreamId,
            sessionId,
            events.map((event) => {
              const { type, version, data } = encodeEvent(event)
              return { type, version, data, metadata: { ...metadata, eventId: randomUUID() } }
            }),
            expected
          )
        ),
        "PlannerStore.append",
        () => ({ sessionId, events: events.length })
      ),
    load: (sessionId, range) =>
      hotSpanWith(
        Effect.flatMap(store.load(sessionQuery(sessionId, range)), (stored) => {
          const records: Array<PlannerEventRecord> = []
          let expected = Math.max(1, range?.fromSequence ?? 1)
          for (const event of stored) {
            const gap = sequenceGap(event, expected++)
            if (gap !== undefined) return Effect.fail(gap)
            const decoded = decodeRecord(event)
            if (Either.isLeft(decoded)) return Effect.fail(decoded.left)
            records.push(decoded.right)
          }
          return Effect.succeed(records)
        }),
        "PlannerStore.load",
        () => ({ sessionId, ...range })
      ),
    read: (sessionId, range) =>
      decodeStream(store.read(sessionQuery(sessionId, range)), Math.max(1, range?.fromSequence ?? 1)),
    subscribe: (query = {}) =>
      decodeStream(
        store.subscribe({
          streamId: plannerStreamId,
          ...(query.sessionId === undefined ? {} : { aggregateId: query.sessionId }),
          ...(query.eventTypes === undefined ? {} : { eventTypes: query.eventTypes }),
          ...(query.afterPosition === undefined ? {} : { afterPosition: query.afterPosition })
        })
      ),
    lastSequence: (sessionId) => store.lastSequence(plannerStreamId, sessionId),
    momentOf: (sessionId, sequence) =>
      Effect.map(
        store.load({ streamId: plannerStreamId, aggregateId: sessionId, fromSequence: sequence, toSequence: sequence }),
        ([stored]) => {
          if (stored === undefined) return undefined
          const decoded = decodeRecord(stored)
          if (Either.isRight(decoded)) return decoded.right.event.at
          const at = (stored.data as { readonly at?: unknown } | null)?.at
          return typeof at === "number" ? at : stored.createdAt
        }
      ),
    sessions: store.aggregates(plannerStreamId),
    sessionPage: (page) =>
      Effect.map(
        Effect.all([store.aggregateCount(plannerStreamId), store.aggregates(plannerStreamId, page)]),
        ([total, sessions]): SessionPage => ({ total, sessions })
      ).pipe(Effect.withSpan("PlannerStore.sessionPage", { attributes: { ...page } }))
  }
})

export const layer: Layer.Layer<PlannerStore, never, EventStore> = Layer.effect(PlannerStore, make)
