/**
 * Replay: load + decode + fold of a 10,000- and a 100,000-event session (`PlannerStore.read`, page by page, into
 * `Planner.fold`), each run in a fresh child process that reports its time and its peak heap and RSS above what it
 * used before the replay. Flat memory means the 100,000-event replay peaks no higher than the 10,000-event one. A
 * replay through `PlannerStore.load` (the whole log collected first) is measured beside it for comparison.
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

interface Replayed {
  readonly events: number
  readonly ms: number
  readonly heapBefore: number
  readonly heapPeak: number
  readonly rssBefore: number
  readonly rssPeak: number
}

const isReplayed = (value: unknown): value is Replayed =>
  typeof value === "object" && value !== null && "events" in value && "ms" in value && "heapPeak" in value

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

const replayOnce = async (backend: string, location: string, sessionId: string, events: number, mode: string) => {
  const child = spawnScript("./replayChild.ts", [backend, location, sessionId, String(events), mode])
  try {
    const line = await child.waitFor((l) => isReplayed(parseJson(l)), 180_000)
    const result = parseJson(line)
    if (!isReplayed(result)) throw new Error(`unexpected replay output: ${line}`)
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

    const results = new Map<string, Array<Replayed>>()
    for (let run = 0; run < options.runs; run++) {
      for (const [size, mode] of [
        [small, "stream"],
        [large, "stream"],
        [large, "load"]
      ] as const) {
        log(`replay on ${backend.name}: ${size} events (${mode}), run ${run + 1} of ${options.runs}`)
        const result = await replayOnce(backend.backend, location, `replay-${size}`, size, mode)
        const key = `${size}:${mode}`
        results.set(key, [...(results.get(key) ?? []), result])
      }
    }

    const scenario = "replay: load + decode + fold"
    const of = (size: number, mode: string) => results.get(`${size}:${mode}`) ?? []
    const label = (size: number) => `${size.toLocaleString("en-US")} events`
    rows.push(
      row({
        scenario,
        backend: backend.name,
        metric: `${label(large)}, paged`,
        unit: "events/s",
        samples: of(large, "stream").map((r) => (r.events * 1_000) / r.ms),
        ...(backend.target ? { target: { kind: "min", value: 100_000 } } : {})
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `${label(small)}, paged`,
        unit: "events/s",
        samples: of(small, "stream").map((r) => (r.events * 1_000) / r.ms)
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak heap above start, ${label(small)}, paged`,
        unit: "MiB",
        samples: of(small, "stream").map((r) => mib(r.heapPeak - r.heapBefore))
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak heap above start, ${label(large)}, paged`,
        unit: "MiB",
        samples: of(large, "stream").map((r) => mib(r.heapPeak - r.heapBefore))
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak RSS above start, ${label(small)}, paged`,
        unit: "MiB",
        samples: of(small, "stream").map((r) => mib(r.rssPeak - r.rssBefore))
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak RSS above start, ${label(large)}, paged`,
        unit: "MiB",
        samples: of(large, "stream").map((r) => mib(r.rssPeak - r.rssBefore))
      }),
      row({
        scenario,
        backend: backend.name,
        metric: `peak heap above start, ${label(large)}, collected (load)`,
        unit: "MiB",
        samples: of(large, "load").map((r) => mib(r.heapPeak - r.heapBefore)),
        note: "PlannerStore.load collects the whole log before folding; shown for comparison with the paged read"
      })
    )
  }
  return rows
}
