/**
 * Incremental forks and live edits through the library (`Fork`), run unchanged against every event store layer: a
 * real worker and an executor that counts what it executes, so "which tasks ran again" is measured from outside the
 * planner's log.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, type Layer } from "effect"
import * as Fork from "../../src/app/Fork.js"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { AddTask, SetAnswer, SetTask } from "../../src/domain/PlanEdit.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import type { EventStore } from "../../src/infra/EventStore.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import * as Jobs from "../../src/infra/Jobs.js"
import { plannerRuntime } from "./fixtures/runtime.js"

/** An executor that completes every task with its description and the results it was given, and counts its runs. */
const counting = () => {
  const runs: Array<{ readonly sessionId: string; readonly taskId: number }> = []
  const executor: ExecutorService = {
    name: "counting",
    execute: (context) =>
      Effect.sync(() => {
        runs.push({ sessionId: context.sessionId, taskId: context.taskId })
        const inputs = context.dependencyResults.map((dependency) => dependency.result).join(" + ")
        return Outcome.Completed({
          result: inputs === "" ? context.description : `${context.description} <- ${inputs}`
        })
      })
  }
  const ranIn = (sessionId: string) =>
    runs
      .filter((run) => run.sessionId === sessionId)
      .map((run) => run.taskId)
      .sort((a, b) => a - b)
  return { executor, ranIn }
}

const plan = (...specs: ReadonlyArray<readonly [string, ReadonlyArray<number>, TaskPlan["kind"]?]>): Array<TaskPlan> =>
  specs.map(([description, dependsOn, kind], index) => ({
    id: index + 1,
    description,
    kind: kind ?? "Processing",
    dependsOn,
    attachments: []
  }))

/** 1 asks which database; 2 and 3 build on the answer; 4 and 5 do not. */
const databasePlan = plan(
  ["Which database should we use?", [], "Clarification"],
  ["Design the schema", [1]],
  ["Write the migration", [2]],
  ["Write the README", []],
  ["Set up CI", []]
)

const start = (tasks: ReadonlyArray<TaskPlan>) =>
  Effect.gen(function* () {
    const service = yield* PlannerService.PlannerService
    const at = yield* Clock.currentTimeMillis
    const sessionId = Runner.newSessionId(at)
    yield* service.execute(
      sessionId,
      new Initialize({ request: "a database plan", tasks, config: { ...defaultConfig, maxParallel: 4 }, at })
    )
    return sessionId
  })

/** Runs a session to its end, answering task 1's question with `answer` when it asks. */
const runToEnd = (sessionId: string, answer: string) =>
  Effect.gen(function* () {
    let result = yield* Runner.run(sessionId)
    if (result.waiting) {
      yield* Runner.answer(sessionId, 1, answer)
      result = yield* Runner.run(sessionId)
    }
    return result
  })

/** Whether the writer's task queue differs from what the session's log implies. */
const queueDrifts = (sessionId: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService.PlannerService
    const state = yield* service.state(sessionId)
    const queued = yield* service.queue.list(sessionId)
    return Jobs.hasDrift(Jobs.drift(sessionId, Jobs.jobsFromState(sessionId, state), queued))
  })

