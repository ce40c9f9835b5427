/**
 * A worker's reports (see `TaskQueue.OutcomeReports`), sent in groups: one statement at a time, and the reports made
 * while it is out go together in the next, with one take of the worker's next jobs for every slot they free. This is
 * a database's group commit: a lone report waits for nothing, and a burst of up to `reportsPerGroup` costs one round
 * trip instead of one each.
 *
 * Bursts come from slots one take filled with alike tasks, which end close together, and the take that comes with
 * their group fills them together again. Each report saved is a statement, a commit and a wake-up of every listening
 * connection less on PostgreSQL, and the session's writer hears the group at once and records it in one append.
 *
 * A report whose attempt was interrupted before its group went out is left out of it. One that went out is stored
 * whatever its attempt does: its interruption waits for the answer, and the attempt, told the report is stored
 * (`storedAsInterrupted`), gives nothing back (which would make the writer refuse the report as a lost race, and the
 * task run again). Each group's statement is a span of its own (when spans go anywhere), linked to the attempts whose
 * reports it carries.
 */
import { Deferred, Effect, Exit, FiberId, Queue, type Scope, type Tracer } from "effect"
import {
  type AlongsideTake,
  type JobKey,
  jobKeyString,
  type OutcomeReports,
  type Reported,
  type ReportedOutcome,
  reportsPerGroup,
  type TaskQueueError
} from "../../infra/TaskQueue.js"
import { hotSpan, tracedSpan } from "../../infra/Tracing.js"
import { gatherBound, linger } from "../Linger.js"

export interface ReportGroups {
  /**
   * Stores the outcome in its job's row, in the next group that goes out; what was found, as `report` says. `awaiting`:
   * whether reports to go with it are still to come (see `worker/Cohorts`), which its group waits a moment for.
   */
  readonly report: (key: JobKey, outcome: unknown, awaiting?: () => boolean) => Effect.Effect<Reported, TaskQueueError>
  /**
   * Whether the report of this job went out before its attempt was interrupted, and was stored: the outcome is then
   * the session writer's to record, and the attempt has nothing to give back. Asked once, by the interrupted attempt.
   */
  readonly storedAsInterrupted: (key: JobKey) => boolean
}

export interface ReportGroupsOptions {
  readonly reports: OutcomeReports
  readonly workerId: string
  /** The worker's next jobs to take with a group, for the slots its `freeing` reports free (see `AttemptRunner`). */
  readonly takeNext?: ((freeing: number) => AlongsideTake | undefined) | undefined
  /** The longest a group waits for the reports its own say are still to come. Default 5 ms, at most 1000; 0 waits for nothing. */
  readonly gatherMs?: number
}

interface Waiting {
  readonly outcome: ReportedOutcome
  readonly answer: Deferred.Deferred<Reported, TaskQueueError>
  /** The attempt's span, for the group's to link to. */
  readonly span: Tracer.AnySpan | undefined
  /** Whether reports to go with it are still to come. */
  readonly awaiting: (() => boolean) | undefined
  /** Its attempt was interrupted before its group went out: left out. */
  withdrawn: boolean
  /** Its group went out: it will be answered, interrupted or not. */
  out: boolean
}

/** What a group's statement found for an outcome it did not answer for (it cannot happen; read as "not stored"). */
const unanswered: Reported = { stored: false, writer: undefined }

