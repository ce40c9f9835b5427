/**
 * What every `EventStore` layer shares: checking and encoding appends, decoding stored rows, the wake-up signal and
 * the paging and subscription loops. Keeping one copy is what makes the layers behave the same.
 *
 * @internal
 */
import {
  Chunk,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FiberId,
  Option,
  ParseResult,
  Schedule,
  Schema,
  Stream
} from "effect"
import {
  CorruptEvent,
  EventMetadata,
  EventStoreError,
  type ExpectedSequence,
  type NewEvent,
  type ReadError,
  SequenceConflict,
  type StoredEvent
} from "../EventStore.js"

export const defaultPageSize = 1_000

// --- Appends --------------------------------------------------------------------------------------------------------

/** An event ready for a row: JSON text for `data` and `metadata`, the version as the text the column holds. */
export interface EncodedEvent {
  readonly type: string
  readonly version: string
  readonly data: string
  readonly metadata: string
}

/**
 * PostgreSQL cannot store U+0000 in `text` or `jsonb`. Every layer refuses it the same way, so code that works on the
 * in-memory store does not break on PostgreSQL. In JSON text it appears as `\u0000` after an even run of backslashes
 * (an odd run would make it an escaped backslash followed by the letters "u0000").
 */
const jsonNul = /(?:^|[^\\])(?:\\\\)*\\u0000/
const hasNul = (text: string) => text.includes("\u0000")

const refuse = (reason: string) => new EventStoreError({ operation: "append", reason })

const checkId = (label: string, value: string): EventStoreError | undefined =>
  value.length === 0
    ? refuse(`the ${label} is empty`)
    : hasNul(value)
      ? refuse(`the ${label} contains the NUL character (U+0000), which PostgreSQL cannot store`)
      : undefined

/** `label` is only built for an error: appends of many events call this twice per event. */
const toJson = (label: () => string, value: unknown): Either.Either<string, EventStoreError> => {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (cause) {
    return Either.left(refuse(`the ${label()} is not JSON-serialisable: ${String(cause)}`))
  }
  if (text === undefined) return Either.left(refuse(`the ${label()} is not JSON-serialisable (it is ${typeof value})`))
  if (text.includes("\\u0000") && jsonNul.test(text)) {
    return Either.left(refuse(`the ${label()} contains the NUL character (U+0000), which PostgreSQL cannot store`))
  }
  return Either.right(text)
}

const encodeMetadata = Schema.encodeUnknownEither(EventMetadata)