export const forkSuite = (name: string, makeStore: () => Layer.Layer<EventStore, unknown>) => {
  describe(`incremental forks and edits on ${name}`, () => {
    it.live("a fork with a different answer runs exactly the tasks downstream of it, and reuses the rest", () => {
      const { executor, ranIn } = counting()
      return Effect.gen(function* () {
        const source = yield* start(databasePlan)
        const done = yield* runToEnd(source, "MySQL")
        expect(done.state.status).toBe("Succeeded")
        expect(ranIn(source)).toEqual([2, 3, 4, 5])
        const last = done.state.version

        const edits = [SetAnswer.make({ taskId: 1, answer: "PostgreSQL" })]
        // The preview writes nothing and says what the fork will do.
        const preview = yield* Fork.preview(source, last, { edits })
        expect(preview).toEqual({ reused: [4, 5], rerun: [1, 2, 3], run: [1, 2, 3] })

        const forked = yield* Fork.fork(source, last, { edits })
        expect(forked.preview).toEqual(preview)
        expect(forked.state.forkedFrom).toEqual({ sessionId: source, sequence: last })
        const result = yield* Runner.run(forked.sessionId)
        expect(result.state.status).toBe("Succeeded")
        // Only the schema and the migration ran again (the Clarification task took the new answer as its result).
        expect(ranIn(forked.sessionId)).toEqual([2, 3])
        const results = result.state.tasks.map((task) => task.result)
        expect(results[0]).toBe("PostgreSQL")
        expect(results[1]).toBe("Design the schema <- PostgreSQL")
        expect(results.slice(3)).toEqual(done.state.tasks.slice(3).map((task) => task.result))
        // The reused results name the source event that recorded them.
        const history = yield* Runner.history(forked.sessionId)
        const origin = history.find((record) => record.event._tag === "SessionForked")?.event
        const sourceHistory = yield* Runner.history(source)
        for (const reused of origin?._tag === "SessionForked" ? (origin.reused ?? []) : []) {
          const completing = sourceHistory[reused.sequence - 1]?.event
          expect(completing).toMatchObject({ _tag: "TaskStatusUpdated", taskId: reused.taskId, status: "Completed" })
        }
        // The queue holds what the log implies.
        expect(yield* queueDrifts(forked.sessionId)).toBe(false)
      }).pipe(Effect.provide(plannerRuntime(makeStore(), executor)))
    })

    it.live("a fork with no edit runs nothing that had completed; rerun runs one task and what depends on it", () => {
      const { executor, ranIn } = counting()
      return Effect.gen(function* () {
        const source = yield* start(databasePlan)
        const done = yield* runToEnd(source, "MySQL")
        const plain = yield* Fork.fork(source, done.state.version, { edits: [] })
        expect(plain.preview).toEqual({ reused: [1, 2, 3, 4, 5], rerun: [], run: [] })
        expect(plain.state.status).toBe("Succeeded")
        yield* Runner.run(plain.sessionId)
        expect(ranIn(plain.sessionId)).toEqual([])

        const again = yield* Fork.rerun(source, 2)
        expect(again.preview).toEqual({ reused: [1, 4, 5], rerun: [2, 3], run: [2, 3] })
        const result = yield* Runner.run(again.sessionId)
        expect(result.state.status).toBe("Succeeded")
        expect(ranIn(again.sessionId)).toEqual([2, 3])
      }).pipe(Effect.provide(plannerRuntime(makeStore(), executor)))
    })

    it.live("an edit to a running session adds and changes planned tasks, and they run with the rest", () => {
      const { executor, ranIn } = counting()
      return Effect.gen(function* () {
        const source = yield* start(databasePlan)
        const paused = yield* Runner.run(source)
        expect(paused.waiting).toBe(true)
        // Task 2 waits for the answer: it can still be changed, and a new task can wait for it.
        const handled = yield* Fork.edit(source, [
          SetTask.make({ taskId: 2, description: "Design the schema, normalised" }),
          AddTask.make({ description: "Review the schema", dependsOn: [2], dependents: [3] })
        ])
        expect(handled.events[0]?._tag).toBe("PlanEdited")
        expect(yield* queueDrifts(source)).toBe(false)
        const refused = yield* Effect.flip(Fork.edit(source, [SetTask.make({ taskId: 4, description: "too late" })]))
        expect(refused._tag).toBe("TaskNotEditable")
        yield* Runner.answer(source, 1, "SQLite")
        const result = yield* Runner.run(source)
        expect(result.state.status).toBe("Succeeded")
        expect(ranIn(source)).toEqual([2, 3, 4, 5, 6])
        expect(result.state.tasks[5]?.result).toBe("Review the schema <- Design the schema, normalised <- SQLite")
        expect(result.state.tasks[2]?.dependsOn).toEqual([2, 6])
      }).pipe(Effect.provide(plannerRuntime(makeStore(), executor)))
    })
  })
}
