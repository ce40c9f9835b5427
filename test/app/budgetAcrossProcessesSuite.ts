/**
 * A budget spent by worker processes at once (#16): two worker processes on one database, each running one task of
 * the same plan with the LLM executor against a real OpenAI-compatible HTTP server that holds its first answer until
 * the other task has asked. Each step's call alone fits what is left of the budget, both do not. The first call
 * admitted takes a hold on the budget in the store, so the other process's call is refused before it is made and its
 * task asks the budget question: only one call reaches the server. Answering yes raises the budget by an event, the refused step's call is made, and the plan
 * finishes; the spend is exactly the usage events. Run over SQLite and PostgreSQL by the two files beside this one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Effect, Layer, type Scope, Stream } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Planner from "../../src/domain/Planner.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import { within } from "../infra/EventStoreContract.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { spawnFixture } from "../support/child.js"
import { twoStepsOneCallFits } from "./fixtures/budgetPlan.js"
import { plannerRuntime, storeLayer } from "./fixtures/runtime.js"

/** This process records the plan and watches; the worker processes execute. */
const neverHere: ExecutorService = {
  name: "never",
  execute: () => Effect.succeed(Outcome.Failed({ error: "the test process does not execute tasks", retryable: true }))
}

const step = (result: string) =>
  Reply.json({ outcome: "completed", result, question: "", reason: "" }, { input: 100, output: 50 })

const statuses = (state: Planner.PlannerState) => state.tasks.map((task) => task.status).sort()

export const budgetAcrossProcessesSuite = (name: string, fresh: Effect.Effect<string, unknown, Scope.Scope>) =>
  describe(`a budget spent by worker processes at once, on ${name}`, () => {
    it.live(
      "one process's call in flight keeps the other's from crossing the budget; yes lets it through",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const url = yield* fresh
            const server = yield* FakeOpenAiServer.make
            // The first call is answered only once the other task has asked: it is surely in flight meanwhile.
            let answerFirst = () => {}
            const firstAnswered = new Promise<void>((resolve) => {
              answerFirst = resolve
            })
            server.enqueue(
              Reply.after(firstAnswered, step("the release notes")),
              step("the announcement"),
              step("spare")
            )
            // Built here first, so the schema is migrated before the workers connect.
            const context = yield* Layer.build(plannerRuntime(storeLayer(url), neverHere))
            const service = Context.get(context, PlannerService.PlannerService)
            const store = Context.get(context, PlannerStore)
            const spawn = Effect.gen(function* () {
              const child = yield* spawnFixture(new URL("./fixtures/llmWorkerProcess.ts", import.meta.url), [
                url,
                server.url,
                "1"
              ])
              yield* child.waitFor((line) => line.startsWith("ready ")).pipe(within(60, "a worker start"))
              return child
            })
            const workers = yield* Effect.all([spawn, spawn], { concurrency: "unbounded" })

            const at = yield* Clock.currentTimeMillis
            const sessionId = Runner.newSessionId(at)
            yield* service.execute(sessionId, twoStepsOneCallFits(at, { maxAttempts: 1 }))
            const follow = (until: (state: Planner.PlannerState) => boolean, what: string) =>
              Runner.observe(sessionId).pipe(
                Stream.map((progress) => progress.state),
                Stream.filter(until),
                Stream.runHead,
                Effect.provideService(PlannerStore, store),
                within(90, what)
              )

            // One task asks the budget question while the other's call is in flight (or, were the budget not shared,
            // a second call reaches the server).
            yield* follow(
              (state) =>
                state.tasks.some((task) => task.status === "NeedsClarification") || server.modelRequests().length > 1,
              "the other step asking"
            )
            // The first call's hold is taken before its request is sent: the request may reach the server after the
            // other task has asked.
            yield* Effect.sleep("10 millis").pipe(
              Effect.repeat({ until: () => server.modelRequests().length > 0 }),
              within(30, "the first call")
            )
            expect(server.modelRequests()).toHaveLength(1)
            answerFirst()
            const paused = yield* follow(
              (state) => statuses(state).join() === "Completed,NeedsClarification",
              "one step done, the other asking"
            )
            // Both processes took a task, and only one call was made: the other was refused before it was sent.
            const claimedBy = new Set(
              (yield* store.load(sessionId)).flatMap((record) =>
                record.event._tag === "TaskClaimed" ? [record.event.workerId] : []
              )
            )
            expect(claimedBy.size).toBe(2)
            expect(server.modelRequests()).toHaveLength(1)
            const state = paused._tag === "Some" ? paused.value : Planner.initialState
            const asked = state.budget?.questions ?? []
            expect(asked).toHaveLength(1)
            expect(asked[0]?.ask.unit).toBe("tokens")
            expect(state.budget?.spent).toMatchObject({ inputTokens: 100, outputTokens: 50, calls: 1 })

            // Yes raises the budget by an event; the refused step runs and the plan finishes.
            const waiting = asked[0]?.taskId ?? 0
            yield* Runner.answer(sessionId, waiting, "yes 5000").pipe(Effect.provide(context))
            const finished = yield* follow(Planner.isFinished, "the plan")
            for (const worker of workers) yield* worker.send("stop")
            yield* Effect.all(
              workers.map((worker) => worker.success),
              { concurrency: "unbounded" }
            ).pipe(within(20, "the workers' exit"))

            const final = finished._tag === "Some" ? finished.value : Planner.initialState
            expect(final.status).toBe("Succeeded")
            expect(server.modelRequests()).toHaveLength(2)
            const records = yield* store.load(sessionId)
            const usage = records.flatMap((record) =>
              record.event._tag === "ModelUsageRecorded" ? record.event.usage : []
            )
            expect(usage).toHaveLength(2)
            expect(final.budget?.spent).toMatchObject({ inputTokens: 200, outputTokens: 100, calls: 2 })
            expect(final.budget?.tokens).toBe(7_000)
            // The approval is in the log before the second call's usage.
            const raisedAt = records.findIndex((record) => record.event._tag === "BudgetRaised")
            const usageAt = records.flatMap((record, index) =>
              record.event._tag === "ModelUsageRecorded" ? [index] : []
            )
            expect(raisedAt).toBeGreaterThan(-1)
            expect(usageAt[1]).toBeGreaterThan(raisedAt)
          })
        ),
      240_000
    )
  })
