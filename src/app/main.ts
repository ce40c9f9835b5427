/**
 * The `planner` executable: runs the command line, and turns how it ended into an exit code with at most one line on
 * standard error (a stack trace only with --verbose). Known secrets (database passwords, API keys) are scrubbed from
 * everything it prints there.
 */
import { CliConfig, ValidationError } from "@effect/cli"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { Cause, Console, Effect, Exit, FiberRef, Layer, Logger, LogLevel, Option } from "effect"
import {
  cli,
  commandNames,
  helpConfig,
  notWholeNumber,
  optionNames,
  optionValues,
  plainUsage,
  rootHelp,
  usageLine,
  withoutGenericHelp
} from "./Cli.js"
import { errorLine, registerCommandLineSecrets, visible } from "./cli/ErrorLine.js"
import {
  CliExit,
  CliFailure,
  defectFailure,
  ExitCode,
  exitCodeOnInterrupt,
  stopWithinMs,
  takeUnconfirmedStop,
  toFailure,
  usage
} from "./cli/Failure.js"
import { colourDisabled, scrub, stripAnsi } from "./cli/Output.js"
import * as RepeatedLines from "./cli/RepeatedLines.js"

const args = process.argv.slice(2)
const verbose = args.includes("--verbose")

registerCommandLineSecrets(args)

const oneLine = (text: string) => text.replace(/\s+/g, " ").trim()
const line = (text: string) => process.stderr.write(`${scrub(text)}\n`)

/**
 * Under --json an error is JSON too: one object on standard error, `{"error":{"code":2,"message":"..."}}`, with the
 * same exit code. (A stack trace from --verbose stays text, after it.)
 */
const json = args.includes("--json")
const failureLine = (text: string, code: number, fields: Readonly<Record<string, string>> = {}) =>
  process.stderr.write(`${errorLine(text, code, json, fields)}\n`)

/** What @effect/cli said about bad usage; printed by the teardown as one line. */
let usageMessage = ""

/**
 * @effect/cli prints help with ANSI styles and its usage errors as several lines: keep the styles for terminals only,
 * and keep usage errors for the one line the teardown prints.
 */
const cliConsole = Effect.map(Effect.console, (console): Console.Console => {
  const plainOutput = colourDisabled() || process.stdout.isTTY !== true
  return {
    ...console,
    log: (...items: ReadonlyArray<unknown>) =>
      Effect.sync(() => {
        const text = withoutGenericHelp(items.map(String).join(" ").replace(/\n+$/, ""))
        process.stdout.write(`${plainOutput ? stripAnsi(text) : text}\n`)
      }),
    error: (...items: ReadonlyArray<unknown>) =>
      Effect.sync(() => {
        usageMessage = plainUsage(
          oneLine(stripAnsi(items.map(String).join(" "))),
          subcommand === undefined ? args : subcommandOptions,
          subcommand === undefined ? "" : stripAnsi(usageLine(subcommand) ?? ""),
          subcommand
        )
      })
  }
})

/** Without --verbose, a warning repeated word for word is printed once a minute (see `RepeatedLines`). */
const repeatedWarnings = verbose ? undefined : RepeatedLines.make(60_000, Date.now)

/** Logs go to standard error, one line each: warnings and errors by default, everything with --verbose. */
const stderrLogger = Logger.make(({ cause, logLevel, message }) => {
  const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
  const detail = verbose && !Cause.isEmpty(cause) ? `\n${Cause.pretty(cause)}` : ""
  // A log line may repeat stored text (a session id, a row that cannot be read): escaped, as error lines are.
  const shown = `${logLevel.label.toLowerCase()}: ${visible(text)}${detail}`
  const admitted = logLevel._tag === "Warning" && repeatedWarnings !== undefined ? repeatedWarnings.admit(shown) : shown
  if (admitted !== undefined) line(admitted)
})

const logging = Layer.merge(
  Logger.replace(Logger.defaultLogger, stderrLogger),
  Logger.minimumLogLevel(verbose ? LogLevel.Debug : LogLevel.Warning)
)

/**
 * OpenTelemetry export, configured by the standard `OTEL_*` variables (see `Telemetry.ts`). The exporter's modules are
 * only loaded when an OTLP endpoint is set: most commands never trace, and start-up time counts for every command.
 */
const telemetry = Layer.unwrapEffect(
  Object.keys(process.env).some((name) => name.startsWith("OTEL_EXPORTER_OTLP") && name.endsWith("ENDPOINT"))
    ? Effect.map(
        Effect.promise(() => import("./Telemetry.js")),
        (Telemetry) => Telemetry.layerFromEnv
      )
    : Effect.succeed(Layer.empty)
)

