/**
 * The event store: an append-only log of encoded events, grouped into streams and aggregates, with a global order.
 *
 * This is the contract every layer (in-memory, SQLite, PostgreSQL) meets. It knows nothing of the planner: events
 * arrive already encoded (`type`, `version`, JSON `data`). `PlannerStore` puts the planner's schemas on top.
 *
 * Guarantees, on every layer:
 * - `sequence` is per aggregate, contiguous from 1; an append names the sequence it expects to follow, and fails
 *   with `SequenceConflict` when another writer got there first. All events of one append commit together or not
 *   at all.
 * - `position` is global and unique, and subscribers get events in position order: a subscriber that has seen
 *   position p will never later be handed an event below p, and never moves past a position that may still commit
 *   (no gaps, no duplicates, no skipped late commits). On SQLite and in memory positions also commit in order; on
 *   PostgreSQL appends to different aggregates commit in parallel, so a plain `read`/`load` (a snapshot) may show a
 *   position while a lower one is still in flight, and subscriptions and `headPosition` stop below it until it is
 *   final.
 * - Read bounds are inclusive: `toSequence: n` is the state "up to and including event n" (time travel).
 * - Text containing U+0000 is refused with `EventStoreError` on every layer (PostgreSQL cannot store it).
 * - The SQL layers also provide their `SqlClient`; a `consume` handler that writes through it commits with the
 *   checkpoint.
 */
import type { Option, Stream } from "effect"
import { Context, Effect, Either, Schema } from "effect"

// --- Data -----------------------------------------------------------------------------------------------------------

/** Tracing data carried by every event. `extra` is free-form JSON. */
export const EventMetadata = Schema.Struct({
  eventId: Schema.String,
  correlationId: Schema.optionalWith(Schema.String, { exact: true }),
  causationId: Schema.optionalWith(Schema.String, { exact: true }),
  extra: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { exact: true })
}).annotations({ identifier: "EventMetadata" })
export type EventMetadata = typeof EventMetadata.Type

/** An event to append. `data` must be JSON-serialisable. */
export interface NewEvent {
  readonly type: string
  readonly version: number
  readonly data: unknown
  readonly metadata: EventMetadata
}

/** An event as stored. */
export interface StoredEvent {
  /** Global position, unique across the whole store; within an aggregate it increases with `sequence`. */
  readonly position: number
  readonly streamId: string
  readonly aggregateId: string
  /** Position inside the aggregate: 1, 2, 3, ... without gaps. */
  readonly sequence: number
  readonly type: string
  readonly version: number
  readonly data: unknown
  readonly metadata: EventMetadata
  /** Epoch milliseconds when the event was stored. */
  readonly createdAt: number
}

/**
 * What an append expects the aggregate's last sequence to be: an exact number (0 means "no events yet"),
 * `"no-stream"` (the same as 0), or `"any"` (no check: use only for events that commute).
 */
export type ExpectedSequence = number | "no-stream" | "any"

export interface AppendResult {
  /** The aggregate's sequence after the append: the sequence of the last appended event. */
  readonly lastSequence: number
  /** The global positions given to the appended events, in order. */
  readonly positions: ReadonlyArray<number>
}

export interface LoadQuery {
  readonly streamId: string
  readonly aggregateId?: string
  /** Only these event types. */
  readonly eventTypes?: ReadonlyArray<string>
  /** Inclusive lower bound on `sequence` (per-aggregate queries). */
  readonly fromSequence?: number
  /** Inclusive upper bound on `sequence`: "up to and including n". */
  readonly toSequence?: number
  /** Events strictly after this global position. */
  readonly afterPosition?: number
}

export interface SubscribeQuery {
  /** Omitted: every stream. */
  readonly streamId?: string
  readonly aggregateId?: string
  readonly eventTypes?: ReadonlyArray<string>
  /** Deliver events strictly after this global position; omitted or 0: from the very start. */
  readonly afterPosition?: number
}

/** An aggregate known to the store, for listings. */
export interface AggregateInfo {
  readonly streamId: string
  readonly aggregateId: string
  readonly lastSequence: number
  readonly firstCreatedAt: number
  readonly lastCreatedAt: number
  /**
   * The position of the aggregate's first event: orders aggregates begun in the same millisecond as the log has them.
   * Optional, so that a store of one's own that does not give it still fits (its ties are then broken by id).
   */
  readonly firstPosition?: number
}

/** A slice of a listing: skip `offset` entries, then at most `limit`. */
export interface AggregatePage {
  readonly limit: number
  readonly offset: number
}

// --- Errors ---------------------------------------------------------------------------------------------------------

