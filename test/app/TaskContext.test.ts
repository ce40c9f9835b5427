/**
 * What an executor is given for one attempt (`AttemptRunner.taskContext`): the request, its dependencies' results,
 * and the rolling context of every other result not compacted yet. The rolling context is built when the executor
 * reads it, once, and reads like any other field (spread, JSON).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import { taskContext } from "../../src/app/worker/AttemptRunner.js"
import { entryText } from "../../src/app/worker/CompactionTrigger.js"
import { HandleExecutorEvent, Initialize, TaskCompleted } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { EventStore } from "../../src/infra/EventStore.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"

const step = (id: number, dependsOn: ReadonlyArray<number> = []) => ({
  id,
  description: `step ${id}`,
  kind: "Processing" as const,
  dependsOn: [...dependsOn],
  attachments: []
})

const completed = (taskId: number, at: number) =>
  new HandleExecutorEvent({ event: new TaskCompleted({ taskId, attempt: 1, result: `result ${taskId}` }), at })

describe("the context an executor is given", () => {
  it.effect("has its dependencies' results apart and every other result in the rolling context", () =>
    Effect.gen(function* () {
      const store = MemoryEventStore.make(yield* MemoryEventStore.makeStorage)
      const service = yield* PlannerService.make().pipe(
        Effect.provideServiceEffect(
          PlannerStore.PlannerStore,
          Effect.provideService(PlannerStore.make, EventStore, store)
        ),
        Effect.provideService(EventStore, store)
      )
      yield* service.execute(
        "s",
        new Initialize({
          request: "three steps",
          tasks: [step(1), step(2), step(3, [1])],
          config: { ...defaultConfig, maxParallel: 3 },
          at: 1
        })
      )
      yield* service.execute("s", completed(1, 2))
      const { state } = yield* service.execute("s", completed(2, 3))
      const third = Planner.task(state, 3)
      if (third === undefined) throw new Error("task 3 is planned")

      const context = taskContext(state, third, "s", "/work")
      expect(context.dependencyResults).toEqual([{ taskId: 1, description: "step 1", result: "result 1" }])
      const second = Planner.task(state, 2)
      if (second === undefined) throw new Error("task 2 is planned")
      // Task 1 is a dependency (given apart), task 3 is the task itself: only task 2 is in the rolling context.
      expect(context.contextSummary).toBe(entryText(second))
      expect(context.contextSummary).toBe(context.contextSummary)
      // Spread and serialised like a plain field.
      expect({ ...context }.contextSummary).toBe(entryText(second))
      expect(JSON.parse(JSON.stringify(context)).contextSummary).toBe(entryText(second))
      expect(context.request).toBe("three steps")

      // Built when first read, once: a state whose summary counts its reads.
      let reads = 0
      const watched = { ...state }
      Object.defineProperty(watched, "contextSummary", {
        get: () => {
          reads += 1
          return state.contextSummary
        }
      })
      const lazy = taskContext(watched, third, "s", "/work")
      expect(reads).toBe(0)
      expect(lazy.contextSummary).toBe(entryText(second))
      expect(lazy.contextSummary).toBe(entryText(second))
      expect(reads).toBe(1)
      expect(context.idempotencyKey).toBe("s/3/1")
    })
  )
})
