/**
 * `planner doctor`: checks the task queue against the event log it is a projection of (`Jobs.checkAll`: for every
 * session, the jobs its log implies against the jobs the queue holds) and says where they differ. With `--repair` it
 * rebuilds the sessions that differ from their logs (`Jobs.rebuild`: missing jobs put back, stray ones dropped, the
 * leases of jobs it keeps left alone) and checks again.
 *
 * The writer keeps the two equal in one transaction per decision, so drift means something outside it: a queue table
 * restored from another backup than the log, a row edited by hand, a bug. A repair reads a session's log and then
 * replaces its jobs; a dispatch committed in between would be dropped as stray (until `resume` puts it back), so it
 * is meant for a store no planner or worker is writing to, which the help says.
 *
 * A session whose log holds an event that cannot be read is reported and left alone (its jobs cannot be derived from
 * it); the rest of the store is still checked.
 *
 * Exit codes: 0 when the queue matches the log (or was repaired to), 1 when it differs and was left so or a session's
 * log cannot be read, 4 when the store cannot be used.
 */
import { Effect, Layer, Option } from "effect"
import * as Jobs from "../../infra/Jobs.js"
import * as PlannerStore from "../../infra/PlannerStore.js"
import { type ListedJob, TaskQueue } from "../../infra/TaskQueue.js"
import { visible } from "./ErrorLine.js"
import { CliExit, ExitCode, toFailure, unavailable } from "./Failure.js"
import { out, plural, unreadableJson } from "./Output.js"
import { forReading, requireDatabase, resolveExistingStore, storeLayer } from "./Store.js"

export interface DoctorFlags {
  readonly db: Option.Option<string>
  readonly json: boolean
  readonly repair: boolean
}

const jobText = (job: { readonly taskId: number; readonly attempt: number; readonly kind: string }) =>
  `task ${job.taskId} attempt ${job.attempt} (${job.kind})`

const strayText = (job: ListedJob) => `${jobText(job)}${job.workerId === undefined ? "" : `, held by ${job.workerId}`}`

/** One session's drift, as lines. */
export const driftLines = (found: Jobs.JobDrift): ReadonlyArray<string> => [
  `session ${found.sessionId}:`,
  ...found.missing.map((job) => `  missing from the queue: ${jobText(job)}`),
  ...found.stray.map((job) => `  in the queue, not in the log: ${strayText(job)}`)
]

export const doctor = (flags: DoctorFlags) => {
  const found = resolveExistingStore(flags.db)
  // Checking only reads: a store this user cannot write can be checked, not repaired.
  const target = flags.repair ? found : forReading(found)
  return Effect.gen(function* () {
    yield* requireDatabase(target)
    const queue = yield* Effect.serviceOption(TaskQueue)
    if (Option.isNone(queue)) {
      return yield* unavailable("This store has no task queue to check.")
    }
    const checked = yield* Effect.provideService(Jobs.checkAll, TaskQueue, queue.value)
    const found = checked.drifted
    const repaired = flags.repair && found.length > 0
    if (repaired) {
      for (const session of found) yield* Effect.provideService(Jobs.rebuild(session.sessionId), TaskQueue, queue.value)
    }
    // After a repair, what is still different (a session written to meanwhile).
    const left = repaired ? (yield* Effect.provideService(Jobs.checkAll, TaskQueue, queue.value)).drifted : found
    const { unreadable } = checked
    if (flags.json) {
      yield* out(
        JSON.stringify({
          ok: left.length === 0 && unreadable.length === 0,
          drifted: found.map((session) => ({
            sessionId: session.sessionId,
            missing: session.missing,
            stray: session.stray
          })),
          repaired,
          remaining: left.map((session) => session.sessionId),
          unreadable: unreadable.map(unreadableJson)
        })
      )
    } else {
      const lines =
        found.length === 0
          ? unreadable.length === 0
            ? ["The task queue matches the event log: every dispatched attempt has its job, and no job is left over."]
            : []
          : [
              `The task queue differs from the event log in ${plural(found.length, "session")}:`,
              ...found.flatMap(driftLines),
              repaired
                ? left.length === 0
                  ? "Repaired: those sessions' jobs were rebuilt from their logs, and now match."
                  : `Rebuilt from the logs, but ${left.length} session${left.length === 1 ? " still differs" : "s still differ"} (written to meanwhile): run it again with no planner or worker running.`
                : "Run `planner doctor --repair` to rebuild them from their logs (with no planner or worker running)."
            ]
      if (unreadable.length > 0) {
        lines.push(
          `${plural(unreadable.length, "session")} could not be checked: an event of ${unreadable.length === 1 ? "its" : "their"} log cannot be read (the rest of the store was checked).`,
          // What a stored row says is another user's text: escaped, never sent to the terminal as it is.
          ...unreadable.map((corrupt) => visible(`session ${corrupt.aggregateId}: ${corrupt.message}`))
        )
      }
      yield* out(lines.join("\n"))
    }
    if (left.length > 0 || unreadable.length > 0) return yield* new CliExit({ code: ExitCode.planFailed })
  }).pipe(
    Effect.provide(PlannerStore.layer.pipe(Layer.provideMerge(storeLayer(target)))),
    Effect.mapError((error) => (error instanceof CliExit ? error : toFailure(error)))
  )
}
