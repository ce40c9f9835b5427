/**
 * Runs one job taken from the task queue, start to end: records the start through the writer (`ClaimTask`: the log
 * says which worker ran each attempt and when), builds the executor's context from the session as the writer has it,
 * checks attachments, runs the executor, and reports the outcome through the writer, which completes the job in the
 * outcome's transaction. When to record the start is `startOf`'s choice: a job the writer handed over was claimed in
 * its dispatch's append; a long-lived worker, or one on a session other processes write too, records the start with
 * the outcome, in one append. A long-lived worker on PostgreSQL that is not the session's writer reports the start
 * and the outcome into the job's row instead, for the session's writer to record (`SessionWriter`, `recordReports`),
 * in groups with the worker's other reports made at the same time (`ReportGroups`).
 *
 * Stopped because the worker stops (SIGINT/SIGTERM), at any point from the take on, it gives back what it holds, so
 * another worker takes it at once: the task once the attempt runs or is on record (`ReleaseTask`, after its start if
 * that is not on record yet; the queue's `release` when the store cannot be reached), the job alone before. Stopped
 * because the planner no longer wants the attempt (noticed by the lease keeper), it gives nothing back.
 */
import { Cause, Clock, Duration, Effect, Either, Option, Random, Schedule, Schema } from "effect"
import * as Budget from "../../domain/Budget.js"
import {
  AbandonTask,
  ClaimTask,
  HandleExecutorEvent,
  NeedsClarification,
  ReleaseTask,
  TaskCompleted,
  TaskFailed
} from "../../domain/Commands.js"
import * as Planner from "../../domain/Planner.js"
import type { TaskState } from "../../domain/Task.js"
import { AttachmentChecker } from "../../infra/AttachmentChecker.js"
import { Compactor } from "../../infra/Compactor.js"
import { ExecutorRegistry, Outcome, type TaskContext } from "../../infra/Executor.js"
import { Llm } from "../../infra/Llm.js"
import {
  type AlongsideTake,
  type JobKey,
  jobKeyString,
  type PendingReport,
  type TakenJob,
  type TaskQueueService
} from "../../infra/TaskQueue.js"
import { hotSpan, hotSpanWith } from "../../infra/Tracing.js"
import * as AppBudget from "../Budget.js"
import { type Handled, PlannerService } from "../PlannerService.js"
import * as Replan from "../Replan.js"
import * as Cohorts from "./Cohorts.js"
import * as CompactionTrigger from "./CompactionTrigger.js"
import * as ReportGroups from "./ReportGroups.js"
import type { SessionWriter } from "./SessionWriter.js"

/** What the worker tells about the attempts it runs (`planner worker` prints them). */
export type AttemptReport =
  | {
      readonly _tag: "Started"
      readonly sessionId: string
      readonly taskId: number
      readonly attempt: number
      readonly description: string
    }
  | {
      readonly _tag: "Finished"
      readonly sessionId: string
      readonly taskId: number
      readonly attempt: number
      /** What became of it: the outcome as recorded, or why it was dropped. */
      readonly outcome:
        | "completed"
        | "failed"
        | "retry-scheduled"
        /** A retryable failure reported to the session's writer, which schedules the retry if attempts are left. */
        | "retry-pending"
        | "waiting"
        | "released"
        /** Not given back on shutdown: the store did not answer. Its lease runs out, and another worker takes it. */
        | "not-given-back"
        | "discarded"
      readonly detail: string
      /** When the next attempt runs (`retry-scheduled`). */
      readonly retryAt?: number
    }

/** What a worker says of an attempt it could not give back as it stopped. */
export const notGivenBackDetail = "the store did not take it back; it goes to another worker when its lease runs out"

/**
 * Gives a job back to the queue alone; one the store does not take is told as `not-given-back` (its lease runs out,
 * and another worker takes it). Whether it went back. For an attempt that stops here, and for the jobs a stopping
 * worker still holds.
 */
export const releaseOrTell =
  (queue: TaskQueueService, workerId: string, tell: (report: AttemptReport) => Effect.Effect<void>) =>
  (key: JobKey): Effect.Effect<boolean> =>
    queue.release(key, workerId).pipe(
      Effect.as(true),
      Effect.catchAll((error) =>
        Effect.zipRight(
          Effect.logDebug(`giving back ${jobKeyString(key)} failed`, error),
          Effect.as(
            tell({
              _tag: "Finished",
              sessionId: key.sessionId,
              taskId: key.taskId,
              attempt: key.attempt,
              outcome: "not-given-back",
              detail: notGivenBackDetail
            }),
            false
          )
        )
      )
    )

