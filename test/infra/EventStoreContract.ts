/**
 * The `EventStore` contract, run unchanged against every layer (after @effect/cluster's storage tests). Each test
 * gets a fresh database from the target; building `target.layer` twice over one database gives two store instances
 * over the same data, which is how a restart is tested.
 */
import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Context,
  Deferred,
  type Duration,
  Effect,
  Either,
  Fiber,
  Layer,
  Option,
  Ref,
  Schedule,
  type Scope,
  Stream
} from "effect"
import {
  CorruptEvent,
  EventStore,
  EventStoreError,
  type EventStoreService,
  type NewEvent,
  SequenceConflict,
  type StoredEvent
} from "../../src/infra/EventStore.js"

export interface LayerOptions {
  /** Overrides the SQL layers' polling; the targets otherwise poll rarely, so live tests prove the wake-ups work. */
  readonly pollInterval?: Duration.DurationInput
}

export interface EventStoreTarget<Db, Extra = never> {
  /** A new, empty database, removed when the scope closes. */
  readonly freshDatabase: Effect.Effect<Db, unknown, Scope.Scope>
  /** A store instance over `db`. */
  readonly layer: (db: Db, options?: LayerOptions) => Layer.Layer<EventStore | Extra, unknown>
}

// --- Helpers --------------------------------------------------------------------------------------------------------

export const newEvent = (type: string, data: unknown, version = 1): NewEvent => ({
  type,
  version,
  data,
  metadata: { eventId: randomUUID() }
})

const build = <Extra>(layer: Layer.Layer<EventStore | Extra, unknown>) =>
  Effect.map(Layer.build(layer), (context) => ({ store: Context.get(context, EventStore), context }))

/** Runs `body` against a store on a fresh database. */
export const withStore = <Db, Extra, A, E>(
  target: EventStoreTarget<Db, Extra>,
  body: (
    store: EventStoreService,
    db: Db,
    context: Context.Context<EventStore | Extra>
  ) => Effect.Effect<A, E, Scope.Scope>,
  options?: LayerOptions
): Effect.Effect<A, unknown> =>
  Effect.scoped(
    Effect.gen(function* () {
      const db = yield* target.freshDatabase
      const { store, context } = yield* build(target.layer(db, options))
      return yield* body(store, db, context)
    })
  )

/**
 * Fails the test after `seconds` instead of letting a lost event hang it until vitest's timeout; `what` names the
 * wait in the failure, for a test with several.
 */
export const within =
  (seconds: number, what?: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.timeoutFail(effect, {
      duration: `${seconds} seconds`,
      onTimeout: () => new Error(`timed out after ${seconds} s${what === undefined ? "" : ` waiting for ${what}`}`)
    })

/** Waits (at most 10 s) until a consumer's saved checkpoint is `position`: it is written after the handler. */
const checkpointReaches = (store: EventStoreService, consumer: string, position: number) =>
  store
    .checkpoint(consumer)
    .pipe(
      Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (saved) => Option.contains(saved, position) }),
      within(10, `the checkpoint of ${consumer} at ${position}`)
    )

const summary = (events: ReadonlyArray<StoredEvent>) =>
  events.map((event) => `${event.aggregateId}#${event.sequence}:${event.type}`)

const positions = (events: ReadonlyArray<StoredEvent>) => events.map((event) => event.position)

const expectIncreasing = (values: ReadonlyArray<number>) => {
  for (let index = 1; index < values.length; index++) {
    expect(values[index]).toBeGreaterThan(values[index - 1] ?? Number.NEGATIVE_INFINITY)
  }
}

const collect = <A, E>(stream: Stream.Stream<A, E>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

/**
 * Collects the first `total` events of a subscription in a fiber; `caughtUp` completes once the first `history` of
 * them arrived, so that what is appended afterwards is surely delivered live.
 */
const collecting = (stream: Stream.Stream<StoredEvent, unknown>, total: number, history: number) =>
  Effect.gen(function* () {
    const caughtUp = yield* Deferred.make<void>()
    const fiber = yield* stream.pipe(
      Stream.zipWithIndex,
      Stream.tap(([, index]) => (index + 1 === history ? Deferred.succeed(caughtUp, undefined) : Effect.void)),
      Stream.map(([event]) => event),
      Stream.take(total),
      collect,
      Effect.fork
    )
    return { caughtUp: Deferred.await(caughtUp).pipe(within(10)), fiber }
  })

/** Appends `count` events of types A, B, C, A, B, ... one append each. */
const appendSeries = (store: EventStoreService, streamId: string, aggregateId: string, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, index) => index),
    (index) => store.append(streamId, aggregateId, [newEvent(["A", "B", "C"][index % 3] ?? "A", { index })], index),
    { discard: true }
  )

// --- The contract ---------------------------------------------------------------------------------------------------

