/**
 * The `planner` command line. For now it plans: `planner plan "<text>"` prints the tasks the deterministic parser
 * makes of a request, without running or storing anything. Running plans comes with the runner.
 */
import { Args, Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { Console, Data, Effect, Option } from "effect"
import * as Parser from "../domain/Parser.js"
import type { TaskPlan } from "../domain/Task.js"

/** A failure that ends the process with a specific exit code after one line on standard error. */
export class CliFailure extends Data.TaggedError("CliFailure")<{ readonly code: number; readonly message: string }> {}

/** Exit codes, documented in the README. */
export const ExitCode = { ok: 0, planFailed: 1, usage: 2, waiting: 3, unavailable: 4 } as const

const readStdin = Effect.async<string>((resume) => {
  const chunks: Array<Buffer> = []
  process.stdin.on("data", (chunk: Buffer) => chunks.push(chunk))
  process.stdin.on("end", () => resume(Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
  process.stdin.resume()
})

/** The request text: an argument, `-` for standard input, or `--file PATH`. */
const requestText = (text: Option.Option<string>, file: Option.Option<string>) =>
  Effect.gen(function* () {
    if (Option.isSome(file)) {
      const fs = yield* FileSystem.FileSystem
      return yield* fs
        .readFileString(file.value)
        .pipe(
          Effect.mapError(
            (error) => new CliFailure({ code: ExitCode.usage, message: `Cannot read ${file.value}: ${error.message}` })
          )
        )
    }
    if (Option.isNone(text)) {
      return yield* new CliFailure({
        code: ExitCode.usage,
        message: 'No request given: pass it as an argument, as "-" to read standard input, or with --file PATH.'
      })
    }
    return text.value === "-" ? yield* readStdin : text.value
  })

export const renderPlan = (tasks: ReadonlyArray<TaskPlan>): string =>
  tasks
    .map((task) => {
      const after = task.dependsOn.length === 0 ? "" : `  (after ${task.dependsOn.join(", ")})`
      const attachments = task.attachments.map((a) => `\n     ${a.kind}: ${a.value}`).join("")
      return `${String(task.id).padStart(3)}. [${task.kind}] ${task.description}${after}${attachments}`
    })
    .join("\n")

const text = Args.text({ name: "request" }).pipe(
  Args.withDescription('The request in plain text, or "-" for standard input'),
  Args.optional
)
const file = Options.file("file").pipe(Options.withDescription("Read the request from this file"), Options.optional)
const json = Options.boolean("json").pipe(Options.withDescription("Print JSON instead of text"))

const plan = Command.make("plan", { text, file, json }, ({ file, json, text }) =>
  Effect.gen(function* () {
    const request = yield* requestText(text, file)
    const tasks = yield* Parser.parse(request).pipe(
      Effect.mapError((error) => new CliFailure({ code: ExitCode.usage, message: error.message }))
    )
    yield* Console.log(json ? JSON.stringify({ tasks }) : renderPlan(tasks))
  })
).pipe(
  Command.withDescription(
    'Print the plan the parser makes of a request, without running or storing anything.\nExample: planner plan "Add login. Then write unit tests."'
  )
)

export const planner = Command.make("planner").pipe(
  Command.withDescription("An event-sourced AI planner: plain text in, tasks out, every step recorded."),
  Command.withSubcommands([plan])
)

export const cli = Command.run(planner, { name: "planner", version: "0.1.0" })
