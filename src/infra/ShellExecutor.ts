/**
 * The `shell` executor, for `ToolCall` tasks: it runs the command a person wrote in backticks in the task (an inline
 * `` `npm test` `` or a fenced block), with a timeout, in a working directory, and records its exit code and output.
 *
 * Safety: task text never reaches a shell. The command is split into words the way a POSIX shell splits them (single
 * and double quotes, backslash escapes, backslash-newline continuations) but nothing is expanded, and the words are
 * handed to the program directly (`spawn` without a shell). So `$(...)`, backquotes, `;`, `|`, `&&`, `>`, `*`, `~` and
 * `$VAR` inside a command are literal arguments. A task that needs pipes, redirection or several commands says so
 * explicitly in its backticks: `` `sh -c 'npm test | tee test.log'` ``. A command spans one line (a fenced block with
 * several commands is sent back as a question).
 *
 * Permission: unless the executor is built with `allow: true`, every command needs approval first. The task asks
 * "Run `npm test` in /path? ..."; "yes" (or y, approve, allow, ok) as the answer to that latest question runs that one
 * command for that task, retries included; "no" (or n, deny, decline, reject, refuse, cancel) fails the task; any other
 * answer that holds a command (in backticks, or a bare one-line command) replaces the command and is asked about
 * again. The decision is a function of the task's description and clarifications only, so it survives restarts and
 * is the same on every worker.
 *
 * Outcomes, for a command `npm test`:
 * - exit 0: `Completed` with `$ npm test (exit 0, 1.2 s)` on the first line, then the output;
 * - exit N: `Failed { retryable: false }` with `exit code N: $ npm test (1.2 s)`, then the tail of the output;
 * - timeout: the process group is stopped and `Failed { retryable: true }` with `timed out after 30.0 s: $ npm test`;
 * - killed by a signal from elsewhere (the OOM killer, an operator): `Failed { retryable: true }`;
 * - not found, not executable, missing working directory: `Failed { retryable: false }` saying so.
 * The output is stdout and stderr together in the order their chunks arrived, trimmed, keeping the last
 * `maxOutputBytes` bytes (a line saying how much was dropped comes first).
 *
 * Processes: each command runs in its own process group (`detached`). When it times out, when the effect is interrupted
 * (the runner cancels the task) and when the command exits but left processes behind, the whole group gets SIGTERM,
 * then SIGKILL after `killGraceMs`. The child gets the parent's environment without secrets (the planner's API keys
 * and database URL, anything ending in _KEY, _TOKEN, _SECRET or PASSWORD), plus `PLANNER_IDEMPOTENCY_KEY`,
 * `PLANNER_SESSION_ID` and `PLANNER_TASK_ID`, and no standard input. POSIX only.
 *
 * Why not `@effect/platform`'s `Command`: it kills the process group with SIGTERM only and then waits for the exit
 * without bound (a command that ignores SIGTERM hangs the finalizer), has no merged output, and its output streams end
 * only when every process holding the pipes closes them.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Clock, Data, Duration, Effect, Either, Option } from "effect"
import type { Clarification } from "../domain/Task.js"
import { type ExecutorService, Outcome, type TaskContext } from "./Executor.js"

export interface ShellExecutorOptions {
  /** The user's permission to run commands without asking each time. */
  readonly allow: boolean
  /** How long a command may run. Default 10 minutes. */
  readonly timeoutMs?: number
  /** Where commands run; relative to the task's working directory. Default: the task's working directory. */
  readonly workingDirectory?: string
  /** How much of the output to keep, from its end. Default 64 KiB. */
  readonly maxOutputBytes?: number
  /** How long a process group gets between SIGTERM and SIGKILL. Default 2 s. */
  readonly killGraceMs?: number
}

const defaultTimeoutMs = 10 * 60 * 1000
const defaultMaxOutputBytes = 64 * 1024
const defaultKillGraceMs = 2000
/** How long to wait, after the command exits, for the rest of its output before giving up on processes it left. */
const outputDrainMs = 200
/** How long to wait for a process group to disappear after SIGKILL before giving up on it. */
const afterKillWaitMs = 1000
const pollMs = 20

