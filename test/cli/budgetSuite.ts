/**
 * A budget pause end to end, through the `planner` command against a real OpenAI-compatible HTTP server that reports
 * usage (chat completions): the plan call fits the budget, the first step's call would cross it, so the task asks the
 * budget question; `planner answer ... "yes 20000"` raises the budget by an event, the call is made, and the plan
 * finishes. The spend `show --json` reports is the sum of what the server reported, and the log has the approval
 * before the crossing call's usage. Run over SQLite and PostgreSQL by the two test files beside this one.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import type { ModelUsage } from "../../src/domain/Budget.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { apiKey, model } from "../llm/support/layers.js"
import { cli, parseJson, type ResultJson, sessionIdIn, tempFolder } from "./cli.js"

const plan = {
  tasks: [
    { id: "a", description: "Summarise the release", kind: "Processing", dependsOn: [], attachments: [] },
    { id: "b", description: "Draft the announcement", kind: "Processing", dependsOn: ["a"], attachments: [] }
  ]
}

const step = (result: string) => Reply.json({ outcome: "completed", result, question: "", reason: "" }, null)

interface BudgetJson {
  readonly tokens?: number
  readonly spent: { readonly inputTokens: number; readonly outputTokens: number; readonly calls: number }
  readonly spentTokens: number
  readonly questions: ReadonlyArray<unknown>
}

interface HistoryJson {
  readonly events: ReadonlyArray<{
    readonly sequence: number
    readonly type: string
    readonly data: { readonly usage?: ReadonlyArray<ModelUsage> } & Record<string, unknown>
  }>
}

/** `db`: the store flags for a fresh store (none for the default SQLite file in the working folder). */
export const budgetPause = (db: () => Promise<ReadonlyArray<string>>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const cwd = tempFolder()
        const store = yield* Effect.promise(db)
        const server = yield* FakeOpenAiServer.make
        // The plan call reports 4,000 in and 500 out: 4,500 of the 5,000 tokens. Step calls report no usage, so the
        // planner counts them with the tokenizer.
        server.enqueue(
          Reply.json(plan, { input: 4_000, output: 500 }),
          step("Summary done"),
          step("Announcement drafted")
        )
        const env = {
          PLANNER_LLM_BASE_URL: server.url,
          PLANNER_LLM_MODEL: model,
          PLANNER_LLM_API: "chat",
          PLANNER_LLM_API_KEY: apiKey
        }
        const run = yield* Effect.promise(() =>
          cli(
            [
              "run",
              ...store,
              "--non-interactive",
              "--executor",
              "auto",
              "--budget-tokens",
              "5000",
              "Summarise the release, then draft the announcement."
            ],
            { cwd, env }
          )
        )
        expect(run.code, run.stderr).toBe(3)
        const sessionId = sessionIdIn(run.stdout)
        expect(run.stdout).toMatch(
          /Task 1 asks: This plan has used 4,500 of 5,000 tokens; the next step needs about [\d,]+\. Allow 2,000 more\?/
        )
        // Only the plan call was made: the step's call was held back.
        expect(server.requests.length).toBe(1)

        const paused = parseJson<ResultJson & { budget: BudgetJson }>(
          yield* Effect.promise(() => cli(["show", sessionId, ...store, "--json"], { cwd, env }))
        )
        expect(paused.budget.tokens).toBe(5_000)
        expect(paused.budget.spent).toEqual({ inputTokens: 4_000, outputTokens: 500, calls: 1 })
        expect(paused.budget.questions).toHaveLength(1)
        expect(paused.tasks[0]?.status).toBe("NeedsClarification")

        const answered = yield* Effect.promise(() =>
          cli(["answer", sessionId, "1", "yes 20000", ...store, "--json"], { cwd, env })
        )
        expect(answered.code, answered.stderr).toBe(0)
        const done = parseJson<ResultJson & { budget: BudgetJson }>(answered)
        expect(done.status).toBe("Succeeded")
        expect(done.tasks.map((task) => task.result)).toEqual(["Summary done", "Announcement drafted"])
        expect(done.budget.tokens).toBe(25_000)
        expect(server.requests.length).toBe(3)

        // The log: the spend is the sum of the usage events, and the raise comes before the call it allowed.
        const history = parseJson<HistoryJson>(
          yield* Effect.promise(() => cli(["history", sessionId, ...store, "--json"], { cwd, env }))
        )
        const usage = history.events.filter((event) => event.type === "ModelUsageRecorded")
        const calls = usage.flatMap((event) => event.data.usage ?? [])
        expect(calls.map((call) => [call.purpose, call.counted])).toEqual([
          ["planning", "api"],
          ["execution", "tokenizer"],
          ["execution", "tokenizer"]
        ])
        const sum = calls.reduce((total, call) => total + call.inputTokens + call.outputTokens, 0)
        expect(done.budget.spentTokens).toBe(sum)
        const raised = history.events.find((event) => event.type === "BudgetRaised")
        expect(raised?.data).toMatchObject({ unit: "tokens", limit: 25_000, by: 20_000, taskId: 1 })
        expect(raised?.sequence).toBeLessThan(usage[1]?.sequence ?? 0)

        const shown = yield* Effect.promise(() => cli(["show", sessionId, ...store], { cwd, env }))
        expect(shown.stdout).toMatch(
          /^Model spend: [\d,]+ tokens \([\d,]+ in, [\d,]+ out\) in 3 calls; budget 25,000 tokens$/m
        )
      })
    )
  )

/** A budget too small for the plan call: the parser plans, the plan says why, and the budget holds from then on. */
export const budgetTooSmallToPlan = (db: () => Promise<ReadonlyArray<string>>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const cwd = tempFolder()
        const store = yield* Effect.promise(db)
        const server = yield* FakeOpenAiServer.make
        const env = {
          PLANNER_LLM_BASE_URL: server.url,
          PLANNER_LLM_MODEL: model,
          PLANNER_LLM_API: "chat",
          PLANNER_LLM_API_KEY: apiKey
        }
        const run = yield* Effect.promise(() =>
          cli(["run", ...store, "--non-interactive", "--json", "--budget-tokens", "300", "Summarise the release."], {
            cwd,
            env
          })
        )
        expect(run.code, run.stderr).toBe(3)
        expect(server.requests.length).toBe(0)
        const sessionId = parseJson<ResultJson>(run).sessionId
        const shown = parseJson<{ source: { _tag: string; reason?: string } }>(
          yield* Effect.promise(() => cli(["show", sessionId, ...store, "--json"], { cwd, env }))
        )
        expect(shown.source._tag).toBe("Parser")
        expect(shown.source.reason).toMatch(/^the budget is too small for the planning call: the plan call needs about/)
      })
    )
  )
