/**
 * A taker in another process, for the job wake-up latency benchmark: waits for jobs on a PostgreSQL task queue
 * (`awaitWork`, woken by LISTEN/NOTIFY; its safety-net poll is set to a minute so that only NOTIFY can explain a
 * prompt take) and prints when it took each one, on CLOCK_MONOTONIC (`nowMs`), which on Linux is one clock for the
 * whole machine.
 *
 * Usage: jobLatencyChild.ts <database url>. Prints {"sessionId", "taskId", "takenAt"} per job; runs until killed.
 */
import { Context, Effect, Layer, Redacted } from "effect"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as SqlTaskQueue from "../../src/infra/SqlTaskQueue.js"
import { TaskQueue } from "../../src/infra/TaskQueue.js"
import { nowMs } from "./common.js"

const [url = ""] = process.argv.slice(2)

const program = Effect.scoped(
  Effect.gen(function* () {
    const layer = SqlTaskQueue.layer({
      pollInterval: "1 minute",
      durableLeases: process.env.QUEUE_DURABLE_LEASES === "1"
    }).pipe(Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) })))
    const queue = Context.get(yield* Layer.build(layer), TaskQueue)
    while (true) {
      const taken = yield* queue.take({ workerId: "latency-child", limit: 16, leaseMs: 60_000 })
      const takenAt = nowMs()
      // (Not completed: the lease of a minute outlasts the run, and a worker completes through the writer anyway.)
      for (const job of taken) console.log(JSON.stringify({ sessionId: job.sessionId, taskId: job.taskId, takenAt }))
      // The first wait starts LISTEN and looks only once it is active.
      if (taken.length === 0) yield* queue.awaitWork()
    }
  })
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)

for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => process.exit(0))
