/**
 * Progress while a session runs, in one of three forms:
 *
 * - live (standard output is a terminal, colour allowed): a compact task board redrawn in place with ANSI cursor
 *   movement, then the summary;
 * - plain (a pipe, a file, `--plain` or `NO_COLOR`): one line per event that matters (a task started, finished,
 *   failed, was scheduled for a retry, waits for an answer, the plan finished), then the summary;
 * - json: nothing until the end, then exactly one JSON object.
 */
import { Duration, Effect, Schedule, type Scope } from "effect"
import * as Planner from "../../domain/Planner.js"
import type { TaskState, TaskStatus } from "../../domain/Task.js"
import type { Progress } from "../Runner.js"
import { clip, clock, duration, firstLine, type OutputMode, out, plural } from "./Output.js"
import { commandOutput, pendingQuestion, resultJson, summaryOf, taskDetail } from "./Render.js"

/**
 * How to print commands the user can run next: `planner` or `npx planner`, and the flags that must be repeated. Each
 * printed command carries only flags that command takes: `show` takes the store's, `answer` and `resume` also the
 * execution flags (`--allow-shell`, ...).
 */
export interface Hints {
  readonly program: string
  /** ` --db ...` when the store was named on the command line; may be empty. */
  readonly store: string
  /** Execution flags the run-like commands take, to run the session on the same way (` --allow-shell`); may be empty. */
  readonly execution: string
  /**
   * ` --executor SPEC` when the run chose an executor other than auto, for the `planner worker` it asks for: a worker
   * runs tasks with its own executor, not the session's. May be empty or absent.
   */
  readonly executor?: string
}

export const answerCommand = (hints: Hints, sessionId: string, taskId: number) =>
  `${hints.program} answer ${sessionId} ${taskId} "<text>"${hints.store}${hints.execution}`

export const showCommand = (hints: Hints, sessionId: string) => `${hints.program} show ${sessionId}${hints.store}`

export const resumeCommand = (hints: Hints, sessionId: string) =>
  `${hints.program} resume ${sessionId}${hints.store}${hints.execution}`

export interface Reporter {
  /** Shows where the session starts from. */
  readonly begin: (state: Planner.PlannerState) => Effect.Effect<void>
  readonly progress: (progress: Progress) => Effect.Effect<void>
  /** A line of its own, above the board in the live view. */
  readonly note: (line: string) => Effect.Effect<void>
  /** Leaves the terminal to a prompt, and takes it back. */
  readonly suspend: Effect.Effect<void>
  readonly restore: Effect.Effect<void>
  /** The final state: the summary, the questions left with the commands that answer them, or the JSON object. */
  readonly finish: (state: Planner.PlannerState) => Effect.Effect<void>
}

export interface ReporterOptions {
  readonly mode: OutputMode
  readonly sessionId: string
  readonly hints: Hints
  readonly verbose: boolean
}

// --- Plain lines ------------------------------------------------------------------------------------------------

/** The line an event deserves in plain output, if any. */
export const eventLine = (
  progress: Progress,
  verbose: boolean,
  describe: (taskId: number) => string
): string | undefined => {
  const event = progress.record.event
  switch (event._tag) {
    case "TaskClaimed":
      return `task ${event.taskId} started: ${describe(event.taskId)}${event.attempt > 1 ? ` (attempt ${event.attempt})` : ""}${
        verbose ? ` [worker ${event.workerId}]` : ""
      }`
    case "TaskStatusUpdated": {
      const text = event.result ?? event.error
      const word = event.status === "Completed" ? "completed" : event.status.toLowerCase()
      return `task ${event.taskId} ${word}${text === undefined || text.trim() === "" ? "" : `: ${firstLine(text)}`}`
    }
    case "TaskRetryScheduled":
      return `task ${event.taskId} attempt ${event.attempt} failed: ${firstLine(event.error)}; retry at ${clock(event.retryAt)}`
    case "ClarificationRequested":
      return `task ${event.taskId} waits for an answer: ${firstLine(event.question, 300)}`
    case "ClarificationReceived":
      return `task ${event.taskId} answered: ${firstLine(event.answer)}`
    case "TaskReleased":
      return `task ${event.taskId} was given back by its worker; it runs again`
    case "PlanningCompleted":
      return `plan ${event.outcome.toLowerCase()}`
    case "TaskDispatched":
      return verbose ? `task ${event.taskId} attempt ${event.attempt} dispatched` : undefined
    case "ContextCompacted":
      return verbose ? `context compacted (tasks ${event.removedTaskIds.join(", ")})` : undefined
    default:
      return undefined
  }
}

