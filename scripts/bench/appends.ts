/**
 * Appends: single events and 100-event batches through the `EventStore` layers, each next to the same work written by
 * hand with the driver alone (better-sqlite3, pg, or a plain Map for the in-memory store) on the same table. The
 * store and its baseline run in the same process, one after the other, their order swapped every run, so that noise
 * hits both; the ratio of the two is the figure that matters.
 *
 * The baselines keep the store's guarantees and send the store's own statements (the very text, from
 * `appendStatement`), so the ratio measures what the library adds (Effect, @effect/sql, validation, encoding), not a
 * different design:
 * - SQLite: one prepared `INSERT ... SELECT ... WHERE last = expected RETURNING` per append (a lone statement is its
 *   own transaction in SQLite, and takes the write lock before it reads the last sequence);
 * - PostgreSQL: the same single statement, prepared once per connection under a name: a CTE tries the aggregate's
 *   `pg_advisory_xact_lock` and takes the transaction's id, the INSERT selects its rows from it, and `pg_notify`
 *   carries the rows out on the implicit commit (nothing else holds the lock here, so the store never takes its
 *   transaction way either);
 * - memory: a Map of arrays, the expected length checked, the payload serialised to JSON, rows pushed.
 */
import { randomUUID } from "node:crypto"
import * as path from "node:path"
import Database from "better-sqlite3"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import pg from "pg"
import { EventStore, type EventStoreService, type NewEvent } from "../../src/infra/EventStore.js"
import { appendStatement } from "../../src/infra/internal/appendStatement.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { log, nowMs, type Row, row, tempDir } from "./common.js"

export interface AppendOptions {
  readonly runs: number
  /** A fresh PostgreSQL database per call, or undefined to skip PostgreSQL. */
  readonly freshPgUrl: ((prefix: string) => Promise<string>) | undefined
  /** Fewer appends per run (for a smoke run). */
  readonly quick: boolean
}

// --- Workload ---------------------------------------------------------------------------------------------------

/** A planner-sized event: what a `TaskClaimed` carries. */
const plannerEvent = (index: number): NewEvent => ({
  type: "TaskClaimed",
  version: 1,
  data: {
    _tag: "TaskClaimed",
    taskId: (index % 40) + 1,
    attempt: 1,
    workerId: `bench-host/4242/${(index % 9_999).toString(16).padStart(8, "0")}`,
    leaseExpiresAt: 1_760_000_000_000 + index,
    at: 1_759_999_940_000 + index
  },
  metadata: { eventId: randomUUID(), correlationId: "20250101-000000-abcdef", causationId: randomUUID() }
})

const makeBatches = (appends: number, perAppend: number): ReadonlyArray<ReadonlyArray<NewEvent>> =>
  Array.from({ length: appends }, (_, a) =>
    Array.from({ length: perAppend }, (_, e) => plannerEvent(a * perAppend + e))
  )

/**
 * An appender: runs `batches` as consecutive appends to an aggregate whose last sequence is `expected`, and returns
 * the elapsed milliseconds.
 */
type Appender = (
  aggregateId: string,
  batches: ReadonlyArray<ReadonlyArray<NewEvent>>,
  expected: number
) => Promise<number>

const streamId = "bench"

const storeAppender =
  (store: EventStoreService): Appender =>
  (aggregateId, batches, from) =>
    Effect.runPromise(
      Effect.gen(function* () {
        const start = nowMs()
        let expected = from
        for (const batch of batches) {
          const result = yield* store.append(streamId, aggregateId, batch, expected)
          expected = result.lastSequence
        }
        return nowMs() - start
      })
    )

// --- Hand-written baselines -------------------------------------------------------------------------------------

class Conflict extends Error {}

/** The parameters of the store's append statement, for both baselines: encoding JSON is part of the work measured. */
const insertParams = (
  aggregateId: string,
  batch: ReadonlyArray<NewEvent>,
  expected: number,
  createdAt: number | Date,
  stream = streamId
): Array<unknown> => {
  const params: Array<unknown> = [stream, aggregateId, createdAt, stream, aggregateId]
  batch.forEach((event, index) => {
    params.push(
      index + 1,
      event.type,
      String(event.version),
      JSON.stringify(event.data),
      JSON.stringify(event.metadata)
    )
  })
  params.push(expected)
  return params
}

