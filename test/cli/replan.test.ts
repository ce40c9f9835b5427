/**
 * `planner run --on-failure replan` end to end, through the built command on SQLite, against a real HTTP server on
 * 127.0.0.1 speaking chat completions: a task fails for good, the model is asked for a revised plan (with the failure
 * in the request), the revised tasks run and the session succeeds; the bound on replans holds; an unusable answer and
 * a missing LLM fall back to `continue`, and the log says why. The script executor decides every task's outcome.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { cli, ensureBuilt, oneLine, parseJson, type ResultJson, tempFolder, writeScript } from "./cli.js"
import { history, llmEnv, plan, replanAfterFailure, request, revision, run, script } from "./replanSuite.js"

beforeAll(() => ensureBuilt(), 180_000)

describe("planner run --on-failure replan", { timeout: 300_000 }, () => {
  it("asks the LLM for a revised plan after a failure, runs the revised tasks, and the session succeeds", () =>
    replanAfterFailure(() => Promise.resolve([])))

  it("holds the bound: with --max-replans 1, a revised task that fails too is handled as under continue", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cwd = tempFolder()
          const server = yield* FakeOpenAiServer.make
          const failing = {
            tasks: [
              {
                id: "c2",
                description: "Convert the data with tool C",
                kind: "Processing",
                dependsOn: [],
                attachments: []
              },
              revision.tasks[1]
            ]
          }
          server.enqueue(
            Reply.json(plan),
            Reply.json({ tasks: [failing.tasks[0], { ...revision.tasks[1], dependsOn: ["c2"] }] })
          )
          const env = llmEnv(server)
          const result = yield* run(cwd, env, ["--max-replans", "1"])
          expect(result.code, result.stderr).toBe(1)
          const json = parseJson<ResultJson>(result)
          expect(json.status).toBe("Failed")
          expect(json.tasks.map((task) => task.status)).toEqual(["Completed", "Failed", "Skipped", "Failed", "Skipped"])
          // One plan call and one revision: the second failure asked for nothing.
          expect(server.modelRequests()).toHaveLength(2)
          const events = yield* history(cwd, env, json.sessionId)
          expect(events.filter((event) => event.type === "ReplanRequested")).toHaveLength(1)
          expect(events.find((event) => event.type === "ReplanSkipped")?.data).toMatchObject({
            taskId: 4,
            reason: "the session has asked for 1 replan, the most it may (max replans 1)"
          })
        })
      )
    ))

  it("falls back to continue when the LLM's revision is unusable, and records why", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cwd = tempFolder()
          const server = yield* FakeOpenAiServer.make
          server.enqueue(Reply.json(plan), Reply.text("not a plan"), Reply.json({ tasks: "still not" }))
          const env = llmEnv(server)
          const result = yield* run(cwd, env)
          expect(result.code, result.stderr).toBe(1)
          const json = parseJson<ResultJson>(result)
          expect(json.tasks.map((task) => task.status)).toEqual(["Completed", "Failed", "Skipped"])
          expect(json.tasks[2]?.error).toBe("skipped because task 2 failed")
          const events = yield* history(cwd, env, json.sessionId)
          const skipped = events.find((event) => event.type === "ReplanSkipped")
          expect(String(skipped?.data.reason)).toMatch(
            /^no revised plan for task 2: LLM output was malformed twice: .+; continuing without it$/
          )
          expect(events.some((event) => event.type === "TaskReplanned")).toBe(false)
        })
      )
    ))

  it("without an LLM, says so, continues, and the log says why", () =>
    Effect.runPromise(
      Effect.gen(function* () {
        const cwd = tempFolder()
        const result = yield* Effect.promise(() =>
          cli(
            [
              "run",
              "--non-interactive",
              "--executor",
              `script:${writeScript(cwd, "script.json", script)}`,
              "--on-failure",
              "replan",
              "Fetch the sales data. Then convert the data with tool A. Then write the report."
            ],
            { cwd, env: {} }
          )
        )
        expect(result.code, result.stderr).toBe(1)
        expect(result.stderr).toContain("no LLM is configured, so --on-failure replan cannot revise the plan")
        const sessionId = /Session (\d{8}-\d{6}-[0-9a-f]{6})/.exec(result.stdout)?.[1] ?? ""
        const events = yield* history(cwd, {}, sessionId)
        expect(events.find((event) => event.type === "ReplanSkipped")?.data).toMatchObject({
          taskId: 2,
          reason:
            "no revised plan for task 2: no LLM is configured to revise the plan (set PLANNER_LLM_BASE_URL and PLANNER_LLM_MODEL); continuing without it"
        })
        expect(events.at(-1)?.data).toMatchObject({ outcome: "Failed" })
      })
    ))

  it("fork --at 0 --replan plans the same request again with another planner, and diff compares the two runs", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cwd = tempFolder()
          const server = yield* FakeOpenAiServer.make
          server.enqueue(Reply.json(plan))
          const env = llmEnv(server)
          // The source: planned by the model, its tool A step fails, the report is skipped (continue).
          const first = yield* Effect.promise(() =>
            cli(
              [
                "run",
                "--json",
                "--non-interactive",
                "--executor",
                `script:${writeScript(cwd, "script.json", script)}`,
                request
              ],
              { cwd, env }
            )
          )
          expect(first.code, first.stderr).toBe(1)
          const source = parseJson<ResultJson>(first)

          // Planned again by the parser: its steps name no tool, so they all complete.
          const forked = yield* Effect.promise(() =>
            cli(["fork", source.sessionId, "--at", "0", "--replan", "--planner", "parser", "--json"], { cwd, env })
          )
          expect(forked.code, forked.stderr).toBe(0)
          const replanned = parseJson<ResultJson>(forked)
          expect(replanned.sessionId).not.toBe(source.sessionId)
          expect(replanned.status).toBe("Succeeded")
          expect(replanned.tasks.map((task) => task.description)).toEqual([
            "Fetch the sales data",
            "convert it",
            "write the report"
          ])
          expect(server.modelRequests()).toHaveLength(1)
          const events = yield* history(cwd, env, replanned.sessionId)
          expect(events.slice(0, 2).map((event) => event.type)).toEqual(["SessionForked", "TasksPlanned"])
          expect(events[0]?.data).toMatchObject({ fromSessionId: source.sessionId, atSequence: 0 })
          expect(events[1]?.data).toMatchObject({
            request,
            source: { _tag: "Parser", reason: `replanned from session ${source.sessionId}` }
          })

          const diff = yield* Effect.promise(() =>
            cli(["diff", source.sessionId, replanned.sessionId, "--json"], { cwd, env })
          )
          expect(diff.code, diff.stderr).toBe(0)
          const compared = parseJson<{ identical: boolean; lineage?: string }>(diff)
          expect(compared.identical).toBe(false)
          expect(compared.lineage).toBe(`${replanned.sessionId} was forked from ${source.sessionId} at event 0.`)

          // --replan starts from the beginning only.
          const wrongAt = yield* Effect.promise(() =>
            cli(["fork", source.sessionId, "--at", "3", "--replan", "--planner", "parser"], { cwd, env })
          )
          expect(wrongAt.code).toBe(2)
          expect(wrongAt.stderr).toContain("--replan plans the request again from the start: give --at 0")
          // The replan options without --replan would be ignored by a copy fork: refused, naming them.
          const withoutReplan = yield* Effect.promise(() =>
            cli(["fork", source.sessionId, "--at", "0", "--planner", "parser", "--model", "other"], { cwd, env })
          )
          expect(withoutReplan.code).toBe(2)
          expect(oneLine(withoutReplan.stderr)).toBe(
            "planner: --planner and --model go with --replan, which plans the request again: add --replan (with --at 0), or leave them out to fork the plan as it is."
          )
        })
      )
    ))
})
