/**
 * Replanning through the library, on a SQLite file, against a real HTTP server on 127.0.0.1 speaking chat completions:
 * a replan left pending by a process that stopped is settled by the next one that drives the session (`Runner.resume`);
 * the revision's ids follow the plan as it is when it is recorded; and a fork at 0 plans the same request again with
 * another planner, recording where it came from.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Either, type Layer, Option, type Scope, Stream } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Replan from "../../src/app/Replan.js"
import { replanFork } from "../../src/app/ReplanFork.js"
import * as Runner from "../../src/app/Runner.js"
import * as Worker from "../../src/app/Worker.js"
import { ClaimTask, HandleExecutorEvent, Initialize, TaskCompleted, TaskFailed } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import type { Llm } from "../../src/infra/Llm.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { llmLayer, model, settingsFor } from "../llm/support/layers.js"
import { plannerRuntime, storeLayer } from "./fixtures/runtime.js"

const script = {
  rules: [{ match: "tool A", outcomes: [{ fail: "tool A crashed: unsupported format", retryable: false }] }],
  default: { complete: "done: {description}" }
}

const tasks = [
  { id: 1, description: "Fetch the sales data", kind: "Retrieval" as const, dependsOn: [], attachments: [] },
  { id: 2, description: "Convert the data with tool A", kind: "Processing" as const, dependsOn: [1], attachments: [] },
  { id: 3, description: "Write the report", kind: "Processing" as const, dependsOn: [2], attachments: [] }
]

export const revision = {
  tasks: [
    { id: "b", description: "Convert the data with tool B", kind: "Processing", dependsOn: [], attachments: [] },
    { id: "r", description: "Write the report from tool B", kind: "Processing", dependsOn: ["b"], attachments: [] }
  ]
}

/** The planner over the SQLite file `db`, the script executor, and `llm` (the heuristic one when omitted). */
const runtime = (db: string, llm?: Layer.Layer<Llm>) =>
  Effect.map(
    ScriptExecutor.parse(JSON.stringify(script), "script.json").pipe(Effect.map(ScriptExecutor.make)),
    (executor) =>
      llm === undefined
        ? plannerRuntime(storeLayer(db), executor)
        : PlannerRuntime.layer(storeLayer(db), { executor, llm })
  )

/** Records a session whose task 2 failed for good under the replan policy, with nobody to settle the replan. */
export const failedAndPending = Effect.gen(function* () {
  const service = yield* PlannerService
  const at = yield* Clock.currentTimeMillis
  const sessionId = Runner.newSessionId(at)
  const config = { ...defaultConfig, maxAttempts: 1, onFailure: "replan" as const }
  yield* service.execute(sessionId, new Initialize({ request: "Fetch, convert, report.", tasks, config, at }))
  yield* service.execute(sessionId, new ClaimTask({ taskId: 1, attempt: 1, workerId: "w", at }))
  yield* service.execute(
    sessionId,
    new HandleExecutorEvent({ event: new TaskCompleted({ taskId: 1, result: "1,204 rows" }), at })
  )
  yield* service.execute(sessionId, new ClaimTask({ taskId: 2, attempt: 1, workerId: "w", at }))
  const failed = yield* service.execute(
    sessionId,
    new HandleExecutorEvent({ event: new TaskFailed({ taskId: 2, error: "tool A crashed", retryable: false }), at })
  )
  return { sessionId, state: failed.state }
})

