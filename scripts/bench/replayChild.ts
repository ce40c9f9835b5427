/**
 * One replay, in a process of its own so that its memory is its own: load + decode + fold of a session.
 *
 * Usage: replayChild.ts <sqlite|postgres> <file or url> <session id> <event count> <mode>
 * - `stream`: fold `PlannerStore.read` page by page (what the runner does), timed; prints
 *   { events, ms, cpuMs, heapBefore, heapPeak, rssBefore, rssPeak } (bytes, milliseconds), the heap and RSS sampled
 *   after every page. The peaks include garbage not yet collected: V8 grows the heap before it collects.
 * - `load`: the same with `PlannerStore.load`, which collects the whole log before folding, for comparison.
 * - `stream-live`, `load-live`: untimed, with a full collection after every page (or after the load), to see what the
 *   replay really holds on to; prints { events, liveBefore, livePeak }.
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
const collected = mode === "load" || mode === "load-live"
const live = mode.endsWith("-live")

v8.setFlagsFromString("--expose-gc")
const collectGarbage = vm.runInNewContext("gc") as () => void

const storeLayer: Layer.Layer<EventStore, unknown> =
  backend === "postgres"
    ? PgEventStore.layer({ url: Redacted.make(location) })
    : SqliteEventStore.layer({ filename: location })

/** Replays the session, calling `afterPage` after every page (or once after the whole load). */
const replay = (store: PlannerStore.PlannerStoreService, afterPage: () => void) =>
  collected
    ? Effect.map(store.load(sessionId), (records) => {
        afterPage()
        return Planner.fold(records.map((record) => record.event))
      })
    : Stream.runFold(
        Stream.chunks(store.read(sessionId)),
        Planner.initialState,
        (state, chunk: Chunk.Chunk<PlannerStore.PlannerEventRecord>) => {
          afterPage()
          return Planner.fold(
            Chunk.map(chunk, (record) => record.event),
            state
          )
        }
      )

const program = Effect.scoped(
  Effect.gen(function* () {
    const context = yield* Layer.build(PlannerStore.layer.pipe(Layer.provide(storeLayer)))
    const store = Context.get(context, PlannerStore.PlannerStore)
    // Warm the code paths on a few events, then start from a collected heap.
    yield* Stream.runDrain(store.read(sessionId, { toSequence: 50 }))
    collectGarbage()

    if (live) {
      const liveBefore = process.memoryUsage().heapUsed
      let livePeak = liveBefore
      const state = yield* replay(store, () => {
        collectGarbage()
        livePeak = Math.max(livePeak, process.memoryUsage().heapUsed)
      })
      if (state.version !== expected) return yield* Effect.dieMessage(`replayed ${state.version}, not ${expected}`)
      console.log(JSON.stringify({ events: state.version, liveBefore, livePeak }))
      return
    }

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
    const cpuStart = process.cpuUsage()
    const state = yield* replay(store, sample)
    const ms = nowMs() - start
    const cpu = process.cpuUsage(cpuStart)
    sample()
    if (state.version !== expected) return yield* Effect.dieMessage(`replayed ${state.version}, not ${expected}`)
    const cpuMs = (cpu.user + cpu.system) / 1_000
    console.log(JSON.stringify({ events: state.version, ms, cpuMs, heapBefore, heapPeak, rssBefore, rssPeak }))
  })
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
