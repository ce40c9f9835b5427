/**
 * `POST /api/sessions/:id/resume` settles a replan that a stopped process left pending, as `planner resume` does:
 * against a real HTTP server speaking chat completions, over a real SQLite file. Without an LLM in the server's
 * context (a bare `planner serve`) the replan stays pending instead of being skipped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Schedule } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Planner from "../../src/domain/Planner.js"
import { Llm } from "../../src/infra/Llm.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { failedAndPending, revision } from "../app/replanSuite.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { llmLayer, model, settingsFor } from "../llm/support/layers.js"
import { postJson, startServer } from "./fixtures.js"

const executor = ScriptExecutor.make({ rules: [], default: { complete: "done: {description}" } })

describe("resuming from the dashboard settles a pending replan", () => {
  it.scopedLive(
    "with the server's LLM: the revision is asked for once and recorded with the model as its source",
    () =>
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        const server = yield* FakeOpenAiServer.make
        server.enqueue(Reply.json(revision))
        const runtime = yield* Layer.build(
          PlannerRuntime.layer(SqliteEventStore.layer({ filename }), {
            executor,
            llm: llmLayer("chat", settingsFor(server))
          })
        )
        yield* Effect.gen(function* () {
          const { sessionId } = yield* failedAndPending
          const { url } = yield* startServer
          const resumed = yield* postJson(`${url}/api/sessions/${sessionId}/resume`, {})
          expect(resumed.status).toBe(200)
          const store = yield* PlannerStore
          const replanned = yield* store.load(sessionId).pipe(
            Effect.map((records) => records.find((record) => record.event._tag === "TaskReplanned")?.event),
            Effect.filterOrFail((event) => event !== undefined),
            Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds")))
          )
          expect(replanned).toMatchObject({ taskId: 2, supersededTaskIds: [3], source: { _tag: "Llm", model } })
          expect(server.modelRequests()).toHaveLength(1)
          // A second resume finds nothing pending and asks for nothing.
          yield* postJson(`${url}/api/sessions/${sessionId}/resume`, {})
          expect(server.modelRequests()).toHaveLength(1)
        }).pipe(Effect.provide(runtime))
      }),
    60_000
  )

  it.scopedLive(
    "without an LLM in the server (a bare `planner serve`): the replan stays pending, not skipped",
    () =>
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        const built = yield* Layer.build(PlannerRuntime.layer(SqliteEventStore.layer({ filename }), { executor }))
        // The CLI's bare server has the store and the writer but no run services: no LLM at all.
        const bare = Context.omit(Llm)(built)
        yield* Effect.gen(function* () {
          const { sessionId } = yield* failedAndPending
          const { url } = yield* startServer
          const resumed = yield* postJson(`${url}/api/sessions/${sessionId}/resume`, {})
          expect(resumed.status).toBe(200)
          const service = yield* PlannerService
          // Give a background settle (if one were started) time to record something, then look.
          yield* Effect.sleep("300 millis")
          const state = yield* service.state(sessionId)
          expect(Planner.pendingReplans(state)).toEqual([2])
          const records = yield* Effect.flatMap(PlannerStore, (store) => store.load(sessionId))
          expect(records.some((record) => record.event._tag === "ReplanSkipped")).toBe(false)
        }).pipe(Effect.provide(bare))
      }),
    60_000
  )
})
