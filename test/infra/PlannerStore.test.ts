import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Either, Layer, Stream } from "effect"
import { defaultConfig } from "../../src/domain/Config.js"
import {
  type PlannerEvent,
  PlanningCompleted,
  TaskDispatched,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"
import { EventStore, SequenceConflict } from "../../src/infra/EventStore.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import { PlannerStore, layer as plannerStoreLayer, plannerStreamId } from "../../src/infra/PlannerStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { within } from "./EventStoreContract.js"
import { freshSqliteFile } from "./fixtures/databases.js"

const planned = new TasksPlanned({
  request: "Write the spec. Then build it.",
  attachments: [],
  tasks: [
    { id: 1, description: "Write the spec", kind: "Processing", dependsOn: [], attachments: [] },
    {
      id: 2,
      description: "Build it",
      kind: "CodeImplementation",
      dependsOn: [1],
      attachments: [{ kind: "Link", value: "https://example.com/spec.pdf" }]
    }
  ],
  config: defaultConfig,
  source: { _tag: "Parser" },
  at: 1_000
})
const dispatched = new TaskDispatched({
  taskId: 1,
  attempt: 1,
  kind: "Processing",
  description: "Write the spec",
  clarifications: [],
  at: 1_001
})
const completed = new TaskStatusUpdated({ taskId: 1, status: "Completed", attempt: 1, result: "done", at: 1_002 })
const finished = new PlanningCompleted({ outcome: "Succeeded", summary: "all done", at: 1_003 })

const backends = {
  MemoryEventStore: Layer.effect(
    EventStore,
    Effect.map(MemoryEventStore.makeStorage, (storage) => MemoryEventStore.make(storage))
  ),
  SqliteEventStore: Layer.unwrapScoped(
    Effect.map(freshSqliteFile, (filename) => SqliteEventStore.layer({ filename, pollInterval: "1 minute" }))
  )
} satisfies Record<string, Layer.Layer<EventStore, unknown>>

const withPlannerStore = <A, E>(
  backend: Layer.Layer<EventStore, unknown>,
  body: (planner: Context.Tag.Service<PlannerStore>, store: Context.Tag.Service<EventStore>) => Effect.Effect<A, E>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* Layer.build(Layer.provideMerge(plannerStoreLayer, backend))
      return yield* body(Context.get(context, PlannerStore), Context.get(context, EventStore))
    })
  )

