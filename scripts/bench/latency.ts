/**
 * Subscription latency over a few hundred single-event appends spaced 2-6 ms apart, p50 and p99, measured two ways:
 * - append to delivery: from just before `append` is called to the moment a subscriber holds the event (what a user
 *   sees; includes the append's own commit, on PostgreSQL an fsync);
 * - commit to delivery: from the moment `append` returned (committed) to delivery (what the subscription adds).
 * The append's own duration is reported beside them.
 *
 * In-process (SQLite file, PostgreSQL): the subscriber is a fiber next to the appender, woken by the store's signal.
 * Across processes (PostgreSQL): the subscriber is a child process woken by LISTEN/NOTIFY, which reports when it
 * received each event; both processes read CLOCK_MONOTONIC, one clock for the whole machine on Linux.
 */
import * as path from "node:path"
import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Redacted, Scope, Stream } from "effect"
import pg from "pg"
import { EventStore, type EventStoreService } from "../../src/infra/EventStore.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { pgAppendByHand } from "./appends.js"
import { log, nowMs, parseJson, quantile, type Row, row, sleep, spawnScript, tempDir } from "./common.js"
import { dispatchLatency } from "./dispatchLatency.js"
import { jobLatency } from "./jobLatency.js"

export interface LatencyOptions {
  readonly runs: number
  readonly freshPgUrl: ((prefix: string) => Promise<string>) | undefined
  readonly quick: boolean
}

interface Probe {
  readonly run: number
  readonly index: number
}

const isProbe = (data: unknown): data is Probe =>
  typeof data === "object" && data !== null && "run" in data && "index" in data

/** When each probe of a run was sent, committed and received (CLOCK_MONOTONIC milliseconds). */
interface Timings {
  readonly sentAt: Array<number>
  readonly committedAt: Array<number>
  readonly receivedAt: Array<number>
}

const emptyTimings = (): Timings => ({ sentAt: [], committedAt: [], receivedAt: [] })

const streamId = "latency"
/** 2 to 6 ms between appends, varied so that the appends do not beat in step with timers or polling. */
const spacing = (index: number) => Duration.millis(2 + ((index * 7_919) % 5))

const probeEvent = (run: number, index: number) => ({
  type: index < 0 ? "Ping" : "Probe",
  version: 1,
  data: { run, index } satisfies Probe,
  metadata: { eventId: `latency-${run}-${index}-${Math.random().toString(36).slice(2)}` }
})

/** Appends `count` probes, one at a time, to a fresh aggregate of the run, recording when each went and committed. */
const appendProbes = (store: EventStoreService, aggregate: string, run: number, count: number, timings: Timings) =>
  Effect.gen(function* () {
    for (let index = 0; index < count; index++) {
      timings.sentAt[index] = nowMs()
      yield* store.append(streamId, `${aggregate}-${run}`, [probeEvent(run, index)], index)
      timings.committedAt[index] = nowMs()
      yield* Effect.sleep(spacing(index))
    }
  })

/** One in-process run. */
const inProcessRun = (store: EventStoreService, run: number, count: number) =>
  Effect.gen(function* () {
    const timings = emptyTimings()
    let received = 0
    const done = yield* Deferred.make<void>()
    const head = yield* store.headPosition
    const subscriber = yield* store.subscribe({ streamId, afterPosition: head }).pipe(
      Stream.runForEach((event) =>
        Effect.sync(() => {
          const receivedAt = nowMs()
          if (!isProbe(event.data) || event.data.run !== run) return
          timings.receivedAt[event.data.index] = receivedAt
          received += 1
          if (received === count) Deferred.unsafeDone(done, Exit.void)
        })
      ),
      Effect.fork
    )
    // Let the subscription reach its live phase before the first probe.
    yield* Effect.sleep("50 millis")
    yield* appendProbes(store, "in-process", run, count, timings)
    yield* Deferred.await(done).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => "probes lost" }))
    yield* Fiber.interrupt(subscriber)
    return timings
  })

