/**
 * A worker's reports (see `TaskQueue.OutcomeReports`), sent in groups: one statement at a time, and the reports made
 * while it is out go together in the next, with one take of the worker's next jobs for every slot they free. This is
 * a database's group commit: a lone report waits for nothing, and a burst costs one round trip instead of one each.
 *
 * Bursts are the rule, not the exception: the slots one take filled run alike tasks and end close together, and the
 * take that comes with their group fills them together again. Each report saved is a statement, a commit and a wake-up
 * of every listening connection less on PostgreSQL, and the session's writer hears the group at once and records it
 * in one append.
 *
 * A report whose attempt was interrupted before its group went out is left out of it. One that went out stays stored:
 * the writer records it, or refuses it as a lost race once the attempt ended otherwise.
 */
import { Deferred, Effect, Exit, FiberId, Queue, type Scope } from "effect"
import type {
  AlongsideTake,
  JobKey,
  OutcomeReports,
  Reported,
  ReportedOutcome,
  TaskQueueError
} from "../../infra/TaskQueue.js"

export interface ReportGroups {
  /** Stores the outcome in its job's row, in the next group that goes out; what was found, as `report` says. */
  readonly report: (key: JobKey, outcome: unknown) => Effect.Effect<Reported, TaskQueueError>
}

export interface ReportGroupsOptions {
  readonly reports: OutcomeReports
  readonly workerId: string
  /** The worker's next jobs to take with a group, for the slots its `freeing` reports free (see `AttemptRunner`). */
  readonly takeNext?: ((freeing: number) => AlongsideTake | undefined) | undefined
  /** The most reports in one statement. */
  readonly limit?: number
}

interface Waiting {
  readonly outcome: ReportedOutcome
  readonly answer: Deferred.Deferred<Reported, TaskQueueError>
  /** Its attempt was interrupted before its group went out: left out. */
  withdrawn: boolean
}

/** What a group's statement found for an outcome it did not answer for (it cannot happen; read as "not stored"). */
const unanswered: Reported = { stored: false, writer: undefined }

export const make = (options: ReportGroupsOptions): Effect.Effect<ReportGroups, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { reports, workerId } = options
    const limit = Math.max(1, options.limit ?? 64)
    const waiting = yield* Queue.unbounded<Waiting>()
    /** The group out now: answered with an interruption if the worker stops while it is. */
    let out: ReadonlyArray<Waiting> = []

    const send = (group: ReadonlyArray<Waiting>): Effect.Effect<void> => {
      const live = group.filter((report) => !report.withdrawn)
      if (live.length === 0) return Effect.void
      out = live
      return Effect.suspend(() =>
        reports.reportAll(
          live.map((report) => report.outcome),
          workerId,
          options.takeNext?.(live.length)
        )
      ).pipe(
        Effect.exit,
        Effect.flatMap((exit) =>
          Effect.sync(() => {
            out = []
            live.forEach((report, index) => {
              Deferred.unsafeDone(
                report.answer,
                Exit.isSuccess(exit) ? Exit.succeed(exit.value[index] ?? unanswered) : Exit.failCause(exit.cause)
              )
            })
          })
        )
      )
    }

    // The worker stops: whoever still waits for an answer is interrupted, as its attempt is by then.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Queue.takeAll(waiting), (left) =>
        Effect.forEach([...out, ...left], (report) => Deferred.interrupt(report.answer), { discard: true })
      )
    )
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(Queue.take(waiting), (first) =>
          Effect.flatMap(Queue.takeUpTo(waiting, limit - 1), (rest) => send([first, ...rest]))
        )
      )
    )

    return {
      report: (key, outcome) =>
        Effect.suspend(() => {
          const report: Waiting = {
            outcome: { key, outcome },
            answer: Deferred.unsafeMake<Reported, TaskQueueError>(FiberId.none),
            withdrawn: false
          }
          Queue.unsafeOffer(waiting, report)
          return Deferred.await(report.answer).pipe(
            Effect.onInterrupt(() =>
              Effect.sync(() => {
                report.withdrawn = true
              })
            )
          )
        })
    }
  })