// --- Finding the command --------------------------------------------------------------------------------------------

/**
 * The first code in `text`, CommonMark style: a fenced block (three or more backticks at the start of a line, an
 * optional info string such as `sh`, closed by a line of at least as many backticks or by the end of the text) or an
 * inline code span (a run of n backticks closed by the next run of exactly n, so ``` `` echo `date` `` ``` holds
 * backquotes). Line breaks inside an inline span count as spaces. Empty code is skipped. `undefined` when none.
 */
export const findCommand = (text: string): string | undefined => {
  let position = 0
  while (position < text.length) {
    const open = text.indexOf("`", position)
    if (open < 0) return undefined
    let afterOpen = open
    while (text[afterOpen] === "`") afterOpen += 1
    const run = afterOpen - open
    const lineStart = text.lastIndexOf("\n", open - 1) + 1
    const infoEnd = text.indexOf("\n", afterOpen)
    const isFence =
      run >= 3 &&
      text.slice(lineStart, open).trim() === "" &&
      infoEnd >= 0 &&
      !text.slice(afterOpen, infoEnd).includes("`")
    if (isFence) {
      const lines = text.slice(infoEnd + 1).split("\n")
      const closing = lines.findIndex((line) => {
        const trimmed = line.trim()
        return trimmed.length >= run && /^`+$/.test(trimmed)
      })
      const code = (closing < 0 ? lines : lines.slice(0, closing)).join("\n").trim()
      if (code.length > 0) return code
      if (closing < 0) return undefined
      position = infoEnd + 1 + lines.slice(0, closing + 1).join("\n").length
      continue
    }
    const close = closingRun(text, afterOpen, run)
    if (close < 0) {
      // An unmatched run of backticks is literal text.
      position = afterOpen
      continue
    }
    const code = text.slice(afterOpen, close).replace(/\r?\n/g, " ").trim()
    if (code.length > 0) return code
    position = close + run
  }
  return undefined
}

const closingRun = (text: string, from: number, run: number): number => {
  let position = from
  while (position < text.length) {
    const start = text.indexOf("`", position)
    if (start < 0) return -1
    let end = start
    while (text[end] === "`") end += 1
    if (end - start === run) return start
    position = end
  }
  return -1
}

export class ShellWordsError extends Data.TaggedError("ShellWordsError")<{
  readonly reason: "UnterminatedSingleQuote" | "UnterminatedDoubleQuote" | "SeveralLines"
}> {
  override get message() {
    return shellWordsProblems[this.reason]
  }
}

const shellWordsProblems: Record<ShellWordsError["reason"], string> = {
  UnterminatedSingleQuote: "it has a single quote that is never closed",
  UnterminatedDoubleQuote: "it has a double quote that is never closed",
  SeveralLines: "it has several lines, and a task runs one command"
}

/**
 * Splits a command line into words as a POSIX shell does, without expanding anything: spaces and tabs separate
 * words; '...' is literal; inside "..." a backslash escapes only $ ` " \ and a line break; outside quotes a backslash
 * escapes any character and a backslash-newline joins lines. Everything else (`$`, backquotes, `;`, `|`, `&`, `>`,
 * `*`, `~`, `#`) is an ordinary character. A line break outside quotes between words is a second command: an error.
 */
export const splitShellWords = (line: string): Either.Either<ReadonlyArray<string>, ShellWordsError> => {
  const words: Array<string> = []
  let word = ""
  let inWord = false
  let lineEnded = false
  const endWord = () => {
    if (inWord) words.push(word)
    word = ""
    inWord = false
  }
  let index = 0
  while (index < line.length) {
    const char = line.charAt(index)
    if (char === " " || char === "\t" || char === "\r") {
      endWord()
      index += 1
      continue
    }
    if (char === "\n") {
      endWord()
      if (words.length > 0) lineEnded = true
      index += 1
      continue
    }
    if (lineEnded) return Either.left(new ShellWordsError({ reason: "SeveralLines" }))
    inWord = true
    if (char === "\\") {
      const next = line.charAt(index + 1)
      if (next === "\n") {
        // A continuation: the two characters vanish.
        if (word.length === 0) inWord = false
      } else {
        word += next === "" ? "\\" : next
      }
      index += 2
    } else if (char === "'") {
      const close = line.indexOf("'", index + 1)
      if (close < 0) return Either.left(new ShellWordsError({ reason: "UnterminatedSingleQuote" }))
      word += line.slice(index + 1, close)
      index = close + 1
    } else if (char === '"') {
      index += 1
      let closed = false
      while (index < line.length) {
        const inner = line.charAt(index)
        if (inner === '"') {
          closed = true
          index += 1
          break
        }
        if (inner === "\\") {
          const next = line.charAt(index + 1)
          if (next === "\n") {
            index += 2
            continue
          }
          if (next === "$" || next === "`" || next === '"' || next === "\\") {
            word += next
            index += 2
            continue
          }
        }
        word += inner
        index += 1
      }
      if (!closed) return Either.left(new ShellWordsError({ reason: "UnterminatedDoubleQuote" }))
    } else {
      word += char
      index += 1
    }
  }
  endWord()
  return Either.right(words)
}

/** `text` as Markdown inline code, with a longer fence when it holds backquotes itself. */
const inlineCode = (text: string): string => {
  const longestRun = Math.max(0, ...Array.from(text.matchAll(/`+/g), (match) => match[0].length))
  if (longestRun === 0) return `\`${text}\``
  const fence = "`".repeat(longestRun + 1)
  return `${fence} ${text} ${fence}`
}

const approvalWords = new Set(["yes", "y", "approve", "approved", "allow", "ok"])
const refusalWords = new Set(["no", "n", "deny", "decline", "reject", "refuse", "cancel"])
const bareWord = (answer: string) =>
  answer
    .trim()
    .replace(/[.!]+$/, "")
    .toLowerCase()

const approvalQuestionPrefix = (command: string) => `Run ${inlineCode(command)} in `
const approvalQuestion = (command: string, directory: string) =>
  `${approvalQuestionPrefix(command)}${directory}? Answer yes to run it once, or give another command.`
const commandQuestion =
  "Which command should this task run? Answer with the command in backticks, for example `npm test`."

/** The command an answer gives: its first code, or the whole answer when that is one line and not yes or no. */
const commandInAnswer = (answer: string): string | undefined => {
  const code = findCommand(answer)
  if (code !== undefined) return code
  const line = answer.trim()
  if (line.length === 0 || line.includes("\n")) return undefined
  const word = bareWord(line)
  if (approvalWords.has(word) || refusalWords.has(word)) return undefined
  return line
}

type Decision = Data.TaggedEnum<{
  Run: { readonly command: string; readonly argv: ReadonlyArray<string> }
  Ask: { readonly question: string }
  Refused: { readonly command: string }
}>
const Decision = Data.taggedEnum<Decision>()

/**
 * What to do for this attempt, from the task's description and answers alone. Questions about attachments are not
 * the shell executor's and are skipped.
 */
const decide = (context: TaskContext, allow: boolean, directory: string): Decision => {
  const answered = context.clarifications.filter(
    (clarification): clarification is Clarification & { readonly answer: string } =>
      clarification.attachment === undefined && clarification.answer !== undefined
  )
  let command = findCommand(context.description)
  for (const clarification of answered) command = commandInAnswer(clarification.answer) ?? command
  const latest = answered.at(-1)
  if (command === undefined) {
    return Decision.Ask({
      question:
        latest === undefined
          ? `This task has no command in backticks. ${commandQuestion}`
          : `I found no command in your answer. ${commandQuestion}`
    })
  }
  const words = splitShellWords(command)
  if (Either.isLeft(words)) {
    return Decision.Ask({
      question: `The command ${inlineCode(command)} cannot be run: ${words.left.message}. Give the corrected command in backticks (use \`sh -c '...'\` for several commands).`
    })
  }
  if (words.right.length === 0) return Decision.Ask({ question: commandQuestion })
  // Only an answer to the question about this very command approves or refuses it.
  const verdict = latest?.question.startsWith(approvalQuestionPrefix(command)) ? bareWord(latest.answer) : undefined
  if (verdict !== undefined && refusalWords.has(verdict)) return Decision.Refused({ command })
  const approved = verdict !== undefined && approvalWords.has(verdict)
  if (!allow && !approved) return Decision.Ask({ question: approvalQuestion(command, directory) })
  return Decision.Run({ command, argv: words.right })
}

// --- The child's environment ----------------------------------------------------------------------------------------

const secretNames = new Set(["PLANNER_LLM_API_KEY", "OPENAI_API_KEY", "PLANNER_DATABASE_URL"])
const secretPattern = /(_KEY|_TOKEN|_SECRET|PASSWORD)$/i

/** True for variables a command must not see: the planner's own credentials and anything named like a secret. */
export const isSecretVariable = (name: string): boolean =>
  secretNames.has(name.toUpperCase()) || secretPattern.test(name)

/** `parent` without its secrets, plus the ids of the attempt. */
export const childEnvironment = (parent: NodeJS.ProcessEnv, context: TaskContext): Record<string, string> => {
  const environment: Record<string, string> = {}
  for (const [name, value] of Object.entries(parent)) {
    if (value !== undefined && !isSecretVariable(name)) environment[name] = value
  }
  environment.PLANNER_IDEMPOTENCY_KEY = context.idempotencyKey
  environment.PLANNER_SESSION_ID = context.sessionId
  environment.PLANNER_TASK_ID = String(context.taskId)
  return environment
}

// --- Output ---------------------------------------------------------------------------------------------------------

/** The last `limit` bytes of everything pushed, and how many bytes before them were dropped. */
class OutputTail {
  private readonly chunks: Array<Buffer> = []
  private size = 0
  private dropped = 0
  constructor(private readonly limit: number) {}

  readonly push = (chunk: Buffer): void => {
    this.chunks.push(chunk)
    this.size += chunk.length
    while (this.size > this.limit) {
      const first = this.chunks[0]
      if (first === undefined) break
      const excess = this.size - this.limit
      if (first.length <= excess) {
        this.chunks.shift()
        this.size -= first.length
        this.dropped += first.length
      } else {
        this.chunks[0] = first.subarray(excess)
        this.size -= excess
        this.dropped += excess
      }
    }
  }

  text(): string {
    let bytes = Buffer.concat(this.chunks)
    if (this.dropped > 0) {
      // The cut may fall inside a UTF-8 sequence: skip its continuation bytes.
      let start = 0
      while (start < bytes.length && start < 4 && ((bytes[start] ?? 0) & 0xc0) === 0x80) start += 1
      bytes = bytes.subarray(start)
    }
    const text = bytes
      .toString("utf8")
      .replace(/^(?:[ \t\r]*\n)+/, "")
      .trimEnd()
    return this.dropped > 0 ? `[${this.dropped} earlier bytes of output omitted]\n${text}` : text
  }
}

// --- Processes ------------------------------------------------------------------------------------------------------

type ProcessEnd = Data.TaggedEnum<{
  Exited: { readonly code: number }
  Signalled: { readonly signal: string }
  SpawnFailed: { readonly code: string; readonly message: string }
}>
const ProcessEnd = Data.taggedEnum<ProcessEnd>()

const errnoCode = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined

const signalGroup = (pgid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pgid, signal)
  } catch {
    // ESRCH: the group is gone already.
  }
}

/**
 * Whether any process of the group is still running. A process that has exited but was not reaped yet (a zombie)
 * does not count: orphans are reaped by PID 1, and some containers' PID 1 never reaps them.
 */
const groupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
  } catch (error) {
    return errnoCode(error) === "EPERM"
  }
  let entries: Array<string>
  try {
    entries = Fs.readdirSync("/proc")
  } catch {
    return true
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      if (Number(fields[2]) === pgid && fields[0] !== "Z" && fields[0] !== "X") return true
    } catch {
      // The process ended while we looked.
    }
  }
  return false
}

const waitUntilGone = (pgid: number, withinMs: number): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const deadline = (yield* Clock.currentTimeMillis) + withinMs
    while (groupAlive(pgid)) {
      if ((yield* Clock.currentTimeMillis) >= deadline) return false
      yield* Effect.sleep(Duration.millis(pollMs))
    }
    return true
  })

