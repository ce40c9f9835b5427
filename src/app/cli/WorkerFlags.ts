/** Flags of the commands that run a worker (`planner worker`, `planner serve --worker`), checked alike. */
import { Effect } from "effect"
import { maxGatherMs } from "../Linger.js"
import { usage } from "./Failure.js"

/** `--gather-ms`: a whole number of milliseconds from 0 to `maxGatherMs` (see `WorkerOptions.gatherMs`). */
export const checkGatherMs = (gatherMs: number) =>
  Number.isInteger(gatherMs) && gatherMs >= 0 && gatherMs <= maxGatherMs
    ? Effect.void
    : Effect.fail(usage(`--gather-ms must be a whole number of milliseconds from 0 to ${maxGatherMs}.`))
