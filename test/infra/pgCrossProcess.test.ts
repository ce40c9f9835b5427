import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Redacted } from "effect"
import { EventStore } from "../../src/infra/EventStore.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { spawnFixture } from "../support/child.js"
import { newEvent, within } from "./EventStoreContract.js"
import { freshPgDatabase } from "./fixtures/databases.js"

interface Printed {
  readonly position: number
  readonly streamId: string
  readonly aggregateId: string
  readonly sequence: number
  readonly type: string
  readonly data: unknown
}

describe("PgEventStore across processes", () => {
  it.live(
    "a subscriber in another process receives the events appended here, in order, through NOTIFY",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const store = Context.get(yield* Layer.build(PgEventStore.layer({ url: Redacted.make(url) })), EventStore)
          const count = 20
          const child = yield* spawnFixture(new URL("./fixtures/pgSubscriber.ts", import.meta.url), [
            url,
            String(count)
          ])
          const printed = (line: string): Printed | undefined => {
            try {
              return JSON.parse(line) as Printed
            } catch {
              return undefined
            }
          }

          // The child LISTENs from its first subscription on; ping until it prints one, then it surely listens.
          const pinger = yield* Effect.fork(
            Effect.forever(
              store.append("ping", "p", [newEvent("Ping", {})], "any").pipe(Effect.zipRight(Effect.sleep("100 millis")))
            )
          )
          yield* child.waitFor((line) => printed(line)?.type === "Ping").pipe(within(60))

          for (let batch = 0; batch < count / 2; batch++) {
            const aggregateId = `session-${batch % 3}`
            const last = yield* store.lastSequence("planner", aggregateId)
            yield* store.append(
              "planner",
              aggregateId,
              [newEvent("Real", { batch }), newEvent("Real", { batch })],
              last
            )
          }
          const received: Array<Printed> = []
          while (received.length < count) {
            const line = yield* child.waitFor((line) => printed(line)?.type === "Real").pipe(within(20))
            const event = printed(line)
            if (event !== undefined) received.push(event)
          }
          yield* child.success.pipe(within(20))
          yield* Fiber.interrupt(pinger)

          const stored = yield* store.load({ streamId: "planner" })
          expect(received).toEqual(
            stored.map((event) => ({
              position: event.position,
              streamId: event.streamId,
              aggregateId: event.aggregateId,
              sequence: event.sequence,
              type: event.type,
              data: event.data
            }))
          )
        })
      ),
    90_000
  )
})
