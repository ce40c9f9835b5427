/**
 * One replay, in a process of its own so that its memory is its own: load + decode + fold of a session, with the
 * heap and RSS sampled after every page.
 *
 * Usage: replayChild.ts <sqlite|postgres> <file or url> <session id> <event count> <stream|load>
 * Prints one JSON line: { events, ms, heapBefore, heapPeak, rssBefore, rssPeak, liveBefore, livePeak } (bytes,
 * milliseconds); `live` is the heap right after a full collection, sampled after every page in a second, untimed pass.
 * `stream` folds `PlannerStore.read` page by page (what the runner does); `load` collects the whole log first, for
 * comparison.
 */
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { Chunk, Context, Effect, Layer, Redacted, Stream } from "effect"
import * as Planner from "../../src/domain/Planner.js"
import type { EventStore } from "../../src/infra/EventStore.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { nowMs } from "./common.js"

const [backend = "", location = "", sessionId = "", countText = "0", mode = "stream"] = process.argv.slice(2)
const expected = Number(countText)

v8.setFlagsFromString("--expose-gc")
const collectGarbage = vm.runInNewContext("gc") as () => void

const storeLayer: Layer.Layer<EventStore, unknown> =
  backend === "postgres"
    ? PgEventStore.layer({ url: Redacted.make(location) })
    : SqliteEventStore.layer({ filename: location })

const program = Effect.scoped(
  Effect.gen(function* () {
    const context = yield* Layer.build(PlannerStore.layer.pipe(Layer.provide(storeLayer)))
    const store = Context.get(context, PlannerStore.PlannerStore)
    // Warm the code paths on a few events, then start from a collected heap.
    yield* Stream.runDrain(store.read(sessionId, { toSequence: 50 }))
    collectGarbage()
    const heapBefore = process.memoryUsage().heapUsed
    const rssBefore = process.memoryUsage.rss()
    let heapPeak = heapBefore
    let rssPeak = rssBefore
    const sample = () => {
      const usage = process.memoryUsage()
      heapPeak = Math.max(heapPeak, usage.heapUsed)
      rssPeak = Math.max(rssPeak, usage.rss)
    }
    const start = nowMs()
    const state =
      mode === "load"
        ? yield* Effect.map(store.load(sessionId), (records) => {
            sample()
            return Planner.fold(records.map((record) => record.event))
          })
        : yield* Stream.runFold(
            Stream.chunks(store.read(sessionId)),
            Planner.initialState,
            (state, chunk: Chunk.Chunk<PlannerStore.PlannerEventRecord>) => {
              sample()
              return Planner.fold(
                Chunk.map(chunk, (record) => record.event),
                state
              )
            }
          )
    const ms = nowMs() - start
    sample()
    if (state.version !== expected) {
      return yield* Effect.dieMessage(`replayed ${state.version} events, expected ${expected}`)
    }

    // The peaks above include garbage the collector had not yet reclaimed (V8 lets the heap grow before it collects).
    // What the replay really holds on to is measured in a second, untimed pass: a full collection after every page.
    collectGarbage()
    const liveBefore = process.memoryUsage().heapUsed
    let livePeak = liveBefore
    const measureLive = () => {
      collectGarbage()
      livePeak = Math.max(livePeak, process.memoryUsage().heapUsed)
    }
    if (mode === "load") {
      const records = yield* store.load(sessionId)
      measureLive()
      Planner.fold(records.map((record) => record.event))
    } else {
      yield* Stream.runFold(
        Stream.chunks(store.read(sessionId)),
        Planner.initialState,
        (state, chunk: Chunk.Chunk<PlannerStore.PlannerEventRecord>) => {
          measureLive()
          return Planner.fold(
            Chunk.map(chunk, (record) => record.event),
            state
          )
        }
      )
    }
    console.log(
      JSON.stringify({ events: state.version, ms, heapBefore, heapPeak, rssBefore, rssPeak, liveBefore, livePeak })
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
