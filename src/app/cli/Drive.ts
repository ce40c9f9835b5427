/**
 * Running a session from the command line, the same way for `run`, `answer`, `resume` and `fork`: progress as it
 * happens, questions asked at the terminal one at a time (or answered from `--answer`, or left for `planner answer`),
 * and an exit code from how it ended: 0 completed, 1 failed or cancelled, 3 waiting for answers.
 */
import { Effect, Option } from "effect"
import * as Planner from "../../domain/Planner.js"
import type { TaskState } from "../../domain/Task.js"
import * as SubPlanRun from "../SubPlanRun.js"
import { errorLine } from "./ErrorLine.js"
import {
  CliExit,
  CliFailure,
  ExitCode,
  exitCodeOnInterrupt,
  isStoreFailure,
  sayingHowItStops,
  toFailure,
  unconfirmedStopReason
} from "./Failure.js"
import { clip, err, type OutputMode, out } from "./Output.js"
import { answerCommand, type Hints, makeReporter, resumeCommand } from "./Progress.js"
import * as Prompt from "./Prompt.js"

export interface DriveOptions {
  readonly mode: OutputMode
  /** A person can be asked at this terminal (standard input is one, and `--non-interactive` was not given). */
  readonly interactive: boolean
  /** Answers given in advance with `--answer TASK_ID=TEXT`: each is used the first time its task asks. */
  readonly presets: ReadonlyMap<number, string>
  readonly hints: Hints
  readonly verbose: boolean
  /** Run tasks in this process (default); false leaves them to `planner worker` processes. */
  readonly localWorker: boolean
}

const questionLines = (task: TaskState, question: string): ReadonlyArray<string> =>
  question.includes(task.description)
    ? [`? Task ${task.id} asks: ${question}`]
    : [`? Task ${task.id} (${clip(task.description, 80)}) asks: ${question}`]

/**
 * How a stopped run ends when the process is ended before the run has stopped (a second signal, or a store that did
 * not answer for `stopWithinMs`, see `Failure.ts`): what it held is not given back; `resume` takes it over.
 */
const unconfirmed = `Stopped before the store confirmed it (${unconfirmedStopReason}): a task it was running is taken over by the next run.`

/** The exit code a session's state ends a run-like command with. */
export const exitCodeOf = (state: Planner.PlannerState, waiting: boolean): number =>
  waiting ? ExitCode.waiting : state.status === "Succeeded" ? ExitCode.ok : ExitCode.planFailed

/** Runs `sessionId` (whose state is `initial`) until it ends or waits, reporting as it goes; fails with `CliExit` for a non-zero exit code. */
export const drive = (sessionId: string, initial: Planner.PlannerState, options: DriveOptions) =>
  Effect.gen(function* () {
    const reporter = yield* makeReporter({
      mode: options.mode,
      sessionId,
      hints: options.hints,
      verbose: options.verbose
    })
    yield* reporter.begin(initial)
    if (!options.localWorker && options.mode !== "json" && !Planner.isFinished(initial)) {
      yield* err(
        `No worker runs in this process (--no-local-worker): the tasks wait for \`${options.hints.program} worker\` processes on this store. Start one if none runs: ${options.hints.program} worker${options.hints.store}${options.hints.executor ?? ""}${options.hints.execution}`
      )
    }

    // Runner.run asks about each pending question as it appears, concurrently; a person answers one at a time.
    const oneAtATime = yield* Effect.makeSemaphore(1)
    const presetUsed = new Set<number>()
    let inputEnded = false
    const onClarification = (task: TaskState, question: string) =>
      oneAtATime.withPermits(1)(
        Effect.gen(function* () {
          const preset = options.presets.get(task.id)
          if (preset !== undefined && !presetUsed.has(task.id)) {
            presetUsed.add(task.id)
            return Option.some(preset)
          }
          if (!options.interactive || inputEnded) return Option.none<string>()
          yield* reporter.suspend
          const answer = yield* Prompt.ask(questionLines(task, question), "  answer> ").pipe(
            Effect.ensuring(reporter.restore)
          )
          if (Option.isNone(answer)) inputEnded = true
          return answer
        })
      )

    const stopLine = (stopped: string) => {
      const line = `${stopped} Session ${sessionId} goes on with: ${resumeCommand(options.hints, sessionId)}`
      return options.mode === "json" ? errorLine(line, exitCodeOnInterrupt(), true, { sessionId }) : line
    }
    const result = yield* SubPlanRun.runTree(sessionId, {
      onProgress: reporter.progress,
      onClarification,
      localWorker: options.localWorker,
      concurrency: Math.max(1, initial.config.maxParallel)
    }).pipe(
      // Under --json the caller learns the session from the error object, as from any other failure.
      sayingHowItStops(err(stopLine("Stopped.")), { fd: 2, line: stopLine(unconfirmed) }),
      // A store lost mid-run (unreachable, refusing writes) loses nothing recorded: say which session goes on, and how.
      // Every other error goes on as it is.
      Effect.mapError((error) => {
        if (!isStoreFailure(error)) return error
        const failure = toFailure(error)
        return failure instanceof CliFailure
          ? new CliFailure({
              code: failure.code,
              message: `${failure.message} Session ${sessionId} goes on with: ${resumeCommand(options.hints, sessionId)}`,
              sessionId,
              detail: error
            })
          : failure
      })
    )
    yield* reporter.finish(result.state)
    // Questions asked inside sub-plans: answered with this session's id and the task id shown (see `planner answer`).
    if (result.waiting && options.mode !== "json") {
      for (const asked of yield* SubPlanRun.questionsBelow(sessionId).pipe(Effect.orElseSucceed(() => []))) {
        yield* out(
          `Task ${asked.taskId} of sub-plan ${asked.sessionId} asks: ${asked.question}\n  answer: ${answerCommand(options.hints, sessionId, asked.taskId)}`
        )
      }
    }
    const code = exitCodeOf(result.state, result.waiting)
    if (code !== ExitCode.ok) return yield* new CliExit({ code })
  }).pipe(Effect.scoped)