export interface AttemptSettings {
  readonly workerId: string
  readonly workingDirectory: string
  readonly checkAttachments: boolean
  /** Each attempt its own trace (a long-lived worker) or a part of the caller's (`Runner.run`). */
  readonly rootSpans: boolean
  /**
   * Record the start of every attempt taken from the queue with its outcome (a long-lived worker serving every
   * session), not only in sessions other processes write too; see `startOf`.
   */
  readonly startsWithOutcomes: boolean
  readonly onReport?: ((report: AttemptReport) => Effect.Effect<void>) | undefined
  /**
   * The worker's next jobs to take with an outcome, in its own statement (see `PlannerService`'s `Tracing.take`):
   * asked each time an outcome is recorded, or a group of them reported (`freeing` of them, 1 when not said);
   * undefined when the worker wants none (it is stopping).
   */
  readonly takeNext?: ((freeing?: number) => AlongsideTake | undefined) | undefined
  /**
   * The sessions this worker writes, when its outcomes may be reported into their jobs' rows (PostgreSQL, a worker
   * serving every session): an outcome of a session it does not write goes to that session's writer.
   */
  readonly writer?: (() => SessionWriter | undefined) | undefined
  /**
   * The attempt's outcome is about to be recorded or reported: it leaves its cohort (see `worker/Cohorts`). Whether
   * more outcomes of the cohort are still to come, for the writer's turn to wait for (`Tracing.awaiting`).
   */
  readonly awaiting?: ((key: JobKey) => () => boolean) | undefined
  /** The longest a group of reports waits for those its own say are still to come (`ReportGroups`); default 5 ms. */
  readonly gatherMs?: number | undefined
}

/** What a report carries: the attempt's start when it is to be recorded with the outcome, and the outcome. */
export const ReportedCommands = Schema.Array(Schema.Union(ClaimTask, HandleExecutorEvent))

const encodeReport = Schema.encodeSync(ReportedCommands)
const decodeReport = Schema.decodeUnknownEither(ReportedCommands)

/** What became of an outcome: recorded in the log here, reported to the session's writer, or refused for good. */
type Recorded =
  | { readonly _tag: "Recorded"; readonly handled: Handled }
  | { readonly _tag: "Reported" }
  | { readonly _tag: "Discarded" }
  /** The job is no longer this worker's to report: nothing to record, and nothing of the queue's to tidy either. */
  | { readonly _tag: "Gone" }

/** Nothing was recorded or reported: the planner refused the outcome, or the job was no longer this worker's. */
const dropped = (recorded: Recorded): recorded is Extract<Recorded, { _tag: "Discarded" | "Gone" }> =>
  recorded._tag === "Discarded" || recorded._tag === "Gone"

const reported: Recorded = { _tag: "Reported" }
const discarded: Recorded = { _tag: "Discarded" }
const gone: Recorded = { _tag: "Gone" }

/** Refusals that mean "somebody else finished it, or it is no longer wanted": drop it quietly. */
export const lostRace = (error: { readonly _tag: string }) =>
  error._tag === "TaskAlreadyClaimed" ||
  error._tag === "StaleAttempt" ||
  error._tag === "InvalidTransition" ||
  error._tag === "SessionFinished"

/**
 * An attempt given up as a retryable failure, after its start (a no-op when its start is on record already): what a
 * worker that died, hung or lost its lease, or whose report cannot be read, leaves behind. Its time is now.
 */
export const abandonAttempt = (
  attempt: { readonly taskId: number; readonly attempt: number },
  workerId: string,
  reason: string
) =>
  Effect.gen(function* () {
    const at = yield* Clock.currentTimeMillis
    const jitter = yield* Random.next
    const { taskId } = attempt
    return [
      new ClaimTask({ taskId, attempt: attempt.attempt, workerId, at }),
      new AbandonTask({ taskId, attempt: attempt.attempt, workerId, reason, jitter, at })
    ] as const
  })

/** Recording an outcome the store refused: tried again until it is recorded or refused for good. */
const reportRetry = Schedule.exponential(Duration.millis(100)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(2))),
  Schedule.jittered
)

/** A claim the store refused (it could not be reached): the job goes back to the queue after this. */
const claimRetryDelay = Duration.seconds(1)