export const make = (options: ReportGroupsOptions): Effect.Effect<ReportGroups, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { reports, workerId } = options
    const waiting = yield* Queue.unbounded<Waiting>()
    /** Told of each report that comes in, for a group that waits for more (see `gather`). */
    const arrived = yield* Queue.sliding<void>(1)
    const gatherMs = gatherBound(options.gatherMs)
    const clock = yield* Effect.clock
    const awaited = (group: ReadonlyArray<Waiting>) =>
      group.length < reportsPerGroup && group.some((report) => !report.withdrawn && report.awaiting?.() === true)
    /**
     * A group whose reports say more are on their way waits for them, up to `gatherMs` (`Linger`; the session
     * writer's turn does the same for the outcomes a worker records itself). Woken by a report's arrival, it then takes
     * without waiting: a take of `waiting` itself, cut off by the time running out just as a report reached it, could
     * lose that report.
     */
    const gather = (group: Array<Waiting>): Effect.Effect<Array<Waiting>> =>
      Effect.as(
        linger({
          ms: gatherMs,
          clock,
          expects: () => awaited(group),
          arrival: () => Queue.take(arrived),
          gathered: Effect.map(Queue.takeUpTo(waiting, reportsPerGroup - group.length), (next) => {
            group.push(...next)
          })
        }),
        group
      )

    const send = (group: ReadonlyArray<Waiting>): Effect.Effect<void> => {
      const live = group.filter((report) => !report.withdrawn)
      for (const report of live) report.out = true
      if (live.length === 0) return Effect.void
      const statement = hotSpan(
        Effect.suspend(() =>
          reports.reportAll(
            live.map((report) => report.outcome),
            workerId,
            options.takeNext?.(live.length)
          )
        ),
        "Worker.reportGroup",
        () => ({
          attributes: { workerId, reports: live.length },
          links: live.flatMap((report) =>
            report.span === undefined ? [] : [{ _tag: "SpanLink" as const, span: report.span, attributes: {} }]
          ),
          root: true
        })
      )
      return statement.pipe(
        Effect.exit,
        Effect.flatMap((exit) =>
          Effect.sync(() => {
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

    // The worker stops: no report is taken any more, and whoever still waits for an answer is interrupted, as its
    // attempt is by then.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Queue.takeAll(waiting), (left) =>
        Effect.zipRight(
          Effect.forEach(left, (report) => Deferred.interrupt(report.answer), { discard: true }),
          Queue.shutdown(waiting)
        )
      )
    )
    // Taking a group and sending it are one step, never cut off: a stop between them would leave its reports
    // unanswered, and a statement that committed as the worker stopped would have taken jobs nobody hears of, this
    // worker's, run by nobody, until their leases ran out. Let through, they reach the worker, which gives them back.
    // (The wait for the reports a group expects is a part of that step: a stop waits for it, a few milliseconds.)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(restore(Queue.take(waiting)), (first) =>
            Effect.flatMap(Queue.takeUpTo(waiting, reportsPerGroup - 1), (rest) =>
              Effect.flatMap(gather([first, ...rest]), send)
            )
          )
        )
      )
    )

    /** Reports stored after their attempts were interrupted, by job key (see `storedAsInterrupted`). */
    const storedInterrupted = new Set<string>()

    return {
      storedAsInterrupted: (key) => storedInterrupted.delete(jobKeyString(key)),
      report: (key, outcome, awaiting) =>
        Effect.flatMap(tracedSpan, (span) =>
          // Offered and watched for interruption as one step: an interruption in between would leave it in its group.
          Effect.uninterruptibleMask((restore) =>
            Effect.suspend(() => {
              const report: Waiting = {
                outcome: { key, outcome },
                answer: Deferred.unsafeMake<Reported, TaskQueueError>(FiberId.none),
                span,
                awaiting,
                withdrawn: false,
                out: false
              }
              // The worker stopped: nothing goes out any more.
              if (!Queue.unsafeOffer(waiting, report)) return Effect.interrupt
              Queue.unsafeOffer(arrived, undefined)
              // Interrupted before its group went out, it is left out of it. After, it is stored or not whatever the
              // attempt does: the answer is waited for (the statement is never cut off), so that the attempt knows
              // whether the outcome is in and does not give back a task whose report the writer is to record.
              return restore(Deferred.await(report.answer)).pipe(
                Effect.onInterrupt(() =>
                  report.out
                    ? Effect.flatMap(Effect.exit(Deferred.await(report.answer)), (exit) =>
                        Effect.sync(() => {
                          if (Exit.isSuccess(exit) && exit.value.stored) storedInterrupted.add(jobKeyString(key))
                        })
                      )
                    : Effect.sync(() => {
                        report.withdrawn = true
                      })
                )
              )
            })
          )
        )
    }
  })
