/** The request text of `plan` and `run`: an argument, `-` for standard input, or `--file PATH`. */
import * as Fs from "node:fs"
import { Effect, Option } from "effect"
import { type PlanFile, parsePlanFile } from "../../domain/PlanFile.js"
import { findUnstorableText, unstorableText } from "../../domain/SchemaGuard.js"
import { fileProblem } from "../../infra/FileProblem.js"
import { usage } from "./Failure.js"

/**
 * `text` when every store can keep it; otherwise exit code 2 saying what holds what (a NUL character, a lone UTF-16
 * surrogate) and where. Every piece of text a command records goes through this first.
 */
export const storable = (what: string, text: string) => {
  const problem = unstorableText(text)
  return problem === undefined
    ? Effect.succeed(text)
    : Effect.fail(usage(`${what} holds ${problem}, which cannot be stored: remove it and try again.`))
}

/**
 * `storable` for text given on the command line. Node decodes the arguments as UTF-8 and puts U+FFFD where bytes are
 * not (a terminal set to Latin-1, say): refused rather than stored with the characters lost, as a file or standard
 * input that is not UTF-8 is.
 */
export const storableArgument = (what: string, text: string) =>
  text.includes("\uFFFD")
    ? Effect.fail(
        usage(
          `${what} holds bytes that are not UTF-8 text (shown as U+FFFD): set your terminal to UTF-8, or pass it in a UTF-8 file.`
        )
      )
    : storable(what, text)

/** Everything on standard input until it ends; empty at once when there is nothing to read. */
const readStdinBytes = Effect.async<Buffer>((resume) => {
  const chunks: Array<Buffer> = []
  process.stdin.on("data", (chunk: Buffer) => chunks.push(chunk))
  process.stdin.on("end", () => resume(Effect.succeed(Buffer.concat(chunks))))
  process.stdin.on("error", () => resume(Effect.succeed(Buffer.concat(chunks))))
  process.stdin.resume()
})

/**
 * Bytes as UTF-8 text, or exit code 2: bytes that are not UTF-8 would otherwise become U+FFFD without a word, and be
 * stored that way. A leading byte-order mark is dropped.
 */
const utf8 = (what: string, bytes: Buffer) =>
  Effect.try({
    try: () => new TextDecoder("utf-8", { fatal: true }).decode(bytes),
    catch: () => usage(`${what} is not UTF-8 text: save it as UTF-8 and try again.`)
  })

const readStdin = (what: string) => Effect.flatMap(readStdinBytes, (bytes) => utf8(what, bytes))

const readTextFile = (path: string, what: string) =>
  path.trim() === ""
    ? Effect.fail(usage(`The path of ${what} is empty: give the path of a file.`))
    : Effect.flatMap(
        Effect.try({
          try: () => Fs.readFileSync(path),
          catch: (error) => {
            const { problem, remedy } = fileProblem(error)
            return usage(`Cannot read ${what} ${path}: ${problem}: ${remedy}.`)
          }
        }),
        (bytes) => utf8(`${what.charAt(0).toUpperCase()}${what.slice(1)} ${path}`, bytes)
      )

const requestOnStdin = Effect.flatMap(readStdin("The request on standard input"), (input) =>
  storable("The request on standard input", input)
)

export const readRequest = (text: Option.Option<string>, file: Option.Option<string>) =>
  Effect.gen(function* () {
    if (Option.isSome(file)) {
      if (Option.isSome(text)) return yield* usage("Give the request either as text or with --file, not both.")
      const path = file.value
      // `--file -` reads standard input, as `run --plan -` does.
      if (path === "-") return yield* requestOnStdin
      const content = yield* readTextFile(path, "the request file")
      return yield* storable(`The request file ${path}`, content)
    }
    if (Option.isNone(text)) {
      return yield* usage(
        'No request given: pass it as an argument in quotes, as "-" to read standard input, or with --file PATH.'
      )
    }
    const given = text.value
    // @effect/cli hands an unknown option to the optional text argument; say what it is instead of planning it.
    if (/^--?[A-Za-z]/.test(given)) {
      return yield* usage(`Unknown option ${given.split("=")[0]}: see --help for the options.`)
    }
    return given === "-" ? yield* requestOnStdin : yield* storableArgument("The request", given)
  })

/**
 * The plan of `run --plan PATH` (`-` for standard input): read, checked as storable text, and validated by
 * `PlanFile.parsePlanFile`; exit code 2 with the reason when it cannot be run.
 */
export const readPlan = (path: string): Effect.Effect<PlanFile, ReturnType<typeof usage>> =>
  Effect.gen(function* () {
    const source = path === "-" ? "standard input" : path
    const text =
      path === "-" ? yield* readStdin("The plan on standard input") : yield* readTextFile(path, "the plan file")
    const checked = yield* storable(`The plan on ${source}`, text)
    const plan = parsePlanFile(checked, source)
    if (plan._tag === "Left") return yield* Effect.fail(usage(plan.left.message))
    // JSON escapes (`\u0000`, a lone `\ud800`) only become such text once parsed.
    const unstorable =
      findUnstorableText(plan.right.tasks, ["tasks"]) ?? findUnstorableText(plan.right.request, ["request"])
    if (unstorable !== undefined) {
      return yield* usage(
        `The plan on ${source} holds ${unstorable.problem} at ${unstorable.path}, which cannot be stored: remove it and try again.`
      )
    }
    return plan.right
  })
