/**
 * The core case of `planner run --on-failure replan`, through the built command against a real HTTP server on
 * 127.0.0.1 speaking chat completions: a task fails for good, the model is asked for a revised plan (with the failure
 * in the request), the revised tasks run and the session succeeds. Run over SQLite (replan.test.ts, beside the other
 * replan cases) and PostgreSQL (replan.pg.test.ts). The script executor decides every task's outcome.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { apiKey, model } from "../llm/support/layers.js"
import { cli, parseJson, type ResultJson, tempFolder, writeScript } from "./cli.js"

export const request = "Fetch the sales data. Then convert it. Then write the report."

export const plan = {
  tasks: [
    { id: "f", description: "Fetch the sales data", kind: "Retrieval", dependsOn: [], attachments: [] },
    { id: "c", description: "Convert the data with tool A", kind: "Processing", dependsOn: ["f"], attachments: [] },
    { id: "r", description: "Write the report", kind: "Processing", dependsOn: ["c"], attachments: [] }
  ]
}

export const revision = {
  tasks: [
    { id: "b", description: "Convert the data with tool B", kind: "Processing", dependsOn: [], attachments: [] },
    {
      id: "r2",
      description: "Write the report from the tool B output",
      kind: "Processing",
      dependsOn: ["b"],
      attachments: []
    }
  ]
}

/** Tool A always fails, and retrying cannot help; tool C too; everything else completes. */
export const script = {
  rules: [
    { match: "tool A", outcomes: [{ fail: "tool A crashed: unsupported format", retryable: false }] },
    { match: "tool C", outcomes: [{ fail: "tool C crashed too", retryable: false }] }
  ],
  default: { complete: "done: {description}" }
}

export interface HistoryJson {
  readonly events: ReadonlyArray<{ readonly type: string; readonly data: Record<string, unknown> }>
}

export const llmEnv = (server: FakeOpenAiServer.FakeOpenAiServer) => ({
  PLANNER_LLM_BASE_URL: server.url,
  PLANNER_LLM_MODEL: model,
  PLANNER_LLM_API: "chat",
  PLANNER_LLM_API_KEY: apiKey
})

export const run = (cwd: string, env: Record<string, string>, extra: ReadonlyArray<string> = []) =>
  Effect.promise(() =>
    cli(
      [
        "run",
        "--json",
        "--non-interactive",
        "--executor",
        `script:${writeScript(cwd, "script.json", script)}`,
        "--on-failure",
        "replan",
        ...extra,
        request
      ],
      { cwd, env }
    )
  )

export const history = (cwd: string, env: Record<string, string>, sessionId: string, db: ReadonlyArray<string> = []) =>
  Effect.map(
    Effect.promise(() => cli(["history", sessionId, "--json", ...db], { cwd, env })),
    (result) => parseJson<HistoryJson>(result).events
  )

/** The text of a recorded chat-completions request: all its messages. */
export const promptOf = (request: FakeOpenAiServer.RecordedRequest | undefined): string =>
  JSON.stringify((request?.body as { messages?: unknown } | undefined)?.messages ?? "")

/** `store`: the store flags for a fresh store (none for the default SQLite file in the working folder). */
export const replanAfterFailure = (store: () => Promise<ReadonlyArray<string>>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const cwd = tempFolder()
        const db = yield* Effect.promise(store)
        const server = yield* FakeOpenAiServer.make
        server.enqueue(Reply.json(plan), Reply.json(revision))
        const env = llmEnv(server)
        const result = yield* run(cwd, env, db)
        expect(result.code, result.stderr).toBe(0)
        const json = parseJson<ResultJson>(result)
        expect(json.status).toBe("Succeeded")
        expect(json.tasks.map((task) => [task.id, task.description, task.status])).toEqual([
          [1, "Fetch the sales data", "Completed"],
          [2, "Convert the data with tool A", "Failed"],
          [3, "Write the report", "Skipped"],
          [4, "Convert the data with tool B", "Completed"],
          [5, "Write the report from the tool B output", "Completed"]
        ])
        expect(json.summary).toContain("task 2 failed and was replanned")

        // The second model call was the revision, and it carried the request, the results and the failure.
        const calls = server.modelRequests()
        expect(calls).toHaveLength(2)
        const asked = promptOf(calls[1])
        expect(asked).toContain("tool A crashed: unsupported format")
        expect(asked).toContain("done: Fetch the sales data")
        expect(asked).toContain("Write the report")

        const events = yield* history(cwd, env, json.sessionId, db)
        const types = events.map((event) => event.type)
        expect(types).toContain("ReplanRequested")
        const replanned = events.find((event) => event.type === "TaskReplanned")
        expect(replanned?.data).toMatchObject({
          taskId: 2,
          supersededTaskIds: [3],
          source: { _tag: "Llm", model },
          tasks: [
            { id: 4, description: "Convert the data with tool B", dependsOn: [1] },
            { id: 5, description: "Write the report from the tool B output", dependsOn: [4] }
          ]
        })
        expect(types.indexOf("ReplanRequested")).toBeLessThan(types.indexOf("TaskReplanned"))
        expect(types.at(-1)).toBe("PlanningCompleted")
        expect(events.at(-1)?.data).toMatchObject({ outcome: "Succeeded" })
      })
    )
  )
