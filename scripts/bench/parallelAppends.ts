/**
 * Appends from many writers at once on PostgreSQL: do appends to different sessions wait for each other? Two figures,
 * each beside the previous design written by hand with the driver in the same run (its statement, a store-wide
 * `pg_try_advisory_xact_lock`, and on a busy lock the transaction that waits for it), and beside the store's own
 * statement by hand (a lock per aggregate):
 *
 * - throughput: 8 writers, each appending single events to a session of its own, as fast as they can;
 * - latency beside a slow transaction: 4 writers append while another append keeps its transaction open for 50 ms at
 *   a time (as an append with a slow `alongside`, or a consumer's handler, does). With one store-wide lock every
 *   append waits for it; with a lock per aggregate none does.
 *
 * Subscribers stay gap-safe either way (the high-water mark, `src/infra/internal/highWater.ts`); the tests check that.
 */
import { randomUUID } from "node:crypto"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import pg from "pg"
import { EventStore, type EventStoreService, type NewEvent } from "../../src/infra/EventStore.js"
import { appendLockSeed, appendStatement } from "../../src/infra/internal/appendStatement.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { log, nowMs, quantile, type Row, row } from "./common.js"

export interface ParallelAppendOptions {
  readonly runs: number
  readonly freshPgUrl: (prefix: string) => Promise<string>
  readonly quick: boolean
}

const streamId = "bench"
const channel = "event_store_appended"

const event = (index: number): NewEvent => ({
  type: "TaskCompleted",
  version: 1,
  data: { _tag: "TaskCompleted", taskId: index, attempt: 1, output: `done ${index}` },
  metadata: { eventId: randomUUID() }
})

/** Appends one event at `expected` and returns when it has committed. */
type AppendOne = (aggregateId: string, expected: number, index: number) => Promise<void>

// --- The store ------------------------------------------------------------------------------------------------------

const storeAppend =
  (store: EventStoreService): AppendOne =>
  (aggregateId, expected, index) =>
    Effect.runPromise(Effect.asVoid(store.append(streamId, aggregateId, [event(index)], expected)))

// --- By hand: the store's statement (a lock per aggregate), and the previous design (one store-wide lock) -----------

/** The previous design's store-wide lock key. */
const storeWideKey = 7_243_150_001

const oneEventParams = (aggregateId: string, expected: number, index: number): Array<unknown> => {
  const data = event(index)
  return [
    streamId,
    aggregateId,
    new Date(),
    streamId,
    aggregateId,
    1,
    data.type,
    String(data.version),
    JSON.stringify(data.data),
    JSON.stringify(data.metadata),
    expected
  ]
}

const perAggregateText = appendStatement("pg", 1, true, "standalone").text
/** The previous statement: the same, with the store-wide lock instead of the aggregate's. */
const storeWideText = perAggregateText.replace(
  /pg_try_advisory_xact_lock\([^)]*\)\)/,
  `pg_try_advisory_xact_lock(${storeWideKey}::bigint)`
)
/** The previous design's transaction way, taken when the lock is busy: wait for the lock, then insert. */
const storeWideWaitText = appendStatement("pg", 1, true, "insert").text

const byHand =
  (clients: ReadonlyArray<pg.Client>, storeWide: boolean): ((writer: number) => AppendOne) =>
  (writer) => {
    const client = clients[writer] as pg.Client
    return async (aggregateId, expected, index) => {
      const params = oneEventParams(aggregateId, expected, index)
      const text = storeWide ? storeWideText : perAggregateText
      const name = storeWide ? "bench_store_wide" : "bench_per_aggregate"
      const result = await client.query({ name, text, values: [...params, channel] })
      if (result.rows.length === 1 && result.rows[0]?.held === false) {
        // Busy: the transaction way, which waits for the lock (the previous store did the same).
        await client.query("BEGIN")
        try {
          await client.query(
            storeWide
              ? `SELECT pg_advisory_xact_lock(${storeWideKey})`
              : `SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2::text, ${appendLockSeed}))`,
            storeWide ? [] : [streamId, aggregateId]
          )
          const inserted = await client.query({ name: "bench_wait_insert", text: storeWideWaitText, values: params })
          if (inserted.rows.length !== 1) throw new Error(`conflict at ${expected}`)
          await client.query("SELECT pg_notify($1, $2)", [channel, "0"])
          await client.query("COMMIT")
        } catch (error) {
          await client.query("ROLLBACK")
          throw error
        }
      } else if (result.rows.length !== 1 || result.rows[0]?.position === null) {
        throw new Error(`conflict at ${expected}`)
      }
    }
  }

// --- Workloads ------------------------------------------------------------------------------------------------------

/** `writers` writers, `each` appends each to a session of their own; returns the appends per second. */
const throughput = async (appendFor: (writer: number) => AppendOne, writers: number, each: number, tag: string) => {
  const start = nowMs()
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      const append = appendFor(writer)
      for (let index = 0; index < each; index++) await append(`${tag}-w${writer}`, index, index)
    })
  )
  return (writers * each) / ((nowMs() - start) / 1_000)
}

/**
 * The p99 latency of appends by `writers` writers while another writer keeps an append's transaction open for
 * `holdMs` at a time, again and again.
 */