const environment = Layer.mergeAll(
  NodeFileSystem.layer,
  NodePath.layer,
  NodeTerminal.layer,
  Layer.succeed(CliConfig.CliConfig, helpConfig),
  logging,
  telemetry.pipe(Layer.provide(logging))
)

/** The subcommand named on the command line, for "see planner run --help". */
const subcommand = args.find((arg) => commandNames.includes(arg))

/** The command line after the subcommand, up to a `--` (what comes after it is not options). */
const subcommandOptions: ReadonlyArray<string> = (() => {
  if (subcommand === undefined) return []
  const rest = args.slice(args.indexOf(subcommand) + 1)
  const end = rest.indexOf("--")
  return end < 0 ? rest : rest.slice(0, end)
})()

/** An option the subcommand does not take, if the command line has one. */
const unknownOption = (): string | undefined => {
  if (subcommand === undefined) return undefined
  const known = optionNames(subcommand)
  if (known === undefined) return undefined
  return subcommandOptions
    .filter((arg) => /^--?[A-Za-z]/.test(arg))
    .map((arg) => arg.split("=")[0] ?? arg)
    .find((name) => !known.has(name))
}

/**
 * Options for which an empty value means something, or that say themselves what is wrong with one: `--system-prompt ""`
 * is no system prompt; `--db ""` and `--reason ""` are refused with their own words.
 */
const emptyAllowed: ReadonlySet<string> = new Set(["--system-prompt", "--db", "--reason"])

/**
 * An option that takes a value, given an empty one (`--attach ""`, `--answer=`): @effect/cli drops some of them without
 * a word, as if they had not been given.
 */
const emptyValue = (): string | undefined => {
  if (subcommand === undefined) return undefined
  const usage = stripAnsi(usageLine(subcommand) ?? "")
  const takesValue = new Set(
    [...usage.matchAll(/(--[a-z][a-z-]*) (?!\||--)[^\s[\]]/g)]
      .map((match) => match[1])
      .filter((option) => option !== undefined && !emptyAllowed.has(option))
  )
  return optionValues(subcommandOptions).find(([option, value]) => takesValue.has(option) && value.trim() === "")?.[0]
}

/** The counts of warnings held back that never came again (see `RepeatedLines`), before the command's last word. */
const tellHeldBack = () => {
  for (const held of repeatedWarnings?.heldBack() ?? []) line(held)
}

/** The failure a defect of the cause stands for when it is no bug of ours (see `defectFailure`). */
const knownDefect = (cause: Cause.Cause<unknown>) =>
  Option.getOrUndefined(Cause.dieOption(cause).pipe(Option.flatMapNullable(defectFailure)))

const report = (cause: Cause.Cause<unknown>) =>
  Effect.sync(() => {
    tellHeldBack()
    if (Cause.isInterruptedOnly(cause)) return
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const error = failure.value
      if (error instanceof CliExit) return
      if (ValidationError.isValidationError(error)) {
        const said = usageMessage.length > 0 ? usageMessage : "Invalid usage"
        const isHelp = error._tag === "HelpRequested"
        if (!isHelp)
          failureLine(
            `planner: ${said}. See \`planner${subcommand === undefined ? "" : ` ${subcommand}`} --help\`.`,
            ExitCode.usage
          )
        return
      }
      const mapped = error instanceof CliFailure ? error : toFailure(error)
      if (mapped instanceof CliFailure) {
        failureLine(
          `planner: ${mapped.message}`,
          mapped.code,
          mapped.sessionId === undefined ? {} : { sessionId: mapped.sessionId }
        )
      }
      if (verbose && !(error instanceof CliFailure)) line(Cause.pretty(cause))
      else if (verbose && mapped instanceof CliFailure && mapped.detail !== undefined) {
        line(Cause.pretty(Cause.fail(mapped.detail)))
      }
      return
    }
    const known = knownDefect(cause)
    if (known !== undefined) {
      failureLine(`planner: ${known.message}`, known.code)
      if (verbose) line(Cause.pretty(cause))
      return
    }
    const what = Option.match(Cause.dieOption(cause), {
      onNone: () => "unexpected failure",
      onSome: (value) => (value instanceof Error ? value.message : String(value))
    })
    failureLine(
      `planner: ${oneLine(what)}${verbose ? "" : " (run again with --verbose for details)"}`,
      ExitCode.planFailed
    )
    if (verbose) line(Cause.pretty(cause))
  })

