/**
 * Issue #18: a command that creates a path must be able to run. Paths inside a ToolCall's backticks are the command's
 * business, not attachments to check; a path the task names outside its command, and every path of other kinds of
 * task, is still checked. Real files in a temp dir, the real parser, checker, worker and shell executor.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Option } from "effect"
import * as Runner from "../../src/app/Runner.js"
import * as Parser from "../../src/domain/Parser.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import * as AttachmentChecker from "../../src/infra/AttachmentChecker.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as ShellExecutor from "../../src/infra/ShellExecutor.js"
import { plannerRuntime } from "../app/fixtures/runtime.js"

let root = ""
beforeAll(() => {
  root = Fs.realpathSync(Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "command-paths-")))
})
afterAll(() => {
  Fs.rmSync(root, { recursive: true, force: true })
})

let counter = 0
const freshFolder = (): string => {
  counter += 1
  const folder = NodePath.join(root, `case-${counter}`)
  Fs.mkdirSync(folder)
  return folder
}

const onlyTask = (request: string): TaskPlan => {
  const tasks = Either.getOrThrow(Parser.parse(request))
  expect(tasks).toHaveLength(1)
  const task = tasks[0]
  if (task === undefined) throw new Error("no task")
  return task
}

/** What the checker says about a parsed task's attachments, in `folder`. */
const problemOf = (task: TaskPlan, folder: string) =>
  Effect.flatMap(AttachmentChecker.AttachmentChecker, (checker) =>
    checker.firstProblem(task.attachments, folder, task)
  ).pipe(Effect.provide(AttachmentChecker.layerNode({ checkLinks: false })))

describe("attachments of a command", () => {
  it.effect("paths only inside a ToolCall's backticks are left to the command", () =>
    Effect.gen(function* () {
      const folder = freshFolder()
      for (const request of ["Run `mkdir ./build`", "Run `touch ./newfile.txt`", "Run `cp ./a.txt ./b/c.txt`"]) {
        const task = onlyTask(request)
        expect(task.kind, request).toBe("ToolCall")
        // The parser does see a path there, and the checker would find it missing.
        expect(task.attachments.length, request).toBeGreaterThan(0)
        expect(AttachmentChecker.attachmentsToCheck(task.attachments, task), request).toEqual([])
        expect(Option.isNone(yield* problemOf(task, folder)), request).toBe(true)
      }
    })
  )

  it.effect("a path also named outside the command, or in a task that is not a ToolCall, is still checked", () =>
    Effect.gen(function* () {
      const folder = freshFolder()
      const outside = onlyTask("Run `wc -l ./data.csv` on ./data.csv")
      expect(outside.kind).toBe("ToolCall")
      const problem = yield* problemOf(outside, folder)
      expect(Option.map(problem, (found) => found.attachment.value)).toEqual(Option.some("./data.csv"))
      const prose = { kind: "Processing" as const, description: "Summarise `./notes.md`" }
      const attachments = [{ kind: "FileRef" as const, value: "./notes.md" }]
      expect(AttachmentChecker.attachmentsToCheck(attachments, prose)).toEqual(attachments)
      // Without the task, as before: every attachment is checked.
      expect(AttachmentChecker.attachmentsToCheck(attachments, undefined)).toEqual(attachments)
      // A longer path that merely starts with the same text does not count as naming it.
      const longer = { kind: "ToolCall" as const, description: "Run `mkdir ./build` after reading ./build.log" }
      expect(AttachmentChecker.attachmentsToCheck([{ kind: "FileRef", value: "./build" }], longer)).toEqual([])
    })
  )
})

describe("a run of a command that creates a path", () => {
  it.live("`mkdir ./build` and `touch ./newfile.txt` run and create what they name", () =>
    Effect.gen(function* () {
      const folder = freshFolder()
      for (const request of ["Run `mkdir ./build`", "Run `touch ./newfile.txt`"]) {
        const { sessionId } = yield* Runner.start(request)
        const result = yield* Runner.run(sessionId, { workingDirectory: folder })
        expect(result.waiting, request).toBe(false)
        expect(result.state.status, request).toBe("Succeeded")
      }
      expect(Fs.statSync(NodePath.join(folder, "build")).isDirectory()).toBe(true)
      expect(Fs.statSync(NodePath.join(folder, "newfile.txt")).isFile()).toBe(true)
    }).pipe(Effect.provide(plannerRuntime(MemoryEventStore.layer(), ShellExecutor.make({ allow: true }))))
  )

  it.live("a missing input the task names outside its command still asks before anything runs", () =>
    Effect.gen(function* () {
      const folder = freshFolder()
      const { sessionId } = yield* Runner.start("Run `touch ./made.txt` with ./input.txt")
      const result = yield* Runner.run(sessionId, { workingDirectory: folder })
      expect(result.waiting).toBe(true)
      const asked = result.state.tasks[0]?.clarifications.at(-1)?.question ?? ""
      expect(asked).toContain("./input.txt")
      expect(Fs.existsSync(NodePath.join(folder, "made.txt"))).toBe(false)
    }).pipe(Effect.provide(plannerRuntime(MemoryEventStore.layer(), ShellExecutor.make({ allow: true }))))
  )
})
