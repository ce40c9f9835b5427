/**
 * `planner run` with an LLM configured in the environment, against a real HTTP server on 127.0.0.1 speaking chat
 * completions: the model plans, the `auto` executor sends a `ToolCall` to the shell (after the person approves the
 * command) and the other step to the model. The API key never appears in anything printed.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { apiKey, model } from "../llm/support/layers.js"
import { cli, ensureBuilt, parseJson, type ResultJson, sessionIdIn, tempFolder } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

const plan = {
  tasks: [
    {
      id: "greet",
      description: "Print the greeting with `echo hello`",
      kind: "ToolCall",
      dependsOn: [],
      attachments: []
    },
    { id: "notes", description: "Draft the release notes", kind: "Processing", dependsOn: ["greet"], attachments: [] }
  ]
}

describe("planner run with an LLM", { timeout: 300_000 }, () => {
  it("auto runs the shell command once approved and the other step with the model", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cwd = tempFolder()
          const server = yield* FakeOpenAiServer.make
          server.enqueue(
            Reply.json(plan),
            Reply.json({ outcome: "completed", result: "Release notes drafted", question: "", reason: "" })
          )
          const env = {
            PLANNER_LLM_BASE_URL: server.url,
            PLANNER_LLM_MODEL: model,
            PLANNER_LLM_API: "chat",
            PLANNER_LLM_API_KEY: apiKey
          }
          const run = yield* Effect.promise(() =>
            cli(["run", "--non-interactive", "Say hello, then write the release notes."], { cwd, env })
          )
          expect(run.code, run.stderr).toBe(3)
          const sessionId = sessionIdIn(run.stdout)
          // Without --allow-shell the shell executor asks before running anything.
          expect(run.stdout).toMatch(/Task 1 asks: Run `echo hello` in .*\?/)

          const answered = yield* Effect.promise(() => cli(["answer", sessionId, "1", "yes", "--json"], { cwd, env }))
          expect(answered.code, answered.stderr).toBe(0)
          const json = parseJson<ResultJson>(answered)
          expect(json.tasks.map((task) => [task.kind, task.status])).toEqual([
            ["ToolCall", "Completed"],
            ["Processing", "Completed"]
          ])
          expect(json.tasks[0]?.result).toMatch(/^\$ echo hello \(exit 0, [\d.]+ s\)\nhello$/)
          expect(json.tasks[1]?.result).toBe("Release notes drafted")
          expect(server.pending()).toBe(0)

          const shown = yield* Effect.promise(() => cli(["show", sessionId, "--json"], { cwd, env }))
          expect(parseJson<{ source: unknown }>(shown).source).toEqual({ _tag: "Llm", model })
          for (const text of [run.stdout, run.stderr, answered.stdout, answered.stderr, shown.stdout]) {
            expect(text).not.toContain(apiKey)
          }
        })
      )
    ))
})
