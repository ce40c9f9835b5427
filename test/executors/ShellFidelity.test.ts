/**
 * What is approved is what runs, and what runs can be recorded (issue #18, review of the shell executor): a command
 * with characters that show as nothing or reorder what is shown is sent back instead of run; Windows line ends in a
 * block do not end up inside the commands; output with a NUL is recorded with a visible stand-in, since no store keeps
 * a NUL. Real processes on real files in a temp dir.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Outcome } from "../../src/infra/Executor.js"
import * as ShellExecutor from "../../src/infra/ShellExecutor.js"
import { taskContext } from "./context.js"

let folder = ""
beforeAll(() => {
  folder = Fs.realpathSync(Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "shell-fidelity-")))
})
afterAll(() => {
  Fs.rmSync(folder, { recursive: true, force: true })
})

const completed = (outcome: Outcome): string => {
  if (outcome._tag !== "Completed") throw new Error(`expected Completed, got ${JSON.stringify(outcome)}`)
  return outcome.result
}
const question = (outcome: Outcome): string => {
  if (outcome._tag !== "NeedsClarification") throw new Error(`expected a question, got ${JSON.stringify(outcome)}`)
  return outcome.question
}

const allowed = ShellExecutor.make({ allow: true })

describe("ShellExecutor: what you see is what runs", () => {
  it.live("a command holding a bidi override, a zero-width space or an escape sequence is asked about, not run", () =>
    Effect.gen(function* () {
      const cases = [
        ["\u202E", "U+202E"],
        ["\u200B", "U+200B"],
        ["\u001b[2K", "U+001B"],
        ["\u2066", "U+2066"]
      ] as const
      for (const [hidden, name] of cases) {
        const file = `made-${name}`
        const asked = question(
          yield* allowed.execute(
            taskContext({ description: `Run \`touch ${file} ${hidden}other\``, workingDirectory: folder })
          )
        )
        expect(asked, name).toContain(`invisible character (${name})`)
        expect(asked, name).toContain(`touch ${file} <${name}>`)
        expect(Fs.existsSync(NodePath.join(folder, file)), name).toBe(false)
      }
      // Tabs and line breaks are ordinary.
      completed(yield* allowed.execute(taskContext({ description: "Run `echo\ttab`", workingDirectory: folder })))
    })
  )

  it.live("a block with Windows line ends runs its commands without a carriage return in them", () =>
    Effect.gen(function* () {
      const result = completed(
        yield* allowed.execute(
          taskContext({
            description: "Run:\r\n```sh\r\necho one\r\ntouch crlf-made\r\n```\r\n",
            workingDirectory: folder
          })
        )
      )
      expect(result.split("\n").slice(1)).toEqual(["one"])
      expect(Fs.readdirSync(folder)).toContain("crlf-made")
      expect(Fs.readdirSync(folder)).not.toContain("crlf-made\r")
    })
  )

  it.live("output holding a NUL is recorded with a visible stand-in", () =>
    Effect.gen(function* () {
      const result = completed(
        yield* allowed.execute(taskContext({ description: "`printf 'a\\000b\\n'`", workingDirectory: folder }))
      )
      expect(result.split("\n")[1]).toBe("a\u2400b")
      expect(result).not.toContain("\u0000")
    })
  )

  it.live("the collector's authorization headers are not passed to the command", () =>
    Effect.gen(function* () {
      const saved = { ...process.env }
      Object.assign(process.env, {
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20otlp-secret-1",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "authorization=Bearer%20otlp-secret-2"
      })
      const output = completed(
        yield* allowed
          .execute(taskContext({ description: "`env`", workingDirectory: folder }))
          .pipe(Effect.ensuring(Effect.sync(() => (process.env = saved))))
      )
      expect(output).toContain("\nPATH=")
      expect(output).not.toContain("otlp-secret")
    })
  )
})