for (const [name, backend] of Object.entries(backends)) {
  describe(`PlannerStore on ${name}`, () => {
    it.live("stores each planner event under its own type and version, and loads it back decoded", () =>
      withPlannerStore(backend, (planner, store) =>
        Effect.gen(function* () {
          const result = yield* planner.append("session-1", [planned, dispatched], "no-stream", {
            correlationId: "request-7",
            extra: { user: "ana" }
          })
          expect(result.lastSequence).toBe(2)
          yield* planner.append("session-1", [completed], 2, { causationId: "worker-3" })

          const raw = yield* store.load({ streamId: plannerStreamId, aggregateId: "session-1" })
          expect(raw.map((event) => [event.type, event.version])).toEqual([
            ["TasksPlanned", 2],
            ["TaskDispatched", 1],
            ["TaskStatusUpdated", 1]
          ])

          const records = yield* planner.load("session-1")
          expect(records.map((record) => record.event)).toEqual([planned, dispatched, completed])
          expect(records.map((record) => [record.sessionId, record.sequence])).toEqual([
            ["session-1", 1],
            ["session-1", 2],
            ["session-1", 3]
          ])
          expect(records.map((record) => record.position)).toEqual(raw.map((event) => event.position))
          const [first, second, third] = records
          expect(first?.metadata).toMatchObject({ correlationId: "request-7", extra: { user: "ana" } })
          expect(second?.metadata.correlationId).toBe("request-7")
          expect(third?.metadata).toMatchObject({ causationId: "worker-3" })
          const ids = records.map((record) => record.metadata.eventId)
          expect(new Set(ids).size).toBe(3)
          for (const id of ids) expect(id).toMatch(/^[0-9a-f-]{36}$/)

          const streamed = yield* Stream.runCollect(planner.read("session-1"))
          expect(Chunk.toReadonlyArray(streamed)).toEqual(records)
        })
      )
    )

    it.live("time travel, conflicts and the session list", () =>
      withPlannerStore(backend, (planner) =>
        Effect.gen(function* () {
          yield* planner.append("a", [planned, dispatched, completed], 0)
          yield* planner.append("b", [planned], 0)
          const atOne = yield* planner.load("a", { toSequence: 1 })
          expect(atOne.map((record) => record.event._tag)).toEqual(["TasksPlanned"])
          const middle = yield* planner.load("a", { fromSequence: 2, toSequence: 2 })
          expect(middle.map((record) => record.event._tag)).toEqual(["TaskDispatched"])
          const conflict = yield* Effect.flip(planner.append("a", [finished], 2))
          expect(conflict).toEqual(
            new SequenceConflict({ streamId: plannerStreamId, aggregateId: "a", expected: 2, actual: 3 })
          )
          expect(yield* planner.lastSequence("a")).toBe(3)
          expect((yield* planner.sessions).map((session) => [session.aggregateId, session.lastSequence])).toEqual([
            ["b", 1],
            ["a", 3]
          ])
        })
      )
    )

    it.live("a subscription filtered on PlanningCompleted fires for it and nothing else", () =>
      withPlannerStore(backend, (planner) =>
        Effect.gen(function* () {
          const waiting = yield* Effect.fork(
            Stream.runCollect(Stream.take(planner.subscribe({ eventTypes: ["PlanningCompleted"] }), 2))
          )
          const events: ReadonlyArray<PlannerEvent> = [planned, dispatched, completed, finished]
          yield* planner.append("one", events, 0)
          yield* planner.append("two", [planned, finished], 0)
          const received = Chunk.toReadonlyArray(yield* waiting.await.pipe(Effect.flatten, within(10)))
          expect(received.map((record) => [record.sessionId, record.event])).toEqual([
            ["one", finished],
            ["two", finished]
          ])
          const one = yield* Stream.runCollect(Stream.take(planner.subscribe({ sessionId: "one" }), 4))
          expect(Chunk.toReadonlyArray(one).map((record) => record.event)).toEqual(events)
        })
      )
    )

    it.live("a version 1 TasksPlanned is upcast on read", () =>
      withPlannerStore(backend, (planner, store) =>
        Effect.gen(function* () {
          yield* store.append(
            plannerStreamId,
            "old",
            [
              {
                type: "TasksPlanned",
                version: 1,
                data: {
                  tasks: [
                    { id: 1, description: "first", kind: "Processing" },
                    { id: 2, description: "second", kind: "ToolCall" }
                  ]
                },
                metadata: { eventId: "legacy-1" }
              }
            ],
            0
          )
          const [record] = yield* planner.load("old")
          const event = record?.event
          expect(event?._tag).toBe("TasksPlanned")
          if (event?._tag !== "TasksPlanned") return
          expect(event.tasks.map((task) => [task.id, task.dependsOn])).toEqual([
            [1, []],
            [2, [1]]
          ])
        })
      )
    )

    it.live("an event that no longer decodes is a CorruptEvent naming its position, type and reason", () =>
      withPlannerStore(backend, (planner, store) =>
        Effect.gen(function* () {
          const undecodable = [
            { type: "Mystery", version: 1, data: {}, reason: "unknown event type" },
            { type: "TaskDispatched", version: 9, data: {}, reason: "unknown version" },
            { type: "TaskDispatched", version: 1, data: { taskId: "one" }, reason: "taskId" }
          ]
          for (const [index, bad] of undecodable.entries()) {
            const sessionId = `broken-${index}`
            yield* planner.append(sessionId, [planned], 0)
            const { positions } = yield* store.append(
              plannerStreamId,
              sessionId,
              [{ type: bad.type, version: bad.version, data: bad.data, metadata: { eventId: "x" } }],
              1
            )
            const error = yield* Effect.flip(planner.load(sessionId))
            expect(error).toMatchObject({
              _tag: "CorruptEvent",
              position: positions[0],
              type: bad.type,
              aggregateId: sessionId,
              sequence: 2
            })
            expect(error.message).toContain(bad.reason)
            expect(yield* planner.load(sessionId, { toSequence: 1 })).toHaveLength(1)
            const read = yield* Stream.runCollect(Stream.either(planner.read(sessionId)))
            expect(Chunk.toReadonlyArray(read).map(Either.isRight)).toEqual([true, false])
            const live = yield* Stream.runCollect(Stream.take(Stream.either(planner.subscribe({ sessionId })), 2)).pipe(
              within(10)
            )
            expect(Chunk.toReadonlyArray(live).map(Either.isRight)).toEqual([true, false])
          }
        })
      )
    )
  })
}