const buildStore = async <E>(layer: Layer.Layer<EventStore, E>) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  return {
    store: Context.get(context, EventStore),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const differences = (to: ReadonlyArray<number>, from: ReadonlyArray<number>) =>
  from.map((at, index) => (to[index] ?? Number.NaN) - at)

const latencyRows = (backend: string, where: string, runs: ReadonlyArray<Timings>, p99Target: number): Array<Row> => {
  const scenario = `subscription latency, ${where}`
  const figure = (metric: string, of: (timings: Timings) => ReadonlyArray<number>, q: number, target?: number) =>
    row({
      scenario,
      backend,
      metric,
      unit: "ms",
      samples: runs.map((timings) => quantile(of(timings), q)),
      ...(target === undefined ? {} : { target: { kind: "max", value: target } })
    })
  const endToEnd = (t: Timings) => differences(t.receivedAt, t.sentAt)
  const afterCommit = (t: Timings) => differences(t.receivedAt, t.committedAt)
  const appendTime = (t: Timings) => differences(t.committedAt, t.sentAt)
  return [
    figure("append to delivery, p50", endToEnd, 0.5),
    figure("append to delivery, p99", endToEnd, 0.99, p99Target),
    figure("commit to delivery, p50", afterCommit, 0.5),
    figure("commit to delivery, p99", afterCommit, 0.99),
    figure("the append itself, p50", appendTime, 0.5),
    figure("the append itself, p99", appendTime, 0.99)
  ]
}

const inProcess = async (
  name: string,
  layer: Layer.Layer<EventStore, unknown>,
  runs: number,
  count: number
): Promise<Array<Row>> => {
  const { store, close } = await buildStore(layer)
  try {
    const results: Array<Timings> = []
    for (let run = 0; run <= runs; run++) {
      log(`latency in-process on ${name}: ${count} probes, run ${run} of ${runs}${run === 0 ? " (warm-up)" : ""}`)
      const timings = await Effect.runPromise(inProcessRun(store, run, count))
      if (run > 0) results.push(timings)
    }
    return latencyRows(name, "in-process", results, 5)
  } finally {
    await close()
  }
}

/**
 * The floor under the in-process PostgreSQL figures: the same appends, spaced the same way, sent by hand with `pg`
 * (the store's own statement, prepared), with nobody subscribed. Whatever the append alone takes here, append to
 * delivery cannot take less.
 */
const pgAppendFloor = async (url: string, runs: number, count: number): Promise<Array<Row>> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const samples: Array<{ p50: number; p99: number }> = []
    for (let run = 0; run <= runs; run++) {
      log(`latency, PostgreSQL append by hand: ${count} appends, run ${run} of ${runs}${run === 0 ? " (warm-up)" : ""}`)
      const times: Array<number> = []
      for (let index = 0; index < count; index++) {
        const start = nowMs()
        await pgAppendByHand(client, streamId, `by-hand-${run}`, [probeEvent(run, index)], index)
        times.push(nowMs() - start)
        await sleep(Duration.toMillis(spacing(index)))
      }
      if (run > 0) samples.push({ p50: quantile(times, 0.5), p99: quantile(times, 0.99) })
    }
    const scenario = "subscription latency, in-process"
    return [
      row({
        scenario,
        backend: "PostgreSQL",
        metric: "floor: the append by hand (pg), p50",
        unit: "ms",
        samples: samples.map((s) => s.p50)
      }),
      row({
        scenario,
        backend: "PostgreSQL",
        metric: "floor: the append by hand (pg), p99",
        unit: "ms",
        samples: samples.map((s) => s.p99)
      })
    ]
  } finally {
    await client.end()
  }
}

interface Received {
  readonly type: string
  readonly run: number
  readonly index: number
  readonly receivedAt: number
}

const isReceived = (message: unknown): message is Received =>
  typeof message === "object" && message !== null && "receivedAt" in message && "run" in message

const acrossProcesses = async (url: string, runs: number, count: number): Promise<Array<Row>> => {
  const { store, close } = await buildStore(PgEventStore.layer({ url: Redacted.make(url) }))
  const child = await spawnScript("./latencyChild.ts", [url])
  try {
    const timings = new Map<number, Timings>()
    const counts = new Map<number, number>()
    let pinged = false
    child.onLine((line) => {
      const message = parseJson(line)
      if (!isReceived(message)) return
      if (message.type === "Ping") pinged = true
      if (message.type !== "Probe") return
      const run = timings.get(message.run)
      if (run === undefined) return
      run.receivedAt[message.index] = message.receivedAt
      counts.set(message.run, (counts.get(message.run) ?? 0) + 1)
    })
    // The child LISTENs from its first subscription on: ping until it has seen a ping, then give LISTEN a moment.
    const started = Date.now()
    for (let ping = 0; !pinged; ping++) {
      if (Date.now() - started > 90_000) throw new Error(`the subscriber process never started\n${child.stderr()}`)
      await Effect.runPromise(store.append(streamId, "ping", [probeEvent(-1, -1 - ping)], "any"))
      await sleep(100)
    }
    await sleep(500)

    const results: Array<Timings> = []
    for (let run = 0; run <= runs; run++) {
      log(
        `latency across processes on PostgreSQL: ${count} probes, run ${run} of ${runs}${run === 0 ? " (warm-up)" : ""}`
      )
      const runTimings = emptyTimings()
      timings.set(run, runTimings)
      await Effect.runPromise(appendProbes(store, "across-processes", run, count, runTimings))
      const deadline = Date.now() + 30_000
      while ((counts.get(run) ?? 0) < count && Date.now() < deadline) await sleep(20)
      if ((counts.get(run) ?? 0) < count) {
        throw new Error(`the subscriber process received ${counts.get(run) ?? 0} of ${count} probes`)
      }
      if (run > 0) results.push(runTimings)
    }
    return latencyRows("PostgreSQL", "across processes", results, 25)
  } finally {
    await child.stop()
    await close()
  }
}

export const latency = async (options: LatencyOptions): Promise<Array<Row>> => {
  const count = options.quick ? 100 : 400
  const rows: Array<Row> = []
  const folder = tempDir("latency")
  try {
    rows.push(
      ...(await inProcess(
        "SQLite file",
        SqliteEventStore.layer({ filename: path.join(folder.dir, "events.db") }),
        options.runs,
        count
      ))
    )
  } finally {
    folder.remove()
  }
  if (options.freshPgUrl !== undefined) {
    const url = await options.freshPgUrl("bench_latency")
    rows.push(...(await inProcess("PostgreSQL", PgEventStore.layer({ url: Redacted.make(url) }), options.runs, count)))
    rows.push(...(await pgAppendFloor(url, options.runs, count)))
    rows.push(...(await acrossProcesses(url, options.runs, count)))
    // The task queue's wake-up across processes (issue 13): a job's commit to its take by another process.
    rows.push(...(await jobLatency({ runs: options.runs, freshPgUrl: options.freshPgUrl, quick: options.quick })))
    rows.push(...(await dispatchLatency({ runs: options.runs, freshPgUrl: options.freshPgUrl, quick: options.quick })))
  }
  return rows
}