const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return ExitCode.ok
  const cause = exit.cause
  if (Cause.isInterruptedOnly(cause)) return exitCodeOnInterrupt()
  const failure = Cause.failureOption(cause)
  if (Option.isNone(failure)) return knownDefect(cause)?.code ?? ExitCode.planFailed
  const error = failure.value
  if (error instanceof CliExit || error instanceof CliFailure) return error.code
  if (ValidationError.isValidationError(error)) return error._tag === "HelpRequested" ? ExitCode.ok : ExitCode.usage
  return toFailure(error).code
}

const wantsRootHelp = args.length === 0 || (args.length === 1 && (args[0] === "--help" || args[0] === "-h"))

const start = Effect.suspend(() => {
  if (wantsRootHelp) return Console.log(rootHelp)
  const unknown = unknownOption()
  if (unknown !== undefined) {
    return Effect.fail(
      usage(`Unknown option ${unknown} for \`planner ${subcommand}\`. See \`planner ${subcommand} --help\`.`)
    )
  }
  const empty = emptyValue()
  if (empty !== undefined) {
    const option = empty.replace(/=$/, "")
    return Effect.fail(
      usage(
        `${option} is given an empty value: give it one, or leave ${option} out. See \`planner ${subcommand} --help\`.`
      )
    )
  }
  const [option, value] = notWholeNumber(subcommandOptions) ?? []
  if (option !== undefined) {
    return Effect.fail(
      usage(`${option} needs a whole number; got '${visible(value ?? "")}'. See \`planner ${subcommand} --help\`.`)
    )
  }
  return cli(process.argv)
})

const program = Effect.zipRight(
  // `report` says what went wrong in one line: the runtime's own note of the failed main fiber (with its trace, under
  // --verbose) would repeat it. Set on the fiber itself, which notes its failure as it ends.
  FiberRef.set(FiberRef.unhandledErrorLogLevel, Option.none()),
  Effect.flatMap(cliConsole, (console) =>
    start.pipe(Effect.tapErrorCause(report), Effect.provide(environment), Effect.withConsole(console))
  )
)

/**
 * Signals, beside the runtime's own handlers (the first one interrupts the command): a second signal, or one that
 * comes while the output drains, ends the process at once, as a signal without handlers would.
 */
let signalled = false
let draining = false
/**
 * Ends the process, with the word the running command left for a stop it could not finish (see `sayingHowItStops`).
 * The line goes through the stream, after what was written before it (a pipe that is full takes it once the reader
 * has caught up), and the process ends once it is out, or after a second at the latest.
 */
const endNow = () => {
  const exit = () => process.exit(exitCodeOnInterrupt())
  const unconfirmed = takeUnconfirmedStop()
  if (unconfirmed === undefined) return exit()
  setTimeout(exit, 1_000)
  const stream = unconfirmed.fd === 1 ? process.stdout : process.stderr
  // A reader that went away (EPIPE) takes nothing: there is nobody to tell.
  stream.once("error", exit)
  if (stream.destroyed || !stream.writable) return exit()
  stream.write(`${scrub(unconfirmed.line)}\n`, exit)
}
/** After the first signal the command has `stopWithinMs` to stop; stuck where it cannot be interrupted, it is ended. */
const onSignal = () => {
  if (signalled || draining) endNow()
  signalled = true
  setTimeout(endNow, stopWithinMs).unref()
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

/**
 * Exits once everything written to standard output and error has left the process. On Linux a write to a pipe that is
 * full (64 KiB unread) is queued, and `process.exit` drops the queue: a piped `--json` answer was cut. An empty write's
 * callback runs after every earlier write of that stream. A reader that went away (EPIPE) takes nothing more, so that
 * stream counts as done. A command stopped by a signal exits at once.
 */
const exitWhenWritten = (exit: Exit.Exit<unknown, unknown>) => {
  const code = exitCode(exit)
  tellHeldBack()
  // A command that finished as the signal came ends as stopped: what it wrote may not have been read.
  if (signalled) return process.exit(Exit.isSuccess(exit) ? exitCodeOnInterrupt() : code)
  if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) return process.exit(code)
  draining = true
  let pending = 2
  for (const stream of [process.stdout, process.stderr]) {
    let done = false
    const finish = () => {
      if (done) return
      done = true
      pending -= 1
      if (pending === 0) process.exit(code)
    }
    stream.once("error", finish)
    if (stream.destroyed || !stream.writable) finish()
    else stream.write("", finish)
  }
}

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  // Exit explicitly: an open handle (standard input, a database pool) must not keep a finished command alive.
  teardown: exitWhenWritten
})
