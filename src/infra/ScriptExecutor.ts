/**
 * The `script` executor: outcomes read from a JSON file instead of real work, for demos, tests, and users trying their
 * own plans. The format:
 *
 * ```json
 * {
 *   "rules": [
 *     { "match": "deploy", "delayMs": 200, "outcomes": [{ "fail": "host unreachable", "retryable": true }, { "complete": "deployed" }] },
 *     { "match": "which (file|branch)", "outcomes": [{ "ask": "Which one?" }, { "complete": "used {answer}" }] }
 *   ],
 *   "default": { "complete": "done: {description}" }
 * }
 * ```
 *
 * - `match` is a JavaScript regular expression, matched case-insensitively anywhere in the task's description; the
 *   first rule that matches decides, and a task no rule matches gets `default`.
 * - Attempt n of a task (1, 2, ...) gets `outcomes[n - 1]`, and the last outcome repeats. The attempt number comes
 *   from the task's context, so the executor keeps no state: restarts and several processes see the same script.
 * - An outcome is `{"complete": result}`, `{"fail": error, "retryable": true}` (`retryable` defaults to true) or
 *   `{"ask": question}`. Their text may hold `{answer}` (the task's latest clarification answer, empty when there is
 *   none), `{description}`, `{taskId}` and `{attempt}`.
 * - `delayMs` (default 0) is waited before the outcome, interruptibly.
 * - `untilFile` (optional) holds the outcome until a file at that path exists (checked every 50 ms, interruptibly):
 *   a step that waits for something outside the planner, such as a person or another program saying "go".
 * - Unknown fields are errors, so a misspelt field is reported instead of ignored.
 * - `"record": "PATH"` (optional) appends one JSON line per execution to PATH (`{"taskId","attempt","description"}`):
 *   an account of what ran that does not come from the planner's log, for checking which tasks a fork re-ran.
 */
import * as Fs from "node:fs"
import { FileSystem } from "@effect/platform"
import { Effect, ParseResult, Schema } from "effect"
import { type ExecutorService, Outcome, type TaskContext } from "./Executor.js"
import { fileProblem } from "./FileProblem.js"
import { hotFn } from "./Tracing.js"

const Pattern = Schema.String.pipe(
  Schema.filter(
    (source) => {
      try {
        new RegExp(source, "i")
        return true
      } catch (error) {
        return error instanceof Error ? error.message : `invalid regular expression /${source}/`
      }
    },
    { identifier: "Pattern" }
  )
)

const CompleteOutcome = Schema.Struct({ complete: Schema.String })
const FailOutcome = Schema.Struct({ fail: Schema.String, retryable: Schema.Boolean })
const AskOutcome = Schema.Struct({ ask: Schema.NonEmptyString })

/**
 * One outcome. Decoded from a single object shape, not a union, so a mistake is reported as itself ("needs exactly
 * one of ...", "is unexpected") rather than as a mismatch with whichever union member was tried first.
 */
export const ScriptOutcome = Schema.transformOrFail(
  Schema.Struct({
    complete: Schema.optional(Schema.String),
    fail: Schema.optional(Schema.String),
    retryable: Schema.optional(Schema.Boolean),
    ask: Schema.optional(Schema.String)
  }),
  Schema.Union(CompleteOutcome, FailOutcome, AskOutcome),
  {
    strict: true,
    decode: (raw, _, ast) => {
      const invalid = (message: string) => ParseResult.fail(new ParseResult.Type(ast, raw, message))
      const given = [raw.complete, raw.fail, raw.ask].filter((text) => text !== undefined).length
      if (given !== 1) return invalid('an outcome needs exactly one of "complete", "fail" or "ask"')
      if (raw.retryable !== undefined && raw.fail === undefined)
        return invalid('"retryable" belongs to a "fail" outcome')
      if (raw.complete !== undefined) return ParseResult.succeed({ complete: raw.complete })
      if (raw.fail !== undefined) return ParseResult.succeed({ fail: raw.fail, retryable: raw.retryable ?? true })
      const question = raw.ask ?? ""
      return question.trim() === "" ? invalid("a question cannot be empty") : ParseResult.succeed({ ask: question })
    },
    encode: (outcome) => ParseResult.succeed(outcome)
  }
).annotations({ identifier: "ScriptOutcome" })
export type ScriptOutcome = typeof ScriptOutcome.Type

export const ScriptRule = Schema.Struct({
  match: Pattern,
  delayMs: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 }),
  untilFile: Schema.optionalWith(Schema.NonEmptyString, { exact: true }),
  outcomes: Schema.Array(ScriptOutcome).pipe(Schema.minItems(1, { message: () => "a rule needs at least one outcome" }))
}).annotations({ identifier: "ScriptRule" })
export type ScriptRule = typeof ScriptRule.Type