/** Everything an executor gets for one attempt, and nothing more. */
export const taskContext = (
  state: Planner.PlannerState,
  task: TaskState,
  sessionId: string,
  workingDirectory: string
): TaskContext => {
  // The rolling context as text is built when an executor reads it (a model's prompt does; a shell step or `echo` does
  // not), once: it joins every result not compacted yet, which on a long plan is most of what starting a task costs.
  let contextSummary: string | undefined
  const summary = () => {
    if (contextSummary === undefined) {
      const dependencies = new Set(task.dependsOn)
      const recent = Planner.rollingTasks(state).filter((other) => !dependencies.has(other.id) && other.id !== task.id)
      contextSummary = [state.contextSummary, ...recent.map(CompactionTrigger.entryText)]
        .filter((part) => part.length > 0)
        .join("\n")
    }
    return contextSummary
  }
  return {
    sessionId,
    taskId: task.id,
    kind: task.kind,
    description: task.description,
    attachments: task.attachments,
    attempt: task.attempt,
    // The budget question and its answer were about the planner's spend, not the step: the executor (a model's
    // prompt) is not shown them. They stay in the log and the task's history.
    clarifications: task.clarifications.filter((clarification) => !Budget.isBudgetQuestion(clarification.question)),
    request: state.request,
    requestAttachments: state.attachments,
    get contextSummary() {
      return summary()
    },
    dependencyResults: task.dependsOn.flatMap((id) => {
      const dependency = Planner.task(state, id)
      return dependency?.status === "Completed"
        ? [{ taskId: id, description: dependency.description, result: dependency.result ?? "" }]
        : []
    }),
    idempotencyKey: `${sessionId}/${task.id}/${task.attempt}`,
    workingDirectory
  }
}

/**
 * Makes the runner of one job: `run(job, cancelled, claimed)` runs it; `cancelled()` says the planner dropped it
 * meanwhile. `claimed`: the writer handed the job over with its attempt already claimed for this worker, in this state
 * (`PlannerService.handOffTo`), so the start is not recorded again. `recordReports` is the session writer's part.
 */
