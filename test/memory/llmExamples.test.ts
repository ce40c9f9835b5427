/**
 * The LLM planner's prompt includes the most similar successful past plans as examples: `planner run` with an LLM
 * configured against a real chat-completions server on 127.0.0.1, after a related session ran in the same store.
 */
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { cli, ensureBuilt, tempFolder } from "../cli/cli.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { messagesOf, Reply } from "../llm/support/FakeOpenAiServer.js"
import { apiKey, model } from "../llm/support/layers.js"

beforeAll(() => ensureBuilt(), 180_000)

const plan = {
  tasks: [
    {
      id: "fetch",
      description: "Fetch the quarterly sales figures",
      kind: "Retrieval",
      dependsOn: [],
      attachments: []
    },
    {
      id: "chart",
      description: "Chart the quarterly totals",
      kind: "Processing",
      dependsOn: ["fetch"],
      attachments: []
    }
  ]
}

const examplesHeading = "Plans that worked for similar requests before"

describe("memory in the LLM planner's prompt", { timeout: 300_000 }, () => {
  it("a similar successful past plan is sent as an example; an empty memory sends none", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cwd = tempFolder("planner-memory-llm-")
          const db = path.join(cwd, "llm.db")
          const server = yield* FakeOpenAiServer.make
          const env = {
            PLANNER_LLM_BASE_URL: server.url,
            PLANNER_LLM_MODEL: model,
            PLANNER_LLM_API: "chat",
            PLANNER_LLM_API_KEY: apiKey
          }
          const systemOf = (request: FakeOpenAiServer.RecordedRequest | undefined) =>
            request === undefined ? "" : (messagesOf(request).find((message) => message.role === "system")?.text ?? "")

          // First, with nothing in memory: no examples.
          server.enqueue(Reply.json(plan))
          const empty = yield* Effect.promise(() =>
            cli(["run", "--executor", "echo", "--plain", "--db", db, "Fetch the sales figures and chart them"], {
              cwd,
              env
            })
          )
          expect(empty.code, empty.stderr).toBe(0)
          expect(systemOf(server.modelRequests()[0])).not.toContain(examplesHeading)

          // Then a related request: the first session's plan is an example in the system message.
          server.enqueue(Reply.json(plan))
          const second = yield* Effect.promise(() =>
            cli(
              ["run", "--executor", "echo", "--plain", "--db", db, "Fetch this year's sales figures, then chart them"],
              {
                cwd,
                env
              }
            )
          )
          expect(second.code, second.stderr).toBe(0)
          const system = systemOf(server.modelRequests()[1])
          expect(system).toContain(examplesHeading)
          expect(system).toContain(
            'Example 1 (a past request whose plan succeeded): "Fetch the sales figures and chart them"'
          )
          expect(system).toContain("  1. [Retrieval] Fetch the quarterly sales figures")
          expect(system).toContain("  2. [Processing] Chart the quarterly totals (after 1)")
          expect(server.pending()).toBe(0)
        })
      )
    ))
})
