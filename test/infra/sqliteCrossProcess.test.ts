import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Fiber, Layer, Stream } from "effect"
import { EventStore } from "../../src/infra/EventStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { spawnFixture } from "../support/child.js"
import { within } from "./EventStoreContract.js"
import { freshSqliteFile } from "./fixtures/databases.js"

describe("SqliteEventStore across processes", () => {
  it.live(
    "two processes appending to one file both succeed, and a subscriber in a third sees every event",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const filename = yield* freshSqliteFile
          const count = 100
          // This process migrates the file first, and then only reads: what it sees comes from the other two.
          const layer = SqliteEventStore.layer({ filename, pollInterval: "100 millis" })
          const store = Context.get(yield* Layer.build(layer), EventStore)
          const subscriber = yield* store
            .subscribe({ streamId: "shared" })
            .pipe(Stream.take(2 * count), Stream.runCollect, Effect.map(Chunk.toReadonlyArray), Effect.fork)
          const writers = yield* Effect.forEach(["one", "two"], (writer) =>
            spawnFixture(new URL("./fixtures/sqliteAppender.ts", import.meta.url), [filename, writer, String(count)])
          )
          yield* Effect.forEach(writers, (writer) => writer.waitFor((line) => line === "ready"), {
            concurrency: "unbounded"
          }).pipe(within(60))
          yield* Effect.forEach(writers, (writer) => writer.send("go"))
          yield* Effect.forEach(writers, (writer) => writer.success, { concurrency: "unbounded" }).pipe(within(60))

          const loaded = yield* store.load({ streamId: "shared", aggregateId: "aggregate" })
          expect(loaded.map((event) => event.sequence)).toEqual(Array.from({ length: 2 * count }, (_, i) => i + 1))
          for (const writer of ["one", "two"]) {
            const own = loaded.flatMap((event) => {
              const data = event.data as { writer: string; index: number }
              return data.writer === writer ? [data.index] : []
            })
            expect(own).toEqual(Array.from({ length: count }, (_, i) => i))
          }
          const received = yield* Fiber.join(subscriber).pipe(within(10))
          expect(received).toEqual(loaded)
        })
      ),
    90_000
  )
})