/** Another writer appended to the aggregate first. Reload, decide again, retry. */
export class SequenceConflict extends Schema.TaggedError<SequenceConflict>()("SequenceConflict", {
  streamId: Schema.String,
  aggregateId: Schema.String,
  expected: Schema.Union(Schema.Number, Schema.Literal("no-stream", "any")),
  /** The last sequence the store saw (when `busy`, as of just before the other writer's append commits). */
  actual: Schema.Number,
  /** Refused without checking: another writer was appending to the aggregate (the append's `whenBusy: "refuse"`). */
  busy: Schema.optional(Schema.Boolean)
}) {
  override get message() {
    return this.busy === true
      ? `Another writer is appending to aggregate ${this.aggregateId} in ${this.streamId} right now; reload and retry.`
      : `Aggregate ${this.aggregateId} in ${this.streamId} is at sequence ${this.actual}, not ${this.expected}: another writer appended first; reload and retry.`
  }
}

export interface AppendOptions {
  /**
   * PostgreSQL, an append at an expected sequence: what to do when another append to the same aggregate holds its lock
   * at this moment. `wait` (the default): wait for it, then check. `refuse`: give up at once with a `busy`
   * `SequenceConflict`, having written nothing. The other append will most likely move the sequence past the expected
   * one, so a writer that can decide again on the caught-up state (the planner's) loses less by catching up than by
   * waiting for the lock (four round trips) only to be refused. Other stores have no such lock and ignore it.
   */
  readonly whenBusy?: "wait" | "refuse"
}

/** The store could not be reached or refused an operation. */
export class EventStoreError extends Schema.TaggedError<EventStoreError>()("EventStoreError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `The event store failed to ${this.operation}: ${this.reason}`
  }
}

/** A stored row that cannot be read back (malformed JSON or metadata). Names its position; nothing is skipped. */
export class CorruptEvent extends Schema.TaggedError<CorruptEvent>()("CorruptEvent", {
  position: Schema.Number,
  streamId: Schema.String,
  aggregateId: Schema.String,
  sequence: Schema.Number,
  type: Schema.String,
  reason: Schema.String,
  /**
   * Set when this row reads well but the session's log is broken before it (rows missing, or out of order): the
   * sequence the read expected instead. Unset when this row itself cannot be read.
   */
  expectedSequence: Schema.optional(Schema.Number)
}) {
  override get message() {
    return `The stored event at position ${this.position} (${this.type}, ${this.aggregateId}#${this.sequence}) cannot be read: ${this.reason}. Restore it from a backup or fork the session before it.`
  }
}

export type ReadError = EventStoreError | CorruptEvent

/**
 * For passes over the whole store (doctor, memory rebuild, prune): a session whose log holds an event that cannot be
 * read comes back as `Left` with that event, to be reported and left alone, while the pass goes on with the others.
 * Every other failure (the store cannot be reached) still fails.
 */
export const unlessUnreadable = <A, E, R>(
  effect: Effect.Effect<A, E | CorruptEvent, R>
): Effect.Effect<Either.Either<A, CorruptEvent>, Exclude<E, CorruptEvent>, R> =>
  Effect.catchIf(
    Effect.map(effect, Either.right),
    (error): error is CorruptEvent => error instanceof CorruptEvent,
    (corrupt) => Effect.succeed(Either.left(corrupt))
  ) as Effect.Effect<Either.Either<A, CorruptEvent>, Exclude<E, CorruptEvent>, R>

/** The sequence before the first one of a session that `corrupt` says cannot be read: its log reads well up to there. */
export const readableUpTo = (corrupt: CorruptEvent): number =>
  Math.min(corrupt.sequence, corrupt.expectedSequence ?? corrupt.sequence) - 1

// --- The service ----------------------------------------------------------------------------------------------------

/**
 * What commits together with an append (see `EventStoreService.append`), given where the events went. It may also
 * carry the same work as one SQL statement (`statement`), which a PostgreSQL store sends inside its single-statement
 * append, or as statements run at once (`direct`), which a SQLite store runs inside its append's transaction; any
 * other store, and those when the append cannot go that way, runs the effect.
 */
export type AppendAlongside = ((result: AppendResult) => Effect.Effect<void, EventStoreError>) & {
  readonly statement?: AlongsideStatement
  readonly direct?: AlongsideDirect
}

/**
 * SQLite: an alongside's work as statements run at once on the append's own connection. The store opens the
 * transaction (BEGIN IMMEDIATE), inserts the events, calls this with a `run` for its statements, and commits, all
 * without leaving the event loop: on the one-process hot path (an outcome that dispatches the next task) the
 * transaction's fibers, semaphore turn and scope cost more than SQLite's own work. Called only when the append wrote
 * its events. What it throws rolls the append back and fails it with an `EventStoreError` saying why. It returns
 * what to do once the transaction has committed (a wake-up for waiters), if anything.
 */
export type AlongsideDirect = (
  run: (text: string, params: ReadonlyArray<unknown>) => ReadonlyArray<unknown>
) => Effect.Effect<void> | undefined

