/**
 * How the command line ends: exit codes, and the one line on standard error that says what was wrong and what to do.
 *
 * Errors from the layers below are classified here by their tag, so this module does not load them (the commands
 * that only read the store start faster without the runner and the LLM clients).
 */
import { ConfigError, Data, Effect } from "effect"

/** Exit codes, documented in the README's "Command line" section. */
export const ExitCode = {
  /** The plan completed, or the command did what it was asked. */
  ok: 0,
  /** The plan failed or was cancelled. */
  planFailed: 1,
  /** Bad usage or input: an empty request, an unknown session or task, a malformed script file, ... */
  usage: 2,
  /** The plan waits for answers nobody here gave. */
  waiting: 3,
  /** The store, or another service the command needs, cannot be reached or used. */
  unavailable: 4,
  /** Stopped by SIGINT or SIGTERM. */
  interrupted: 130
} as const

/**
 * A failure that ends the process with `code` after `message`, one line on standard error. `sessionId`: the session
 * it leaves to go on with (a field of the JSON error under --json); `detail`: the error it stands for, whose whole
 * cause --verbose prints.
 */
export class CliFailure extends Data.TaggedError("CliFailure")<{
  readonly code: number
  readonly message: string
  readonly sessionId?: string
  readonly detail?: unknown
}> {}

/** Ends the process with `code` and nothing more to say (what happened was already printed). */
export class CliExit extends Data.TaggedError("CliExit")<{ readonly code: number }> {}

export const usage = (message: string) => new CliFailure({ code: ExitCode.usage, message })
export const unavailable = (message: string) => new CliFailure({ code: ExitCode.unavailable, message })

const usageTags: ReadonlySet<string> = new Set([
  "UnknownSession",
  "UnknownTask",
  "EmptyRequest",
  "RequestTooLarge",
  "InvalidPlan",
  "SessionNotStarted",
  "SessionAlreadyStarted",
  "SessionFinished",
  "InvalidTransition",
  "StaleAttempt",
  "TaskAlreadyClaimed",
  "InvalidCompaction",
  "ScriptFileError",
  // Plan edits the planner refuses (#15): a started task, a cycle, a task others wait for, a malformed edit.
  "TaskNotEditable",
  "EditCreatesCycle",
  "TaskHasDependents",
  "InvalidEdit",
  "ForkOutOfRange"
])

/**
 * Failures to use the store: the log, and the tables kept beside it (the task queue, budget holds). Not the memory
 * index's: it also stands for an embeddings endpoint that failed, which is no store of ours.
 */
const storeTags: ReadonlySet<string> = new Set([
  "EventStoreError",
  "CorruptEvent",
  "SequenceConflict",
  "SqlError",
  "TaskQueueError",
  "BudgetHoldsError"
])

/**
 * Services other than the store that a command cannot do without (the dashboard's address), and a pruned session's
 * snapshot that cannot be read: exit code 4 with their own words.
 */
const serviceTags: ReadonlySet<string> = new Set(["ServeError", "SnapshotUnreadable"])

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ").trim()

/** The messages of a `ConfigError`, without its `(Invalid data at ...)` wrapping. */
export const configMessage = (error: ConfigError.ConfigError): string => {
  switch (error._op) {
    case "And":
    case "Or":
      return `${configMessage(error.left)}; ${configMessage(error.right)}`
    default: {
      const where = error.path.join(".")
      return where.length === 0 || error.message.includes(where) ? error.message : `${where}: ${error.message}`
    }
  }
}

const tagOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : undefined

const messageOf = (error: unknown): string =>
  error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
    ? String((error as { message: unknown }).message)
    : String(error)

/** A message without its closing full stop (and spaces), for a sentence to follow it. */
const withoutFullStop = (message: string) => message.replace(/[.\s]*$/, "")

/** The fields of `@effect/platform`'s `SystemError` read here (its own message names the module and method). */
interface SystemErrorLike {
  readonly reason: string
  readonly pathOrDescriptor?: string | number
  readonly description?: string
}

/** The reasons that say the path given is wrong (a missing file, a path through a file, no permission). */
const badPathReasons: ReadonlySet<string> = new Set(["NotFound", "BadResource", "PermissionDenied", "AlreadyExists"])
/** Node's codes that say so too, where @effect/platform's reason is "Unknown" (a name too long, a link loop). */
const badPathCodes: ReadonlySet<string> = new Set(["ENAMETOOLONG", "ELOOP", "ENOTDIR", "EISDIR", "ENOENT", "EACCES"])

/**
 * A file or folder the command could not use, such as one named on the command line that @effect/cli looks at before
 * the command runs (`--file notes.txt/r.txt`: ENOTDIR), said as the path and why: exit 2 when the path is wrong, 4 for
 * the rest (a full disk, an I/O error).
 */