/** The summary and, when waiting, each question with the command that answers it. */
export const closingLines = (state: Planner.PlannerState, sessionId: string, hints: Hints): ReadonlyArray<string> => {
  const lines: Array<string> = []
  if (Planner.isWaiting(state)) {
    lines.push(`Waiting for answers: ${summaryOf(state)}`)
    for (const task of state.tasks) {
      const question = pendingQuestion(task)
      if (question === undefined) continue
      // Every line: a shell step's approval question shows the block of commands it asks about below its first line.
      const [head = "", ...rest] = question.trim().split("\n")
      lines.push(`Task ${task.id} asks: ${firstLine(head, 300)}`)
      for (const line of rest) lines.push(`  ${line.trimEnd()}`)
      lines.push(`  ${answerCommand(hints, sessionId, task.id)}`)
    }
    lines.push(`Session ${sessionId} stops here until then (exit code 3).`)
    return lines
  }
  lines.push(Planner.isFinished(state) ? `${state.status}: ${summaryOf(state)}` : summaryOf(state))
  lines.push(`Session ${sessionId}. See it again with: ${showCommand(hints, sessionId)}`)
  return lines
}

const planLines = (state: Planner.PlannerState): ReadonlyArray<string> =>
  state.tasks.map((task) => {
    const after = task.dependsOn.length === 0 ? "" : `  (after ${task.dependsOn.join(", ")})`
    return `${String(task.id).padStart(3)}. [${task.kind}] ${task.description}${after}`
  })

const describer = (get: () => Planner.PlannerState) => (taskId: number) =>
  clip(Planner.task(get(), taskId)?.description ?? `task ${taskId}`, 100)

const plainReporter = (options: ReporterOptions): Reporter => {
  let current = Planner.initialState
  const describe = describer(() => current)
  return {
    begin: (state) =>
      Effect.suspend(() => {
        current = state
        const counts = Planner.countByStatus(state)
        const fresh = counts.Planned + counts.Dispatched === state.tasks.length
        return out(
          fresh
            ? [`Session ${options.sessionId}: ${plural(state.tasks.length, "task")}`, ...planLines(state)].join("\n")
            : `Session ${options.sessionId}: ${summaryOf(state)}`
        )
      }),
    progress: (progress) =>
      Effect.suspend(() => {
        current = progress.state
        const line = eventLine(progress, options.verbose, describe)
        if (line === undefined) return Effect.void
        return out([line, ...shellOutput(progress, "    ")].join("\n"))
      }),
    note: (line) => out(line),
    suspend: Effect.void,
    restore: Effect.void,
    finish: (state) => out(closingLines(state, options.sessionId, options.hints).join("\n"))
  }
}

/** A finished or failed shell step's output, indented, to print under the line that says so. */
const shellOutput = (progress: Progress, indent: string): ReadonlyArray<string> => {
  const event = progress.record.event
  if (event._tag !== "TaskStatusUpdated" && event._tag !== "TaskRetryScheduled") return []
  const task = Planner.task(progress.state, event.taskId)
  if (task === undefined) return []
  const text = event._tag === "TaskRetryScheduled" ? event.error : (event.result ?? event.error)
  return commandOutput(task, text).map((line) => `${indent}${line}`)
}

// --- The live view ----------------------------------------------------------------------------------------------

const colours = {
  green: (text: string) => `\u001b[32m${text}\u001b[39m`,
  red: (text: string) => `\u001b[31m${text}\u001b[39m`,
  yellow: (text: string) => `\u001b[33m${text}\u001b[39m`,
  cyan: (text: string) => `\u001b[36m${text}\u001b[39m`,
  dim: (text: string) => `\u001b[2m${text}\u001b[22m`,
  bold: (text: string) => `\u001b[1m${text}\u001b[22m`
}

const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

const symbols: Readonly<Record<TaskStatus, [string, (text: string) => string]>> = {
  Planned: ["·", colours.dim],
  Dispatched: ["○", colours.cyan],
  Running: ["⠋", colours.cyan],
  NeedsClarification: ["?", colours.yellow],
  RetryScheduled: ["↻", colours.yellow],
  Completed: ["✓", colours.green],
  Failed: ["✗", colours.red],
  Skipped: ["-", colours.dim],
  Cancelled: ["⊘", colours.dim]
}