export const eventStoreContract = <Db, Extra>(name: string, target: EventStoreTarget<Db, Extra>) =>
  describe(`${name}: the EventStore contract`, () => {
    describe("appending and loading", () => {
      it.live("an append is loaded back with its data, metadata, sequence, positions and time", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            expect(yield* store.headPosition).toBe(0)
            const before = Date.now()
            const first = newEvent("SessionStarted", { title: "plan", tags: ["a", "b"], nested: { n: 1.5, ok: true } })
            const withMetadata: NewEvent = {
              type: "TaskAdded",
              version: 3,
              data: [1, "two", null],
              metadata: {
                eventId: randomUUID(),
                correlationId: "corr-1",
                causationId: first.metadata.eventId,
                extra: { user: "ana", attempt: 2, labels: ["x"] }
              }
            }
            const third = newEvent("Scalar", "just a string")
            const result = yield* store.append("planner", "session-1", [first, withMetadata, third], "no-stream")
            const after = Date.now()
            expect(result.lastSequence).toBe(3)
            expect(result.positions).toHaveLength(3)
            // The events of one append are contiguous in the global order.
            const [p1 = 0] = result.positions
            expect(result.positions).toEqual([p1, p1 + 1, p1 + 2])

            const loaded = yield* store.load({ streamId: "planner", aggregateId: "session-1" })
            expect(loaded.map(({ createdAt: _, ...event }) => event)).toEqual([
              {
                position: p1,
                streamId: "planner",
                aggregateId: "session-1",
                sequence: 1,
                type: "SessionStarted",
                version: 1,
                data: first.data,
                metadata: first.metadata
              },
              {
                position: p1 + 1,
                streamId: "planner",
                aggregateId: "session-1",
                sequence: 2,
                type: "TaskAdded",
                version: 3,
                data: [1, "two", null],
                metadata: withMetadata.metadata
              },
              {
                position: p1 + 2,
                streamId: "planner",
                aggregateId: "session-1",
                sequence: 3,
                type: "Scalar",
                version: 1,
                data: "just a string",
                metadata: third.metadata
              }
            ])
            for (const event of loaded) {
              expect(event.createdAt).toBeGreaterThanOrEqual(before - 1)
              expect(event.createdAt).toBeLessThanOrEqual(after + 1)
            }
            expect(yield* store.lastSequence("planner", "session-1")).toBe(3)
            expect(yield* store.lastSequence("planner", "nobody")).toBe(0)
            expect(yield* store.headPosition).toBe(p1 + 2)
          })
        )
      )

      it.live("an empty append writes nothing but still checks the expected sequence", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            expect(yield* store.append("s", "a", [], 0)).toEqual({ lastSequence: 0, positions: [] })
            yield* store.append("s", "a", [newEvent("A", {})], 0)
            expect(yield* store.append("s", "a", [], 1)).toEqual({ lastSequence: 1, positions: [] })
            const conflict = yield* Effect.flip(store.append("s", "a", [], 0))
            expect(conflict).toBeInstanceOf(SequenceConflict)
            expect(yield* store.headPosition).toBe(1)
          })
        )
      )

      it.live("expected sequences: exact numbers, no-stream and any", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* store.append("s", "agg", [newEvent("A", {}), newEvent("B", {})], "no-stream")

            const noStream = yield* Effect.flip(store.append("s", "agg", [newEvent("C", {})], "no-stream"))
            expect(noStream).toEqual(
              new SequenceConflict({ streamId: "s", aggregateId: "agg", expected: "no-stream", actual: 2 })
            )
            expect(noStream.message).toContain("reload and retry")
            const stale = yield* Effect.flip(store.append("s", "agg", [newEvent("C", {})], 1))
            expect(stale).toEqual(new SequenceConflict({ streamId: "s", aggregateId: "agg", expected: 1, actual: 2 }))
            const ahead = yield* Effect.flip(store.append("s", "agg", [newEvent("C", {})], 5))
            expect(ahead).toEqual(new SequenceConflict({ streamId: "s", aggregateId: "agg", expected: 5, actual: 2 }))
            // A conflict on one aggregate says nothing about another.
            expect((yield* store.append("s", "other", [newEvent("A", {})], 0)).lastSequence).toBe(1)

            const any = yield* store.append("s", "agg", [newEvent("C", {}), newEvent("D", {})], "any")
            expect(any.lastSequence).toBe(4)
            expect((yield* store.append("s", "fresh", [newEvent("A", {})], "any")).lastSequence).toBe(1)
            expect((yield* store.append("s", "agg", [newEvent("E", {})], 4)).lastSequence).toBe(5)
            const loaded = yield* store.load({ streamId: "s", aggregateId: "agg" })
            expect(loaded.map((event) => event.type)).toEqual(["A", "B", "C", "D", "E"])

            const invalid = yield* Effect.flip(store.append("s", "agg", [newEvent("F", {})], -1))
            expect(invalid).toBeInstanceOf(EventStoreError)
          })
        )
      )

      it.live("8 fibers racing on one sequence: exactly one wins, the other 7 get SequenceConflict", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            for (let round = 0; round < 5; round++) {
              const current = yield* store.lastSequence("race", "agg")
              expect(current).toBe(round)
              const start = yield* Deferred.make<void>()
              const fibers = yield* Effect.forEach(
                Array.from({ length: 8 }, (_, writer) => writer),
                (writer) =>
                  Deferred.await(start).pipe(
                    Effect.zipRight(store.append("race", "agg", [newEvent("Claimed", { writer, round })], current)),
                    Effect.either,
                    Effect.fork
                  )
              )
              yield* Deferred.succeed(start, undefined)
              const outcomes = yield* Fiber.joinAll(fibers)
              const winners = outcomes.filter(Either.isRight)
              const losers = outcomes.filter(Either.isLeft).map((outcome) => outcome.left)
              expect(winners).toHaveLength(1)
              expect(winners[0]?.right.lastSequence).toBe(current + 1)
              expect(losers).toHaveLength(7)
              for (const loser of losers) {
                expect(loser).toEqual(
                  new SequenceConflict({ streamId: "race", aggregateId: "agg", expected: current, actual: current + 1 })
                )
              }
            }
          })
        )
      )

      it.live("8 fibers appending with retries: every sequence is taken exactly once, without gaps", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            const writers = 8
            const perWriter = 5
            const conflicts = yield* Ref.make(0)
            const appendWithRetry = (writer: number, index: number) =>
              Effect.gen(function* () {
                for (;;) {
                  const last = yield* store.lastSequence("retry", "agg")
                  const outcome = yield* Effect.either(
                    store.append("retry", "agg", [newEvent("Step", { writer, index })], last)
                  )
                  if (Either.isRight(outcome)) return outcome.right
                  const error = outcome.left
                  if (!(error instanceof SequenceConflict)) return yield* error
                  expect(error.actual).toBeGreaterThan(last)
                  yield* Ref.update(conflicts, (n) => n + 1)
                }
              })
            yield* Effect.forEach(
              Array.from({ length: writers }, (_, writer) => writer),
              (writer) =>
                Effect.forEach(
                  Array.from({ length: perWriter }, (_, index) => index),
                  (index) => appendWithRetry(writer, index),
                  { discard: true }
                ),
              { concurrency: "unbounded", discard: true }
            )
            const loaded = yield* store.load({ streamId: "retry", aggregateId: "agg" })
            expect(loaded.map((event) => event.sequence)).toEqual(
              Array.from({ length: writers * perWriter }, (_, i) => i + 1)
            )
            const key = (data: unknown) => {
              const { writer, index } = data as { writer: number; index: number }
              return `${writer}:${index}`
            }
            const written = loaded.map((event) => key(event.data)).sort()
            const expected = Array.from({ length: writers }, (_, writer) =>
              Array.from({ length: perWriter }, (_, index) => key({ writer, index }))
            )
              .flat()
              .sort()
            expect(written).toEqual(expected)
            // Each writer's own events keep their order.
            for (let writer = 0; writer < writers; writer++) {
              const own = loaded.flatMap((event) => {
                const data = event.data as { writer: number; index: number }
                return data.writer === writer ? [data.index] : []
              })
              expect(own).toEqual([0, 1, 2, 3, 4])
            }
            expectIncreasing(positions(loaded))
          })
        )
      )

      it.live("a refused multi-event append stores nothing", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* store.append("s", "agg", [newEvent("A", {})], 0)
            const head = yield* store.headPosition
            const cyclic: Record<string, unknown> = {}
            cyclic.self = cyclic
            const unserialisable = yield* Effect.flip(
              store.append("s", "agg", [newEvent("B", { ok: 1 }), newEvent("C", cyclic), newEvent("D", {})], 1)
            )
            expect(unserialisable).toBeInstanceOf(EventStoreError)
            expect(unserialisable.message).toContain("event #2 (C)")
            const bigint = yield* Effect.flip(store.append("s", "agg", [newEvent("B", {}), newEvent("C", 1n)], 1))
            expect(bigint).toBeInstanceOf(EventStoreError)
            const conflicting = yield* Effect.flip(store.append("s", "agg", [newEvent("B", {}), newEvent("C", {})], 0))
            expect(conflicting).toBeInstanceOf(SequenceConflict)
            expect(yield* store.headPosition).toBe(head)
            expect(yield* store.lastSequence("s", "agg")).toBe(1)
            expect(summary(yield* store.load({ streamId: "s" }))).toEqual(["agg#1:A"])
          })
        )
      )
    })

    describe("reading", () => {
      it.live("time travel: fromSequence and toSequence are inclusive", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* appendSeries(store, "s", "agg", 5)
            const sequences = (from?: number, to?: number) =>
              Effect.map(
                store.load({
                  streamId: "s",
                  aggregateId: "agg",
                  ...(from === undefined ? {} : { fromSequence: from }),
                  ...(to === undefined ? {} : { toSequence: to })
                }),
                (events) => events.map((event) => event.sequence)
              )
            // "The state at sequence 3" includes event 3 (the reference loaded the events *after* n instead).
            expect(yield* sequences(undefined, 3)).toEqual([1, 2, 3])
            expect(yield* sequences(2, 4)).toEqual([2, 3, 4])
            expect(yield* sequences(3, 3)).toEqual([3])
            expect(yield* sequences(5)).toEqual([5])
            expect(yield* sequences(1, 1)).toEqual([1])
            expect(yield* sequences(undefined, 0)).toEqual([])
            expect(yield* sequences(6)).toEqual([])
            expect(yield* sequences(4, 2)).toEqual([])
            expect(yield* sequences(undefined, 99)).toEqual([1, 2, 3, 4, 5])
            expect(yield* sequences()).toEqual([1, 2, 3, 4, 5])
          })
        )
      )

      it.live("type filters, on one aggregate and across a stream", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* appendSeries(store, "s", "one", 6)
            yield* appendSeries(store, "s", "two", 3)
            const one = yield* store.load({ streamId: "s", aggregateId: "one", eventTypes: ["B"] })
            expect(summary(one)).toEqual(["one#2:B", "one#5:B"])
            const stream = yield* store.load({ streamId: "s", eventTypes: ["A", "C"] })
            expect(summary(stream)).toEqual(["one#1:A", "one#3:C", "one#4:A", "one#6:C", "two#1:A", "two#3:C"])
            expect(yield* store.load({ streamId: "s", eventTypes: [] })).toEqual([])
            expect(yield* store.load({ streamId: "s", eventTypes: ["Nope"] })).toEqual([])
            const bounded = yield* store.load({ streamId: "s", aggregateId: "one", eventTypes: ["A"], toSequence: 3 })
            expect(summary(bounded)).toEqual(["one#1:A"])
          })
        )
      )

      it.live("order: by sequence within an aggregate, by position across a stream; streams are separate", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* store.append("s", "a", [newEvent("A1", {}), newEvent("A2", {})], 0)
            yield* store.append("s", "b", [newEvent("B1", {})], 0)
            yield* store.append("elsewhere", "a", [newEvent("X1", {})], 0)
            yield* store.append("s", "a", [newEvent("A3", {})], 2)
            const stream = yield* store.load({ streamId: "s" })
            expect(summary(stream)).toEqual(["a#1:A1", "a#2:A2", "b#1:B1", "a#3:A3"])
            expectIncreasing(positions(stream))
            expect(summary(yield* store.load({ streamId: "elsewhere" }))).toEqual(["a#1:X1"])
            expect(summary(yield* store.load({ streamId: "s", aggregateId: "a" }))).toEqual([
              "a#1:A1",
              "a#2:A2",
              "a#3:A3"
            ])
            const [, second] = stream
            const after = yield* store.load({ streamId: "s", afterPosition: second?.position ?? 0 })
            expect(summary(after)).toEqual(["b#1:B1", "a#3:A3"])

            const listed = yield* store.aggregates("s")
            expect(listed.map((info) => [info.aggregateId, info.lastSequence])).toEqual([
              ["a", 3],
              ["b", 1]
            ])
            for (const info of listed) expect(info.firstCreatedAt).toBeLessThanOrEqual(info.lastCreatedAt)
            // Each aggregate's first event's position: a#1 came first, then b#1 (after a#2).
            const [a1, , b1] = stream
            expect(listed.map((info) => info.firstPosition)).toEqual([a1?.position, b1?.position])
            yield* store.append("s", "b", [newEvent("B2", {})], 1)
            expect((yield* store.aggregates("s")).map((info) => info.aggregateId)).toEqual(["b", "a"])
            expect(yield* store.aggregates("empty")).toEqual([])
          })
        )
      )

      it.live("reads page through results larger than a page, in order, and stop early when asked", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            for (let batch = 0; batch < 5; batch++) {
              const events = Array.from({ length: 500 }, (_, index) =>
                newEvent(index % 2 === 0 ? "Even" : "Odd", { n: batch * 500 + index })
              )
              yield* store.append("big", "agg", events, batch * 500)
            }
            const all = yield* store.load({ streamId: "big", aggregateId: "agg" })
            expect(all.map((event) => event.sequence)).toEqual(Array.from({ length: 2_500 }, (_, i) => i + 1))
            expect(all.map((event) => (event.data as { n: number }).n)).toEqual(
              Array.from({ length: 2_500 }, (_, i) => i)
            )
            const wide = yield* store.load({ streamId: "big" })
            expect(positions(wide)).toEqual(positions(all))
            const odd = yield* store.load({ streamId: "big", eventTypes: ["Odd"] })
            expect(odd).toHaveLength(1_250)
            expect(odd.every((event) => event.sequence % 2 === 0)).toBe(true)
            const tail = yield* store.load({
              streamId: "big",
              aggregateId: "agg",
              fromSequence: 999,
              toSequence: 2_001
            })
            expect(tail.map((event) => event.sequence)).toEqual(Array.from({ length: 1_003 }, (_, i) => i + 999))
            // From a sequence to the end (a writer catching up), over more than a page.
            const since = yield* store.load({ streamId: "big", aggregateId: "agg", fromSequence: 999 })
            expect(since.map((event) => event.sequence)).toEqual(Array.from({ length: 1_502 }, (_, i) => i + 999))
            expect(since.map((event) => (event.data as { n: number }).n)).toEqual(
              Array.from({ length: 1_502 }, (_, i) => i + 998)
            )
            expect(positions(since)).toEqual(positions(all.slice(998)))
            const firstFive = yield* collect(Stream.take(store.read({ streamId: "big" }), 5))
            expect(firstFive.map((event) => event.sequence)).toEqual([1, 2, 3, 4, 5])
          })
        )
      )
    })

    describe("payloads and ids", () => {
      it.live("a 1 MB payload round-trips", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            const chunk = "0123456789abcdefghijklmnopqrstuvwxyzÀÉÎ漢字🎉"
            const text = chunk.repeat(Math.ceil(1_048_576 / chunk.length))
            const data = { text, list: Array.from({ length: 2_000 }, (_, i) => ({ i, s: `item ${i}` })) }
            yield* store.append("s", "big", [newEvent("Big", data)], 0)
            const [loaded] = yield* store.load({ streamId: "s", aggregateId: "big" })
            expect(JSON.stringify(loaded?.data).length).toBe(JSON.stringify(data).length)
            expect(loaded?.data).toEqual(data)
          })
        )
      )

      it.live("unicode payloads, metadata and ids round-trip", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            const data = {
              emoji: "🎉 👩‍👩‍👧‍👦 🇳🇴 ❤️",
              rtl: "שלום עולם / مرحبا بالعالم",
              mixed: "abc אבג 123 ابت",
              cjk: "漢字かなカナ한국어",
              combining: "e\u0301 a\u030a",
              invisible: "zero\u200dwidth\ufeffbom\u2028line\u2029para",
              controls: "tab\tnewline\nreturn\r bell\u0007 escape\u001b",
              quotes: `"double" 'single' \`back\` \\backslash\\ `,
              escapedLookingText: "\\u0000 is six characters here, not a NUL",
              "ключ 🔑": "unicode key"
            }
            const event: NewEvent = {
              type: "Ünïcödé✓",
              version: 1,
              data,
              metadata: { eventId: randomUUID(), correlationId: "相关", extra: { note: "ملاحظة 📝" } }
            }
            yield* store.append("strömé", "séssion-🎯", [event], 0)
            const [loaded] = yield* store.load({ streamId: "strömé", aggregateId: "séssion-🎯" })
            expect(loaded?.data).toEqual(data)
            expect(loaded?.metadata).toEqual(event.metadata)
            expect(loaded?.type).toBe("Ünïcödé✓")
            const byType = yield* store.load({ streamId: "strömé", eventTypes: ["Ünïcödé✓"] })
            expect(byType).toHaveLength(1)
          })
        )
      )

      it.live("NUL (U+0000) is refused everywhere with a clear error, because PostgreSQL cannot store it", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            const inData = yield* Effect.flip(store.append("s", "agg", [newEvent("A", { text: "a\u0000b" })], 0))
            expect(inData).toBeInstanceOf(EventStoreError)
            expect(inData.message).toContain("NUL")
            const inKey = yield* Effect.flip(store.append("s", "agg", [newEvent("A", { "k\u0000": 1 })], 0))
            expect(inKey.message).toContain("NUL")
            const inMetadata = yield* Effect.flip(
              store.append(
                "s",
                "agg",
                [{ ...newEvent("A", {}), metadata: { eventId: "id", extra: { x: "\u0000" } } }],
                0
              )
            )
            expect(inMetadata.message).toContain("NUL")
            const inId = yield* Effect.flip(store.append("s", "a\u0000g", [newEvent("A", {})], 0))
            expect(inId.message).toContain("NUL")
            const inType = yield* Effect.flip(store.append("s", "agg", [newEvent("A\u0000", {})], 0))
            expect(inType.message).toContain("NUL")
            expect(yield* store.headPosition).toBe(0)
          })
        )
      )

      it.live("ids and types with quotes and SQL metacharacters are plain data", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            const streamId = "stream'; DROP TABLE events; --"
            const aggregateId = `agg "quoted" 'single' \\ % _ * ? ; -- /* */`
            const type = "Type'); DELETE FROM events WHERE ('1'='1"
            yield* store.append(streamId, aggregateId, [newEvent(type, { q: "'; --" }), newEvent("Plain", {})], 0)
            yield* store.append("normal", "agg", [newEvent("A", {})], 0)
            const loaded = yield* store.load({ streamId, aggregateId })
            expect(loaded.map((event) => [event.streamId, event.aggregateId, event.type])).toEqual([
              [streamId, aggregateId, type],
              [streamId, aggregateId, "Plain"]
            ])
            expect(yield* store.load({ streamId, eventTypes: [type] })).toHaveLength(1)
            expect(yield* store.lastSequence(streamId, aggregateId)).toBe(2)
            expect((yield* store.aggregates(streamId)).map((info) => info.aggregateId)).toEqual([aggregateId])
            // A LIKE pattern would match these; equality must not.
            expect(yield* store.load({ streamId: "stream%" })).toEqual([])
            expect(yield* store.load({ streamId, aggregateId: "agg %" })).toEqual([])
            const live = yield* collect(Stream.take(store.subscribe({ streamId, aggregateId, eventTypes: [type] }), 1))
            expect(live.map((event) => event.type)).toEqual([type])
            expect(yield* store.load({ streamId: "normal" })).toHaveLength(1)
          })
        )
      )
    })

    describe("subscriptions", () => {
      it.live("history first, then live events, in order", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* store.append("s", "a", [newEvent("H1", {}), newEvent("H2", {})], 0)
            yield* store.append("s", "b", [newEvent("H3", {})], 0)
            const caughtUp = yield* Deferred.make<void>()
            const subscriber = yield* store.subscribe({}).pipe(
              Stream.tap((event) => (event.type === "H3" ? Deferred.succeed(caughtUp, undefined) : Effect.void)),
              Stream.take(6),
              collect,
              Effect.fork
            )
            yield* Deferred.await(caughtUp).pipe(within(10))
            yield* store.append("s", "a", [newEvent("L1", {})], 2)
            yield* store.append("other", "c", [newEvent("L2", {}), newEvent("L3", {})], 0)
            const received = yield* Fiber.join(subscriber).pipe(within(10))
            expect(received.map((event) => event.type)).toEqual(["H1", "H2", "H3", "L1", "L2", "L3"])
            expectIncreasing(positions(received))
            expect(positions(received)).toEqual(
              positions(
                yield* collect(store.read({ streamId: "s" })).pipe(
                  Effect.zipWith(store.load({ streamId: "other" }), (s, other) => [...s, ...other])
                )
              )
            )
          })
        )
      )

      it.live("fan-out: three subscribers each get every event once, in order", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* store.append("s", "a", [newEvent("E", { n: 0 }), newEvent("E", { n: 1 })], 0)
            const total = 2 + 4 * 3
            const subscribers = yield* Effect.forEach([1, 2, 3], () =>
              Effect.gen(function* () {
                const caughtUp = yield* Deferred.make<void>()
                const fiber = yield* store.subscribe({ streamId: "s" }).pipe(
                  Stream.tap((event) =>
                    (event.data as { n: number }).n === 1 ? Deferred.succeed(caughtUp, undefined) : Effect.void
                  ),
                  Stream.take(total),
                  collect,
                  Effect.fork
                )
                return { caughtUp, fiber }
              })
            )
            yield* Effect.forEach(subscribers, ({ caughtUp }) => Deferred.await(caughtUp)).pipe(within(10))
            let n = 2
            for (let batch = 0; batch < 4; batch++) {
              const aggregateId = batch % 2 === 0 ? "a" : "b"
              const last = yield* store.lastSequence("s", aggregateId)
              yield* store.append(
                "s",
                aggregateId,
                [0, 1, 2].map(() => newEvent("E", { n: n++ })),
                last
              )
            }
            const stored = yield* store.load({ streamId: "s" })
            expect(stored).toHaveLength(total)
            for (const { fiber } of subscribers) {
              const received = yield* Fiber.join(fiber).pipe(within(10))
              expect(received.map((event) => (event.data as { n: number }).n)).toEqual(
                Array.from({ length: total }, (_, i) => i)
              )
              expect(received).toEqual(stored)
            }
          })
        )
      )

      it.live("resumes strictly after a given position", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* appendSeries(store, "s", "a", 5)
            const loaded = yield* store.load({ streamId: "s" })
            const third = loaded[2]?.position ?? 0
            const resumed = yield* collect(Stream.take(store.subscribe({ afterPosition: third }), 2)).pipe(within(10))
            expect(resumed.map((event) => event.sequence)).toEqual([4, 5])
            const fromStart = yield* collect(Stream.take(store.subscribe({ afterPosition: 0 }), 5)).pipe(within(10))
            expect(fromStart).toEqual(loaded)
            const last = loaded[4]?.position ?? 0
            const waiting = yield* Effect.fork(collect(Stream.take(store.subscribe({ afterPosition: last }), 1)))
            // Nothing to catch up on: give the subscriber time to find that out, so the next event arrives live.
            yield* Effect.sleep("100 millis")
            yield* store.append("s", "a", [newEvent("Next", {})], 5)
            const next = yield* Fiber.join(waiting).pipe(within(10))
            expect(next.map((event) => event.sequence)).toEqual([6])
          })
        )
      )

      it.live("filters by stream, aggregate and type, history and live", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* appendSeries(store, "s", "a", 3)
            yield* appendSeries(store, "s", "b", 3)
            yield* appendSeries(store, "t", "a", 3)
            const where = (events: ReadonlyArray<StoredEvent>) =>
              events.map((event) => `${event.streamId}/${event.aggregateId}#${event.sequence}:${event.type}`)
            const byAggregate = yield* collecting(
              store.subscribe({ streamId: "s", aggregateId: "a", eventTypes: ["A", "B"] }),
              3,
              2
            )
            const byType = yield* collecting(store.subscribe({ eventTypes: ["C"] }), 5, 3)
            const byStream = yield* collecting(store.subscribe({ streamId: "t" }), 4, 3)
            yield* Effect.all([byAggregate.caughtUp, byType.caughtUp, byStream.caughtUp])
            yield* store.append("s", "b", [newEvent("A", {}), newEvent("C", {})], 3)
            yield* store.append("s", "a", [newEvent("C", {}), newEvent("B", {})], 3)
            yield* store.append("t", "a", [newEvent("D", {})], 3)
            expect(where(yield* Fiber.join(byAggregate.fiber).pipe(within(10)))).toEqual([
              "s/a#1:A",
              "s/a#2:B",
              "s/a#5:B"
            ])
            expect(where(yield* Fiber.join(byType.fiber).pipe(within(10)))).toEqual([
              "s/a#3:C",
              "s/b#3:C",
              "t/a#3:C",
              "s/b#5:C",
              "s/a#4:C"
            ])
            expect(where(yield* Fiber.join(byStream.fiber).pipe(within(10)))).toEqual([
              "t/a#1:A",
              "t/a#2:B",
              "t/a#3:C",
              "t/a#4:D"
            ])
          })
        )
      )

      it.live("many appends while subscribed: no gaps, no duplicates", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            const total = 200
            const subscriber = yield* Effect.fork(collect(Stream.take(store.subscribe({ streamId: "s" }), total)))
            yield* Effect.forEach(
              ["a", "b", "c", "d"],
              (aggregateId) => appendSeries(store, "s", aggregateId, total / 4),
              { concurrency: "unbounded", discard: true }
            )
            const received = yield* Fiber.join(subscriber).pipe(within(20))
            expect(received).toEqual(yield* store.load({ streamId: "s" }))
            expect(new Set(positions(received)).size).toBe(total)
          })
        )
      )
    })

    describe("durable consumers", () => {
      it.live("a consumer keeps its checkpoint and continues after it when restarted", () =>
        Effect.scoped(
          Effect.gen(function* () {
            const db = yield* target.freshDatabase
            const handled = yield* Ref.make<ReadonlyArray<string>>([])
            const record = (event: StoredEvent) =>
              Ref.update(handled, (all) => [...all, `${event.aggregateId}#${event.sequence}`])

            // First run: handles what is there, then stops (the process "dies").
            const firstCheckpoint = yield* Effect.scoped(
              Effect.gen(function* () {
                const { store } = yield* build(target.layer(db))
                expect(yield* store.checkpoint("projector")).toEqual(Option.none())
                yield* store.append("s", "a", [newEvent("A", {}), newEvent("B", {})], 0)
                yield* store.append("t", "x", [newEvent("Ignored", {})], 0)
                yield* store.append("s", "b", [newEvent("C", {})], 0)
                const last = (yield* store.load({ streamId: "s" }))[2]?.position ?? -1
                const consumer = yield* Effect.fork(store.consume("projector", { streamId: "s" }, record))
                // Wait for the checkpoint itself: it is written after the handler, in its own transaction.
                yield* checkpointReaches(store, "projector", last)
                yield* Fiber.interrupt(consumer)
                // Another consumer has its own checkpoint.
                expect(yield* store.checkpoint("someone else")).toEqual(Option.none())
                return last
              })
            )
            expect(yield* Ref.get(handled)).toEqual(["a#1", "a#2", "b#1"])

            // Second run, a new store instance on the same database.
            const { store } = yield* build(target.layer(db))
            expect(yield* store.checkpoint("projector")).toEqual(Option.some(firstCheckpoint))
            yield* store.append("s", "a", [newEvent("D", {})], 2)
            const done = yield* Deferred.make<void>()
            const consumer = yield* Effect.fork(
              store.consume("projector", { streamId: "s" }, (event) =>
                record(event).pipe(
                  Effect.zipRight(event.type === "E" ? Deferred.succeed(done, undefined) : Effect.void)
                )
              )
            )
            yield* store.append("s", "b", [newEvent("E", {})], 1)
            yield* Deferred.await(done).pipe(within(10))
            yield* Fiber.interrupt(consumer)
            expect(yield* Ref.get(handled)).toEqual(["a#1", "a#2", "b#1", "a#3", "b#2"])
          })
        )
      )

      it.live("a failing handler stops the consumer with its error, and the event is handled again on restart", () =>
        withStore(target, (store) =>
          Effect.gen(function* () {
            yield* appendSeries(store, "s", "a", 3)
            const seen = yield* Ref.make<ReadonlyArray<number>>([])
            const failure = yield* Effect.flip(
              store.consume("flaky", {}, (event) =>
                Ref.update(seen, (all) => [...all, event.sequence]).pipe(
                  Effect.zipRight(event.sequence === 2 ? Effect.fail("handler failed" as const) : Effect.void)
                )
              )
            ).pipe(within(10))
            expect(failure).toBe("handler failed")
            const loaded = yield* store.load({ streamId: "s" })
            expect(yield* store.checkpoint("flaky")).toEqual(Option.some(loaded[0]?.position))
            const retried = yield* Deferred.make<void>()
            const consumer = yield* Effect.fork(
              store.consume("flaky", {}, (event) =>
                Ref.update(seen, (all) => [...all, event.sequence]).pipe(
                  Effect.zipRight(event.sequence === 3 ? Deferred.succeed(retried, undefined) : Effect.void)
                )
              )
            )
            yield* Deferred.await(retried).pipe(within(10))
            yield* Fiber.interrupt(consumer)
            expect(yield* Ref.get(seen)).toEqual([1, 2, 2, 3])
          })
        )
      )
    })
  })

