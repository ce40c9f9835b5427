/**
 * A subscriber woken by an append lets the fibers already scheduled go first while they append (a worker of this
 * process recording one outcome after another), so that those appends come in one chunk, up to a bound of scheduler
 * turns; a lone append is delivered at once, without waiting for more. On the in-memory store and a SQLite file, which share `liveRead`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, type Scope, Stream } from "effect"
import { EventStore, type EventStoreService } from "../../src/infra/EventStore.js"
import { coalesceTurns } from "../../src/infra/internal/eventStore.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { newEvent } from "./EventStoreContract.js"
import { freshSqliteFile } from "./fixtures/databases.js"
import { within } from "./TaskQueueContract.js"

const stores: ReadonlyArray<readonly [string, Effect.Effect<EventStoreService, unknown, Scope.Scope>]> = [
  ["in memory", Effect.map(MemoryEventStore.makeStorage, (storage) => MemoryEventStore.make(storage))],
  [
    "SQLite file",
    Effect.flatMap(freshSqliteFile, (filename) =>
      Effect.map(Layer.build(SqliteEventStore.layer({ filename })), (context) => Context.get(context, EventStore))
    )
  ]
]

/**
 * A subscriber of aggregate "s" that has had a first event and waits for more, and the sizes of the chunks it gets
 * (the first one's among them); it stops after `count` more events.
 */
const waitingSubscriber = (store: EventStoreService, count: number) =>
  Effect.gen(function* () {
    const sizes: Array<number> = []
    const subscriber = yield* Effect.fork(
      store.subscribe({ streamId: "planner", aggregateId: "s" }).pipe(
        Stream.take(count + 1),
        Stream.runForEachChunk((chunk) => Effect.sync(() => sizes.push(chunk.length)))
      )
    )
    yield* store.append("planner", "s", [newEvent("Start", {})], 0)
    yield* Effect.gen(function* () {
      while (sizes.length === 0 || (yield* Fiber.status(subscriber))._tag !== "Suspended")
        yield* Effect.sleep("1 millis")
    }).pipe(within(10))
    return { sizes, subscriber }
  })

/** The sizes of the chunks a waiting subscriber gets for `count` appends made one per scheduler turn. */
const chunkSizes = (store: EventStoreService, count: number) =>
  Effect.gen(function* () {
    const { sizes, subscriber } = yield* waitingSubscriber(store, count)
    for (let index = 1; index <= count; index++) {
      yield* store.append("planner", "s", [newEvent("Step", { index })], index)
      yield* Effect.yieldNow()
    }
    yield* Fiber.join(subscriber).pipe(within(10))
    return sizes.slice(1)
  })

describe("a subscriber woken by appends that keep coming", () => {
  for (const [name, make] of stores) {
    it.live(`${name}: gets them in one chunk, up to a bound of scheduler turns`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const few = yield* chunkSizes(yield* make, 5)
          expect(few).toEqual([5])
          const many = yield* chunkSizes(yield* make, 4 * coalesceTurns)
          expect(many.reduce((sum, size) => sum + size, 0)).toBe(4 * coalesceTurns)
          // Delivered every `coalesceTurns` turns at the latest, not held until the appends stop.
          expect(Math.max(...many)).toBeLessThanOrEqual(coalesceTurns + 1)
          expect(many.length).toBeGreaterThanOrEqual(4)
        })
      )
    )

    it.live(`${name}: a lone append is delivered after a turn or two, without waiting for more`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const store = yield* make
          const { sizes, subscriber } = yield* waitingSubscriber(store, 1)
          yield* store.append("planner", "s", [newEvent("Step", {})], 1)
          // This fiber takes turns with the subscriber, counting them until it has the event.
          let turns = 0
          while (sizes.length < 2 && turns < 100) {
            yield* Effect.yieldNow()
            turns++
          }
          yield* Fiber.join(subscriber).pipe(within(10))
          expect(turns).toBeLessThan(coalesceTurns / 2)
        })
      )
    )
  }
})
