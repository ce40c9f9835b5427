/**
 * A subscriber in another process, for the cross-process latency benchmark: subscribes to a PostgreSQL store from its
 * head (default settings: LISTEN/NOTIFY wake-ups, polling every 250 ms as the safety net) and prints when it received
 * each event. Both processes read CLOCK_MONOTONIC (`nowMs`), which on Linux is one clock for the whole machine, so the
 * appender can subtract its own timestamps.
 *
 * Usage: latencyChild.ts <database url>. Prints {"type", "run", "index", "receivedAt"} per event; runs until killed.
 */
import { Context, Effect, Layer, Redacted, Stream } from "effect"
import { EventStore } from "../../src/infra/EventStore.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { nowMs } from "./common.js"

const [url = ""] = process.argv.slice(2)

interface Probe {
  readonly run: number
  readonly index: number
}

const isProbe = (data: unknown): data is Probe =>
  typeof data === "object" && data !== null && "run" in data && "index" in data

const program = Effect.scoped(
  Effect.gen(function* () {
    const store = Context.get(yield* Layer.build(PgEventStore.layer({ url: Redacted.make(url) })), EventStore)
    const head = yield* store.headPosition
    yield* store.subscribe({ streamId: "latency", afterPosition: head }).pipe(
      Stream.runForEach((event) =>
        Effect.sync(() => {
          const receivedAt = nowMs()
          if (!isProbe(event.data)) return
          const { run, index } = event.data
          console.log(JSON.stringify({ type: event.type, run, index, receivedAt }))
        })
      )
    )
  })
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