/** SIGTERM to the whole group, then SIGKILL to what is left after the grace period. */
const terminateGroup = (pgid: number, graceMs: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (!groupAlive(pgid)) return
    signalGroup(pgid, "SIGTERM")
    if (yield* waitUntilGone(pgid, graceMs)) return
    signalGroup(pgid, "SIGKILL")
    yield* waitUntilGone(pgid, afterKillWaitMs)
  }).pipe(Effect.withSpan("ShellExecutor.terminateGroup"))

/**
 * Spawns `argv` in a new process group and waits for it to end and its output to be read. Interruption (a timeout,
 * a cancelled task) terminates the group before the effect ends. Processes the command leaves behind are terminated
 * once it has exited.
 */
const runProcess = (
  argv: ReadonlyArray<string>,
  options: {
    readonly cwd: string
    readonly env: Record<string, string>
    readonly output: OutputTail
    readonly killGraceMs: number
  }
): Effect.Effect<ProcessEnd> => {
  let pgid: number | undefined
  const wait = Effect.async<ProcessEnd>((resume) => {
    const [file = "", ...args] = argv
    let child: ChildProcess.ChildProcess
    try {
      child = ChildProcess.spawn(file, args, {
        cwd: options.cwd,
        env: options.env,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
        windowsHide: true
      })
    } catch (error) {
      // For example a word holding a NUL character.
      resume(Effect.succeed(ProcessEnd.SpawnFailed({ code: errnoCode(error) ?? "EINVAL", message: String(error) })))
      return
    }
    pgid = child.pid
    let settled = false
    let drainTimer: NodeJS.Timeout | undefined
    const settle = (end: ProcessEnd) => {
      if (settled) return
      settled = true
      clearTimeout(drainTimer)
      resume(Effect.succeed(end))
    }
    child.stdout?.on("data", options.output.push)
    child.stderr?.on("data", options.output.push)
    child.on("error", (error) => {
      // After a successful spawn, errors come from signalling it; the exit still arrives.
      if (child.pid === undefined) {
        settle(ProcessEnd.SpawnFailed({ code: errnoCode(error) ?? "UNKNOWN", message: error.message }))
      }
    })
    const endOf = (code: number | null, signal: NodeJS.Signals | null): ProcessEnd =>
      code !== null ? ProcessEnd.Exited({ code }) : ProcessEnd.Signalled({ signal: signal ?? "unknown signal" })
    child.on("exit", (code, signal) => {
      // Output still in the pipes arrives before "close"; a process the command left behind holding the pipes would
      // delay "close" forever, so stop waiting for it after a moment.
      drainTimer = setTimeout(() => {
        child.stdout?.destroy()
        child.stderr?.destroy()
        settle(endOf(code, signal))
      }, outputDrainMs)
    })
    child.on("close", (code, signal) => {
      if (child.pid !== undefined) settle(endOf(code, signal))
    })
    return Effect.suspend(() => (pgid === undefined ? Effect.void : terminateGroup(pgid, options.killGraceMs)))
  })
  return Effect.tap(wait, () => (pgid === undefined ? Effect.void : terminateGroup(pgid, options.killGraceMs)))
}

