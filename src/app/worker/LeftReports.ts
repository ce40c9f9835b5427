/**
 * Reports of one session that nobody records (PostgreSQL), recorded by the run of that session (`planner run`,
 * `resume`): a run of one session writes it itself and is no session writer (see `SessionWriter`), but outcomes that
 * workers serving every session reported into their jobs' rows wait for a writer. When those workers stopped, their
 * writer with them, nobody would record them, and the resumed run would wait for those tasks for ever. The run looks
 * when it starts and then while it runs (paced like the other looks, see `Pacing`): reports with no live writer, or
 * whose writer is a process of this host that is gone, it records itself, batch by batch. A live writer's reports are
 * left to it.
 */
import { Clock, Duration, Effect } from "effect"
import type { OutcomeReports, PendingReport } from "../../infra/TaskQueue.js"
import { recordStored, reportsPerAppend } from "./SessionWriter.js"
import { isDeadLocalWorker } from "./WorkerIdentity.js"

export interface LeftReportsOptions {
  readonly reports: OutcomeReports
  readonly sessionId: string
  /** How long a report may wait for its writer before a look counts it as left (its notification may be lost). */
  readonly interval: Duration.DurationInput
  /** Records a batch of the session's reports in the log (`AttemptRunner.recordReports`). */
  readonly record: (
    sessionId: string,
    reports: ReadonlyArray<PendingReport>
  ) => Effect.Effect<{ readonly ended: boolean }, { readonly message: string }>
}

/** One look: records the session's reports nobody records; whether it found any. */
export const recordLeft = (options: LeftReportsOptions): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const { reports, sessionId } = options
    const now = yield* Clock.currentTimeMillis
    const sessions = yield* reports.unrecorded(now - Duration.toMillis(Duration.decode(options.interval)))
    const left = sessions.some(
      (session) =>
        session.sessionId === sessionId && (session.writer === undefined || isDeadLocalWorker(session.writer))
    )
    if (!left) return false
    yield* recordStored(reports, sessionId, reportsPerAppend, (waiting) =>
      Effect.map(options.record(sessionId, waiting), ({ ended }) => !ended)
    )
    return true
  }).pipe(
    Effect.catchAll((error) =>
      Effect.as(Effect.logWarning(`could not record reports of session ${options.sessionId}: ${error.message}`), true)
    )
  )