export const make = (settings: AttemptSettings) =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const service = yield* PlannerService
    const registry = yield* ExecutorRegistry
    const checker = yield* AttachmentChecker
    const compactor = yield* Compactor
    const compactIfOverBudget = yield* CompactionTrigger.make
    const prices = yield* AppBudget.pricesOrWarn
    // `--on-failure replan`: the model that revises a plan after a failure this worker reports (see `Replan`).
    const llm = Option.getOrUndefined(yield* Effect.serviceOption(Llm))
    const clock = yield* Effect.clock
    const { workerId, workingDirectory } = settings
    const queue = service.queue
    // Outcomes reported to another worker, the session's writer, go out in groups (see `ReportGroups`).
    const reports =
      settings.writer === undefined || queue.reports === undefined
        ? undefined
        : yield* ReportGroups.make({
            reports: queue.reports,
            workerId,
            takeNext: settings.takeNext,
            ...(settings.gatherMs === undefined ? {} : { gatherMs: settings.gatherMs })
          })
    const tell = (report: AttemptReport) => (settings.onReport === undefined ? Effect.void : settings.onReport(report))

    /** Runs the executor; a defect or an unexpected error becomes a retryable failure. */
    const execute = (sessionId: string, task: TaskState, context: TaskContext): Effect.Effect<Outcome> => {
      const executor = registry.executorFor(task.kind)
      if (executor === undefined) {
        return Effect.succeed(Outcome.Failed({ error: `no executor serves ${task.kind} tasks here`, retryable: true }))
      }
      return executor.execute(context).pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.failCause(cause)
            : Effect.succeed(
                Outcome.Failed({
                  error: `the ${executor.name} executor crashed: ${Cause.pretty(cause)}`,
                  retryable: true
                })
              )
        ),
        (effect) =>
          hotSpanWith(effect, "Executor.execute", () => ({
            executor: executor.name,
            sessionId,
            taskId: task.id,
            attempt: task.attempt,
            idempotencyKey: context.idempotencyKey
          }))
      )
    }

    /**
     * Keeps trying `record` while the store or the queue refuses it (not while the planner does), and says
     * `Discarded` once the planner refused it for good.
     */
    const persist = <E extends { readonly _tag: string; readonly message: string }>(
      what: string,
      record: Effect.Effect<Recorded, E>
    ): Effect.Effect<Recorded> => {
      const warn = (error: E) => Effect.logWarning(`recording ${what} failed (${error.message}); trying again`)
      // The retry schedule is only set up after a first failure: it cost more than the rest of the report.
      return Effect.catchIf(
        record,
        (error) => !lostRace(error),
        (error) => {
          let inHand: E | undefined = error
          const again = Effect.suspend(() => {
            const failed = inHand
            inHand = undefined
            return failed === undefined ? record : Effect.fail(failed)
          })
          return Effect.retry(
            Effect.tapError(again, (next) => (lostRace(next) ? Effect.void : warn(next))),
            { schedule: reportRetry, while: (next) => !lostRace(next) }
          )
        }
      ).pipe(
        Effect.catchAll((error) => Effect.logDebug(`${what} discarded: ${error.message}`).pipe(Effect.as(discarded)))
      )
    }

    /**
     * Records an outcome, trying again while the store refuses it. With `start`, the attempt's start goes in the same
     * append, just before it (a job taken from the queue). A session another worker writes gets it as a report.
     */
    const report = (
      sessionId: string,
      task: TaskState,
      command: HandleExecutorEvent,
      start: ClaimTask | undefined
    ): Effect.Effect<Recorded> => {
      const what = `the outcome of ${sessionId}#${task.id}`
      const writer = settings.writer?.()
      const key: JobKey = { sessionId, taskId: task.id, attempt: task.attempt }
      const awaiting = settings.awaiting?.(key)
      if (writer !== undefined && reports !== undefined && !writer.writes(sessionId)) {
        const outcome = encodeReport(start === undefined ? [command] : [start, command])
        return persist(
          what,
          reports
            .report(key, outcome, awaiting)
            .pipe(
              Effect.flatMap(
                (found): Effect.Effect<Recorded> =>
                  !found.stored
                    ? Effect.succeed(gone)
                    : found.writer === undefined
                      ? Effect.as(writer.vacant(sessionId), reported)
                      : Effect.succeed(reported)
              )
            )
        )
      }
      // The worker's next jobs may come with the outcome's own statement (`takeNext`), asked afresh at each try.
      return persist(
        what,
        Effect.suspend(() => {
          const take = settings.takeNext?.()
          const tracing = {
            ...(take === undefined ? {} : { take }),
            ...(awaiting === undefined ? {} : { awaiting })
          }
          return start === undefined
            ? service.execute(sessionId, command, tracing)
            : Effect.flatMap(service.executeAll(sessionId, [start, command], tracing), ([, outcome]) =>
                outcome === undefined
                  ? Effect.dieMessage("the writer lost an outcome of its batch")
                  : Either.isRight(outcome)
                    ? Effect.succeed(outcome.right)
                    : Effect.fail(outcome.left)
              )
        }).pipe(
          Effect.tap((handled) =>
            // The session is over as this worker recorded its outcome (its own outcome ended it, or came after the
            // end): as the session's writer, if it is, it writes the session no more.
            writer !== undefined && Planner.isFinished(handled.state) ? writer.ended(sessionId) : Effect.void
          ),
          Effect.map((handled): Recorded => ({ _tag: "Recorded", handled }))
        )
      )
    }

    /**
     * What follows an outcome once it is in the log, wherever it was recorded: a completion that took the rolling
     * context over its budget compacts it; a failure that asked for a revised plan settles it here, so a session
     * nobody runs (served by workers alone) goes on (a run of the session in this process shares the settling:
     * `Replan.settleOnce`).
     */
    const followUp = (sessionId: string, taskId: number, handled: Handled, completed: boolean) =>
      Effect.gen(function* () {
        if (completed) yield* compactIfOverBudget(sessionId, handled.state, taskId, handled.eventIds[0])
        if (handled.events.some((event) => event._tag === "ReplanRequested")) {
          yield* Effect.provideService(Replan.settleOnce(sessionId, taskId, llm), PlannerService, service)
        }
      })

    /**
     * The session writer's part (`SessionWriter`): records a batch of one session's reports in one append, which
     * completes their jobs in its transaction, then does what follows each. A report that cannot be read counts as a
     * failed attempt (retryable), as a worker lost with its attempt would. A report the planner refuses (the attempt
     * ended otherwise) only has its job completed. What follows each outcome runs on beside the writer, in the worker's
     * scope. `ended`: the session is over.
     */
    const recordReports = (sessionId: string, reports: ReadonlyArray<PendingReport>) =>
      Effect.gen(function* () {
        const commands: Array<ClaimTask | HandleExecutorEvent | AbandonTask> = []
        const ends: Array<number> = []
        for (const pending of reports) {
          const { key } = pending
          const decoded = decodeReport(pending.outcome)
          const about = (command: ClaimTask | HandleExecutorEvent) => {
            const named = command._tag === "ClaimTask" ? command : command.event
            return "attempt" in named && named.taskId === key.taskId && named.attempt === key.attempt
          }
          if (Either.isRight(decoded) && decoded.right.length > 0 && decoded.right.every(about)) {
            commands.push(...decoded.right)
          } else {
            const reason = `worker ${pending.workerId} reported an outcome of attempt ${key.attempt} that cannot be read`
            yield* Effect.logWarning(
              `${reason} (session ${sessionId}, task ${key.taskId}); the attempt counts as failed`
            )
            commands.push(...(yield* abandonAttempt(key, pending.workerId, reason)))
          }
          ends.push(commands.length - 1)
        }
        // Outcomes too: they may join a batch the writer's turn holds for its own outcomes, expecting nothing more.
        const outcomes = yield* service.executeAll(sessionId, commands, { awaiting: Cohorts.nothingToCome })
        let after: Planner.PlannerState | undefined
        const followUps: Array<Effect.Effect<void>> = []
        const refused: Array<JobKey> = []
        for (const [index, pending] of reports.entries()) {
          const outcome = outcomes[ends[index] ?? -1]
          if (outcome === undefined || Either.isLeft(outcome) || outcome.right.events.length === 0) {
            if (outcome !== undefined && Either.isLeft(outcome) && !lostRace(outcome.left)) {
              yield* Effect.logWarning(
                `the reported outcome of ${sessionId}#${pending.key.taskId} was refused: ${outcome.left.message}`
              )
            }
            refused.push(pending.key)
            continue
          }
          after = outcome.right.state
          const command = commands[ends[index] ?? -1]
          const completed = command?._tag === "HandleExecutorEvent" && command.event._tag === "TaskCompleted"
          followUps.push(followUp(sessionId, pending.key.taskId, outcome.right, completed))
        }
        // What follows the outcomes (a compaction, a revised plan: model calls, maybe) goes on beside the writer,
        // which records the next reports meanwhile, for this session and the others it writes.
        if (followUps.length > 0) {
          yield* Effect.forkIn(
            Effect.all(followUps, { discard: true }).pipe(
              Effect.catchAllCause((cause) =>
                Cause.isInterruptedOnly(cause)
                  ? Effect.void
                  : Effect.logWarning(`what follows reported outcomes of session ${sessionId} failed`, cause)
              )
            ),
            scope
          )
        }
        // Refused, or a repeat that recorded nothing: the attempt ended otherwise, and its job goes with it.
        if (refused.length > 0) yield* queue.complete(refused)
        // Nothing recorded, every report refused: the session may be over (attempts that outlived its end).
        const ended =
          after !== undefined
            ? Planner.isFinished(after)
            : refused.length > 0 && Option.exists(yield* Effect.option(service.state(sessionId)), Planner.isFinished)
        return { ended }
      })

    /** The attempt itself; `start` is its start when it is to be recorded with the outcome. */
    const attempt = (sessionId: string, state: Planner.PlannerState, task: TaskState, start: ClaimTask | undefined) =>
      Effect.gen(function* () {
        yield* tell({
          _tag: "Started",
          sessionId,
          taskId: task.id,
          attempt: task.attempt,
          description: task.description
        })
        const context = taskContext(state, task, sessionId, workingDirectory)
        const problem = settings.checkAttachments
          ? yield* checker.firstProblem(task.attachments, workingDirectory, task)
          : Option.none()
        // #16: the executor's model calls are checked against the session's budget and their usage recorded. A call
        // the budget refused was not made: the task asks the budget question instead of reporting what came of it.
        // A session in a tree of sub-plans spends the tree's budget (see `AppBudget.budgetFor`).
        const spendable = yield* AppBudget.budgetFor(service, sessionId, state)
        const meter = {
          budget: spendable.budget,
          tree: spendable.tree,
          snapshot: spendable.snapshot,
          prices,
          taskId: task.id,
          attempt: task.attempt
        } as const
        const ran = Option.isSome(problem)
          ? undefined
          : yield* AppBudget.meteredValue(execute(sessionId, task, context), { ...meter, purpose: "execution" })
        if (ran !== undefined) yield* AppBudget.record(service, sessionId, ran.usage)
        const overBudget = ran?.refused
        const outcome = Option.isSome(problem)
          ? Outcome.NeedsClarification({ question: problem.value.question })
          : overBudget !== undefined
            ? Outcome.NeedsClarification({ question: "The next model call would cross the session's budget." })
            : (ran?.value ?? Outcome.Failed({ error: "the executor did not run", retryable: true }))
        const at = yield* Clock.currentTimeMillis
        const finished = (
          what: Extract<AttemptReport, { _tag: "Finished" }>["outcome"],
          detail: string,
          retryAt?: number
        ) =>
          tell({
            _tag: "Finished",
            sessionId,
            taskId: task.id,
            attempt: task.attempt,
            outcome: what,
            detail,
            ...(retryAt === undefined ? {} : { retryAt })
          })
        return yield* Outcome.$match(outcome, {
          Completed: ({ result }) =>
            Effect.gen(function* () {
              // The event was checked when it was made: checking the command around it again cost more than deciding.
              const command = new HandleExecutorEvent(
                { event: new TaskCompleted({ taskId: task.id, attempt: task.attempt, result }, true), at },
                true
              )
              const recorded = yield* report(sessionId, task, command, start)
              if (dropped(recorded)) {
                return yield* Effect.as(finished("discarded", ""), recorded._tag === "Gone")
              }
              yield* finished("completed", result)
              if (recorded._tag === "Recorded") yield* followUp(sessionId, task.id, recorded.handled, true)
              return true
            }),
          Failed: ({ error, retryable }) =>
            Effect.gen(function* () {
              const limit = state.config.errorCharLimit
              const compacted =
                error.length <= limit
                  ? error
                  : yield* AppBudget.meteredValue(compactor.compactError(error, limit), {
                      ...meter,
                      budget: AppBudget.afterUsage(spendable.budget, ran?.usage),
                      purpose: "compaction"
                    }).pipe(
                      Effect.tap((shortened) => AppBudget.record(service, sessionId, shortened.usage)),
                      Effect.map((shortened) => shortened.value)
                    )
              const jitter = yield* Random.next
              const event = new TaskFailed({ taskId: task.id, attempt: task.attempt, error: compacted, retryable })
              const recorded = yield* report(
                sessionId,
                task,
                new HandleExecutorEvent({ event, jitter, at }, true),
                start
              )
              if (dropped(recorded)) {
                return yield* Effect.as(finished("discarded", compacted), recorded._tag === "Gone")
              }
              // Reported: whether it is tried again is the session writer's decision, not known here.
              if (recorded._tag === "Reported") {
                return yield* Effect.as(finished(retryable ? "retry-pending" : "failed", compacted), true)
              }
              const retry = recorded.handled.events.find((event) => event._tag === "TaskRetryScheduled")
              yield* retry?._tag === "TaskRetryScheduled"
                ? finished("retry-scheduled", compacted, retry.retryAt)
                : finished("failed", compacted)
              yield* followUp(sessionId, task.id, recorded.handled, false)
              return true
            }),
          NeedsClarification: ({ question }) =>
            Effect.gen(function* () {
              const event = new NeedsClarification({
                taskId: task.id,
                attempt: task.attempt,
                question,
                ...(Option.isSome(problem) ? { attachment: problem.value.attachment } : {}),
                ...(overBudget === undefined ? {} : { budget: overBudget })
              })
              const recorded = yield* report(sessionId, task, new HandleExecutorEvent({ event, at }, true), start)
              yield* finished(dropped(recorded) ? "discarded" : "waiting", question)
              return recorded._tag !== "Discarded"
            })
        })
      })

    /**
     * Gives a task back on shutdown, through the writer, which dispatches it again: a `ReleaseTask`, after the
     * attempt's start when that is not on record yet (taken from the queue, its start to be recorded with its
     * outcome), in one append, so that the log says which worker ran the attempt and the next one counts as another.
     * When the store cannot be reached, the queue alone is told, and the log still has the attempt dispatched.
     */
    const giveBack = (key: JobKey, start: ClaimTask | undefined) =>
      Effect.gen(function* () {
        const at = yield* Clock.currentTimeMillis
        const release = new ReleaseTask({ taskId: key.taskId, attempt: key.attempt, workerId, at })
        // Refused as a lost race: the attempt ended otherwise, and there is nothing to give back.
        const released = yield* (
          start === undefined
            ? Effect.as(service.execute(key.sessionId, release), true)
            : Effect.map(
                service.executeAll(key.sessionId, [start, release]),
                ([, outcome]) => outcome !== undefined && (Either.isRight(outcome) || lostRace(outcome.left))
              )
        ).pipe(Effect.catchAll((error) => Effect.succeed(lostRace(error))))
        if (released || (yield* releaseJob(key)))
          yield* tell({ _tag: "Finished", ...key, outcome: "released", detail: "" })
      })

    const releaseJob = releaseOrTell(queue, workerId, tell)

    /** Whether `state` knows enough of the job's attempt to start it: it has dispatched it, or moved past it. */
    const knowsAttempt = (job: TakenJob) => (state: Planner.PlannerState) => {
      const task = Planner.task(state, job.taskId)
      return (
        task !== undefined &&
        (task.attempt > job.attempt ||
          (task.attempt === job.attempt && (task.status === "Dispatched" || task.status === "Running")))
      )
    }

    /** Gives the job back after the store could not be reached, rather than spin on it. */
    const notStarted = (key: JobKey, error: { readonly message: string }) =>
      Effect.logWarning(
        `starting task ${key.taskId} of session ${key.sessionId} failed (${error.message}); giving it back`
      ).pipe(
        Effect.zipRight(Effect.sleep(claimRetryDelay)),
        Effect.zipRight(Effect.ignoreLogged(queue.release(key, workerId)))
      )

    /**
     * Where the attempt starts from: the session's state and, when its start is still to be recorded, that start; `None`
     * when it is not to run (it ended already, or the store could not be reached).
     *
     * - Handed over by the writer: claimed in its dispatch's append already.
     * - Taken from the queue by a long-lived worker (`startsWithOutcomes`: `planner worker`, a worker serving every
     *   session), or in a session other processes write too (workers on several machines): the start is recorded with
     *   the outcome, in one append, as Temporal records an activity's start when it closes; meanwhile the queue's
     *   lease says who runs it, and `show` and the dashboard show it running on its worker (`HeldAttempts`). One
     *   append per attempt instead of two, each of which, with several writers, would race the others and catch up on
     *   what they wrote. The state is the one this process knows when it has the attempt dispatched already (the
     *   context is the session as of the dispatch or later), so starting reads nothing.
     * - Taken from the queue by a run of one session (`planner run`, the only writer): the start is recorded at once
     *   (`ClaimTask`), so the run's own progress, which follows the log, shows the attempt running while it runs.
     */
    const startOf = (
      job: TakenJob,
      key: JobKey,
      handed: Planner.PlannerState | undefined,
      claimed: () => void
    ): Effect.Effect<Option.Option<{ readonly state: Planner.PlannerState; readonly start?: ClaimTask }>> => {
      if (handed !== undefined) return Effect.succeed(Option.some({ state: handed }))
      const claim = () =>
        new ClaimTask(
          { taskId: job.taskId, attempt: job.attempt, workerId, at: clock.unsafeCurrentTimeMillis() },
          // The job's key came from the queue, the time from the clock: only a worker id given empty needs checking.
          workerId.length > 0
        )
      if (settings.startsWithOutcomes || service.writtenElsewhere(job.sessionId)) {
        return service.stateKnowing(job.sessionId, knowsAttempt(job)).pipe(
          Effect.map((state) => Option.some({ state, start: claim() })),
          Effect.catchAll((error) => Effect.as(notStarted(key, error), Option.none()))
        )
      }
      // Noted as on record in the append's own step: a stop right after it must give the task back, not the job.
      return Effect.uninterruptible(Effect.tap(service.execute(job.sessionId, claim), () => Effect.sync(claimed))).pipe(
        Effect.map((handled) => Option.some({ state: handled.state })),
        // The attempt ended already (its job was completed with it): make sure the queue knows.
        Effect.catchIf(lostRace, () => Effect.as(Effect.ignoreLogged(queue.complete(key)), Option.none())),
        Effect.catchAll((error) => Effect.as(notStarted(key, error), Option.none()))
      )
    }

    /**
     * A job taken after the lease of the worker that had it ran out (`takes` above 1: a release gives its take back):
     * that worker stopped renewing it while the attempt was out (its process or machine stopped, it hung, or it lost
     * the database). The attempt is abandoned as a retryable failure, as the dead-worker sweep does for a worker of
     * this host, rather than run again under the same number: a task that brings down whatever runs it then counts
     * against its attempts and in the end fails for good, instead of taking down one worker after another for ever.
     * The worker named is the one the log has running the attempt, or else this one, which took it back.
     */
    const takeBack = (job: TakenJob, key: JobKey) =>
      Effect.gen(function* () {
        const state = yield* service.stateKnowing(job.sessionId, knowsAttempt(job))
        const task = Planner.task(state, job.taskId)
        const onRecord = task?.status === "Running" && task.attempt === job.attempt ? task.lease?.workerId : undefined
        const holder = onRecord ?? workerId
        const reason =
          onRecord === undefined
            ? `the lease of the worker running attempt ${job.attempt} ran out (its process or machine stopped, it hung, or it lost the database); worker ${workerId} took the attempt back`
            : `worker ${onRecord} stopped renewing its lease on attempt ${job.attempt} (its process or machine stopped, it hung, or it lost the database)`
        const [, outcome] = yield* service.executeAll(job.sessionId, yield* abandonAttempt(job, holder, reason))
        if (outcome === undefined || Either.isLeft(outcome) || outcome.right.events.length === 0) {
          // The attempt ended already (its job was completed with it): make sure the queue knows.
          return yield* Effect.ignoreLogged(queue.complete(key))
        }
        const after = Planner.task(outcome.right.state, job.taskId)
        yield* tell({
          _tag: "Finished",
          ...key,
          outcome: after?.status === "Failed" ? "failed" : "retry-scheduled",
          detail: reason,
          ...(after?.retryAt === undefined ? {} : { retryAt: after.retryAt })
        })
      }).pipe(Effect.catchAll((error) => notStarted(key, error)))

    /**
     * Runs the job. Stopped at any point by the worker's stop, it gives back what it holds, as far as the log has it:
     * nothing of the attempt on record (not started yet, its start to go with its outcome, or a job taken back), the
     * job goes back to the queue; the attempt on record as started (claimed, or handed over in its dispatch's append),
     * the task goes back through the writer (`giveBack`). A fiber interrupted before it ever ran runs none of this:
     * the worker gives its job back to the queue (see `Worker`).
     */
    const run = (job: TakenJob, cancelled: () => boolean, handed?: Planner.PlannerState): Effect.Effect<void> => {
      const key: JobKey = { sessionId: job.sessionId, taskId: job.taskId, attempt: job.attempt }
      /** The attempt's start is on record: handed over (claimed in its dispatch's append), or claimed here. */
      let onRecord = handed !== undefined
      /** The start to record with the outcome, once the attempt runs. */
      let start: ClaimTask | undefined
      /** Nothing to give back: the attempt's outcome is in, or the job ended otherwise. */
      let over = false
      const stopped = Effect.suspend(() =>
        // A report that went out as the attempt was interrupted and was stored: the session writer records it. (Asked
        // first, so that the answer is taken whatever else holds.)
        reports?.storedAsInterrupted(key) === true || over || cancelled()
          ? Effect.void
          : onRecord || start !== undefined
            ? giveBack(key, start)
            : Effect.asVoid(releaseJob(key))
      )
      return Effect.gen(function* () {
        if (handed === undefined && job.takes > 1) return yield* takeBack(job, key)
        const started = yield* startOf(job, key, handed, () => {
          onRecord = true
        })
        if (Option.isNone(started)) {
          over = true
          return
        }
        const { state } = started.value
        const task = Planner.task(state, job.taskId)
        if (
          task === undefined ||
          task.attempt !== job.attempt ||
          (task.status !== "Dispatched" && task.status !== "Running")
        ) {
          over = true
          // The attempt ended already (its job was completed with it): make sure the queue knows.
          return yield* Effect.ignoreLogged(queue.complete(key))
        }
        start = started.value.start
        const recorded = yield* attempt(job.sessionId, state, task, start)
        over = true
        // A recorded outcome completed the job in its transaction, and a reported one is the session writer's to
        // record. One the planner refused (the attempt ended otherwise, and that completed the job) is made sure of
        // here; a job no longer this worker's to report is left alone.
        if (!recorded) yield* Effect.ignoreLogged(queue.complete(key))
      }).pipe(
        Effect.onInterrupt(() => stopped),
        // Whatever else goes wrong, the worker goes on: the job's lease runs out and it is taken again.
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.void
            : Effect.logError(`task ${job.taskId} of session ${job.sessionId} was left to its lease`, cause)
        ),
        (effect) =>
          hotSpan(effect, "Worker.work", () => ({
            attributes: { workerId, sessionId: job.sessionId, taskId: job.taskId, attempt: job.attempt },
            kind: "consumer",
            root: settings.rootSpans
          }))
      )
    }
    return { run, recordReports }
  })
