/**
 * Orchestration overhead: a chain of 1,000 tasks (each depends on the one before) run by `Runner.run` with the echo
 * executor on a SQLite file, in one process: the runner, its worker and the store. The executor's own time is
 * measured and subtracted, so what remains is what the planner costs per task: the dispatch, claim and completion
 * commands (each a load, a decision and an append) and the subscriptions that carry their events.
 *
 * The peer: the same chain run by LangGraph.js with its SQLite checkpointer (`langgraphPeer.ts`), in the same process,
 * interleaved with ours run by run (ours, then the peer), so that both meet the same machine load. The ratio of the
 * two overheads is reported per pair of runs.
 */
import * as path from "node:path"
import { Effect } from "effect"
import * as Runner from "../../src/app/Runner.js"
import { echo } from "../../src/infra/EchoExecutor.js"
import type { ExecutorService } from "../../src/infra/Executor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { plannerRuntime } from "../../test/app/fixtures/runtime.js"
import { log, nowMs, type Row, row, tempDir } from "./common.js"
import { langGraphChain, type PeerRun } from "./langgraphPeer.js"
import { plan, startSession } from "./runtime.js"

export interface OrchestrationOptions {
  readonly runs: number
  readonly quick: boolean
}

interface ChainRun {
  readonly tasks: number
  readonly wallMs: number
  /** CPU time of this process during the run: the runner, its worker and SQLite all run here. */
  readonly cpuMs: number
  readonly executorMs: number
  /** When each task's completion reached the runner, in order. */
  readonly completions: ReadonlyArray<number>
  readonly startedAt: number
}

const chainRun = async (tasks: number): Promise<ChainRun> => {
  const folder = tempDir("orchestration")
  let executorMs = 0
  // The echo executor, timed.
  const timedEcho: ExecutorService = {
    name: "echo",
    execute: (context) =>
      Effect.suspend(() => {
        const start = nowMs()
        return Effect.map(echo.execute(context), (outcome) => {
          executorMs += nowMs() - start
          return outcome
        })
      })
  }
  try {
    const layer = plannerRuntime(SqliteEventStore.layer({ filename: path.join(folder.dir, "events.db") }), timedEcho)
    return await Effect.runPromise(
      Effect.gen(function* () {
        const sessionId = yield* startSession(plan(tasks, true))
        const completions: Array<number> = []
        const startedAt = nowMs()
        const cpuBefore = process.cpuUsage()
        const result = yield* Runner.run(sessionId, {
          onProgress: (progress) =>
            Effect.sync(() => {
              const event = progress.record.event
              if (event._tag === "TaskStatusUpdated" && event.status === "Completed") completions.push(nowMs())
            })
        })
        const wallMs = nowMs() - startedAt
        const cpu = process.cpuUsage(cpuBefore)
        if (result.state.status !== "Succeeded") {
          return yield* Effect.dieMessage(`the chain ended ${result.state.status}, not Succeeded`)
        }
        return { tasks, wallMs, cpuMs: (cpu.user + cpu.system) / 1_000, executorMs, completions, startedAt }
      }).pipe(Effect.provide(layer))
    )
  } finally {
    folder.remove()
  }
}

/** Milliseconds per task over the completions from `from` to `to` (indexes into the completion times). */
const perTask = (run: ChainRun, from: number, to: number) => {
  const start = from === 0 ? run.startedAt : (run.completions[from - 1] ?? Number.NaN)
  return ((run.completions[to - 1] ?? Number.NaN) - start) / (to - from)
}

export const orchestration = async (options: OrchestrationOptions): Promise<Array<Row>> => {
  const tasks = options.quick ? 200 : 1_000
  log(`orchestration: warm-up chains of ${Math.min(100, tasks)} tasks, ours and LangGraph.js's`)
  await chainRun(Math.min(100, tasks))
  await langGraphChain(Math.min(100, tasks))
  const runs: Array<ChainRun> = []
  const peers: Array<PeerRun> = []
  for (let run = 0; run < options.runs; run++) {
    log(`orchestration: chain of ${tasks} echo tasks on SQLite, run ${run + 1} of ${options.runs}`)
    runs.push(await chainRun(tasks))
    log(
      `orchestration: the same chain with LangGraph.js and its SQLite checkpointer, run ${run + 1} of ${options.runs}`
    )
    peers.push(await langGraphChain(tasks))
  }
  const overhead = (r: { wallMs: number; executorMs: number; tasks: number }) => (r.wallMs - r.executorMs) / r.tasks
  const scenario = `orchestration, ${tasks}-task chain, echo`
  const backend = "SQLite file"
  const tenth = Math.floor(tasks / 10)
  return [
    row({
      scenario,
      backend,
      metric: "overhead per task (wall time minus executor time)",
      unit: "ms",
      samples: runs.map(overhead),
      target: { kind: "max", value: 1 }
    }),
    row({
      scenario,
      backend,
      metric: "LangGraph.js + SQLite checkpointer: overhead per step (same chain, interleaved)",
      unit: "ms",
      samples: peers.map(overhead)
    }),
    row({
      scenario,
      backend,
      metric: "LangGraph.js overhead / ours (run by run; above 1: ours is faster)",
      unit: "x",
      samples: peers.map((peer, index) => overhead(peer) / overhead(runs[index] ?? peer)),
      target: { kind: "min", value: 1 }
    }),
    row({
      scenario,
      backend,
      metric: "LangGraph.js + SQLite checkpointer: CPU per step",
      unit: "ms",
      samples: peers.map((peer) => peer.cpuMs / peer.tasks)
    }),
    row({
      scenario,
      backend,
      metric: "CPU per task (runner, worker and SQLite all run in this process)",
      unit: "ms",
      samples: runs.map((r) => r.cpuMs / r.tasks),
      // The target for the CPU per task over every process on SQLite: here every part of the run is this process.
      target: { kind: "max", value: 1.5 },
      note: "less sensitive to other load than the wall time"
    }),
    row({
      scenario,
      backend,
      metric: "executor time per task",
      unit: "ms",
      samples: runs.map((r) => r.executorMs / r.tasks)
    }),
    row({
      scenario,
      backend,
      metric: "tasks per second",
      unit: "tasks/s",
      samples: runs.map((r) => (r.tasks * 1_000) / r.wallMs)
    }),
    row({
      scenario,
      backend,
      metric: `wall time per task, first ${tenth} tasks`,
      unit: "ms",
      samples: runs.map((r) => perTask(r, 0, tenth))
    }),
    row({
      scenario,
      backend,
      metric: `wall time per task, last ${tenth} tasks`,
      unit: "ms",
      samples: runs.map((r) => perTask(r, tasks - tenth, tasks))
    })
  ]
}