// --- The executor ---------------------------------------------------------------------------------------------------

const seconds = (millis: number) => `${(millis / 1000).toFixed(1)} s`
const withOutput = (header: string, output: string) => (output.length === 0 ? header : `${header}\n${output}`)

const directoryProblem = (directory: string): string | undefined => {
  try {
    return Fs.statSync(directory).isDirectory() ? undefined : "is not a directory"
  } catch (error) {
    return errnoCode(error) === "ENOENT" ? "does not exist" : `cannot be used (${String(error)})`
  }
}

const spawnFailure = (command: string, program: string, code: string, message: string): Outcome => {
  switch (code) {
    case "ENOENT":
      return Outcome.Failed({
        error: `command not found: ${program} (from ${inlineCode(command)}): install it, or give its full path`,
        retryable: false
      })
    case "EACCES":
    case "EISDIR":
      return Outcome.Failed({
        error: `cannot execute ${program} (from ${inlineCode(command)}): it is not an executable file`,
        retryable: false
      })
    default:
      return Outcome.Failed({ error: `cannot start ${inlineCode(command)}: ${message}`, retryable: false })
  }
}

/** A `shell` executor with the given options. */
export const make = (options: ShellExecutorOptions): ExecutorService => {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs
  const maxOutputBytes = options.maxOutputBytes ?? defaultMaxOutputBytes
  const killGraceMs = options.killGraceMs ?? defaultKillGraceMs

  const run = Effect.fn("ShellExecutor.run")(function* (
    command: string,
    argv: ReadonlyArray<string>,
    cwd: string,
    context: TaskContext
  ) {
    yield* Effect.annotateCurrentSpan({ command, cwd })
    const program = argv[0] ?? command
    const output = new OutputTail(maxOutputBytes)
    const startedAt = yield* Clock.currentTimeMillis
    const ended = yield* runProcess(argv, {
      cwd,
      env: childEnvironment(process.env, context),
      output,
      killGraceMs
    }).pipe(Effect.timeoutOption(Duration.millis(timeoutMs)))
    const elapsed = seconds((yield* Clock.currentTimeMillis) - startedAt)
    const text = output.text()
    if (Option.isNone(ended)) {
      return Outcome.Failed({
        error: withOutput(`timed out after ${seconds(timeoutMs)}: $ ${command}`, text),
        retryable: true
      })
    }
    return ProcessEnd.$match(ended.value, {
      Exited: ({ code }) =>
        code === 0
          ? Outcome.Completed({ result: withOutput(`$ ${command} (exit 0, ${elapsed})`, text) })
          : Outcome.Failed({
              error: withOutput(`exit code ${code}: $ ${command} (${elapsed})`, text),
              retryable: false
            }),
      Signalled: ({ signal }) =>
        Outcome.Failed({ error: withOutput(`killed by ${signal}: $ ${command} (${elapsed})`, text), retryable: true }),
      SpawnFailed: ({ code, message }) => spawnFailure(command, program, code, message)
    })
  })

  return {
    name: "shell",
    execute: Effect.fn("ShellExecutor.execute")(
      function* (context: TaskContext) {
        const directory = NodePath.resolve(context.workingDirectory, options.workingDirectory ?? ".")
        const decision = decide(context, options.allow, directory)
        switch (decision._tag) {
          case "Ask":
            return Outcome.NeedsClarification({ question: decision.question })
          case "Refused":
            return Outcome.Failed({
              error: `not run: the user declined ${inlineCode(decision.command)}`,
              retryable: false
            })
          case "Run": {
            const problem = directoryProblem(directory)
            if (problem !== undefined) {
              return Outcome.Failed({ error: `the working directory ${directory} ${problem}`, retryable: false })
            }
            return yield* run(decision.command, decision.argv, directory, context)
          }
        }
      },
      (effect) =>
        Effect.catchAllDefect(effect, (defect) =>
          Effect.succeed(
            Outcome.Failed({ error: `The shell executor failed unexpectedly: ${String(defect)}`, retryable: true })
          )
        )
    )
  }
}