export const Script = Schema.Struct({
  rules: Schema.Array(ScriptRule),
  default: ScriptOutcome,
  record: Schema.optionalWith(Schema.NonEmptyString, { exact: true })
}).annotations({ identifier: "Script" })
export type Script = typeof Script.Type

/** A script file that cannot be used: unreadable, not JSON, or not a script. The CLI exits with code 2 on it. */
export class ScriptFileError extends Schema.TaggedError<ScriptFileError>()("ScriptFileError", {
  path: Schema.String,
  problem: Schema.String
}) {
  override get message() {
    return `The script file ${this.path} cannot be used: ${this.problem}`
  }
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ").trim()

const location = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (text, key) => (typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`),
    ""
  )

const decodeScript = Schema.decodeUnknownEither(Script, { onExcessProperty: "error", errors: "first" })

/** Decodes a script from the text of `path` (used only to name the file in the error). */
export const parse = (text: string, path: string): Effect.Effect<Script, ScriptFileError> =>
  Effect.gen(function* () {
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (error) =>
        new ScriptFileError({
          path,
          problem: `it is not valid JSON (${oneLine(error instanceof Error ? error.message : String(error))})`
        })
    })
    const decoded = decodeScript(json)
    if (decoded._tag === "Right") return decoded.right
    const [issue] = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
    const where = issue === undefined ? "" : location(issue.path)
    const problem = oneLine(issue?.message ?? decoded.left.message)
    return yield* new ScriptFileError({ path, problem: where === "" ? problem : `at ${where}: ${problem}` })
  })

const latestAnswer = (context: TaskContext): string =>
  context.clarifications.findLast((clarification) => clarification.answer !== undefined)?.answer ?? ""

const fillIn = (template: string, context: TaskContext): string =>
  // One pass, so an answer holding "{description}" stays as typed.
  template.replace(/\{(answer|description|taskId|attempt)\}/g, (_, name: string) => {
    switch (name) {
      case "answer":
        return latestAnswer(context)
      case "description":
        return context.description
      case "taskId":
        return String(context.taskId)
      default:
        return String(context.attempt)
    }
  })

const toOutcome = (outcome: ScriptOutcome, context: TaskContext): Outcome => {
  if ("complete" in outcome) return Outcome.Completed({ result: fillIn(outcome.complete, context) })
  if ("fail" in outcome) return Outcome.Failed({ error: fillIn(outcome.fail, context), retryable: outcome.retryable })
  const question = fillIn(outcome.ask, context)
  // A question must not be empty; one made only of an absent answer falls back to its template.
  return Outcome.NeedsClarification({ question: question.trim() === "" ? outcome.ask : question })
}

/** A `script` executor for a decoded script. */
export const make = (script: Script): ExecutorService => {
  const rules = script.rules.map((rule) => ({ ...rule, pattern: new RegExp(rule.match, "i") }))
  return {
    name: "script",
    execute: hotFn("ScriptExecutor.execute")(function* (context: TaskContext) {
      const rule = rules.find((candidate) => candidate.pattern.test(context.description))
      const outcomes = rule?.outcomes ?? [script.default]
      const index = Math.min(Math.max(context.attempt - 1, 0), outcomes.length - 1)
      const outcome = outcomes[index] ?? script.default
      const record = script.record
      if (record !== undefined) {
        const line = `${JSON.stringify({ taskId: context.taskId, attempt: context.attempt, description: context.description })}\n`
        yield* Effect.sync(() => Fs.appendFileSync(record, line))
      }
      if (rule !== undefined && rule.delayMs > 0) yield* Effect.sleep(rule.delayMs)
      const gate = rule?.untilFile
      if (gate !== undefined) {
        while (!(yield* Effect.sync(() => Fs.existsSync(gate)))) yield* Effect.sleep(50)
      }
      return toOutcome(outcome, context)
    })
  }
}

/** Reads, decodes and checks the script at `path`, and makes its executor. */
export const fromFile = (path: string): Effect.Effect<ExecutorService, ScriptFileError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError(
        (error) =>
          new ScriptFileError({
            path,
            // In words from Node's error code when there is one ("there is no such file"), like the CLI's other files.
            problem: `it cannot be read (${
              error._tag === "SystemError" && error.cause !== undefined
                ? fileProblem(error.cause).problem
                : oneLine(error.message)
            })`
          })
      )
    )
    return make(yield* parse(text, path))
  }).pipe(Effect.withSpan("ScriptExecutor.fromFile", { attributes: { path } }))
