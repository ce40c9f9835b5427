/**
 * What an incremental fork carries over, through the library (`Fork.fork` with edits or a re-run) on the in-memory
 * store and a SQLite file: the spend on models at the fork point, and a task expanded into a sub-plan, which stays a
 * sub-plan in the fork (its own child, `FORK~TASK`, run by the same workers) instead of running on a plain executor.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Option } from "effect"
import * as Fork from "../../src/app/Fork.js"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as SubPlanRun from "../../src/app/SubPlanRun.js"
import type * as Budget from "../../src/domain/Budget.js"
import { Initialize, RecordUsage } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import type { EventStore } from "../../src/infra/EventStore.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const config = { ...defaultConfig, backoff: { initialDelayMs: 20, factor: 2, maxDelayMs: 100 }, leaseMs: 2_000 }

/** "ask the date" asks, then completes with the answer; everything else completes at once. */
const script = {
  rules: [{ match: "ask the date", outcomes: [{ ask: "Which date?" }, { complete: "date is {answer}" }] }],
  default: { complete: "done" }
}

const task = (id: number, description: string, dependsOn: ReadonlyArray<number>): TaskPlan => ({
  id,
  description,
  kind: "Processing",
  dependsOn,
  attachments: []
})

const call = (purpose: Budget.UsagePurpose, input: number, output: number): Budget.ModelUsage => ({
  purpose,
  model: "gpt-test",
  inputTokens: input,
  outputTokens: output,
  counted: "api"
})

const state = (sessionId: string) =>
  Effect.flatMap(PlannerService.PlannerService, (service) => service.state(sessionId))

const suite = (name: string, makeStore: () => Layer.Layer<EventStore, unknown>) => {
  const withRuntime = <A, E, R>(store: Layer.Layer<EventStore, unknown>, body: Effect.Effect<A, E, R>) =>
    Effect.flatMap(
      ScriptExecutor.parse(JSON.stringify(script), "script.json").pipe(Effect.map(ScriptExecutor.make)),
      (executor) => Effect.provide(body, plannerRuntime(store, executor))
    )

  describe(`incremental fork carries over, on ${name}`, () => {
    it.live("the spend on models at the fork point: a fork of a session with spend starts with it", () =>
      Effect.gen(function* () {
        const store = yield* Layer.memoize(makeStore())
        yield* withRuntime(
          store,
          Effect.gen(function* () {
            const service = yield* PlannerService.PlannerService
            const at = yield* Clock.currentTimeMillis
            const source = Runner.newSessionId(at)
            yield* service.execute(
              source,
              new Initialize({
                request: "Write, test, ship",
                tasks: [task(1, "Write it", []), task(2, "Test it", [1]), task(3, "Ship it", [2])],
                config: { ...config, budgetTokens: 50_000 },
                usage: [call("planning", 1_200, 300)],
                at
              })
            )
            yield* service.execute(source, new RecordUsage({ usage: [call("execution", 2_000, 500)], at }))
            const ran = yield* SubPlanRun.runTree(source)
            expect(ran.state.status).toBe("Succeeded")
            const before = ran.state.budget
            expect(before?.spent).toEqual({ inputTokens: 3_200, outputTokens: 800, calls: 2 })

            // Re-run task 3 from the end: the fork reuses 1 and 2 and starts with all the source had spent.
            const rerun = yield* Fork.rerun(source, 3)
            expect(rerun.preview?.reused).toEqual([1, 2])
            expect(rerun.state.budget).toEqual(before)
            const finished = yield* SubPlanRun.runTree(rerun.sessionId)
            expect(finished.state.status).toBe("Succeeded")
            expect(finished.state.budget?.spent).toEqual(before?.spent)
            expect(finished.state.budget?.tokens).toBe(50_000)

            // At an earlier event (the plan and its planning call), only what was spent by then.
            const early = yield* Fork.fork(source, 2, { edits: [] })
            expect(early.state.budget?.spent).toEqual({ inputTokens: 1_200, outputTokens: 300, calls: 1 })
            // And the fork's log says so: folding it gives the same spend.
            const plannerStore = yield* PlannerStore.PlannerStore
            const log = (yield* plannerStore.load(early.sessionId)).map((record) => record.event)
            expect(Planner.fold(log).budget?.spent).toEqual(early.state.budget?.spent)
            expect(log.filter((event) => event._tag === "ModelUsageRecorded")).toHaveLength(1)
          })
        )
      }).pipe(Effect.scoped)
    )

    it.live("an expanded task the fork runs again stays expanded: its own child plans and runs it", () =>
      Effect.gen(function* () {
        const store = yield* Layer.memoize(makeStore())
        yield* withRuntime(
          store,
          Effect.gen(function* () {
            const service = yield* PlannerService.PlannerService
            const at = yield* Clock.currentTimeMillis
            const root = Runner.newSessionId(at)
            yield* service.execute(
              root,
              new Initialize({
                request: "Release it",
                tasks: [
                  task(1, "Write the notes", []),
                  task(2, "Build the release. Then ask the date. Then publish it.", [1]),
                  task(3, "Tell the team", [2])
                ],
                config,
                expand: [{ taskId: 2, childSessionId: childSessionId(root, 2) }],
                at
              }),
              { correlationId: root }
            )
            // The child asks a question nobody answers here: the root waits with task 2 in flight.
            const first = yield* SubPlanRun.runTree(root, { onClarification: () => Effect.succeed(Option.none()) })
            expect(first.waiting).toBe(true)

            const forked = yield* Fork.fork(root, first.state.version, { edits: [] })
            expect(forked.preview).toEqual({ reused: [1], rerun: [], run: [2, 3] })
            const intoChild = childSessionId(forked.sessionId, 2)
            expect(Planner.task(forked.state, 2)?.childSessionId).toBe(intoChild)
            // The fork's child was started by the writer when task 2 was dispatched, linked to the fork.
            const child = yield* state(intoChild)
            expect(child.subPlanOf).toMatchObject({
              sessionId: forked.sessionId,
              taskId: 2,
              rootSessionId: forked.sessionId
            })
            expect(child.tasks.map((t) => t.description)).toEqual(["Build the release", "ask the date", "publish it"])

            const done = yield* SubPlanRun.runTree(forked.sessionId, {
              onClarification: () => Effect.succeed(Option.some("Tuesday"))
            })
            expect(done.state.status).toBe("Succeeded")
            expect((yield* state(intoChild)).tasks[1]?.result).toBe("date is Tuesday")
            expect(Planner.task(done.state, 2)?.result).toBe((yield* state(intoChild)).summary)
            // No job was queued for the expanded task in the fork: nothing claimed it.
            const plannerStore = yield* PlannerStore.PlannerStore
            const log = yield* plannerStore.load(forked.sessionId)
            expect(log.some((record) => record.event._tag === "TaskClaimed" && record.event.taskId === 2)).toBe(false)
            // The origin's child still waits for its answer.
            expect(Planner.task(yield* state(childSessionId(root, 2)), 2)?.status).toBe("NeedsClarification")
          })
        )
      }).pipe(Effect.scoped)
    )
  })
}

suite("the in-memory store", () => MemoryEventStore.layer())
suite("a SQLite file", () =>
  Layer.unwrapScoped(Effect.map(freshSqliteFile, (filename) => SqliteEventStore.layer({ filename }))))