/** An object literal (or `Object.create(null)`): not an array, a `Date` or any other class instance. */
const isPlainObject = (value: unknown): value is Readonly<Record<string, unknown>> => {
  if (typeof value !== "object" || value === null) return false
  const prototype: unknown = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * True when `metadata` is already exactly what `EventMetadata` encodes to: its own fields only, each of the right type.
 * Appends of well-formed metadata (nearly all) then skip the schema, which cost more than the rest of the encoding;
 * anything else still goes through it, so the result and the error messages are the schema's.
 */
const isEncodedMetadata = (metadata: unknown): metadata is EventMetadata => {
  if (!isPlainObject(metadata) || typeof metadata.eventId !== "string") return false
  let fields = 1
  if (Object.hasOwn(metadata, "correlationId")) {
    if (typeof metadata.correlationId !== "string") return false
    fields++
  }
  if (Object.hasOwn(metadata, "causationId")) {
    if (typeof metadata.causationId !== "string") return false
    fields++
  }
  if (Object.hasOwn(metadata, "extra")) {
    if (!isPlainObject(metadata.extra) || Object.getOwnPropertySymbols(metadata.extra).length > 0) return false
    fields++
  }
  return Object.keys(metadata).length === fields && Object.getOwnPropertySymbols(metadata).length === 0
}

/** Checks ids, versions and payloads before anything is written, so a refused append stores nothing anywhere. */
export const encodeAppend = (
  streamId: string,
  aggregateId: string,
  events: ReadonlyArray<NewEvent>,
  expected: ExpectedSequence
): Either.Either<ReadonlyArray<EncodedEvent>, EventStoreError> => {
  const badId = checkId("stream id", streamId) ?? checkId("aggregate id", aggregateId)
  if (badId !== undefined) return Either.left(badId)
  if (typeof expected === "number" && !(Number.isSafeInteger(expected) && expected >= 0)) {
    return Either.left(refuse(`the expected sequence ${expected} is not a non-negative integer`))
  }
  const encoded: Array<EncodedEvent> = []
  for (let index = 0; index < events.length; index++) {
    const event = events[index] as NewEvent
    const label = () => `event #${index + 1} (${event.type})`
    const badType =
      event.type.length > 0 && !hasNul(event.type) ? undefined : checkId(`type of event #${index + 1}`, event.type)
    if (badType !== undefined) return Either.left(badType)
    if (!(Number.isSafeInteger(event.version) && event.version >= 0)) {
      return Either.left(refuse(`the version ${event.version} of ${label()} is not a non-negative integer`))
    }
    const metadata = isEncodedMetadata(event.metadata) ? Either.right(event.metadata) : encodeMetadata(event.metadata)
    if (Either.isLeft(metadata)) {
      return Either.left(
        refuse(`the metadata of ${label()} is invalid: ${ParseResult.TreeFormatter.formatErrorSync(metadata.left)}`)
      )
    }
    const data = toJson(() => `data of ${label()}`, event.data)
    if (Either.isLeft(data)) return Either.left(data.left)
    const metadataJson = toJson(() => `metadata of ${label()}`, metadata.right)
    if (Either.isLeft(metadataJson)) return Either.left(metadataJson.left)
    encoded.push({ type: event.type, version: String(event.version), data: data.right, metadata: metadataJson.right })
  }
  return Either.right(encoded)
}

/** The conflict, if the aggregate's last sequence is not what the append expects. */
export const checkExpected = (
  streamId: string,
  aggregateId: string,
  expected: ExpectedSequence,
  actual: number
): SequenceConflict | undefined => {
  if (expected === "any") return undefined
  const wanted = expected === "no-stream" ? 0 : expected
  return wanted === actual ? undefined : new SequenceConflict({ streamId, aggregateId, expected, actual })
}

// --- Reads ----------------------------------------------------------------------------------------------------------

/** A row as the database hands it back, before its JSON and version are checked. */
export interface RawEvent {
  readonly position: number
  readonly streamId: string
  readonly aggregateId: string
  readonly sequence: number
  readonly type: string
  readonly version: string
  /** JSON text, or the already parsed value when the driver parses JSON itself (PostgreSQL `jsonb`). */
  readonly data: unknown
  readonly metadata: unknown
  readonly createdAt: number
}

const decodeMetadata = Schema.decodeUnknownEither(EventMetadata)
const integerText = /^(?:0|[1-9][0-9]*)$/

const corrupt = (raw: RawEvent, reason: string) =>
  new CorruptEvent({
    position: raw.position,
    streamId: raw.streamId,
    aggregateId: raw.aggregateId,
    sequence: raw.sequence,
    type: raw.type,
    reason
  })

const parseJson = (raw: RawEvent, column: string, value: unknown): Either.Either<unknown, CorruptEvent> => {
  if (typeof value !== "string") return Either.left(corrupt(raw, `${column} is not JSON text`))
  try {
    return Either.right(JSON.parse(value))
  } catch (cause) {
    return Either.left(corrupt(raw, `${column} is not valid JSON (${cause instanceof Error ? cause.message : cause})`))
  }
}

/** Checks a stored row; anything unreadable is a `CorruptEvent` naming its position, never a silent skip. */
export const decodeRaw = (raw: RawEvent, jsonIsText: boolean): Either.Either<StoredEvent, CorruptEvent> => {
  if (!integerText.test(raw.version) || !Number.isSafeInteger(Number(raw.version))) {
    return Either.left(corrupt(raw, `event_version ${JSON.stringify(raw.version)} is not an integer`))
  }
  const data = jsonIsText ? parseJson(raw, "data", raw.data) : Either.right(raw.data)
  if (Either.isLeft(data)) return Either.left(data.left)
  const metadataValue = jsonIsText ? parseJson(raw, "metadata", raw.metadata) : Either.right(raw.metadata)
  if (Either.isLeft(metadataValue)) return Either.left(metadataValue.left)
  // Well-formed metadata (nearly all) is taken as parsed; the schema only sees the rest, for its error message.
  const metadata = isEncodedMetadata(metadataValue.right)
    ? Either.right(metadataValue.right)
    : decodeMetadata(metadataValue.right)
  if (Either.isLeft(metadata)) {
    return Either.left(
      corrupt(raw, `metadata does not match EventMetadata: ${ParseResult.TreeFormatter.formatErrorSync(metadata.left)}`)
    )
  }
  return Either.right({
    position: raw.position,
    streamId: raw.streamId,
    aggregateId: raw.aggregateId,
    sequence: raw.sequence,
    type: raw.type,
    version: Number(raw.version),
    data: data.right,
    metadata: metadata.right,
    createdAt: raw.createdAt
  })
}

/** One page of a read: the readable prefix, the first unreadable row if any, and whether more rows may follow. */
export interface Page {
  readonly events: ReadonlyArray<StoredEvent>
  readonly corrupt: CorruptEvent | undefined
  readonly full: boolean
  /** Subscriptions: the page covers every matching event up to this position (the read's upper bound), if it has one. */
  readonly through?: number
  /** Subscriptions: committed rows wait beyond a gap that may still fill; look again soon, woken or not. */
  readonly stalled?: boolean
}

export const decodePage = <Row>(
  rows: ReadonlyArray<Row>,
  toRaw: (row: Row) => Either.Either<RawEvent, CorruptEvent>,
  pageSize: number,
  jsonIsText: boolean
): Page => {
  const events: Array<StoredEvent> = []
  for (const row of rows) {
    const decoded = Either.flatMap(toRaw(row), (raw) => decodeRaw(raw, jsonIsText))
    if (Either.isLeft(decoded)) return { events, corrupt: decoded.left, full: false }
    events.push(decoded.right)
  }
  return { events, corrupt: undefined, full: rows.length >= pageSize }
}

type PagingState<C> =
  | { readonly _tag: "Next"; readonly cursor: C }
  | { readonly _tag: "Failed"; readonly error: ReadError }

/**
 * A read, a page at a time: memory stays flat however long the result. The readable events before a corrupt row are
 * emitted, then the stream fails with it.
 */
export const pagedRead = <C>(
  start: C,
  fetch: (cursor: C) => Effect.Effect<Page, EventStoreError>,
  cursorAfter: (last: StoredEvent) => C
): Stream.Stream<StoredEvent, ReadError> =>
  Stream.paginateChunkEffect<PagingState<C>, StoredEvent, ReadError, never>({ _tag: "Next", cursor: start }, (state) =>
    state._tag === "Failed"
      ? Effect.fail(state.error)
      : Effect.map(fetch(state.cursor), (page) => {
          const chunk = Chunk.unsafeFromArray(page.events)
          const last = page.events[page.events.length - 1]
          if (page.corrupt !== undefined) return [chunk, Option.some({ _tag: "Failed", error: page.corrupt })]
          if (!page.full || last === undefined) return [chunk, Option.none()]
          return [chunk, Option.some({ _tag: "Next", cursor: cursorAfter(last) })]
        })
  )

/**
 * `pagedRead`, collected, without a stream: a load is usually one short page (a command handler catching up on the
 * few events since its cached state), and a stream's machinery cost several times what the page itself did.
 */
export const pagedLoad = <C>(
  start: C,
  fetch: (cursor: C) => Effect.Effect<Page, EventStoreError>,
  cursorAfter: (last: StoredEvent) => C
): Effect.Effect<ReadonlyArray<StoredEvent>, ReadError> =>
  Effect.suspend(() => {
    const events: Array<StoredEvent> = []
    const from = (cursor: C): Effect.Effect<ReadonlyArray<StoredEvent>, ReadError> =>
      Effect.flatMap(fetch(cursor), (page) => {
        if (page.corrupt !== undefined) return Effect.fail(page.corrupt)
        for (const event of page.events) events.push(event)
        const last = page.events[page.events.length - 1]
        return page.full && last !== undefined ? from(cursorAfter(last)) : Effect.succeed(events)
      })
    return from(start)
  })

// --- Live delivery --------------------------------------------------------------------------------------------------

/**
 * A signal that new events may be there. `next` hands out the wake-up for the *next* signal, taken before a read, so
 * a signal that arrives between the read and the wait is not lost.
 */
export interface WakeUp {
  readonly signal: Effect.Effect<void>
  readonly next: Effect.Effect<Effect.Effect<void>>
  /** How many signals there have been: a subscriber tells from it whether appends keep coming. */
  readonly signals: () => number
}

export const makeWakeUp: Effect.Effect<WakeUp> = Effect.sync(() => {
  // Every append signals, so a signal is one synchronous step (nothing interleaves inside `Effect.sync`, which is what
  // makes plain variables safe here), and it replaces the deferred only when somebody took it: with no subscriber
  // waiting, a signal costs nothing.
  let current = Deferred.unsafeMake<void>(FiberId.none)
  let taken = false
  let signals = 0
  return {
    signals: () => signals,
    signal: Effect.sync(() => {
      signals += 1
      if (!taken) return
      const previous = current
      current = Deferred.unsafeMake<void>(FiberId.none)
      taken = false
      Deferred.unsafeDone(previous, Exit.void)
    }),
    next: Effect.sync(() => {
      taken = true
      return Deferred.await(current)
    })
  }
})

/** A subscription's filter, applied to events handed over in memory. */
export const matchesQuery =
  (query: { readonly streamId?: string; readonly aggregateId?: string; readonly eventTypes?: ReadonlyArray<string> }) =>
  (event: { readonly streamId: string; readonly aggregateId: string; readonly type: string }): boolean =>
    (query.streamId === undefined || event.streamId === query.streamId) &&
    (query.aggregateId === undefined || event.aggregateId === query.aggregateId) &&
    (query.eventTypes === undefined || query.eventTypes.includes(event.type))

/**
 * The events appended last, kept so that subscribers take them from memory: a wake-up after an append usually asks
 * for exactly those, and reading them back cost a query and a decode per subscriber. This process's own appends go in
 * when they return, and on PostgreSQL other processes' appends go in as their notifications bring them. Only
 * committed appends go in (never one inside a caller's transaction, which could still roll back; a notification is
 * delivered on commit), and a subscriber is only served from here when the position right after its cursor is here
 * and for as long as the positions run on without a gap; anything else (a position lost to a rolled-back
 * transaction, an append too large for a notification, older events) is read from the database as before.
 */
export interface RecentEvents {
  /** Adds committed rows, in any order; a position already here is kept as it was. */
  readonly add: (rows: ReadonlyArray<RawEvent>) => void
  /**
   * The events right after `position` that are here, the position they run up to, and whether that is the last
   * position here (if not, the database has a row in the gap after it); undefined if the next position is not here.
   */
  readonly after: (
    position: number
  ) => { readonly events: ReadonlyArray<StoredEvent>; readonly through: number; readonly last: boolean } | undefined
  /** Whether the event at `position` is here: this process appended it (lately). */
  readonly has: (position: number) => boolean
}

export const makeRecentEvents = (capacity = 4_096): RecentEvents => {
  // Rows in the order they came, each decoded once when first asked for, and found by position: rows of other
  // processes (from notifications) and this process's own may come in any order, so runs are followed by position.
  const entries: Array<{ readonly raw: RawEvent; stored: StoredEvent | undefined }> = []
  const index = new Map<number, number>()
  let dropped = 0
  let highest = 0
  return {
    add: (rows) => {
      for (const raw of rows) {
        // The same row twice (an append's own notification after the append remembered it, or before): keep one.
        if (index.has(raw.position)) continue
        index.set(raw.position, dropped + entries.length)
        entries.push({ raw, stored: undefined })
        if (raw.position > highest) highest = raw.position
      }
      if (entries.length > 2 * capacity) {
        const cut = entries.length - capacity
        for (const entry of entries.splice(0, cut)) index.delete(entry.raw.position)
        // The map holds absolute indexes (dropped entries counted), so the rest stay valid.
        dropped += cut
      }
    },
    after: (position) => {
      const events: Array<StoredEvent> = []
      let through = position
      for (;;) {
        const at = index.get(through + 1)
        const entry = at === undefined ? undefined : entries[at - dropped]
        if (entry === undefined) break
        if (entry.stored === undefined) {
          const decoded = decodeRaw(entry.raw, true)
          // Written moments ago by a writer of this store, so it decodes; if it did not, the database read reports it.
          if (Either.isLeft(decoded)) break
          entry.stored = decoded.right
        }
        events.push(entry.stored)
        through = entry.raw.position
      }
      return through === position ? undefined : { events, through, last: through >= highest }
    },
    has: (position) => index.has(position)
  }
}

/** Failing reads are retried with backoff (about 3 s in all), then the subscription fails: it never dies silently. */
export const readRetry = Schedule.exponential("50 millis").pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(6))
)

