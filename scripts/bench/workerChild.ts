/**
 * A worker process for the horizontal-scale benchmark: `Worker.run` over a PostgreSQL store, serving every session
 * with its default concurrency, the script executor taking 20 ms per task.
 *
 * Usage: workerChild.ts <database url> [delay ms, default 20] [--report-starts]. Prints {"ready": true} once the
 * worker serves; with --report-starts also {"sessionId", "taskId", "startedAt"} when the executor starts a task
 * (CLOCK_MONOTONIC, `nowMs`, one clock for the whole machine on Linux); runs until killed. With SCALE_SPREAD=1 the
 * tasks are unlike instead: 10 to 28 ms by the last digit of their number (19 ms on average), so that attempts a take
 * started together do not end together (what grouping their outcomes costs and saves then: docs/performance.md).
 */
import { Effect, Logger, LogLevel, Redacted } from "effect"
import * as Worker from "../../src/app/Worker.js"
import type { ExecutorService } from "../../src/infra/Executor.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { plannerRuntime } from "../../test/app/fixtures/runtime.js"
import { nowMs, startCpuProfile } from "./common.js"

const [url = "", delay = "20"] = process.argv.slice(2)

/** With STATEMENT_COUNTS=<folder>: every statement this worker sends, counted by its text, written there when it stops. */
const statementsFolder = process.env.STATEMENT_COUNTS
const statementCounts = new Map<string, number>()
if (statementsFolder !== undefined) {
  const pg = (await import("pg")).default
  const query = pg.Client.prototype.query as (...args: Array<unknown>) => unknown
  pg.Client.prototype.query = function (this: unknown, ...args: Array<unknown>) {
    const config = args[0] as string | { readonly text?: string; readonly name?: string }
    const text = typeof config === "string" ? config : (config.name ?? config.text ?? "?")
    const key = text.replace(/\s+/g, " ").slice(0, 100)
    statementCounts.set(key, (statementCounts.get(key) ?? 0) + 1)
    return query.apply(this, args)
  } as typeof pg.Client.prototype.query
}
const reportStarts = process.argv.includes("--report-starts")

const spread = process.env.SCALE_SPREAD === "1"
const script = JSON.stringify({
  rules: spread
    ? Array.from({ length: 10 }, (_, digit) => ({
        match: `step \\d*${digit} `,
        delayMs: 10 + 2 * digit,
        outcomes: [{ complete: "done: {description}" }]
      }))
    : [{ match: ".", delayMs: Number(delay), outcomes: [{ complete: "done: {description}" }] }],
  default: { complete: "done" }
})

// The worker says it serves with a debug line once it is set up; that is the moment to report ready. Other lines of
// level info and above go to stderr, so stdout carries only what the benchmark reads.
const logger = Logger.make(({ logLevel, message }) => {
  const text = Array.isArray(message) ? message.join(" ") : String(message)
  if (text.includes(" serving ")) process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
  else if (LogLevel.greaterThanEqual(logLevel, LogLevel.Info)) process.stderr.write(`${text}\n`)
})

const program = Effect.gen(function* () {
  const scripted = ScriptExecutor.make(yield* ScriptExecutor.parse(script, "bench-script.json"))
  const executor: ExecutorService = reportStarts
    ? {
        name: scripted.name,
        execute: (context) =>
          Effect.suspend(() => {
            const startedAt = nowMs()
            process.stdout.write(
              `${JSON.stringify({ sessionId: context.sessionId, taskId: context.taskId, startedAt })}\n`
            )
            return scripted.execute(context)
          })
      }
    : scripted
  const layer = plannerRuntime(PgEventStore.layer({ url: Redacted.make(url) }), executor)
  return yield* Worker.run({ checkAttachments: false }).pipe(Effect.provide(layer))
}).pipe(Logger.withMinimumLogLevel(LogLevel.Debug), Effect.provide(Logger.replace(Logger.defaultLogger, logger)))

Effect.runPromise(program as Effect.Effect<unknown, unknown>).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)

// With PROFILE_WORKERS=<folder>: a CPU profile of this worker, written there when the benchmark stops it (for
// `scripts/bench` readers of where a worker's time goes; `--cpu-prof` is not allowed in NODE_OPTIONS).
const profileFolder = process.env.PROFILE_WORKERS
const profiler = profileFolder === undefined ? undefined : await startCpuProfile(500)
const stop = async () => {
  if (profiler !== undefined) await profiler.stop(`${profileFolder}/worker-${process.pid}.cpuprofile`)
  if (statementsFolder !== undefined) {
    const { writeFileSync } = await import("node:fs")
    writeFileSync(
      `${statementsFolder}/statements-${process.pid}.json`,
      JSON.stringify(Object.fromEntries(statementCounts))
    )
  }
  process.exit(0)
}

// Stop promptly when the benchmark is done with this worker.
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void stop())