const sqliteBaseline = (db: Database.Database): Appender => {
  const statements = new Map<number, Database.Statement>()
  const prepared = (count: number) => {
    let statement = statements.get(count)
    if (statement === undefined) {
      statement = db.prepare(appendStatement("sqlite", count, true, "insert").text)
      statements.set(count, statement)
    }
    return statement
  }
  return async (aggregateId, batches, from) => {
    const start = nowMs()
    let expected = from
    for (const batch of batches) {
      const params = insertParams(aggregateId, batch, expected, Date.now())
      const rows = prepared(batch.length).all(...params) as Array<{ position: number; sequence: number }>
      if (rows.length !== batch.length) throw new Conflict(`conflict at ${expected}`)
      expected += batch.length
    }
    return nowMs() - start
  }
}

/** The store's one-statement append (at a known sequence) for each event count, built once, as the store does. */
const pgStatements = new Map<number, string>()

/**
 * One append by hand on PostgreSQL, as the store sends it (its own statement, prepared under a name); also the latency
 * scenario's baseline.
 */
export const pgAppendByHand = async (
  client: pg.Client,
  stream: string,
  aggregateId: string,
  events: ReadonlyArray<NewEvent>,
  expected: number
): Promise<void> => {
  let text = pgStatements.get(events.length)
  if (text === undefined) {
    text = appendStatement("pg", events.length, true, "standalone").text
    pgStatements.set(events.length, text)
  }
  const values = [...insertParams(aggregateId, events, expected, new Date(), stream), "event_store_appended"]
  const inserted = await client.query({ name: `baseline_append_${events.length}`, text, values })
  // A refusal (or a busy lock) is one row without a position.
  if (inserted.rows.filter((row) => row.position !== null).length !== events.length) {
    throw new Conflict(`conflict at ${expected}`)
  }
}

const pgBaseline =
  (client: pg.Client): Appender =>
  async (aggregateId, batches, from) => {
    const start = nowMs()
    let expected = from
    for (const batch of batches) {
      await pgAppendByHand(client, streamId, aggregateId, batch, expected)
      expected += batch.length
    }
    return nowMs() - start
  }

interface MemoryRow {
  readonly position: number
  readonly streamId: string
  readonly aggregateId: string
  readonly sequence: number
  readonly type: string
  readonly version: string
  readonly data: string
  readonly metadata: string
  readonly createdAt: number
}

const memoryBaseline = (): Appender => {
  const all: Array<MemoryRow> = []
  const aggregates = new Map<string, Array<MemoryRow>>()
  return async (aggregateId, batches, from) => {
    const start = nowMs()
    let expected = from
    for (const batch of batches) {
      const key = `${streamId}\u0000${aggregateId}`
      const rows = aggregates.get(key) ?? []
      if (rows.length !== expected) throw new Conflict(`conflict at ${expected}`)
      aggregates.set(key, rows)
      const createdAt = Date.now()
      for (const event of batch) {
        const stored: MemoryRow = {
          position: all.length + 1,
          streamId,
          aggregateId,
          sequence: rows.length + 1,
          type: event.type,
          version: String(event.version),
          data: JSON.stringify(event.data),
          metadata: JSON.stringify(event.metadata),
          createdAt
        }
        all.push(stored)
        rows.push(stored)
      }
      expected = rows.length
    }
    return nowMs() - start
  }
}

// --- Running ----------------------------------------------------------------------------------------------------

interface Backend {
  readonly name: string
  readonly store: Appender
  readonly baseline: Appender
  readonly baselineName: string
  /** Appends per run: single events, then 100-event batches. */
  readonly singles: number
  readonly batches: number
  readonly close: () => Promise<void>
  readonly note?: string
  /** The whole cost is in this process (no server), so CPU time measures it. */
  readonly inProcess: boolean
}