const fileProblem = (error: SystemErrorLike): CliFailure => {
  const description = error.description ?? ""
  // Node's text, "ENOTDIR: not a directory, access '/x'": the plain words and the code.
  const node = /^([A-Z][A-Z0-9]+): ([^,]+)/.exec(description)
  const why = node === null ? oneLine(description || error.reason) : `${node[2]} (${node[1]})`
  const what = error.pathOrDescriptor === undefined ? "a file" : String(error.pathOrDescriptor)
  return badPathReasons.has(error.reason) || (node !== null && badPathCodes.has(node[1] ?? ""))
    ? usage(`Cannot use ${what}: ${why}. Check the path.`)
    : unavailable(`Cannot use ${what}: ${why}.`)
}

/**
 * The failure a defect stands for when it is no bug of ours: @effect/cli's check of a path option dies with the
 * `SystemError` of a path it cannot look at (a path through a file, a folder it may not enter) rather than failing.
 */
export const defectFailure = (defect: unknown): CliFailure | undefined =>
  tagOf(defect) === "SystemError" ? fileProblem(defect as SystemErrorLike) : undefined

/** The failure an error from any layer ends the command with. */
export const toFailure = (error: unknown): CliFailure | CliExit => {
  if (error instanceof CliFailure || error instanceof CliExit) return error
  if (ConfigError.isConfigError(error)) {
    return usage(
      `The LLM settings in the environment are invalid: ${configMessage(error)}. Fix or unset the PLANNER_LLM_* variables.`
    )
  }
  const tag = tagOf(error)
  const message = oneLine(messageOf(error))
  if (tag !== undefined && usageTags.has(tag)) return usage(message)
  if (tag !== undefined && serviceTags.has(tag)) return unavailable(message)
  if (tag === "SystemError") return fileProblem(error as SystemErrorLike)
  // A corrupt log (an undecodable event, a gap in a session's sequence) says what to do itself.
  if (tag === "CorruptEvent") return unavailable(message)
  // A SQLite file this user may read but not write was opened read only (see `Store.storeLayer`).
  if (tag !== undefined && storeTags.has(tag) && /readonly database/i.test(message)) {
    return unavailable(
      `${withoutFullStop(message)}: this user may read the database but not write to it or its folder. Run the command as a user who may, or choose another database with --db.`
    )
  }
  if (tag !== undefined && storeTags.has(tag)) {
    return unavailable(`${withoutFullStop(message)}. Check that the store is reachable (--db or PLANNER_DATABASE_URL).`)
  }
  return new CliFailure({
    code: ExitCode.planFailed,
    message: `${message.length > 0 ? message : "unexpected error"} (run again with --verbose for details)`
  })
}

/**
 * Whether the store failed a command mid-way, for reasons a later run may not meet (it could not be reached, it
 * refused a write): nothing recorded is lost, and a running session goes on with `planner resume`. Not a corrupt log,
 * which says what to do itself.
 */
export const isStoreFailure = (error: unknown): boolean => {
  const tag = tagOf(error)
  return tag !== undefined && tag !== "CorruptEvent" && storeTags.has(tag)
}

let interruptExitCode: number = ExitCode.interrupted

/** The exit code for a stop by SIGINT or SIGTERM: 130, or what the running command set. */
export const exitCodeOnInterrupt = (): number => interruptExitCode

export const setInterruptExitCode = (code: number): void => {
  interruptExitCode = code
}

/** After the first SIGINT or SIGTERM a command has this long to stop before the process is ended (see `main.ts`). */
export const stopWithinMs = 5_000

/** How a command's unconfirmed stop line says why it was ended: both ways `main.ts` ends one early. */
export const unconfirmedStopReason = `no answer in ${stopWithinMs / 1_000} s, or a second signal`

/** A line to print, on standard output (1) or standard error (2). */
export interface StopLine {
  readonly fd: 1 | 2
  readonly line: string
}

let unconfirmedStop: StopLine | undefined

/**
 * What to print when the process is ended before the running command has stopped: a second signal, or `stopWithinMs`
 * after the first while stopping waits on a store that does not answer (giving back a held task is a write). Taken
 * once: the process ends right after.
 */
export const takeUnconfirmedStop = (): StopLine | undefined => {
  const taken = unconfirmedStop
  unconfirmedStop = undefined
  return taken
}

/**
 * Runs `self`, saying how it stopped if a signal stops it: `stopped` once it has stopped (its finalizers done), or,
 * when the process is ended before that, `unconfirmed` (printed by `main.ts` as it exits), so that a stop never ends
 * the command without a word about where things stand (the session to resume, the tasks left held).
 */
export const sayingHowItStops =
  (stopped: Effect.Effect<void>, unconfirmed: StopLine) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    const clear = Effect.sync(() => {
      if (unconfirmedStop === unconfirmed) unconfirmedStop = undefined
    })
    return Effect.sync(() => {
      unconfirmedStop = unconfirmed
    }).pipe(
      Effect.zipRight(self),
      Effect.onInterrupt(() => Effect.zipRight(clear, stopped)),
      Effect.ensuring(clear)
    )
  }
