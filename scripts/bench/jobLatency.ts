/**
 * Job wake-up latency across processes on PostgreSQL: from the commit of a transaction that enqueued a job (as the
 * writer's dispatch does, in the transaction of its `TaskDispatched` append) to another process holding the job,
 * p50 and p99 over a few hundred jobs spaced 2-6 ms apart. The other process (`jobLatencyChild.ts`) waits with
 * `awaitWork`, woken by LISTEN/NOTIFY (its poll is a minute, so nothing else can wake it in time), then `take`s.
 *
 * This is the queue's part of "dispatch to executor start"; `scale.ts` runs the whole path with real workers.
 */
import { SqlClient } from "@effect/sql"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as SqlTaskQueue from "../../src/infra/SqlTaskQueue.js"
import { TaskQueue } from "../../src/infra/TaskQueue.js"
import { log, nowMs, parseJson, quantile, type Row, row, sleep, spawnScript } from "./common.js"

export interface JobLatencyOptions {
  readonly runs: number
  readonly freshPgUrl: (prefix: string) => Promise<string>
  readonly quick: boolean
}

interface Taken {
  readonly sessionId: string
  readonly taskId: number
  readonly takenAt: number
}

const isTaken = (message: unknown): message is Taken =>
  typeof message === "object" && message !== null && "takenAt" in message && "sessionId" in message

/** 2 to 6 ms between jobs, varied so that they do not beat in step with timers. */
const spacing = (index: number) => 2 + ((index * 7_919) % 5)

const job = (sessionId: string, taskId: number) => ({
  sessionId,
  taskId,
  attempt: 1,
  kind: "Processing" as const,
  runAt: 0,
  payload: { description: `latency probe ${taskId}` }
})

export const jobLatency = async (options: JobLatencyOptions): Promise<Array<Row>> => {
  const count = options.quick ? 100 : 400
  const url = await options.freshPgUrl("bench_job_latency")
  const scope = Effect.runSync(Scope.make())
  const child = await spawnScript("./jobLatencyChild.ts", [url])
  try {
    const context = await Effect.runPromise(
      Layer.buildWithScope(
        SqlTaskQueue.layer().pipe(Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) }))),
        scope
      )
    )
    const queue = Context.get(context, TaskQueue)
    const sql = Context.get(context, SqlClient.SqlClient)
    const taken = new Map<string, number>()
    child.onLine((line) => {
      const message = parseJson(line)
      if (isTaken(message)) taken.set(`${message.sessionId}/${message.taskId}`, message.takenAt)
    })
    /** Enqueues in a transaction, as a dispatch does; returns when it committed. */
    const dispatch = (sessionId: string, taskId: number) =>
      Effect.runPromise(sql.withTransaction(queue.enqueue([job(sessionId, taskId)])).pipe(Effect.as(nowMs())))

    // Ping until the child has taken a ping: from then on its LISTEN is active.
    const started = Date.now()
    for (let ping = 1; !taken.has(`ping/${ping - 1}`); ping++) {
      if (Date.now() - started > 90_000) throw new Error(`the taker process never started\n${child.stderr()}`)
      await dispatch("ping", ping)
      await sleep(100)
    }

    const p50s: Array<number> = []
    const p99s: Array<number> = []
    for (let run = 0; run <= options.runs; run++) {
      log(
        `job wake-up latency across processes on PostgreSQL: ${count} jobs, run ${run} of ${options.runs}${run === 0 ? " (warm-up)" : ""}`
      )
      const sessionId = `run-${run}`
      const committedAt: Array<number> = []
      for (let index = 0; index < count; index++) {
        committedAt.push(await dispatch(sessionId, index + 1))
        await sleep(spacing(index))
      }
      const deadline = Date.now() + 30_000
      const missing = () => committedAt.filter((_, index) => !taken.has(`${sessionId}/${index + 1}`)).length
      while (missing() > 0 && Date.now() < deadline) await sleep(20)
      if (missing() > 0) throw new Error(`the taker process took ${count - missing()} of ${count} jobs`)
      const latencies = committedAt.map((at, index) => (taken.get(`${sessionId}/${index + 1}`) ?? Number.NaN) - at)
      if (run > 0) {
        p50s.push(quantile(latencies, 0.5))
        p99s.push(quantile(latencies, 0.99))
      }
    }
    const scenario = "job wake-up latency, across processes"
    return [
      row({
        scenario,
        backend: "PostgreSQL",
        metric: "enqueue commit to take in another process, p50",
        unit: "ms",
        samples: p50s
      }),
      row({
        scenario,
        backend: "PostgreSQL",
        metric: "enqueue commit to take in another process, p99",
        unit: "ms",
        samples: p99s,
        target: { kind: "max", value: 25 }
      })
    ]
  } finally {
    await child.stop()
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
