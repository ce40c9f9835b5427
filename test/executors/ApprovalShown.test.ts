/**
 * Issue #18: the approval question shows exactly what will run, also where the command line prints it. A run whose
 * shell step waits for approval ends with the question; for a block of several commands every line of it is printed,
 * and answering yes runs exactly those lines. The real runner, worker, shell executor and in-memory store.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { closingLines } from "../../src/app/cli/Progress.js"
import * as Runner from "../../src/app/Runner.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as ShellExecutor from "../../src/infra/ShellExecutor.js"
import { plannerRuntime } from "../app/fixtures/runtime.js"

let folder = ""
beforeAll(() => {
  folder = Fs.realpathSync(Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "approval-shown-")))
})
afterAll(() => {
  Fs.rmSync(folder, { recursive: true, force: true })
})

const hints = { program: "planner", store: "", execution: "" }

describe("the approval question as the command line prints it", () => {
  it.live("a block's question lists every line, and yes runs exactly those lines", () =>
    Effect.gen(function* () {
      Fs.writeFileSync(NodePath.join(folder, "victim1"), "")
      const { sessionId } = yield* Runner.start("Run `echo placeholder`")
      const first = yield* Runner.run(sessionId, { workingDirectory: folder })
      expect(first.waiting).toBe(true)
      // The person gives a block instead of the proposed command.
      yield* Runner.answer(sessionId, 1, "```\nrm -f victim1\n  touch keepme\n```")
      const asked = yield* Runner.run(sessionId, { workingDirectory: folder })
      expect(asked.waiting).toBe(true)
      const printed = closingLines(asked.state, sessionId, hints)
      expect(printed).toEqual([
        expect.stringMatching(/^Waiting for answers: /),
        `Task 1 asks: Run these 2 lines with sh -e -c in ${folder}, one after another, stopping at the first command that fails?`,
        "  ```sh",
        "  rm -f victim1",
        "    touch keepme",
        "  ```",
        "  Answer yes to run them once, or give another command.",
        `  planner answer ${sessionId} 1 "<text>"`,
        `Session ${sessionId} stops here until then (exit code 3).`
      ])
      expect(Fs.readdirSync(folder).sort()).toEqual(["victim1"])
      yield* Runner.answer(sessionId, 1, "yes")
      const done = yield* Runner.run(sessionId, { workingDirectory: folder })
      expect(done.state.status).toBe("Succeeded")
      expect(Fs.readdirSync(folder).sort()).toEqual(["keepme"])
    }).pipe(Effect.provide(plannerRuntime(MemoryEventStore.layer(), ShellExecutor.make({ allow: false }))))
  )
})
