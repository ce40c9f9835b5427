/**
 * The `shell` executor, for `ToolCall` tasks: it runs the command a person wrote in backticks in the task (an inline
 * `` `npm test` `` or a fenced block), with a timeout, in a working directory, and records its exit code and output.
 *
 * What runs is exactly the code in the backticks, never anything outside them, and it runs the way a shell would run
 * it (see `invocationOf`):
 * - a command a shell would only split into words (`npm test`, `git commit -m "fix it"`) is split the same way (single
 *   and double quotes, backslash escapes, backslash-newline continuations) and the words are handed to the program
 *   directly (`spawn` without a shell);
 * - one line with shell syntax (`rm -f a.txt && echo done`, `ls -1 / | wc -l`, `echo $HOME`, `ls *.txt`, `cd x`,
 *   `A=1 make`) runs as `/bin/sh -c '<the line>'`;
 * - several lines (a fenced block) run as `/bin/sh -e -c '<the lines>'`: one after another, as written, stopping at the
 *   first command that fails. Lines are never joined into one command.
 * The approval question says which of these it will be and shows the code exactly (a block as a fenced block).
 *
 * Permission: unless the executor is built with `allow: true`, every command needs approval first. The task asks
 * "Run `npm test` in /path? ..." ("Run `a && b` with sh -c in /path? ...", "Run these 2 lines with sh -e -c in /path,
 * ..." and the block); "yes" (or y, approve, allow, ok) as the answer to that latest question runs that one command,
 * that way, in that directory, for that task, retries included; "no" (or n, deny, decline, reject, refuse, cancel)
 * fails the task; any other answer that holds a command (in backticks, or a bare one-line command) replaces the
 * command and is asked about again. The decision is a function of the task's description and clarifications only, so it survives restarts and
 * is the same on every worker.
 *
 * Outcomes, for a command `npm test`:
 * - exit 0: `Completed` with `$ npm test (exit 0, 1.2 s)` on the first line (`(with sh -c, exit 0, 1.2 s)` for a shell
 *   command; a block shows its first line and `…`), then the output;
 * - exit N: `Failed { retryable: false }` with `exit code N: $ npm test (1.2 s)`, then the tail of the output;
 * - timeout: the process group is stopped and `Failed { retryable: true }` with `timed out after 30.0 s: $ npm test`;
 * - killed by a signal from elsewhere (the OOM killer, an operator): `Failed { retryable: true }`;
 * - not found, not executable, missing working directory: `Failed { retryable: false }` saying so.
 * The output is stdout and stderr together in the order their chunks arrived, trimmed, keeping the last
 * `maxOutputBytes` bytes (a line saying how much was dropped comes first).
 *
 * Processes: each command runs in its own process group (`detached`). When it times out, when the effect is interrupted
 * (the runner cancels the task) and when the command exits but left processes behind, the whole group gets SIGTERM,
 * then SIGKILL after `killGraceMs`. The child gets the parent's environment without secrets (the planner's API keys,
 * database URL and OTLP headers, anything ending in _KEY, _TOKEN, _SECRET or PASSWORD), plus `PLANNER_IDEMPOTENCY_KEY`,
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
import { closingRun } from "./internal/backticks.js"

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
  /**
   * After the command exits, how long its pipes may stay silent before the rest of its output is given up on (a
   * process it left behind holds them open). Default 200 ms. Output that keeps coming is read for at most 5 s.
   */
  readonly outputSilenceMs?: number
}

const defaultTimeoutMs = 10 * 60 * 1000
const defaultMaxOutputBytes = 64 * 1024
const defaultKillGraceMs = 2000
/** See `ShellExecutorOptions.outputSilenceMs`, and how long, at most, output that keeps coming is still read. */
const defaultOutputSilenceMs = 200
const outputDrainMaxMs = 5_000
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
      // Windows line ends: a shell would take each "\r" as part of the last word of its line.
      const code = (closing < 0 ? lines : lines.slice(0, closing)).join("\n").replace(/\r+\n/g, "\n").trim()
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

