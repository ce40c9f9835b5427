/**
 * `planner serve`: the dashboard (see `Server`) over the same store as the other commands, until SIGINT or SIGTERM,
 * which end it with exit code 0. With `--worker` it also runs tasks of every session in this process (a worker as
 * `planner worker` runs, with the same executor options as `run`), so plans can be driven from the browser alone.
 */
import { Effect, Option } from "effect"
import { ExecutorRegistry } from "../../infra/Executor.js"
import { raceFirstScoped } from "../../infra/Racing.js"
import * as MemoryLive from "../MemoryLive.js"
import { chooseSpec, type ExecutorSpec, makeExecutors, specText } from "./Executors.js"
import { ExitCode, setInterruptExitCode, toFailure, usage } from "./Failure.js"
import { checkLlmSettings } from "./LlmChoice.js"
import { out } from "./Output.js"
import { runServices } from "./Services.js"
import { plannerLayer, resolveStore } from "./Store.js"
import { checkGatherMs } from "./WorkerFlags.js"

export interface ServeFlags {
  readonly db: Option.Option<string>
  readonly host: string
  readonly port: number
  readonly worker: boolean
  readonly executor: Option.Option<string>
  readonly allowShell: boolean
  readonly noCheckLinks: boolean
  /** With `--worker`: how long an outcome may wait for those of attempts started with it (`WorkerOptions.gatherMs`). */
  readonly gatherMs: number
}

/** The worker `serve --worker` runs beside the server: every session, every kind its executors serve. */
const serverWorker = (flags: ServeFlags, spec: ExecutorSpec) =>
  Effect.gen(function* () {
    const registry = yield* makeExecutors({ spec, allowShell: flags.allowShell })
    const Worker = yield* Effect.promise(() => import("../Worker.js"))
    const workerId = Worker.makeWorkerId()
    yield* out(`Worker ${workerId} runs tasks in this process (${specText(spec)}).`)
    return {
      workerId,
      run: Worker.run({ workerId, gatherMs: flags.gatherMs }).pipe(Effect.provideService(ExecutorRegistry, registry))
    }
  })

/** The flags' values, checked before anything is opened: a bad one creates no store. */
const checkFlags = (flags: ServeFlags) =>
  Effect.gen(function* () {
    if (!Number.isInteger(flags.port) || flags.port < 0 || flags.port > 65_535) {
      return yield* usage(`--port must be a port number from 0 (any free port) to 65535; got ${flags.port}.`)
    }
    if (flags.host.trim() === "") return yield* usage("--host needs an address, for example 127.0.0.1.")
    yield* checkGatherMs(flags.gatherMs)
    if (!flags.worker && (Option.isSome(flags.executor) || flags.allowShell || flags.noCheckLinks)) {
      return yield* usage("--executor, --allow-shell and --no-check-links go with --worker, which runs the tasks.")
    }
    const spec = yield* chooseSpec(flags.executor)
    // The worker's executors and compactor use the LLM the environment names.
    if (flags.worker) yield* checkLlmSettings()
    return spec
  })

export const serve = (flags: ServeFlags) => Effect.flatMap(checkFlags(flags), (spec) => serveChecked(flags, spec))

const serveChecked = (flags: ServeFlags, spec: ExecutorSpec) => {
  const store = resolveStore(flags.db)
  return Effect.gen(function* () {
    const Server = yield* Effect.promise(() => import("../Server.js"))
    // Stopping is how a server is meant to end: a stop by signal exits with 0.
    setInterruptExitCode(ExitCode.ok)
    if (!flags.worker) return yield* Server.serve({ host: flags.host, port: flags.port })
    // The executors and the worker share one set of run services (the LLM, the compactor, the attachment checker).
    return yield* Effect.gen(function* () {
      const worker = yield* serverWorker(flags, spec)
      // Either ending ends both: a worker that lost its store takes the server down with its error.
      return yield* raceFirstScoped(
        Server.serve({ host: flags.host, port: flags.port, workerId: worker.workerId }),
        Effect.andThen(worker.run, Effect.never)
      )
    }).pipe(Effect.provide(runServices({ checkLinks: !flags.noCheckLinks })))
  }).pipe(
    // The memory index is kept live while the server runs: the dashboard's memory search reads it (#17).
    Effect.provide(MemoryLive.liveLayer),
    // The session writer's wait for outcomes on their way has the worker's bound (see `WorkerOptions.gatherMs`).
    Effect.provide(plannerLayer(store, { gatherMs: flags.gatherMs })),
    Effect.mapError(toFailure)
  )
}