/** The scenarios over a store: `makeDb` gives a fresh database (a SQLite file path or a PostgreSQL URL). */
export const replanSuite = (name: string, makeDb: Effect.Effect<string, unknown, Scope.Scope>) =>
  describe(`replanning through the library on ${name}`, { timeout: 120_000 }, () => {
    it.live("a replan left pending by a process that stopped is settled when the session is resumed", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const db = yield* makeDb
          // The first process: the failure is recorded, and it stops before anybody asks for a revision.
          const { sessionId, state } = yield* Effect.provide(failedAndPending, yield* runtime(db))
          expect(Planner.pendingReplans(state)).toEqual([2])
          expect(state.status).toBe("Running")

          // The next process has an LLM; resuming the session settles the replan and runs the revised tasks.
          const server = yield* FakeOpenAiServer.make
          server.enqueue(Reply.json(revision))
          const next = yield* runtime(db, llmLayer("chat", settingsFor(server)))
          const result = yield* Effect.provide(Runner.resume(sessionId), next)
          expect(result.state.status).toBe("Succeeded")
          expect(result.state.tasks.map((task) => [task.id, task.status])).toEqual([
            [1, "Completed"],
            [2, "Failed"],
            [3, "Skipped"],
            [4, "Completed"],
            [5, "Completed"]
          ])
          expect(result.state.tasks[3]?.dependsOn).toEqual([1])
          expect(result.state.tasks[4]?.result).toBe("done: Write the report from tool B")
          expect(server.modelRequests()).toHaveLength(1)
          const records = yield* Effect.provide(
            Effect.flatMap(PlannerStore, (store) => store.load(sessionId)),
            next
          )
          const replanned = records.find((record) => record.event._tag === "TaskReplanned")?.event
          expect(replanned).toMatchObject({ taskId: 2, supersededTaskIds: [3], source: { _tag: "Llm", model } })
        })
      )
    )

    it.live("a session served by workers alone is replanned by the worker that reported the failure", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* FakeOpenAiServer.make
          server.enqueue(Reply.json(revision))
          const layer = yield* runtime(yield* makeDb, llmLayer("chat", settingsFor(server)))
          yield* Effect.provide(
            Effect.gen(function* () {
              const service = yield* PlannerService
              const at = yield* Clock.currentTimeMillis
              const sessionId = Runner.newSessionId(at)
              const config = { ...defaultConfig, maxAttempts: 1, onFailure: "replan" as const }
              yield* service.execute(
                sessionId,
                new Initialize({ request: "Fetch, convert, report.", tasks, config, at })
              )
              // No Runner.run: a worker alone serves the session, as `planner worker` does.
              yield* Effect.forkScoped(Worker.run({ sessionId, concurrency: 2 }))
              const last = yield* Runner.observe(sessionId).pipe(Stream.runLast)
              const state = Option.getOrThrow(last).state
              expect(state.status).toBe("Succeeded")
              expect(state.tasks.map((task) => task.status)).toEqual([
                "Completed",
                "Failed",
                "Skipped",
                "Completed",
                "Completed"
              ])
              expect(server.modelRequests()).toHaveLength(1)
            }),
            layer
          )
        })
      )
    )

    it.live("settling twice records the revision once", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* FakeOpenAiServer.make
          server.enqueue(Reply.json(revision), Reply.json(revision))
          const layer = yield* runtime(yield* makeDb, llmLayer("chat", settingsFor(server)))
          yield* Effect.provide(
            Effect.gen(function* () {
              const { sessionId } = yield* failedAndPending
              const [first, second] = yield* Effect.all([Replan.settle(sessionId, 2), Replan.settle(sessionId, 2)], {
                concurrency: 2
              })
              const service = yield* PlannerService
              const state = yield* service.state(sessionId)
              expect(state.tasks).toHaveLength(5)
              expect(state.replans).toEqual([{ taskId: 2, outcome: "Revised" }])
              // Whichever came second found the replan settled: it recorded nothing.
              const recorded = [first, second].flatMap((outcome) =>
                outcome._tag === "Some" ? outcome.value.events : []
              )
              expect(recorded.filter((event) => event._tag === "TaskReplanned")).toHaveLength(1)
            }),
            layer
          )
        })
      )
    )

    it.live("without an LLM the pending replan is skipped with the reason, as under continue", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const layer = yield* runtime(yield* makeDb)
          yield* Effect.provide(
            Effect.gen(function* () {
              const { sessionId } = yield* failedAndPending
              const handled = yield* Replan.settle(sessionId, 2)
              expect(handled._tag).toBe("Some")
              const state = yield* Effect.flatMap(PlannerService, (service) => service.state(sessionId))
              expect(state.status).toBe("Failed")
              expect(state.replans).toEqual([{ taskId: 2, outcome: "Skipped" }])
              expect(state.tasks[2]?.error).toBe("skipped because task 2 failed")
            }),
            layer
          )
        })
      )
    )

    it.live("a fork at 0 with another planner plans the same request again and records its origin", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* FakeOpenAiServer.make
          server.enqueue(
            Reply.json({
              tasks: [
                { id: "1", description: "Fetch the sales data", kind: "Retrieval", dependsOn: [], attachments: [] },
                { id: "2", description: "Summarise it", kind: "Analysis", dependsOn: ["1"], attachments: [] }
              ]
            })
          )
          const layer = yield* runtime(yield* makeDb, llmLayer("chat", settingsFor(server)))
          yield* Effect.provide(
            Effect.gen(function* () {
              const source = yield* Runner.start("Fetch the sales data. Then summarise it.", {
                config: { systemPrompt: "Plan data work." }
              })
              // The source was planned by the model; the fork plans with the parser, under another system prompt.
              expect(source.state.source).toEqual({ _tag: "Llm", model })
              const byParser = yield* replanFork(source.sessionId, { planner: "parser", systemPrompt: "Be brief." })
              expect(byParser.state.source).toEqual({
                _tag: "Parser",
                reason: `replanned from session ${source.sessionId}`
              })
              expect(byParser.state.request).toBe("Fetch the sales data. Then summarise it.")
              expect(byParser.state.config.systemPrompt).toBe("Be brief.")
              expect(byParser.state.forkedFrom).toEqual({ sessionId: source.sessionId, sequence: 0 })
              const records = yield* Effect.flatMap(PlannerStore, (store) => store.load(byParser.sessionId))
              expect(records.map((record) => record.event._tag).slice(0, 2)).toEqual(["SessionForked", "TasksPlanned"])
              expect(records[0]?.event).toMatchObject({ fromSessionId: source.sessionId, atSequence: 0 })

              // With the LLM planner, the model is asked again (a second plan call), and the source names it.
              server.enqueue(
                Reply.json({
                  tasks: [
                    {
                      id: "x",
                      description: "Fetch and summarise the sales data",
                      kind: "Analysis",
                      dependsOn: [],
                      attachments: []
                    }
                  ]
                })
              )
              const byModel = yield* replanFork(source.sessionId, { planner: "llm" })
              expect(byModel.state.source).toEqual({ _tag: "Llm", model })
              expect(byModel.state.tasks.map((task) => task.description)).toEqual([
                "Fetch and summarise the sales data"
              ])
              expect(server.modelRequests()).toHaveLength(2)
            }),
            layer
          )
        })
      )
    )

    it("a revision's tasks follow the plan's last id, and its first tasks start after the failed task's dependencies", () => {
      const state = Planner.fold(
        Either.getOrThrow(
          Planner.decideEither(
            Planner.initialState,
            new Initialize({ request: "r", tasks, config: { ...defaultConfig, onFailure: "replan" }, at: 0 })
          )
        )
      )
      const failed = {
        ...state.tasks[1],
        status: "Failed" as const,
        error: "boom"
      } as Planner.PlannerState["tasks"][number]
      const drafts = revision.tasks.map((task) => ({ ...task, kind: task.kind as "Processing" }))
      const { tasks: revised, notes } = Replan.revisionTasks(state, failed, drafts)
      expect(revised.map((task) => [task.id, task.dependsOn])).toEqual([
        [4, [1]],
        [5, [4]]
      ])
      expect(notes).toEqual([])
      expect(Replan.revisionPrompt(state, failed)).toContain("Error: boom")
    })
  })