/** `text` as a Markdown fenced block, with a fence longer than any run of backquotes in it. */
const fencedCode = (text: string): string => {
  const longestRun = Math.max(0, ...Array.from(text.matchAll(/`+/g), (match) => match[0].length))
  const fence = "`".repeat(Math.max(3, longestRun + 1))
  return `${fence}sh\n${text}\n${fence}`
}

// --- Shell or not ---------------------------------------------------------------------------------------------------

/** Characters a shell acts on outside quotes: operators, redirections, substitutions and a line break. */
const operatorCharacters = new Set(["|", "&", ";", "<", ">", "(", ")", "$", "`", "\n"])
/** Characters a shell expands as a pattern (globbing) outside quotes. */
const patternCharacters = new Set(["*", "?", "["])
/**
 * First words a shell handles itself: reserved words, and builtins that have no program of their own (or one that
 * cannot do what the builtin does, like `/usr/bin/cd`).
 */
const shellFirstWords = new Set([
  "!",
  "{",
  "}",
  "if",
  "then",
  "else",
  "elif",
  "fi",
  "case",
  "esac",
  "for",
  "while",
  "until",
  "do",
  "done",
  ".",
  ":",
  "alias",
  "bg",
  "break",
  "cd",
  "continue",
  "eval",
  "exec",
  "exit",
  "export",
  "fg",
  "getopts",
  "hash",
  "jobs",
  "local",
  "read",
  "readonly",
  "return",
  "set",
  "shift",
  "source",
  "times",
  "trap",
  "ulimit",
  "umask",
  "unalias",
  "unset",
  "wait"
])

/**
 * Whether a shell would do anything to `command` beyond splitting it into words: an operator, a redirection, a
 * substitution or variable (also inside double quotes), a wildcard, a `~` or `#` starting a word, a second line, a
 * leading `NAME=value`, or a reserved word or builtin as the program. Quoted and backslash-escaped characters are
 * literal, as in the shell. When this is false, running the words directly is exactly what `sh -c` would run.
 */
export const needsShell = (command: string): boolean => {
  if (/^\s*[A-Za-z_][A-Za-z0-9_]*=/.test(command)) return true
  let wordStart = true
  let index = 0
  while (index < command.length) {
    const char = command.charAt(index)
    if (char === " " || char === "\t" || char === "\r") {
      wordStart = true
      index += 1
      continue
    }
    if (char === "\\") {
      index += 2
      wordStart = false
      continue
    }
    if (char === "'") {
      const close = command.indexOf("'", index + 1)
      // An unterminated quote: `splitShellWords` reports it.
      if (close < 0) return false
      index = close + 1
      wordStart = false
      continue
    }
    if (char === '"') {
      index += 1
      while (index < command.length && command.charAt(index) !== '"') {
        const inner = command.charAt(index)
        if (inner === "$" || inner === "`") return true
        index += inner === "\\" ? 2 : 1
      }
      index += 1
      wordStart = false
      continue
    }
    if (operatorCharacters.has(char) || patternCharacters.has(char)) return true
    if (wordStart && (char === "~" || char === "#")) return true
    wordStart = false
    index += 1
  }
  const first = Either.getOrUndefined(splitShellWords(command))?.[0]
  return first !== undefined && shellFirstWords.has(first)
}

/**
 * How a command runs. `Direct`: its words are handed to the program (`spawn` without a shell), for a command a shell
 * would only split into words. `Shell`: one line with shell syntax, handed to `/bin/sh -c` as written. `Script`:
 * several lines, handed to `/bin/sh -e -c` as written, so they run one after another and the first command that fails
 * stops the rest. Never anything else: lines are never joined, and nothing outside the backticks takes part.
 */
export type Invocation = Data.TaggedEnum<{
  Direct: { readonly argv: ReadonlyArray<string> }
  Shell: { readonly script: string }
  Script: { readonly script: string; readonly lines: number }
}>
export const Invocation = Data.taggedEnum<Invocation>()

/** The shell `Shell` and `Script` commands run with: the system's POSIX shell, by absolute path. */
export const shellPath = "/bin/sh"

/** The program and arguments an invocation spawns. */
export const argvOf = (invocation: Invocation): ReadonlyArray<string> =>
  Invocation.$match(invocation, {
    Direct: ({ argv }) => argv,
    Shell: ({ script }) => [shellPath, "-c", script],
    Script: ({ script }) => [shellPath, "-e", "-c", script]
  })

const codeLines = (command: string): number => command.split("\n").filter((line) => line.trim() !== "").length

/** How `command` runs, or why it cannot (an unterminated quote on a single line). */
export const invocationOf = (command: string): Either.Either<Invocation, ShellWordsError> => {
  const words = splitShellWords(command)
  if (Either.isRight(words) && !needsShell(command)) return Either.right(Invocation.Direct({ argv: words.right }))
  if (Either.isLeft(words) && words.left.reason !== "SeveralLines") return Either.left(words.left)
  // `SeveralLines`, or one line a shell acts on. A line break inside quotes is still one line for the question.
  return Either.isLeft(words) || codeLines(command) > 1
    ? Either.right(Invocation.Script({ script: command, lines: codeLines(command) }))
    : Either.right(Invocation.Shell({ script: command }))
}

// --- What you see is what runs --------------------------------------------------------------------------------------

/**
 * Characters that show as nothing, or rearrange what is shown, in a terminal or a browser: control characters other
 * than tab and line break (escape sequences), and format characters (bidirectional overrides, zero-width spaces and
 * joiners, the byte order mark). A command holding one could be approved for what it looks like and run as something
 * else.
 */
const hiddenCharacters = /(?![\t\n])[\p{Cc}\p{Cf}]/u

const codePoint = (char: string) => `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`

/** "an invisible character (U+202E)", or `undefined` when every character of `command` shows as itself. */
const hiddenCharacter = (command: string): string | undefined => {
  const found = hiddenCharacters.exec(command)
  return found === null ? undefined : `an invisible character (${codePoint(found[0])})`
}

/** `command` with its hidden characters written as `<U+202E>`, so a question can show where they are. */
const visibly = (command: string): string =>
  command.replace(new RegExp(hiddenCharacters.source, "gu"), (char) => `<${codePoint(char)}>`)

// --- Permission -----------------------------------------------------------------------------------------------------

const approvalWords = new Set(["yes", "y", "approve", "approved", "allow", "ok"])
const refusalWords = new Set(["no", "n", "deny", "decline", "reject", "refuse", "cancel"])
const bareWord = (answer: string) =>
  answer
    .trim()
    .replace(/[.!]+$/, "")
    .toLowerCase()

/**
 * The part of the approval question that says exactly what will run, and where: an answer approves a command only
 * when the question it answers starts with this. A `Direct` command's head is the same as before shell commands
 * existed, so approvals recorded then still count; a shell command's head says it goes to `sh`, so an approval given
 * to the same text run without a shell does not carry over.
 */
const approvalHead = (command: string, invocation: Invocation, directory: string): string =>
  `${approvalLead(command, invocation)}${directory}${approvalTail(command, invocation)}`
const approvalLead = (command: string, invocation: Invocation): string =>
  Invocation.$match(invocation, {
    Direct: () => `Run ${inlineCode(command)} in `,
    Shell: () => `Run ${inlineCode(command)} with sh -c in `,
    Script: ({ lines }) => `Run these ${lines} lines with sh -e -c in `
  })
const approvalTail = (command: string, invocation: Invocation): string =>
  invocation._tag === "Script"
    ? `, one after another, stopping at the first command that fails?\n${fencedCode(command)}\n`
    : "?"
/**
 * Whether `question` asked to approve this command, in whichever directory and in whichever way it was to run then (a
 * log written before shell commands existed asked about `a && b` as words): a refusal holds anywhere.
 */
const asksAbout = (question: string, command: string, invocation: Invocation): boolean =>
  (question.startsWith(approvalLead(command, invocation)) &&
    (invocation._tag !== "Script" || question.includes(approvalTail(command, invocation)))) ||
  question.startsWith(`Run ${inlineCode(command)} in `)
const approvalQuestion = (command: string, invocation: Invocation, directory: string) =>
  `${approvalHead(command, invocation, directory)}${invocation._tag === "Script" ? "" : " "}Answer yes to run ${
    invocation._tag === "Script" ? "them" : "it"
  } once, or give another command.`
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
  Run: { readonly command: string; readonly invocation: Invocation }
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
  const hidden = hiddenCharacter(command)
  if (hidden !== undefined) {
    return Decision.Ask({
      question: `The command ${inlineCode(visibly(command))} holds ${hidden}, which would make what you approve look different from what runs. Give the command again without it, in backticks.`
    })
  }
  const invocation = invocationOf(command)
  if (Either.isLeft(invocation)) {
    return Decision.Ask({
      question: `The command ${inlineCode(command)} cannot be run: ${invocation.left.message}. Give the corrected command in backticks.`
    })
  }
  if (invocation.right._tag === "Direct" && invocation.right.argv.length === 0) {
    return Decision.Ask({ question: commandQuestion })
  }
  // Only an answer to the question about this very command, run this very way, refuses it; and only in this very
  // directory approves it.
  const verdict =
    latest !== undefined && asksAbout(latest.question, command, invocation.right) ? bareWord(latest.answer) : undefined
  if (verdict !== undefined && refusalWords.has(verdict)) return Decision.Refused({ command })
  const approved =
    verdict !== undefined &&
    approvalWords.has(verdict) &&
    latest?.question.startsWith(approvalHead(command, invocation.right, directory)) === true
  if (!allow && !approved) return Decision.Ask({ question: approvalQuestion(command, invocation.right, directory) })
  return Decision.Run({ command, invocation: invocation.right })
}

// --- The child's environment ----------------------------------------------------------------------------------------

const secretNames = new Set([
  "PLANNER_LLM_API_KEY",
  "OPENAI_API_KEY",
  "PLANNER_DATABASE_URL",
  // The collector's authorization.
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
])
const secretPattern = /(_KEY|_TOKEN|_SECRET|PASSWORD)$/i

/** True for variables a command must not see: the planner's own credentials and anything named like a secret. */
export const isSecretVariable = (name: string): boolean =>
  secretNames.has(name.toUpperCase()) || secretPattern.test(name)

/** `parent` without its secrets, plus the ids of the attempt. */
export const childEnvironment = (
  parent: Readonly<Record<string, string | undefined>>,
  context: TaskContext
): Record<string, string> => {
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
      // No store keeps a NUL (PostgreSQL refuses it), and an outcome that cannot be recorded would be retried forever.
      .replaceAll("\u0000", "\u2400")
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
    readonly outputSilenceMs: number
    /** Told how the command ended as soon as it exits, before the rest of its output is read. */
    readonly onExit?: (end: ProcessEnd) => void
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
    /** Chunks of output read so far: the drain after the exit goes on while they keep coming. */
    let chunks = 0
    const read = (chunk: Buffer) => {
      chunks += 1
      options.output.push(chunk)
    }
    child.stdout?.on("data", read)
    child.stderr?.on("data", read)
    child.on("error", (error) => {
      // After a successful spawn, errors come from signalling it; the exit still arrives.
      if (child.pid === undefined) {
        settle(ProcessEnd.SpawnFailed({ code: errnoCode(error) ?? "UNKNOWN", message: error.message }))
      }
    })
    const endOf = (code: number | null, signal: NodeJS.Signals | null): ProcessEnd =>
      code !== null ? ProcessEnd.Exited({ code }) : ProcessEnd.Signalled({ signal: signal ?? "unknown signal" })
    child.on("exit", (code, signal) => {
      // Not after an interruption (a timeout): that exit is the interruption's doing, not how the command ended.
      if (settled) return
      options.onExit?.(endOf(code, signal))
      // Output still in the pipes arrives before "close"; a process the command left behind holding the pipes would
      // delay "close" forever, so stop waiting for it once the pipes have been silent for a moment (or, output that
      // keeps coming, after a longer bound).
      const exitedAt = performance.now()
      let seen = chunks
      const drain = () => {
        drainTimer = setTimeout(() => {
          // Timers run before the event loop reads the pipes: after a stall (a loaded machine), output may be waiting
          // unread although the pipes were never silent. Decide once the loop has read what is there.
          setImmediate(() => {
            if (settled) return
            if (chunks !== seen && performance.now() - exitedAt < outputDrainMaxMs) {
              seen = chunks
              return drain()
            }
            child.stdout?.destroy()
            child.stderr?.destroy()
            settle(endOf(code, signal))
          })
        }, options.outputSilenceMs)
      }
      drain()
    })
    child.on("close", (code, signal) => {
      if (child.pid !== undefined) settle(endOf(code, signal))
    })
    // Interrupted (a timeout, a cancelled task): no more waiting for output, and the group goes. First one turn of the
    // event loop: timers run before it reads what the processes did, so an exit that came before the deadline may
    // still be waiting to be seen, and it, not the interruption, says how the command ended.
    return Effect.zipRight(
      Effect.async<void>((done) => {
        const turn = setImmediate(() => done(Effect.void))
        return Effect.sync(() => clearImmediate(turn))
      }),
      Effect.suspend(() => {
        settled = true
        clearTimeout(drainTimer)
        return pgid === undefined ? Effect.void : terminateGroup(pgid, options.killGraceMs)
      })
    )
  })
  // What the command left behind goes, whatever comes meanwhile (a timeout that lands here would cut the grace period
  // short, and with it the SIGKILL).
  return Effect.tap(wait, () =>
    pgid === undefined ? Effect.void : Effect.uninterruptible(terminateGroup(pgid, options.killGraceMs))
  )
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

/** The command on the one line that heads a result: a script shows its first line and how many there are. */
const shownCommand = (command: string, invocation: Invocation): string => {
  if (invocation._tag !== "Script") return command
  const first = command.split("\n").find((line) => line.trim() !== "") ?? ""
  return `${first.trim()} …`
}
/** A `shell` executor with the given options. */
export const make = (options: ShellExecutorOptions): ExecutorService => {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs
  const maxOutputBytes = options.maxOutputBytes ?? defaultMaxOutputBytes
  const killGraceMs = options.killGraceMs ?? defaultKillGraceMs
  const outputSilenceMs = options.outputSilenceMs ?? defaultOutputSilenceMs

  const run = Effect.fn("ShellExecutor.run")(function* (
    command: string,
    invocation: Invocation,
    cwd: string,
    context: TaskContext
  ) {
    const argv = argvOf(invocation)
    yield* Effect.annotateCurrentSpan({ command, cwd, invocation: invocation._tag })
    const program = argv[0] ?? command
    const shown = shownCommand(command, invocation)
    // "with sh -c, " before the exit code and time when a shell ran it.
    const how = Invocation.$match(invocation, {
      Direct: () => "",
      Shell: () => "with sh -c, ",
      Script: ({ lines }) => `${lines} lines with sh -e -c, `
    })
    const output = new OutputTail(maxOutputBytes)
    const startedAt = yield* Clock.currentTimeMillis
    // The command may exit in time and the timeout come while the rest of its output is read: it ended as it exited.
    let exited: ProcessEnd | undefined
    const ran = yield* runProcess(argv, {
      cwd,
      env: childEnvironment(process.env, context),
      output,
      killGraceMs,
      outputSilenceMs,
      onExit: (end) => {
        exited = end
      }
    }).pipe(Effect.timeoutOption(Duration.millis(timeoutMs)))
    const ended = Option.isNone(ran) && exited !== undefined ? Option.some(exited) : ran
    const elapsed = seconds((yield* Clock.currentTimeMillis) - startedAt)
    const text = output.text()
    if (Option.isNone(ended)) {
      return Outcome.Failed({
        error: withOutput(
          `timed out after ${seconds(timeoutMs)}: $ ${shown}${how === "" ? "" : ` (${how.slice(0, -2)})`}`,
          text
        ),
        retryable: true
      })
    }
    return ProcessEnd.$match(ended.value, {
      Exited: ({ code }) =>
        code === 0
          ? Outcome.Completed({ result: withOutput(`$ ${shown} (${how}exit 0, ${elapsed})`, text) })
          : Outcome.Failed({
              error: withOutput(`exit code ${code}: $ ${shown} (${how}${elapsed})`, text),
              retryable: false
            }),
      Signalled: ({ signal }) =>
        Outcome.Failed({
          error: withOutput(`killed by ${signal}: $ ${shown} (${how}${elapsed})`, text),
          retryable: true
        }),
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
            return yield* run(decision.command, decision.invocation, directory, context)
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
