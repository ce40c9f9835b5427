/**
 * `planner plan` without the rest of the command line: the entry of the small bundle dist/cli/plan.cjs, which
 * bin/planner.js runs instead of the full one (dist/cli/main.cjs, from `./main.ts`) when `cli/PlanArgs.ts` says it
 * answers the command line: no LLM configured, and only the request, `--json` and `--file`. It then never loads
 * @effect/cli, the stores, the runner or the definitions of the other commands: most of what the full bundle evaluates
 * before it runs anything. It runs the same `planWithParser` as the full command line's `plan` (without an LLM) and
 * prints the same error line with the same exit code.
 */
import * as Fs from "node:fs"
import { Cause, Effect, Exit, Option } from "effect"
import { errorLine, registerCommandLineSecrets } from "./cli/ErrorLine.js"
import { CliExit, ExitCode, exitCodeOnInterrupt, toFailure } from "./cli/Failure.js"
import { fastPlanArgs } from "./cli/PlanArgs.js"
import { planWithParser } from "./cli/PlanCommand.js"

const args = process.argv.slice(2)
registerCommandLineSecrets(args)

const isFile = (path: string) => Fs.statSync(path, { throwIfNoEntry: false })?.isFile() === true
const flags = fastPlanArgs(args, process.env, isFile)

const fail = (text: string, code: number) => {
  process.stderr.write(`${errorLine(text, code, args.includes("--json"))}\n`)
  process.exitCode = code
}

/** As the full command line's teardown says it (`./main.ts`): a failure's own line, or a defect's message. */
const report = (cause: Cause.Cause<unknown>) => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const mapped = toFailure(failure.value)
    // A CliExit has said what it had to say already.
    if (mapped instanceof CliExit) process.exitCode = mapped.code
    else fail(`planner: ${mapped.message}`, mapped.code)
    return
  }
  const what = Option.match(Cause.dieOption(cause), {
    onNone: () => "unexpected failure",
    onSome: (value) => (value instanceof Error ? value.message : String(value))
  })
  fail(`planner: ${what.replace(/\s+/g, " ").trim()} (run again with --verbose for details)`, ExitCode.planFailed)
}

// A reader that went away (EPIPE: `planner plan --json ... | head -c 100`) takes nothing more: the command ends quietly
// with its own exit code, as the full one does.
process.stdout.on("error", () => process.exit())
process.stderr.on("error", () => process.exit())

// A signal ends the command as it ends the full one (130 for an interrupt); nothing has been stored.
const onSignal = () => process.exit(exitCodeOnInterrupt())
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

if (flags === undefined) {
  // bin/planner.js only runs this bundle for command lines PlanArgs takes.
  fail("planner: this command line is for the full planner bundle (dist/cli/main.cjs)", ExitCode.usage)
} else {
  Effect.runPromiseExit(
    planWithParser({
      request: Option.fromNullable(flags.request),
      file: Option.fromNullable(flags.file),
      json: flags.json
    })
  ).then((exit) => {
    // No process.exit: the process ends once standard output has drained (a piped answer is never cut).
    if (Exit.isFailure(exit)) report(exit.cause)
  })
}
