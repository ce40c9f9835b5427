/**
 * A fenced block in a request runs as written (issue 18, lead's decision on issue 14's parser): the parser keeps the
 * block's lines verbatim in the ToolCall task, and the shell executor runs them line by line, so compound commands
 * (if/then/fi), indentation and backquotes survive. Real processes on real files in a temp dir.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as Parser from "../../src/domain/Parser.js"
import * as ShellExecutor from "../../src/infra/ShellExecutor.js"
import { taskContext } from "./context.js"

let folder = ""
beforeAll(() => {
  folder = Fs.realpathSync(Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "parsed-block-")))
})
afterAll(() => {
  Fs.rmSync(folder, { recursive: true, force: true })
})

describe("a fenced block from a request, through the parser and the shell executor", () => {
  it.live("an if/then/fi block with backquotes runs as written", () =>
    Effect.gen(function* () {
      Fs.writeFileSync(NodePath.join(folder, "marker"), "")
      const request = [
        "Check the marker:",
        "```sh",
        "if [ -f marker ]; then",
        "  echo found `echo it` > result.txt",
        "else",
        "  echo missing > result.txt",
        "fi",
        "```",
        "- Report the result"
      ].join("\n")
      const [block, report] = Either.getOrThrow(Parser.parse(request))
      expect(block?.kind).toBe("ToolCall")
      expect(ShellExecutor.findCommand(block?.description ?? "")).toBe(
        "if [ -f marker ]; then\n  echo found `echo it` > result.txt\nelse\n  echo missing > result.txt\nfi"
      )
      expect(report).toMatchObject({ description: "Report the result", dependsOn: [1] })
      const outcome = yield* ShellExecutor.make({ allow: true }).execute(
        taskContext({ description: block?.description ?? "", request, workingDirectory: folder })
      )
      expect(outcome._tag).toBe("Completed")
      expect(Fs.readFileSync(NodePath.join(folder, "result.txt"), "utf8")).toBe("found it\n")
    })
  )
})