const besideSlow = async (
  appendFor: (writer: number) => AppendOne,
  hold: (aggregateId: string, expected: number) => Promise<void>,
  writers: number,
  each: number,
  tag: string
) => {
  let running = true
  const slow = (async () => {
    for (let expected = 0; running; expected++) await hold(`${tag}-slow`, expected)
  })()
  const latencies: Array<number> = []
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      const append = appendFor(writer)
      for (let index = 0; index < each; index++) {
        const start = nowMs()
        await append(`${tag}-w${writer}`, index, index)
        latencies.push(nowMs() - start)
      }
    })
  )
  running = false
  await slow
  return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) }
}

const holdMs = 50

export const parallelAppends = async (options: ParallelAppendOptions): Promise<Array<Row>> => {
  const writers = 8
  const each = options.quick ? 30 : 150
  const slowWriters = 4
  const slowEach = options.quick ? 20 : 60
  const samples = {
    ours: [] as Array<number>,
    perAggregate: [] as Array<number>,
    storeWide: [] as Array<number>,
    oursP99: [] as Array<number>,
    storeWideP99: [] as Array<number>,
    oursP50: [] as Array<number>,
    storeWideP50: [] as Array<number>
  }
  for (let run = 0; run < options.runs; run++) {
    const url = await options.freshPgUrl("bench_parallel_appends")
    const scope = Effect.runSync(Scope.make())
    const context = await Effect.runPromise(
      Layer.buildWithScope(
        PgEventStore.layer({ url: Redacted.make(url), client: { maxConnections: writers + 4 } }),
        scope
      )
    )
    const store = Context.get(context, EventStore)
    const clients = Array.from({ length: writers + 1 }, () => new pg.Client({ connectionString: url }))
    try {
      await Promise.all(clients.map((client) => client.connect()))
      const ours = () => storeAppend(store)
      const perAggregate = byHand(clients, false)
      const storeWide = byHand(clients, true)
      log(`parallel appends: ${writers} writers x ${each} appends, run ${run + 1} of ${options.runs}`)
      // Interleaved, the order turned every run, so that the machine's noise meets all three.
      const order =
        run % 2 === 0
          ? (["ours", "perAggregate", "storeWide"] as const)
          : (["storeWide", "perAggregate", "ours"] as const)
      for (const which of order) {
        const appendFor = which === "ours" ? ours : which === "perAggregate" ? perAggregate : storeWide
        samples[which].push(await throughput(appendFor, writers, each, `${which}-${run}`))
      }

      log(`parallel appends: ${slowWriters} writers beside a transaction held ${holdMs} ms, run ${run + 1}`)
      const slowClient = clients[writers] as pg.Client
      // The store's append with an `alongside` that keeps its transaction open.
      const oursHold = (aggregateId: string, expected: number) =>
        Effect.runPromise(
          Effect.asVoid(
            store.append(streamId, aggregateId, [event(expected)], expected, () => Effect.sleep(`${holdMs} millis`))
          )
        )
      // The previous design's: the store-wide lock held in a transaction that appended.
      const storeWideHold = async (aggregateId: string, expected: number) => {
        await slowClient.query("BEGIN")
        await slowClient.query(`SELECT pg_advisory_xact_lock(${storeWideKey})`)
        await slowClient.query({
          name: "bench_wait_insert",
          text: storeWideWaitText,
          values: oneEventParams(aggregateId, expected, expected)
        })
        await new Promise((resolve) => setTimeout(resolve, holdMs))
        await slowClient.query("COMMIT")
      }
      const oursSlow = await besideSlow(ours, oursHold, slowWriters, slowEach, `slow-ours-${run}`)
      const storeWideSlow = await besideSlow(storeWide, storeWideHold, slowWriters, slowEach, `slow-wide-${run}`)
      samples.oursP50.push(oursSlow.p50)
      samples.oursP99.push(oursSlow.p99)
      samples.storeWideP50.push(storeWideSlow.p50)
      samples.storeWideP99.push(storeWideSlow.p99)
    } finally {
      await Promise.all(clients.map((client) => client.end().catch(() => undefined)))
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
  const scenario = `parallel appends, ${writers} writers`
  const ratio = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.map((value, index) => value / (b[index] ?? 1))
  const besideScenario = `appends beside a ${holdMs} ms transaction, ${slowWriters} writers`
  return [
    row({ scenario, backend: "pg", metric: "ours", unit: "appends/s", samples: samples.ours }),
    row({
      scenario,
      backend: "pg",
      metric: "by hand, lock per aggregate",
      unit: "appends/s",
      samples: samples.perAggregate
    }),
    row({
      scenario,
      backend: "pg",
      metric: "by hand, store-wide lock (previous design)",
      unit: "appends/s",
      samples: samples.storeWide
    }),
    row({
      scenario,
      backend: "pg",
      metric: "ours / store-wide lock",
      unit: "x",
      samples: ratio(samples.ours, samples.storeWide)
    }),
    row({ scenario: besideScenario, backend: "pg", metric: "ours p50", unit: "ms", samples: samples.oursP50 }),
    row({ scenario: besideScenario, backend: "pg", metric: "ours p99", unit: "ms", samples: samples.oursP99 }),
    row({
      scenario: besideScenario,
      backend: "pg",
      metric: "store-wide lock p50",
      unit: "ms",
      samples: samples.storeWideP50
    }),
    row({
      scenario: besideScenario,
      backend: "pg",
      metric: "store-wide lock p99",
      unit: "ms",
      samples: samples.storeWideP99
    })
  ]
}