// --- SQL layers -----------------------------------------------------------------------------------------------------

export type SqlTarget<Db> = EventStoreTarget<Db, SqlClient.SqlClient>

/** What only SQL layers can show: rows written behind the store's back, transactions, database failures. */
export const sqlEventStoreContract = <Db>(name: string, target: SqlTarget<Db>) =>
  describe(`${name}: the SQL EventStore contract`, () => {
    const sqlOf = (context: Context.Context<EventStore | SqlClient.SqlClient>) =>
      Context.get(context, SqlClient.SqlClient)

    it.live("a malformed stored row is a CorruptEvent naming its position, for loads and subscriptions", () =>
      withStore(target, (store, _, context) =>
        Effect.gen(function* () {
          const sql = sqlOf(context)
          const malformed = sql.onDialectOrElse({
            pg: () => [
              ["metadata without an event id", "1", `{"a": 1}`, `{"correlationId": "c"}`],
              ["metadata that is not an object", "1", `{"a": 1}`, `[1, 2]`],
              ["a version that is not an integer", "1.0", `{"a": 1}`, `{"eventId": "e"}`]
            ],
            orElse: () => [
              ["data that is not JSON", "1", `{"a": 1`, `{"eventId": "e"}`],
              ["metadata that is not JSON", "1", `{"a": 1}`, `eventId=e`],
              ["metadata without an event id", "1", `{"a": 1}`, `{"correlationId": "c"}`],
              ["a version that is not an integer", "v2", `{"a": 1}`, `{"eventId": "e"}`]
            ]
          })
          for (const [index, [label, version, data, metadata]] of malformed.entries()) {
            const aggregateId = `agg-${index}`
            yield* store.append("s", aggregateId, [newEvent("Good", { n: 1 }), newEvent("Good", { n: 2 })], 0)
            yield* sql.onDialectOrElse({
              pg: () => sql`INSERT INTO events (stream_id, event_type, aggregate_id, sequence, event_version, data, metadata)
                VALUES ('s', 'Broken', ${aggregateId}, 3, ${version}, ${data}::jsonb, ${metadata}::jsonb)`,
              orElse:
                () => sql`INSERT INTO events (stream_id, event_type, aggregate_id, sequence, event_version, data, metadata, created_at)
                VALUES ('s', 'Broken', ${aggregateId}, 3, ${version}, ${data}, ${metadata}, 0)`
            })
            const position = yield* store.headPosition
            // The store keeps appending after it: the row is there, just unreadable.
            yield* store.append("s", aggregateId, [newEvent("Good", { n: 4 })], 3)

            const error = yield* Effect.flip(store.load({ streamId: "s", aggregateId }))
            expect(error, label).toBeInstanceOf(CorruptEvent)
            expect(error, label).toMatchObject({ position, aggregateId, sequence: 3, type: "Broken", streamId: "s" })
            expect(error.message, label).toContain(`position ${position}`)
            // Time travel to before it still works.
            expect(yield* store.load({ streamId: "s", aggregateId, toSequence: 2 })).toHaveLength(2)
            // A read hands out the readable events before it, then fails: nothing skipped silently.
            const read = yield* collect(Stream.either(store.read({ streamId: "s", aggregateId })))
            expect(read.map(Either.isRight), label).toEqual([true, true, false])
            const subscribed = yield* collect(Stream.take(Stream.either(store.subscribe({ aggregateId })), 3)).pipe(
              within(10)
            )
            expect(subscribed.map(Either.isRight), label).toEqual([true, true, false])
            const last = subscribed[2]
            expect(last !== undefined && Either.isLeft(last) ? last.left : undefined, label).toMatchObject({
              _tag: "CorruptEvent",
              position
            })
          }
        })
      )
    )

    it.live(
      "a consumer stops at a row that cannot be read; given onCorrupt, it hands it over and goes on past it",
      () =>
        withStore(target, (store, _, context) =>
          Effect.gen(function* () {
            const sql = sqlOf(context)
            yield* store.append("s", "before", [newEvent("Good", { n: 1 })], 0)
            // A row whose metadata lacks its event id: unreadable on every dialect.
            yield* sql.onDialectOrElse({
              pg: () => sql`INSERT INTO events (stream_id, event_type, aggregate_id, sequence, event_version, data, metadata)
              VALUES ('s', 'Broken', 'broken', 1, '1', '{}'::jsonb, '{"correlationId": "c"}'::jsonb)`,
              orElse:
                () => sql`INSERT INTO events (stream_id, event_type, aggregate_id, sequence, event_version, data, metadata, created_at)
              VALUES ('s', 'Broken', 'broken', 1, '1', '{}', '{"correlationId": "c"}', 0)`
            })
            const broken = yield* store.headPosition
            yield* store.append("s", "after", [newEvent("Good", { n: 2 })], 0)

            const seen = yield* Ref.make<ReadonlyArray<string>>([])
            const record = (event: StoredEvent) => Ref.update(seen, (all) => [...all, event.aggregateId])
            const stopped = yield* Effect.flip(store.consume("strict", { streamId: "s" }, record)).pipe(within(10))
            expect(stopped).toMatchObject({ _tag: "CorruptEvent", position: broken })
            expect(yield* Ref.get(seen)).toEqual(["before"])
            const before = (yield* store.load({ streamId: "s", aggregateId: "before" }))[0]?.position
            expect(yield* store.checkpoint("strict")).toEqual(Option.some(before))

            const corrupt = yield* Ref.make<ReadonlyArray<number>>([])
            const reachedEnd = yield* Deferred.make<void>()
            const consumer = yield* Effect.fork(
              store.consume(
                "lenient",
                { streamId: "s" },
                (event) =>
                  Effect.zipRight(
                    record(event),
                    event.aggregateId === "after" ? Deferred.succeed(reachedEnd, undefined) : Effect.void
                  ),
                { onCorrupt: (error) => Ref.update(corrupt, (all) => [...all, error.position]) }
              )
            )
            yield* Deferred.await(reachedEnd).pipe(within(10))
            // The checkpoint goes past the unreadable row, to the last event: a restart goes on from there.
            yield* checkpointReaches(store, "lenient", yield* store.headPosition)
            yield* Fiber.interrupt(consumer)
            expect(yield* Ref.get(seen)).toEqual(["before", "before", "after"])
            expect(yield* Ref.get(corrupt)).toEqual([broken])

            // The handler's own CorruptEvent (an event it cannot decode) is its failure: it stops the consumer before
            // that event, even with onCorrupt, which is only for rows the store cannot read.
            const handed = yield* Ref.make<ReadonlyArray<number>>([])
            const refused = yield* Effect.flip(
              store.consume(
                "handler-refuses",
                { streamId: "s" },
                (event) =>
                  event.aggregateId === "after"
                    ? Effect.fail(
                        new CorruptEvent({
                          position: event.position,
                          streamId: event.streamId,
                          aggregateId: event.aggregateId,
                          sequence: event.sequence,
                          type: event.type,
                          reason: "the handler cannot decode it"
                        })
                      )
                    : Effect.void,
                { onCorrupt: (error) => Ref.update(handed, (all) => [...all, error.position]) }
              )
            ).pipe(within(10))
            expect(refused).toMatchObject({ _tag: "CorruptEvent", reason: "the handler cannot decode it" })
            expect(yield* Ref.get(handed)).toEqual([broken])
            expect(yield* store.checkpoint("handler-refuses")).toEqual(Option.some(broken))
          })
        )
    )

    it.live("an append the database rejects midway (after several INSERT statements) leaves nothing", () =>
      withStore(target, (store, _, context) =>
        Effect.gen(function* () {
          const sql = sqlOf(context)
          yield* sql.onDialectOrElse({
            pg: () =>
              sql
                .unsafe(`CREATE FUNCTION reject_event() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN RAISE EXCEPTION 'rejected by a test trigger'; END $$`)
                .pipe(
                  Effect.zipRight(
                    sql.unsafe(`CREATE TRIGGER reject_event BEFORE INSERT ON events FOR EACH ROW
                      WHEN (NEW.event_type = 'RejectedByDatabase') EXECUTE FUNCTION reject_event()`)
                  )
                ),
            orElse: () =>
              sql.unsafe(`CREATE TRIGGER reject_event BEFORE INSERT ON events
                WHEN NEW.event_type = 'RejectedByDatabase' BEGIN SELECT RAISE(ABORT, 'rejected by a test trigger'); END`)
          })
          yield* store.append("s", "agg", [newEvent("First", {})], 0)
          const head = yield* store.headPosition
          const batch = [
            ...Array.from({ length: 1_200 }, (_, n) => newEvent("Fine", { n })),
            newEvent("RejectedByDatabase", {})
          ]
          const error = yield* Effect.flip(store.append("s", "agg", batch, 1))
          expect(error).toBeInstanceOf(EventStoreError)
          expect(error.message).toContain("rejected by a test trigger")
          expect(yield* store.lastSequence("s", "agg")).toBe(1)
          expect(yield* store.headPosition).toBe(head)
          expect(summary(yield* store.load({ streamId: "s" }))).toEqual(["agg#1:First"])
          expect((yield* store.append("s", "agg", [newEvent("Second", {})], 1)).lastSequence).toBe(2)
        })
      )
    )

    it.live("a consumer's own SQL writes commit with its checkpoint, or not at all", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const db = yield* target.freshDatabase
          const setUp = Effect.scoped(
            Effect.gen(function* () {
              const { store, context } = yield* build(target.layer(db))
              yield* sqlOf(context)`CREATE TABLE projection (position INTEGER PRIMARY KEY, sequence INTEGER NOT NULL)`
              yield* appendSeries(store, "s", "a", 4)
            })
          )
          yield* setUp
          const project = (sql: SqlClient.SqlClient, failAt?: number) => (event: StoredEvent) =>
            sql`INSERT INTO projection (position, sequence) VALUES (${event.position}, ${event.sequence})`.pipe(
              Effect.zipRight(event.sequence === failAt ? Effect.fail("projection failed" as const) : Effect.void)
            )
          const projected = (sql: SqlClient.SqlClient) =>
            Effect.map(sql<{ sequence: number | string }>`SELECT sequence FROM projection ORDER BY position`, (rows) =>
              rows.map((row) => Number(row.sequence))
            )

          // The handler writes its row for event 3, then fails: that row must roll back with the checkpoint.
          const firstRun = Effect.scoped(
            Effect.gen(function* () {
              const { store, context } = yield* build(target.layer(db))
              const sql = sqlOf(context)
              const error = yield* Effect.flip(store.consume("projection", {}, project(sql, 3))).pipe(within(10))
              expect(error).toBe("projection failed")
              expect(yield* projected(sql)).toEqual([1, 2])
              const events = yield* store.load({ streamId: "s" })
              expect(yield* store.checkpoint("projection")).toEqual(Option.some(events[1]?.position))
            })
          )
          yield* firstRun

          // Restarted: continues at event 3, and each event is projected exactly once.
          const { store, context } = yield* build(target.layer(db))
          const sql = sqlOf(context)
          const consumer = yield* Effect.fork(store.consume("projection", {}, project(sql)))
          yield* projected(sql).pipe(
            Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (rows) => rows.length >= 4 }),
            within(10)
          )
          yield* Fiber.interrupt(consumer)
          expect(yield* projected(sql)).toEqual([1, 2, 3, 4])
        })
      )
    )

    it.live("a subscription retries through a database failure, and fails (never stalls) when it persists", () =>
      withStore(
        target,
        (store, _, context) =>
          Effect.gen(function* () {
            const sql = sqlOf(context)
            yield* store.append("s", "a", [newEvent("Before", {})], 0)
            const received = yield* Ref.make<ReadonlyArray<string>>([])
            const caughtUp = yield* Deferred.make<void>()
            const subscriber = yield* store.subscribe({}).pipe(
              Stream.tap((event) => Ref.update(received, (all) => [...all, event.type])),
              Stream.tap(() => Deferred.succeed(caughtUp, undefined)),
              Stream.take(2),
              Stream.runDrain,
              Effect.fork
            )
            yield* Deferred.await(caughtUp).pipe(within(10))
            // The table vanishes for a moment: the subscriber's polls fail and are retried.
            yield* sql`ALTER TABLE events RENAME TO events_away`
            yield* Effect.sleep("300 millis")
            yield* sql`ALTER TABLE events_away RENAME TO events`
            yield* store.append("s", "a", [newEvent("After", {})], 1)
            yield* Fiber.join(subscriber).pipe(within(10))
            expect(yield* Ref.get(received)).toEqual(["Before", "After"])

            // Gone for good: the subscription fails with an EventStoreError after its retries.
            yield* sql`ALTER TABLE events RENAME TO events_gone`
            const failure = yield* Effect.flip(Stream.runDrain(store.subscribe({ afterPosition: 2 }))).pipe(within(15))
            expect(failure).toBeInstanceOf(EventStoreError)
            expect(failure.message).toContain("events")
          }),
        { pollInterval: "50 millis" }
      )
    )
  })