const buildStore = async <E>(layer: Layer.Layer<EventStore, E>) => {
  const scope = Effect.runSync(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  return {
    store: Context.get(context, EventStore),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const memoryBackend = async (quick: boolean): Promise<Backend> => {
  const { store, close } = await buildStore(MemoryEventStore.layer())
  return {
    name: "memory",
    store: storeAppender(store),
    baseline: memoryBaseline(),
    baselineName: "plain Map",
    singles: quick ? 1_000 : 5_000,
    batches: quick ? 20 : 100,
    close,
    inProcess: true
  }
}

const sqliteBackend = async (quick: boolean): Promise<Backend> => {
  const folder = tempDir("appends")
  const storeFile = path.join(folder.dir, "store.db")
  const baselineFile = path.join(folder.dir, "baseline.db")
  const { store, close } = await buildStore(SqliteEventStore.layer({ filename: storeFile }))
  // The baseline's file gets its schema from the store's own migrations, then is used through better-sqlite3 alone.
  const migrated = await buildStore(SqliteEventStore.layer({ filename: baselineFile }))
  await migrated.close()
  const db = new Database(baselineFile)
  db.pragma("journal_mode = WAL")
  db.pragma("busy_timeout = 200")
  const probe = new Database(storeFile)
  const settings = (d: Database.Database) =>
    `journal_mode=${String(d.pragma("journal_mode", { simple: true }))}, synchronous=${String(d.pragma("synchronous", { simple: true }))}`
  const note = `store: ${settings(probe)}; baseline: ${settings(db)}`
  probe.close()
  return {
    name: "SQLite file",
    store: storeAppender(store),
    baseline: sqliteBaseline(db),
    baselineName: "better-sqlite3",
    singles: quick ? 500 : 2_000,
    batches: quick ? 20 : 100,
    close: async () => {
      await close()
      db.close()
      folder.remove()
    },
    note,
    inProcess: true
  }
}

const pgBackend = async (freshUrl: (prefix: string) => Promise<string>, quick: boolean): Promise<Backend> => {
  const storeUrl = await freshUrl("bench_appends_store")
  const baselineUrl = await freshUrl("bench_appends_baseline")
  const { store, close } = await buildStore(PgEventStore.layer({ url: Redacted.make(storeUrl) }))
  const migrated = await buildStore(PgEventStore.layer({ url: Redacted.make(baselineUrl) }))
  await migrated.close()
  const client = new pg.Client({ connectionString: baselineUrl })
  await client.connect()
  return {
    name: "PostgreSQL",
    store: storeAppender(store),
    baseline: pgBaseline(client),
    baselineName: "pg",
    singles: quick ? 100 : 400,
    batches: quick ? 10 : 50,
    close: async () => {
      await close()
      await client.end()
    },
    inProcess: false
  }
}

interface Measured {
  /** Wall milliseconds per run. */
  readonly store: Array<number>
  readonly baseline: Array<number>
  /** This process's CPU milliseconds per run: not inflated while other processes hold the CPU. */
  readonly storeCpu: Array<number>
  readonly baselineCpu: Array<number>
}

/** Each run is cut into this many slices, store and baseline taking turns, so a burst of noise hits both. */
const slices = 10

/**
 * Runs `store` and `baseline` once each per run (plus a warm-up run), each on its own fresh aggregate, a slice at a
 * time: store, baseline, baseline, store, ... Returns the total milliseconds of each per run.
 */
const interleaved = async (
  backend: Backend,
  label: string,
  runs: number,
  batches: () => ReadonlyArray<ReadonlyArray<NewEvent>>
): Promise<Measured> => {
  const measured: Measured = { store: [], baseline: [], storeCpu: [], baselineCpu: [] }
  for (let run = -1; run < runs; run++) {
    const work = batches()
    const sliceSize = Math.ceil(work.length / slices)
    const wall = { store: 0, baseline: 0 }
    const cpu = { store: 0, baseline: 0 }
    const expected = { store: 0, baseline: 0 }
    for (let slice = 0; slice * sliceSize < work.length; slice++) {
      const part = work.slice(slice * sliceSize, (slice + 1) * sliceSize)
      const events = part.reduce((sum, batch) => sum + batch.length, 0)
      const order = slice % 2 === 0 ? (["store", "baseline"] as const) : (["baseline", "store"] as const)
      for (const which of order) {
        const appender = which === "store" ? backend.store : backend.baseline
        const cpuBefore = process.cpuUsage()
        wall[which] += await appender(`${label}-${which}-${run + 1}`, part, expected[which])
        const used = process.cpuUsage(cpuBefore)
        cpu[which] += (used.user + used.system) / 1_000
        expected[which] += events
      }
    }
    if (run >= 0) {
      measured.store.push(wall.store)
      measured.baseline.push(wall.baseline)
      measured.storeCpu.push(cpu.store)
      measured.baselineCpu.push(cpu.baseline)
    }
  }
  return measured
}

const scenarioRows = (
  backend: Backend,
  scenario: string,
  unit: string,
  perRun: number,
  measured: Measured,
  target: number | undefined,
  ratioTarget: number | undefined
): Array<Row> => {
  const rate = (ms: number) => (perRun * 1_000) / ms
  const storeRates = measured.store.map(rate)
  const baselineRates = measured.baseline.map(rate)
  const ratios = measured.store.map((ms, index) => (measured.baseline[index] ?? Number.NaN) / ms)
  return [
    row({
      scenario,
      backend: backend.name,
      metric: "store",
      unit,
      samples: storeRates,
      ...(target === undefined ? {} : { target: { kind: "min", value: target } }),
      ...(backend.note === undefined ? {} : { note: backend.note })
    }),
    row({
      scenario,
      backend: backend.name,
      metric: `hand-written (${backend.baselineName})`,
      unit,
      samples: baselineRates
    }),
    row({
      scenario,
      backend: backend.name,
      metric: "ratio store / hand-written",
      unit: "x",
      samples: ratios,
      ...(ratioTarget === undefined ? {} : { target: { kind: "min", value: ratioTarget } })
    }),
    ...(backend.inProcess
      ? [
          row({
            scenario,
            backend: backend.name,
            metric: "ratio by CPU time (less sensitive to other load)",
            unit: "x",
            samples: measured.storeCpu.map((ms, index) => (measured.baselineCpu[index] ?? Number.NaN) / ms),
            ...(ratioTarget === undefined ? {} : { note: `the target applies to the wall-time ratio; this is a check` })
          })
        ]
      : []),
    row({
      scenario,
      backend: backend.name,
      metric: "store cost per append",
      unit: "µs",
      samples: measured.store.map((ms) => (ms * 1_000) / (unit === "events/s" ? perRun / 100 : perRun))
    }),
    row({
      scenario,
      backend: backend.name,
      metric: "hand-written cost per append",
      unit: "µs",
      samples: measured.baseline.map((ms) => (ms * 1_000) / (unit === "events/s" ? perRun / 100 : perRun))
    })
  ]
}

export const appends = async (options: AppendOptions): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  const makers: Array<() => Promise<Backend>> = [
    () => memoryBackend(options.quick),
    () => sqliteBackend(options.quick),
    ...(options.freshPgUrl === undefined
      ? []
      : [() => pgBackend(options.freshPgUrl as (prefix: string) => Promise<string>, options.quick)])
  ]
  for (const make of makers) {
    const backend = await make()
    try {
      log(`appends on ${backend.name}: ${backend.singles} single-event appends per run`)
      const isSqlite = backend.name === "SQLite file"
      const singles = await interleaved(backend, "single", options.runs, () => makeBatches(backend.singles, 1))
      rows.push(
        ...scenarioRows(
          backend,
          "appends, 1 event each",
          "appends/s",
          backend.singles,
          singles,
          undefined,
          isSqlite ? 0.7 : undefined
        )
      )
      log(`appends on ${backend.name}: ${backend.batches} appends of 100 events per run`)
      const batched = await interleaved(backend, "batch", options.runs, () => makeBatches(backend.batches, 100))
      rows.push(
        ...scenarioRows(
          backend,
          "appends, 100 events each",
          "events/s",
          backend.batches * 100,
          batched,
          isSqlite ? 50_000 : undefined,
          undefined
        )
      )
    } finally {
      await backend.close()
    }
  }
  return rows
}
