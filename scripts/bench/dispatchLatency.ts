/**
 * Dispatch to executor start across processes on PostgreSQL, the whole path issue 13 budgets (p99 <= 25 ms): this
 * process records one-task plans 20-40 ms apart through the writer (`PlannerService`), whose append of the
 * dispatch commits with the job's insert; a worker process (`workerChild.ts --report-starts`, `Worker.run` over the
 * same database) is woken by NOTIFY, takes the job, records the claim through its own writer, and starts the
 * executor, which reports when. Both processes read CLOCK_MONOTONIC (`nowMs`).
 *
 * The commit time is when the recording call returned here, a little after the commit itself, so the figure errs on
 * the short side by the reply's way back (well under a millisecond on one machine); the executor's start is taken as
 * the first thing it does.
 */
import { Effect, Exit, Layer, Redacted, Scope } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import { log, nowMs, parseJson, quantile, type Row, row, sleep, spawnScript } from "./common.js"
import { plan, startSession } from "./runtime.js"

export interface DispatchLatencyOptions {
  readonly runs: number
  readonly freshPgUrl: (prefix: string) => Promise<string>
  readonly quick: boolean
}

interface Started {
  readonly sessionId: string
  readonly startedAt: number
}

const isStarted = (message: unknown): message is Started =>
  typeof message === "object" && message !== null && "startedAt" in message && "sessionId" in message

const isReady = (line: string) => {
  const message = parseJson(line)
  return typeof message === "object" && message !== null && "ready" in message
}

/**
 * 20 to 40 ms between plans, varied so that they do not beat in step with timers: longer than the worker needs for
 * one task, so that each job finds it waiting. What is measured is the wake-up, not a backlog.
 */
const spacing = (index: number) => 20 + ((index * 7_919) % 21)

export const dispatchLatency = async (options: DispatchLatencyOptions): Promise<Array<Row>> => {
  const count = options.quick ? 100 : 200
  const url = await options.freshPgUrl("bench_dispatch_latency")
  const scope = Effect.runSync(Scope.make())
  const layer = PlannerService.layer().pipe(
    Layer.provideMerge(PlannerStore.layer),
    Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) }))
  )
  const child = await spawnScript("./workerChild.ts", [url, "0", "--report-starts"])
  try {
    const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
    const started = new Map<string, number>()
    child.onLine((line) => {
      const message = parseJson(line)
      if (isStarted(message)) started.set(message.sessionId, message.startedAt)
    })
    await child.waitFor(isReady, 90_000)
    /** Records a one-task plan; its task is dispatched in the same append. Returns the session and when it returned. */
    const dispatch = () =>
      Effect.runPromise(
        startSession(plan(1, false)).pipe(
          Effect.map((sessionId) => ({ sessionId, committedAt: nowMs() })),
          Effect.provide(context)
        )
      )
    // A few plans first, so that the worker's LISTEN is surely active before anything is measured.
    for (let warm = 0; warm < 5; warm++) {
      const { sessionId } = await dispatch()
      const deadline = Date.now() + 60_000
      while (!started.has(sessionId) && Date.now() < deadline) await sleep(20)
      if (!started.has(sessionId)) throw new Error(`the worker process never started a task\n${child.stderr()}`)
    }
    const p50s: Array<number> = []
    const p99s: Array<number> = []
    for (let run = 0; run <= options.runs; run++) {
      log(
        `dispatch to executor start across processes on PostgreSQL: ${count} plans, run ${run} of ${options.runs}${run === 0 ? " (warm-up)" : ""}`
      )
      const sent: Array<{ sessionId: string; committedAt: number }> = []
      for (let index = 0; index < count; index++) {
        sent.push(await dispatch())
        await sleep(spacing(index))
      }
      const deadline = Date.now() + 60_000
      const missing = () => sent.filter((s) => !started.has(s.sessionId)).length
      while (missing() > 0 && Date.now() < deadline) await sleep(20)
      if (missing() > 0) throw new Error(`the worker started ${count - missing()} of ${count} tasks`)
      const latencies = sent.map((s) => (started.get(s.sessionId) ?? Number.NaN) - s.committedAt)
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
        metric: "dispatch commit to executor start (one worker process), p50",
        unit: "ms",
        samples: p50s
      }),
      row({
        scenario,
        backend: "PostgreSQL",
        metric: "dispatch commit to executor start (one worker process), p99",
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
