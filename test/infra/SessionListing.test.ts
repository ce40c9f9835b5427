/**
 * Reading sessions through `PlannerStore`, on every backend: the session list comes in pages with a total (paged by
 * the store, not cut in memory), and a session whose log has a hole (a row deleted from its middle or start) is a
 * corrupt log for every reader, reported like an undecodable event.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Either, Layer, Redacted, Stream } from "effect"
import { defaultConfig } from "../../src/domain/Config.js"
import { type PlannerEvent, TaskDispatched, TasksPlanned } from "../../src/domain/Events.js"
import { CorruptEvent, EventStore } from "../../src/infra/EventStore.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { PlannerStore, layer as plannerStoreLayer } from "../../src/infra/PlannerStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { freshPgDatabase, freshSqliteFile } from "./fixtures/databases.js"

const planned = new TasksPlanned({
  request: "Write the spec. Then build it.",
  attachments: [],
  tasks: [
    { id: 1, description: "Write the spec", kind: "Processing", dependsOn: [], attachments: [] },
    { id: 2, description: "Build it", kind: "CodeImplementation", dependsOn: [1], attachments: [] }
  ],
  config: defaultConfig,
  source: { _tag: "Parser" },
  at: 1_000
})
const dispatched = (attempt: number) =>
  new TaskDispatched({
    taskId: 1,
    attempt,
    kind: "Processing",
    description: "Write the spec",
    clarifications: [],
    at: 1_000 + attempt
  })

type Backend = Layer.Layer<EventStore | SqlClient.SqlClient, unknown> | Layer.Layer<EventStore, unknown>

const backends: Record<string, { readonly layer: Backend; readonly sql: boolean }> = {
  MemoryEventStore: {
    layer: Layer.effect(
      EventStore,
      Effect.map(MemoryEventStore.makeStorage, (storage) => MemoryEventStore.make(storage))
    ),
    sql: false
  },
  SqliteEventStore: {
    layer: Layer.unwrapScoped(
      Effect.map(freshSqliteFile, (filename) => SqliteEventStore.layer({ filename, pollInterval: "1 minute" }))
    ),
    sql: true
  },
  PgEventStore: {
    layer: Layer.unwrapScoped(
      Effect.map(freshPgDatabase, (url) => PgEventStore.layer({ url: Redacted.make(url), pollInterval: "1 minute" }))
    ),
    sql: true
  }
}

const withStores = <A, E>(
  backend: Backend,
  body: (planner: Context.Tag.Service<PlannerStore>, context: Context.Context<unknown>) => Effect.Effect<A, E>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(Layer.provideMerge(plannerStoreLayer, backend as Layer.Layer<EventStore>))
      return yield* body(Context.get(context, PlannerStore), context as Context.Context<unknown>)
    })
  )

const sessionIds = (count: number) => Array.from({ length: count }, (_, index) => `session-${index + 1}`)

for (const [name, backend] of Object.entries(backends)) {
  describe(`session listing on ${name}`, () => {
    it.live("pages sessions newest first, with the total whatever the page", () =>
      withStores(backend.layer, (store) =>
        Effect.gen(function* () {
          const ids = sessionIds(7)
          for (const id of ids) yield* store.append(id, [planned], "no-stream")
          // Writing to the oldest session makes it the newest.
          yield* store.append("session-1", [dispatched(1)], 1)
          const newestFirst = [
            "session-1",
            "session-7",
            "session-6",
            "session-5",
            "session-4",
            "session-3",
            "session-2"
          ]

          const first = yield* store.sessionPage({ limit: 3, offset: 0 })
          expect(first.total).toBe(7)
          expect(first.sessions.map((info) => info.aggregateId)).toEqual(newestFirst.slice(0, 3))
          expect(first.sessions[0]?.lastSequence).toBe(2)

          const second = yield* store.sessionPage({ limit: 3, offset: 3 })
          expect(second.total).toBe(7)
          expect(second.sessions.map((info) => info.aggregateId)).toEqual(newestFirst.slice(3, 6))

          const last = yield* store.sessionPage({ limit: 3, offset: 6 })
          expect(last.sessions.map((info) => info.aggregateId)).toEqual(["session-2"])

          const past = yield* store.sessionPage({ limit: 3, offset: 50 })
          expect(past).toEqual({ total: 7, sessions: [] })

          // The pages together are the whole list, in the same order.
          expect([...first.sessions, ...second.sessions, ...last.sessions].map((info) => info.aggregateId)).toEqual(
            (yield* store.sessions).map((info) => info.aggregateId)
          )
        })
      )
    )

    it.live("an empty store has no sessions and a total of 0", () =>
      withStores(backend.layer, (store) =>
        Effect.gen(function* () {
          expect(yield* store.sessionPage({ limit: 10, offset: 0 })).toEqual({ total: 0, sessions: [] })
        })
      )
    )

    if (backend.sql) {
      it.live("a row deleted from the middle or the start of a session's log is a corrupt log for every reader", () =>
        withStores(backend.layer, (store, context) =>
          Effect.gen(function* () {
            const sql = Context.get(context as Context.Context<SqlClient.SqlClient>, SqlClient.SqlClient)
            const events: ReadonlyArray<PlannerEvent> = [planned, dispatched(1), dispatched(2), dispatched(3)]
            yield* store.append("middle", events, "no-stream")
            yield* store.append("start", events, "no-stream")
            yield* store.append("whole", events, "no-stream")
            yield* sql`DELETE FROM events WHERE aggregate_id = 'middle' AND sequence = 2`
            yield* sql`DELETE FROM events WHERE aggregate_id = 'start' AND sequence = 1`

            const loaded = yield* Effect.either(store.load("middle"))
            expect(Either.isLeft(loaded)).toBe(true)
            const error = Either.isLeft(loaded) && loaded.left instanceof CorruptEvent ? loaded.left : undefined
            expect(error).toBeInstanceOf(CorruptEvent)
            expect(error?.sequence).toBe(3)
            expect(error?.message).toContain("event 2 is missing")

            // The streamed read, a read from a point before the hole, and a read of the start all see it.
            const streamed = yield* Effect.either(Stream.runCollect(store.read("middle")))
            expect(Either.isLeft(streamed) && streamed.left._tag).toBe("CorruptEvent")
            const fromOne = yield* Effect.either(store.load("middle", { fromSequence: 1, toSequence: 3 }))
            expect(Either.isLeft(fromOne)).toBe(true)
            const start = yield* Effect.either(store.load("start"))
            expect(Either.isLeft(start) && start.left.message).toContain("event 1 is missing")
            const startStream = yield* Effect.either(Stream.runCollect(store.read("start", { fromSequence: 1 })))
            expect(Either.isLeft(startStream)).toBe(true)

            // A read that starts after the hole, and a whole log, are fine.
            const after = yield* store.load("middle", { fromSequence: 3 })
            expect(after.map((record) => record.sequence)).toEqual([3, 4])
            const whole = yield* Stream.runCollect(store.read("whole"))
            expect(Chunk.toReadonlyArray(whole).map((record) => record.sequence)).toEqual([1, 2, 3, 4])
          })
        )
      )
    }
  })
}