/**
 * PostgreSQL: an alongside's work as data-modifying statements (DELETE, INSERT or UPDATE), sent as CTEs of the
 * append's own statement, so that the append and what commits with it cost one round trip instead of five (BEGIN,
 * the lock, the insert, the statement, COMMIT). `text(first)` is the CTEs, `name AS (...)` separated by commas, the
 * last named `alongside`; it numbers its parameters from `$first`. They must change nothing unless the append wrote
 * its events: the append's rows are the CTE `inserted`, and each statement tests `EXISTS (SELECT 1 FROM inserted)`.
 * Statements of one `shape` have one text (it names the prepared statement).
 */
export interface AlongsideStatement {
  readonly shape: string
  readonly text: (first: number) => string
  readonly params: ReadonlyArray<unknown>
  /**
   * For an `alongside` with a RETURNING list: called with its rows (as JSON values) once the append has committed.
   * Not called when the append went the transaction way, where the alongside's effect ran instead.
   */
  readonly returned?: (rows: ReadonlyArray<unknown>) => void
}

export interface EventStoreService {
  /**
   * Appends events to one aggregate atomically, after checking `expected`. With `alongside`, that effect commits
   * together with the events: on SQL stores it runs after the insert in the same transaction (on the same
   * `SqlClient`), and its failure rolls the append back; in memory it runs right after the events are written, with
   * nothing in between that can fail (a failure of its own is a defect). The planner's writer enqueues the jobs of
   * the tasks an append dispatches this way, so a dispatched task never lacks its job, nor a job its event.
   */
  readonly append: (
    streamId: string,
    aggregateId: string,
    events: ReadonlyArray<NewEvent>,
    expected: ExpectedSequence,
    alongside?: AppendAlongside,
    options?: AppendOptions
  ) => Effect.Effect<AppendResult, SequenceConflict | EventStoreError>

  /** Reads matching events in order (by sequence for one aggregate, by position otherwise), paging internally. */
  readonly read: (query: LoadQuery) => Stream.Stream<StoredEvent, ReadError>

  /** `read`, collected. */
  readonly load: (query: LoadQuery) => Effect.Effect<ReadonlyArray<StoredEvent>, ReadError>

  /** The aggregate's last sequence, 0 when it has no events. */
  readonly lastSequence: (streamId: string, aggregateId: string) => Effect.Effect<number, EventStoreError>

  /**
   * A global position at or below which nothing more will ever commit (0 for an empty store): the highest committed
   * one, except on PostgreSQL while a lower position is still in flight (then the one below it).
   */
  readonly headPosition: Effect.Effect<number, EventStoreError>

  /** Aggregates of a stream, most recently written first; with `page`, only that slice (paged in the store). */
  readonly aggregates: (
    streamId: string,
    page?: AggregatePage
  ) => Effect.Effect<ReadonlyArray<AggregateInfo>, EventStoreError>

  /** How many aggregates a stream has: the total beside a page of `aggregates`. */
  readonly aggregateCount: (streamId: string) => Effect.Effect<number, EventStoreError>

  /**
   * History, then live events, in global order, without gaps or duplicates. Never ends on its own; a failure to
   * reach the store fails the stream after retries rather than stopping it silently.
   */
  readonly subscribe: (query: SubscribeQuery) => Stream.Stream<StoredEvent, ReadError>

  /**
   * Retention (`planner prune`): deletes every event of one aggregate, if its last sequence is still `expected`
   * (else `SequenceConflict`), and returns how many it deleted. Inside a caller's `sql.withTransaction` it commits
   * with the caller's other writes. Every layer here has it (optional for other implementations of the port).
   */
  readonly deleteAggregate?: (
    streamId: string,
    aggregateId: string,
    expected: number
  ) => Effect.Effect<number, SequenceConflict | EventStoreError>

  /** A durable consumer's saved position (the last event it finished), if any. */
  readonly checkpoint: (consumer: string) => Effect.Effect<Option.Option<number>, EventStoreError>

  /**
   * Runs `handle` for every matching event after the consumer's checkpoint, forever, saving the checkpoint after
   * each event. On SQL layers the handler's own writes through the same `SqlClient` and the checkpoint commit in one
   * transaction, so a handler's effects happen exactly once per event.
   */
  readonly consume: <E, R>(
    consumer: string,
    query: Omit<SubscribeQuery, "afterPosition">,
    handle: (event: StoredEvent) => Effect.Effect<void, E, R>,
    options?: ConsumeOptions<E, R>
  ) => Effect.Effect<never, E | ReadError, R>
}

export interface ConsumeOptions<E, R> {
  /**
   * A stored row that cannot be read (`CorruptEvent`) goes here instead of failing the consumer, and the checkpoint
   * moves past it (with this effect's writes, on SQL layers): a projection that can do without one event (it leaves
   * that aggregate out) goes on with the others. Without it, the consumer fails at such a row and stays before it.
   */
  readonly onCorrupt?: (corrupt: CorruptEvent) => Effect.Effect<void, E, R>
}

export class EventStore extends Context.Tag("event-sourced-planner/EventStore")<EventStore, EventStoreService>() {}
