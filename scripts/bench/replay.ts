/**
 * Replay: load + decode + fold of a 10,000- and a 100,000-event session (`PlannerStore.read`, page by page, into
 * `Planner.fold`), each run in a fresh child process that reports its wall and CPU time and its peak heap and RSS
 * above where they were before. Those peaks include garbage V8 has not collected yet, so the memory a replay holds on
 * to is measured apart, once: an untimed replay with a full collection after every page. Flat memory means that live
 * heap is the same at 100,000 events as at 10,000; `PlannerStore.load` (the whole log collected first) is measured the
 * same way for comparison.
 */
import * as path from "node:path"
import { Context, Effect, Layer, Redacted } from "effect"
import type { EventStore } from "../../src/infra/EventStore.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { log, parseJson, type Row, row, spawnScript, tempDir } from "./common.js"
import { sessionBatches } from "./session.js"

export interface ReplayOptions {
  readonly runs: number
  readonly freshPgUrl: ((prefix: string) => Promise<string>) | undefined
  readonly quick: boolean
}

/** A timed replay. */
interface Timed {
  readonly events: number
  readonly ms: number
  readonly cpuMs: number
  readonly heapBefore: number
  readonly heapPeak: number
  readonly rssBefore: number
  readonly rssPeak: number
}

/** An untimed replay with a full collection after every page. */
interface Live {
  readonly events: number
  readonly liveBefore: number
  readonly livePeak: number
}

const isTimed = (value: unknown): value is Timed =>
  typeof value === "object" && value !== null && "cpuMs" in value && "rssPeak" in value

const isLive = (value: unknown): value is Live =>
  typeof value === "object" && value !== null && "liveBefore" in value && "livePeak" in value

/** Writes the session through the store itself, 1,000 events per append. */
const writeSession = (layer: Layer.Layer<EventStore, unknown>, sessionId: string, total: number) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const context = yield* Layer.build(PlannerStore.layer.pipe(Layer.provide(layer)))
        const store = Context.get(context, PlannerStore.PlannerStore)
        let expected = 0
        for (const batch of sessionBatches(total, 1_000)) {
          expected = (yield* store.append(sessionId, batch, expected)).lastSequence
        }
      })
    )
  )

const replayOnce = async <A>(
  test: (value: unknown) => value is A,
  backend: string,
  location: string,
  size: number,
  mode: string
): Promise<A> => {
  const child = await spawnScript("./replayChild.ts", [backend, location, `replay-${size}`, String(size), mode])
  try {
    const line = await child.waitFor((l) => test(parseJson(l)), 180_000)
    const result = parseJson(line)
    if (!test(result)) throw new Error(`unexpected replay output: ${line}`)
    return result
  } finally {
    await child.stop()
  }
}

const mib = (bytes: number) => bytes / 1024 / 1024

export const replay = async (options: ReplayOptions): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  const sizes = options.quick ? [2_000, 20_000] : [10_000, 100_000]
  const [small = 0, large = 0] = sizes
  const backends: Array<{
    readonly name: string
    readonly backend: string
    readonly location: () => Promise<{ readonly location: string; readonly layer: Layer.Layer<EventStore, unknown> }>
    readonly target: boolean
  }> = [
    {
      name: "SQLite file",
      backend: "sqlite",
      location: async () => {
        const filename = path.join(tempDir("replay").dir, "events.db")
        return { location: filename, layer: SqliteEventStore.layer({ filename }) }
      },
      target: true
    },
    ...(options.freshPgUrl === undefined
      ? []
      : [
          {
            name: "PostgreSQL",
            backend: "postgres",
            location: async () => {
              const url = await (options.freshPgUrl as (prefix: string) => Promise<string>)("bench_replay")
              return { location: url, layer: PgEventStore.layer({ url: Redacted.make(url) }) }
            },
            target: false
          }
        ])
  ]

  for (const backend of backends) {
    const { location, layer } = await backend.location()
    log(`replay on ${backend.name}: writing sessions of ${sizes.join(" and ")} events`)
    for (const size of sizes) await writeSession(layer, `replay-${size}`, size)

    const timed = new Map<number, Array<Timed>>()
    for (let run = 0; run < options.runs; run++) {
      for (const size of sizes) {
        log(`replay on ${backend.name}: ${size} events, run ${run + 1} of ${options.runs}`)
        const result = await replayOnce(isTimed, backend.backend, location, size, "stream")
        timed.set(size, [...(timed.get(size) ?? []), result])
      }
    }
    // What the replay holds on to barely varies from run to run: measured once.
    log(`replay on ${backend.name}: live heap, paged and collected`)
    const liveSmall = await replayOnce(isLive, backend.backend, location, small, "stream-live")
    const liveLarge = await replayOnce(isLive, backend.backend, location, large, "stream-live")
    const liveCollected = await replayOnce(isLive, backend.backend, location, large, "load-live")

    const scenario = "replay: load + decode + fold"
    const label = (size: number) => `${size.toLocaleString("en-US")} events`
    const paged = (size: number) => timed.get(size) ?? []
    rows.push(
      row({
        scenario,
        backend: backend.name,
        metric: `${label(large)}, paged`,
        unit: "events/s",
        samples: paged(large).map((r) => (r.events * 1_000) / r.ms),
        ...(backend.target ? { target: { kind: "min", value: 100_000 } } : {})
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `${label(large)}, paged, per CPU second of the replaying process`,
        unit: "events/s",
        samples: paged(large).map((r) => (r.events * 1_000) / r.cpuMs),
        note: "less sensitive to other load; the database server's own CPU (PostgreSQL) is not counted"
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `${label(small)}, paged (includes warm-up of a fresh process)`,
        unit: "events/s",
        samples: paged(small).map((r) => (r.events * 1_000) / r.ms)
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `live heap above start, ${label(small)}, paged`,
        unit: "MiB",
        samples: [mib(liveSmall.livePeak - liveSmall.liveBefore)],
        note: "heap right after a full collection, sampled after every page: what the replay holds on to"
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `live heap above start, ${label(large)}, paged`,
        unit: "MiB",
        samples: [mib(liveLarge.livePeak - liveLarge.liveBefore)]
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `live heap above start, ${label(large)}, collected (load)`,
        unit: "MiB",
        samples: [mib(liveCollected.livePeak - liveCollected.liveBefore)],
        note: "PlannerStore.load collects the whole log before folding; shown for comparison with the paged read"
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak heap above start, ${label(small)}, paged`,
        unit: "MiB",
        samples: paged(small).map((r) => mib(r.heapPeak - r.heapBefore)),
        note: "includes garbage not yet collected: V8 grows the heap before it collects"
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak heap above start, ${label(large)}, paged`,
        unit: "MiB",
        samples: paged(large).map((r) => mib(r.heapPeak - r.heapBefore))
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak RSS above start, ${label(small)}, paged`,
        unit: "MiB",
        samples: paged(small).map((r) => mib(r.rssPeak - r.rssBefore))
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak RSS above start, ${label(large)}, paged`,
        unit: "MiB",
        samples: paged(large).map((r) => mib(r.rssPeak - r.rssBefore))
      })
    )
  }
  return rows
}
