/**
 * Which executors run a session's tasks, from `--executor auto|echo|script:PATH` and `--allow-shell`:
 *
 * - `auto`: `ToolCall` tasks go to the shell executor, which asks for approval of each command unless `--allow-shell`
 *   was given; every other kind goes to the LLM executor when an LLM is configured, and otherwise to a person (the
 *   step becomes a question whose answer is its result).
 * - `echo`: every task completes with its own description (a dry run).
 * - `script:PATH`: outcomes read from a JSON script file (see `ScriptExecutor`).
 *
 * The choice is recorded with the session (in the metadata of its first event), so `answer`, `resume` and `fork` use
 * the same executors unless told otherwise.
 */
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { FileSystem } from "@effect/platform"
import { Effect, Either, Option } from "effect"
import { findUnstorableText } from "../../domain/SchemaGuard.js"
import { type ExecutorRegistryService, type ExecutorService, makeRegistry } from "../../infra/Executor.js"
import { fileProblem } from "../../infra/FileProblem.js"
import { Llm } from "../../infra/Llm.js"
import { type CliFailure, usage } from "./Failure.js"

export type ExecutorSpec =
  | { readonly _tag: "Auto" }
  | { readonly _tag: "Echo" }
  | { readonly _tag: "Script"; readonly path: string }

export const executorSyntax = "auto, echo or script:PATH"

/**
 * A script executor's file read and checked now (readable, a valid script, nothing in it a store refuses), so that a
 * bad one is a usage error before any store is opened; other executors need no check.
 */
export const checkScriptFile = (spec: ExecutorSpec): Effect.Effect<void, CliFailure> =>
  spec._tag !== "Script"
    ? Effect.void
    : Effect.gen(function* () {
        const ScriptExecutor = yield* Effect.promise(() => import("../../infra/ScriptExecutor.js"))
        const text = yield* Effect.try({
          try: () => Fs.readFileSync(spec.path, "utf8"),
          catch: (error) => {
            const { problem, remedy } = fileProblem(error)
            return usage(`The script file ${spec.path} cannot be read (${problem}): ${remedy} after script:.`)
          }
        })
        yield* ScriptExecutor.parse(text, spec.path).pipe(
          Effect.mapError((error) => usage(`${error.message}. Fix the file or choose another --executor.`))
        )
        const unstorable = findUnstorableText(JSON.parse(text))
        if (unstorable !== undefined) {
          return yield* usage(
            `The script file ${spec.path} holds ${unstorable.problem} at ${unstorable.path || "its top level"}, which cannot be stored: remove it, or choose another --executor.`
          )
        }
      })

/**
 * `--executor` as given, or else the one the session recorded, or else `auto`; a script file is checked now, before
 * any store is opened (`checkScriptFile`).
 */
export const chooseSpec = (
  flag: Option.Option<string>,
  recorded: Option.Option<string> = Option.none()
): Effect.Effect<ExecutorSpec, CliFailure> =>
  Effect.gen(function* () {
    const spec = Option.isSome(flag)
      ? yield* Either.match(parseExecutorSpec(flag.value), { onLeft: Effect.fail, onRight: Effect.succeed })
      : Option.getOrElse(
          Option.flatMap(recorded, (text) => recordedSpec({ executor: text })),
          (): ExecutorSpec => ({ _tag: "Auto" })
        )
    yield* checkScriptFile(spec)
    return spec
  })

/** Parses `--executor`. A script path is made absolute, so the recorded choice works from any folder. */
export const parseExecutorSpec = (text: string, cwd = process.cwd()): Either.Either<ExecutorSpec, CliFailure> => {
  const trimmed = text.trim()
  if (trimmed === "auto") return Either.right({ _tag: "Auto" })
  if (trimmed === "echo") return Either.right({ _tag: "Echo" })
  if (trimmed.startsWith("script:")) {
    const path = trimmed.slice("script:".length)
    if (path.length === 0)
      return Either.left(usage("--executor script: needs a path, for example script:examples/demo.json."))
    return Either.right({ _tag: "Script", path: NodePath.resolve(cwd, path) })
  }
  return Either.left(usage(`Unknown executor ${JSON.stringify(trimmed)}: use ${executorSyntax}.`))
}

/** How a spec is recorded with a session and shown. */
export const specText = (spec: ExecutorSpec): string => {
  switch (spec._tag) {
    case "Auto":
      return "auto"
    case "Echo":
      return "echo"
    case "Script":
      return `script:${spec.path}`
  }
}

/** The spec a session recorded, if it recorded one that still parses. */
export const recordedSpec = (extra: Readonly<Record<string, unknown>> | undefined): Option.Option<ExecutorSpec> => {
  const value = extra?.executor
  if (typeof value !== "string") return Option.none()
  return Option.getRight(parseExecutorSpec(value))
}

export interface ExecutorChoice {
  readonly spec: ExecutorSpec
  readonly allowShell: boolean
}

/** The executor registry for a choice. Fails with exit code 2 when a script file cannot be used. */
export const makeExecutors = (
  choice: ExecutorChoice
): Effect.Effect<ExecutorRegistryService, CliFailure, Llm | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    switch (choice.spec._tag) {
      case "Echo": {
        const EchoExecutor = yield* Effect.promise(() => import("../../infra/EchoExecutor.js"))
        return makeRegistry({}, EchoExecutor.echo)
      }
      case "Script": {
        const ScriptExecutor = yield* Effect.promise(() => import("../../infra/ScriptExecutor.js"))
        const script = yield* ScriptExecutor.fromFile(choice.spec.path).pipe(
          Effect.mapError((error) => usage(`${error.message}. Fix the file or choose another --executor.`))
        )
        return makeRegistry({}, script)
      }
      case "Auto": {
        const [ShellExecutor, LlmExecutor, PersonExecutor] = yield* Effect.promise(() =>
          Promise.all([
            import("../../infra/ShellExecutor.js"),
            import("../../infra/LlmExecutor.js"),
            import("../../infra/PersonExecutor.js")
          ])
        )
        const llm = yield* Llm
        const generic: ExecutorService =
          llm.provider._tag === "Remote" ? LlmExecutor.fromLlm(llm) : PersonExecutor.make()
        return makeRegistry({ ToolCall: ShellExecutor.make({ allow: choice.allowShell }) }, generic)
      }
    }
  })