/**
 * At most this many turns of the scheduler between an append's wake-up and a subscriber's next look (see `liveRead`;
 * the look may still read the database). The turns count appends anywhere in the store, so a subscriber of a quiet
 * session waits the full count while other sessions are busy: a few turns, bounded.
 */
export const coalesceTurns = 8

/** How soon a subscription stalled at a gap looks again (see `Page.stalled`). */
const stalledRetry = Duration.millis(10)

/**
 * History then live events after `afterPosition`, in global order. `fetchAfter` returns the next page of matching
 * events strictly after a position; when it is empty the loop waits for a wake-up. Every append of the store signals
 * one; a store with writers it cannot hear (other processes) also signals on a timer, the polling safety net, so that
 * one timer serves every subscriber instead of a timeout on every wait.
 */
export const liveRead = (options: {
  readonly afterPosition: number
  readonly fetchAfter: (position: number) => Effect.Effect<Page, EventStoreError>
  readonly wakeUp: WakeUp
  /** This process's latest appends, and the subscription's filter to apply to them. */
  readonly recent?: { readonly events: RecentEvents; readonly matches: (event: StoredEvent) => boolean }
}): Stream.Stream<StoredEvent, ReadError> => {
  const isStoreError = (error: EventStoreError) => error._tag === "EventStoreError"
  const matches = options.recent?.matches ?? (() => true)
  // The retry schedule is only set up after a failure: this runs on every wake-up of every subscriber.
  const fetch = (position: number) =>
    Effect.catchIf(options.fetchAfter(position), isStoreError, () =>
      Effect.retry(options.fetchAfter(position), { schedule: readRetry, while: isStoreError })
    )
  /**
   * The next page with something in it, and the position it runs up to. `pending` is a wake-up taken before the
   * previous read, when that read found everything there was: waiting on it first spares a read that would come
   * back empty, and a signal that arrived since that read began has already released it. A subscription's first
   * page comes from the database: what this process remembers says nothing of what other processes appended before it
   * heard from them.
   */
  const nextPage = (
    position: number,
    pending: Effect.Effect<void> | undefined,
    first: boolean
  ): Effect.Effect<readonly [Page, Effect.Effect<void>, number], EventStoreError> =>
    Effect.gen(function* () {
      let woken = pending
      let cursor = position
      for (let read = !first; ; read = true) {
        if (woken !== undefined) {
          yield* woken
          // Woken by an append: the fibers already scheduled go first, a turn at a time for as long as they append
          // (a worker of this process recording one outcome after another), up to `coalesceTurns`, so that what they
          // append comes in one chunk rather than a wake-up each. With nothing more appended, one turn.
          for (let turn = 0, seen = options.wakeUp.signals(); turn < coalesceTurns; turn++) {
            yield* Effect.yieldNow()
            const now = options.wakeUp.signals()
            if (now === seen) break
            seen = now
          }
        }
        woken = yield* options.wakeUp.next
        const recent = read ? options.recent?.events.after(cursor) : undefined
        if (recent !== undefined) {
          cursor = recent.through
          const events = recent.events.filter(matches)
          // Short of the last position here, the database has a row in the gap: read on at once (as after a full
          // page). Up to it, the rest can only come from other writers, who signal or are polled for.
          if (events.length > 0) return [{ events, corrupt: undefined, full: !recent.last }, woken, cursor] as const
          // None of them is for this subscriber: wait for more, or look on at once past a gap.
          if (!recent.last) woken = undefined
          continue
        }
        const page = yield* fetch(cursor)
        // Up to the read's bound, every matching event was in the page: a page that is not full covers it all.
        const last = page.events[page.events.length - 1]?.position ?? cursor
        const reached = page.full || page.through === undefined ? last : Math.max(last, page.through)
        // Rows beyond a gap that may still fill: nothing may signal when it does (a rolled-back append never
        // notifies), so look again soon.
        if (page.stalled === true) woken = Effect.race(woken, Effect.sleep(stalledRetry))
        if (page.events.length > 0 || page.corrupt !== undefined) return [page, woken, reached] as const
        cursor = reached
      }
    })
  type LiveState =
    | {
        readonly _tag: "Next"
        readonly cursor: number
        readonly pending: Effect.Effect<void> | undefined
        readonly first: boolean
      }
    | { readonly _tag: "Failed"; readonly error: ReadError }
  return Stream.paginateChunkEffect<LiveState, StoredEvent, ReadError, never>(
    { _tag: "Next", cursor: options.afterPosition, pending: undefined, first: true },
    (state) =>
      state._tag === "Failed"
        ? Effect.fail(state.error)
        : Effect.map(nextPage(state.cursor, state.pending, state.first), ([page, woken, cursor]) => {
            const chunk = Chunk.unsafeFromArray(page.events)
            const next: LiveState =
              page.corrupt !== undefined
                ? { _tag: "Failed", error: page.corrupt }
                : // A full page may have more behind it: read again at once.
                  { _tag: "Next", cursor, pending: page.full ? undefined : woken, first: false }
            return [chunk, Option.some(next)]
          })
  )
}
