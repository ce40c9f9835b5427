/**
 * The script executor read from real files: rule matching, attempt-indexed outcomes, placeholders, an interruptible
 * delay, and one-line errors for every kind of malformed file.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { NodeFileSystem } from "@effect/platform-node"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import * as EchoExecutor from "../../src/infra/EchoExecutor.js"
import { Outcome } from "../../src/infra/Executor.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { answered, taskContext } from "./context.js"

const fixture = (name: string) => NodePath.join(import.meta.dirname, "fixtures", name)

let directory = ""
beforeAll(() => {
  directory = Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "script-executor-"))
})
afterAll(() => {
  Fs.rmSync(directory, { recursive: true, force: true })
})

const load = (path: string) => ScriptExecutor.fromFile(path).pipe(Effect.provide(NodeFileSystem.layer))

/** The error for a script file with `text`, written to a real file. */
const errorFor = (name: string, text: string) =>
  Effect.gen(function* () {
    const path = NodePath.join(directory, name)
    Fs.writeFileSync(path, text)
    const error = yield* Effect.flip(load(path))
    expect(error._tag).toBe("ScriptFileError")
    expect(error.path).toBe(path)
    expect(error.message).not.toContain("\n")
    expect(error.message).toContain(path)
    return error.message
  })

describe("ScriptExecutor", () => {
  it.live("the n-th attempt gets the n-th outcome, and the last one repeats", () =>
    Effect.gen(function* () {
      const executor = yield* load(fixture("example-script.json"))
      expect(executor.name).toBe("script")
      const deploy = (attempt: number) =>
        executor.execute(taskContext({ description: "Deploy the app", attempt, taskId: 3 }))
      expect(yield* deploy(1)).toEqual(Outcome.Failed({ error: "host unreachable on attempt 1", retryable: true }))
      expect(yield* deploy(2)).toEqual(Outcome.Completed({ result: "deployed Deploy the app" }))
      expect(yield* deploy(5)).toEqual(Outcome.Completed({ result: "deployed Deploy the app" }))
      expect(yield* executor.execute(taskContext({ description: "A broken thing", attempt: 4 }))).toEqual(
        Outcome.Failed({ error: "cannot be fixed", retryable: false })
      )
    })
  )

  it.live("the first matching rule wins, case-insensitively; unmatched tasks get the default", () =>
    Effect.gen(function* () {
      const executor = yield* load(fixture("example-script.json"))
      // "deploy" also matches the fourth rule, but the first comes first; it is anchored, so "Then deploy" is not it.
      expect(yield* executor.execute(taskContext({ description: "Then deploy", attempt: 2 }))).toEqual(
        Outcome.Completed({ result: "second rule" })
      )
      expect(yield* executor.execute(taskContext({ description: "Write the RELEASE notes" }))).toEqual(
        Outcome.Completed({ result: "second rule" })
      )
      expect(yield* executor.execute(taskContext({ description: "Tidy up", attempt: 3 }))).toEqual(
        Outcome.Completed({ result: "done: Tidy up" })
      )
    })
  )

  it.live("a question, then the answer in the result", () =>
    Effect.gen(function* () {
      const executor = yield* load(fixture("example-script.json"))
      const description = "Decide which branch to merge"
      const first = yield* executor.execute(taskContext({ description, taskId: 4 }))
      expect(first).toEqual(Outcome.NeedsClarification({ question: "Which one should task 4 use?" }))
      const second = yield* executor.execute(
        taskContext({
          description,
          attempt: 2,
          clarifications: [
            answered("old question", "feature/old"),
            answered("Which one should task 4 use?", "main {description}")
          ]
        })
      )
      // The latest answer, inserted as typed (placeholders inside it are not expanded).
      expect(second).toEqual(Outcome.Completed({ result: "used main {description}" }))
      const unanswered = yield* executor.execute(taskContext({ description, attempt: 2 }))
      expect(unanswered).toEqual(Outcome.Completed({ result: "used " }))
    })
  )

  it.live("the delay is waited, interruptibly", () =>
    Effect.gen(function* () {
      const executor = ScriptExecutor.make(
        yield* ScriptExecutor.parse(
          JSON.stringify({
            rules: [{ match: "slow", delayMs: 60_000, outcomes: [{ complete: "late" }] }],
            default: { complete: "x" }
          }),
          "inline.json"
        )
      )
      const timedOut = yield* executor
        .execute(taskContext({ description: "slow step" }))
        .pipe(Effect.timeoutOption("100 millis"))
      expect(Option.isNone(timedOut)).toBe(true)
      const fiber = yield* Effect.fork(executor.execute(taskContext({ description: "slow step" })))
      yield* Effect.sleep("20 millis")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
    })
  )

  it.live("untilFile holds the outcome until the file exists", () =>
    Effect.gen(function* () {
      const gate = NodePath.join(directory, "go")
      const executor = ScriptExecutor.make(
        yield* ScriptExecutor.parse(
          JSON.stringify({
            rules: [{ match: "gated", untilFile: gate, outcomes: [{ complete: "went" }] }],
            default: { complete: "x" }
          }),
          "inline.json"
        )
      )
      const fiber = yield* Effect.fork(executor.execute(taskContext({ description: "gated step" })))
      // Held while the file is missing: several checks go by without an outcome.
      yield* Effect.sleep("200 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      Fs.writeFileSync(gate, "")
      const outcome = yield* Fiber.join(fiber)
      expect(outcome).toEqual(Outcome.Completed({ result: "went" }))
    })
  )

  it.live("the demo script is valid", () =>
    Effect.gen(function* () {
      const executor = yield* load(fixture("demo.json"))
      expect(
        yield* executor.execute(
          taskContext({ description: "Deploy it", attempt: 2, clarifications: [answered("?", "staging")] })
        )
      ).toEqual(Outcome.Completed({ result: "Deployed to staging" }))
    })
  )

  it.live("a malformed file is a one-line error naming the file and the problem", () =>
    Effect.gen(function* () {
      expect(yield* errorFor("not-json.json", `{"rules": [`)).toMatch(/cannot be used: it is not valid JSON \(.+\)$/)
      expect(yield* errorFor("no-default.json", `{"rules": []}`)).toMatch(/at default: is missing$/)
      expect(
        yield* errorFor(
          "bad-regex.json",
          `{"rules": [{"match": "(unclosed", "outcomes": [{"complete": "x"}]}], "default": {"complete": "d"}}`
        )
      ).toMatch(/at rules\[0\]\.match: Invalid regular expression: \/\(unclosed\/i: .+/)
      expect(
        yield* errorFor(
          "empty-outcomes.json",
          `{"rules": [{"match": "x", "outcomes": []}], "default": {"complete": "d"}}`
        )
      ).toMatch(/at rules\[0\]\.outcomes: a rule needs at least one outcome$/)
      expect(
        yield* errorFor(
          "typo.json",
          `{"rules": [{"match": "x", "outcomes": [{"compelte": "x"}]}], "default": {"complete": "d"}}`
        )
      ).toMatch(/at rules\[0\]\.outcomes\[0\]\.compelte: is unexpected/)
      expect(yield* errorFor("two-kinds.json", `{"rules": [], "default": {"complete": "x", "fail": "y"}}`)).toMatch(
        /at default: an outcome needs exactly one of "complete", "fail" or "ask"$/
      )
      expect(
        yield* errorFor(
          "negative-delay.json",
          `{"rules": [{"match": "x", "delayMs": -1, "outcomes": [{"complete": "x"}]}], "default": {"complete": "d"}}`
        )
      ).toMatch(/at rules\[0\]\.delayMs: /)
      expect(yield* errorFor("empty-question.json", `{"rules": [], "default": {"ask": ""}}`)).toMatch(
        /at default: a question cannot be empty$/
      )
      const missing = NodePath.join(directory, "does-not-exist.json")
      const unreadable = yield* Effect.flip(load(missing))
      expect(unreadable.message).toMatch(
        new RegExp(`^The script file ${missing} cannot be used: it cannot be read \\(there is no such file\\)$`)
      )
    })
  )
})

describe("EchoExecutor", () => {
  it.effect("completes each task with its description", () =>
    Effect.gen(function* () {
      expect(EchoExecutor.echo.name).toBe("echo")
      expect(yield* EchoExecutor.make().execute(taskContext({ description: "Write the docs" }))).toEqual(
        Outcome.Completed({ result: "Write the docs" })
      )
    })
  )
})
