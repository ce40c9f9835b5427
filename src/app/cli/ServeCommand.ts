/**
 * `planner serve`: the dashboard (see `Server`) over the same store as the other commands, until SIGINT or SIGTERM,
 * which end it with exit code 0.
 */
import { Effect, type Option } from "effect"
import { ExitCode, setInterruptExitCode, toFailure, usage } from "./Failure.js"
import { plannerLayer, resolveStore } from "./Store.js"

export interface ServeFlags {
  readonly db: Option.Option<string>
  readonly host: string
  readonly port: number
}

export const serve = (flags: ServeFlags) => {
  const store = resolveStore(flags.db)
  return Effect.gen(function* () {
    if (!Number.isInteger(flags.port) || flags.port < 0 || flags.port > 65_535) {
      return yield* usage(`--port must be a port number from 0 (any free port) to 65535; got ${flags.port}.`)
    }
    if (flags.host.trim() === "") return yield* usage("--host needs an address, for example 127.0.0.1.")
    const Server = yield* Effect.promise(() => import("../Server.js"))
    // Stopping is how a server is meant to end: a stop by signal exits with 0.
    setInterruptExitCode(ExitCode.ok)
    return yield* Server.serve({ host: flags.host, port: flags.port })
  }).pipe(Effect.provide(plannerLayer(store)), Effect.mapError(toFailure))
}