const liveReporter = (options: ReporterOptions): Effect.Effect<Reporter, never, Scope.Scope> =>
  Effect.gen(function* () {
    let current = Planner.initialState
    /** When each running attempt was claimed, for its elapsed time. */
    const startedAt = new Map<number, number>()
    let drawn = 0
    let paused = true
    let frame = 0

    const width = () => Math.max(40, (process.stdout.columns ?? 100) - 1)
    const fitWidth = (text: string) => (text.length > width() ? `${text.slice(0, width() - 1)}…` : text)

    const taskLine = (task: TaskState, now: number): string => {
      const [symbol, colour] = symbols[task.status]
      const shown = task.status === "Running" ? (spinner[frame % spinner.length] ?? symbol) : symbol
      const claimed = startedAt.get(task.id)
      const detail =
        task.status === "Running"
          ? `running${claimed === undefined ? "" : ` ${duration(Math.max(0, now - claimed))}`}${task.attempt > 1 ? `, attempt ${task.attempt}` : ""}`
          : taskDetail(task)
      const text = fitWidth(
        ` ${shown} ${String(task.id).padStart(2)} [${task.kind}] ${task.description}${detail === undefined ? "" : ` — ${detail}`}`
      )
      // Colour only the symbol, after fitting, so escapes never count towards the width.
      return ` ${colour(shown)}${text.slice(shown.length + 1)}`
    }

    const board = (): ReadonlyArray<string> => {
      const now = Date.now()
      const counts = Planner.countByStatus(current)
      const status = Planner.isWaiting(current)
        ? "waiting for answers"
        : Planner.isFinished(current)
          ? current.status.toLowerCase()
          : "running"
      const head = colours.bold(
        fitWidth(`Session ${options.sessionId} · ${status} · ${counts.Completed}/${current.tasks.length} done`)
      )
      return [head, ...current.tasks.map((task) => taskLine(task, now))]
    }

    const clear = () => (drawn > 0 ? `\r\u001b[${drawn}A\u001b[J` : "")
    const draw = () => {
      if (paused) return
      const lines = board()
      process.stdout.write(`${clear()}${lines.join("\n")}\n`)
      drawn = lines.length
    }

    // Keeps spinners and elapsed times moving while something runs.
    yield* Effect.sync(() => {
      frame += 1
      if (current.tasks.some((task) => task.status === "Running")) draw()
    }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(120))), Effect.forkScoped)

    const track = (progress: Progress) => {
      const event = progress.record.event
      if (event._tag === "TaskClaimed") startedAt.set(event.taskId, event.at)
      current = progress.state
    }

    return {
      begin: (state) =>
        Effect.sync(() => {
          current = state
          paused = false
          draw()
        }),
      progress: (progress) =>
        Effect.sync(() => {
          track(progress)
          const output = shellOutput(progress, "    ")
          if (output.length > 0) {
            // A shell step's output goes above the board, under a line naming the step, and stays there.
            const event = progress.record.event as { readonly taskId: number }
            const heading = `task ${event.taskId} output (${clip(Planner.task(current, event.taskId)?.description ?? "", 80)}):`
            process.stdout.write(`${clear()}${[heading, ...output].join("\n")}\n`)
            drawn = 0
          }
          draw()
        }),
      note: (line) =>
        Effect.sync(() => {
          process.stdout.write(`${clear()}${line}\n`)
          drawn = 0
          draw()
        }),
      suspend: Effect.sync(() => {
        draw()
        paused = true
        drawn = 0
      }),
      restore: Effect.sync(() => {
        paused = false
        draw()
      }),
      finish: (state) =>
        Effect.sync(() => {
          current = state
          paused = false
          draw()
          paused = true
          process.stdout.write(`${closingLines(state, options.sessionId, options.hints).join("\n")}\n`)
        })
    }
  })

// --- JSON -------------------------------------------------------------------------------------------------------

const jsonReporter = (options: ReporterOptions): Reporter => ({
  begin: () => Effect.void,
  progress: () => Effect.void,
  note: () => Effect.void,
  suspend: Effect.void,
  restore: Effect.void,
  finish: (state) => out(JSON.stringify(resultJson(options.sessionId, state)))
})

export const makeReporter = (options: ReporterOptions): Effect.Effect<Reporter, never, Scope.Scope> => {
  switch (options.mode) {
    case "json":
      return Effect.succeed(jsonReporter(options))
    case "plain":
      return Effect.succeed(plainReporter(options))
    case "live":
      return liveReporter(options)
  }
}
