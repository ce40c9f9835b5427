/**
 * Causation ids: every event names what caused it, and every chain of causes ends at an event of the same log. A
 * worker's command names the event that led to it (a claim, the task's dispatch; an outcome, the attempt's claim; a
 * compaction, the completion it followed); a command of a person or a program (a request, an answer, a resume, a
 * cancel) names the first event it produced. Run on SQLite, over a plan with a retry, a question answered during
 * the run, compaction between steps, a run that stops and a resume.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Runner from "../../src/app/Runner.js"
import type { PlannerEventRecord } from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const script = {
  rules: [
    { match: "fetch", outcomes: [{ fail: "connection reset", retryable: true }, { complete: "rows fetched" }] },
    { match: "format", outcomes: [{ ask: "Which output format?" }, { complete: "format {answer}" }] },
    { match: "transform", outcomes: [{ complete: "transformed" }] }
  ],
  default: { complete: "done" }
}

/** The chain of causes from `record` to its root: each step names an event of the log, and it never loops. */
const chainOf = (byId: ReadonlyMap<string, PlannerEventRecord>, record: PlannerEventRecord) => {
  const chain: Array<PlannerEventRecord> = [record]
  for (let current = record; ; ) {
    const cause = current.metadata.causationId
    expect(cause, `event ${current.sequence} (${current.event._tag}) names a cause`).toBeTypeOf("string")
    const next = byId.get(cause ?? "")
    expect(next, `the cause of event ${current.sequence} (${current.event._tag}) is in the log`).toBeDefined()
    if (next === undefined || next.metadata.eventId === current.metadata.eventId) return chain
    // A command's own first event is the root of its chain; anything else comes earlier in the log.
    expect(next.sequence, `event ${current.sequence} is caused by an earlier event`).toBeLessThanOrEqual(
      current.sequence
    )
    if (next.sequence === current.sequence) return chain
    chain.push(next)
    current = next
  }
}

describe("causation ids", () => {
  it.live("every causation id names an event of the log, and every chain ends at a command's first event", () =>
    Effect.gen(function* () {
      const filename = yield* freshSqliteFile
      const executor = ScriptExecutor.make(yield* ScriptExecutor.parse(JSON.stringify(script), "causes.json"))
      yield* Effect.gen(function* () {
        const { sessionId } = yield* Runner.start(
          "Fetch the sales data. Ask which output format to use. Then transform the data.",
          { config: { backoff: { initialDelayMs: 10, factor: 2, maxDelayMs: 50 }, maxAttempts: 3, tokenBudget: 12 } }
        )
        // The first run stops at the question; the answer is given by a person; a resume finishes the plan.
        const paused = yield* Runner.run(sessionId)
        expect(paused.waiting).toBe(true)
        const pending = paused.state.tasks.find((task) => task.status === "NeedsClarification")
        yield* Runner.answer(sessionId, pending?.id ?? 0, "parquet")
        const done = yield* Runner.resume(sessionId, { onClarification: () => Effect.succeed(Option.none()) })
        expect(done.state.status).toBe("Succeeded")

        const records = yield* Runner.history(sessionId)
        const byId = new Map(records.map((record) => [record.metadata.eventId, record] as const))
        expect(byId.size).toBe(records.length)
        for (const record of records) chainOf(byId, record)

        const causeOf = (record: PlannerEventRecord) => byId.get(record.metadata.causationId ?? "")?.event
        for (const record of records) {
          const event = record.event
          if (event._tag === "TaskClaimed") {
            // A claim: caused by the dispatch of that very attempt.
            expect(causeOf(record)).toMatchObject({
              _tag: "TaskDispatched",
              taskId: event.taskId,
              attempt: event.attempt
            })
          }
          if (
            event._tag === "TaskRetryScheduled" ||
            (event._tag === "TaskStatusUpdated" && event.status === "Completed")
          ) {
            const cause = causeOf(record)
            // An outcome: caused by the attempt's start (a Clarification answered by a person is its own cause).
            if (cause?._tag !== "ClarificationReceived") {
              expect(cause).toMatchObject({ _tag: "TaskClaimed", taskId: event.taskId, attempt: event.attempt })
            }
          }
          if (event._tag === "ContextCompacted") {
            expect(causeOf(record)).toMatchObject({ _tag: "TaskStatusUpdated", status: "Completed" })
          }
          if (event._tag === "ClarificationReceived" || event._tag === "TasksPlanned") {
            // A person's or a program's command: its first event is its own cause.
            expect(record.metadata.causationId).toBe(record.metadata.eventId)
          }
        }
        // The plan covered what the test is about.
        const types = new Set(records.map((record) => record.event._tag))
        for (const type of ["TaskRetryScheduled", "ClarificationReceived", "ContextCompacted", "PlanningCompleted"]) {
          expect(types.has(type as never), type).toBe(true)
        }
      }).pipe(Effect.provide(plannerRuntime(SqliteEventStore.layer({ filename }), executor)))
    }).pipe(Effect.scoped)
  )
})
