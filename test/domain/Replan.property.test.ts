/**
 * Properties of replanning over random plans and random runs (`onFailure: "replan"`): whatever fails, whatever the
 * revisions and skips, folding the log gives the live state at every point (with its index), the bound on replans
 * holds, the plan ends exactly once and never while a replan is pending, and it succeeds exactly when every failed
 * task was replaced by a revision.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import {
  HandleExecutorEvent,
  Initialize,
  type PlannerCommand,
  ReviseAfterFailure,
  SkipReplan,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import type { PlannerEvent } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"

const encode = Schema.encodeSync(Planner.PlannerState)

/** A random plan: task n depends on some of the tasks before it. */
const planArb = fc.array(fc.array(fc.boolean(), { maxLength: 8 }), { minLength: 1, maxLength: 8 }).map(
  (rows): ReadonlyArray<TaskPlan> =>
    rows.map((row, index) => ({
      id: index + 1,
      description: `task ${index + 1}`,
      kind: "Processing",
      dependsOn: row.slice(0, index).flatMap((edge, dep) => (edge ? [dep + 1] : [])),
      attachments: []
    }))
)

const runArb = fc.record({
  plan: planArb,
  maxReplans: fc.integer({ min: 0, max: 3 }),
  maxParallel: fc.integer({ min: 1, max: 3 }),
  choices: fc.array(fc.nat(), { minLength: 200, maxLength: 200 })
})

describe("replanning over random runs", () => {
  it.prop(
    "fold equals the live state at every point; the bound holds; the plan ends once, as the failures say",
    [runArb],
    ([{ plan, maxReplans, maxParallel, choices }]) => {
      let state = Planner.initialState
      const log: Array<PlannerEvent> = []
      let at = 1_000
      const apply = (command: PlannerCommand) => {
        const decided = Planner.decideEither(state, command)
        if (Either.isLeft(decided)) throw new Error(`refused ${command._tag}: ${decided.left.message}`)
        log.push(...decided.right)
        state = Planner.fold(decided.right, state)
        // The whole log folded from the start is the live state, index included.
        const replayed = Planner.fold(log)
        expect(encode(replayed)).toEqual(encode(state))
        expect(replayed.index).toEqual(Planner.indexTasks(replayed.tasks))
        expect(state.index).toEqual(Planner.indexTasks(state.tasks))
      }
      apply(
        new Initialize({
          request: "a random plan",
          tasks: plan,
          config: { ...defaultConfig, maxAttempts: 1, onFailure: "replan", maxReplans, maxParallel },
          at
        })
      )
      let step = 0
      const next = () => choices[step++ % choices.length] ?? 0
      while (!Planner.isFinished(state) && step < 400) {
        at += 10
        const pending = Planner.pendingReplans(state)
        const first = pending[0]
        if (first !== undefined) {
          const failed = Planner.task(state, first)
          if (next() % 3 === 0 || failed === undefined) {
            apply(new SkipReplan({ taskId: first, reason: "no model", at }))
          } else {
            const size = 1 + (next() % 3)
            const base = state.tasks.length
            const tasks: ReadonlyArray<TaskPlan> = Array.from({ length: size }, (_, index) => ({
              id: base + index + 1,
              description: `revision of ${first}, step ${index + 1}`,
              kind: "Processing",
              dependsOn: index === 0 ? failed.dependsOn : [base + index],
              attachments: []
            }))
            apply(new ReviseAfterFailure({ taskId: first, tasks, source: { _tag: "Llm", model: "m" }, at }))
          }
          continue
        }
        const inFlight = state.tasks.filter((task) => task.status === "Dispatched")
        const chosen = inFlight[next() % Math.max(1, inFlight.length)]
        // Without a task in flight or a pending replan the plan must have ended.
        expect(chosen).toBeDefined()
        if (chosen === undefined) break
        const event =
          next() % 3 === 0
            ? new TaskFailed({ taskId: chosen.id, error: `task ${chosen.id} broke`, retryable: false })
            : new TaskCompleted({ taskId: chosen.id, result: `task ${chosen.id} done` })
        apply(new HandleExecutorEvent({ event, at }))
      }
      expect(Planner.isFinished(state)).toBe(true)
      const ends = log.filter((event) => event._tag === "PlanningCompleted")
      expect(ends).toHaveLength(1)
      expect(log.filter((event) => event._tag === "ReplanRequested").length).toBeLessThanOrEqual(maxReplans)
      // No plan ends with a replan pending; a task fails for good at most once, so each failure is handled once.
      expect(Planner.pendingReplans(state)).toEqual([])
      const failed = state.tasks.filter((task) => task.status === "Failed").map((task) => task.id)
      const revised = (state.replans ?? []).filter((replan) => replan.outcome === "Revised").map((r) => r.taskId)
      const settled = log.filter((event) => event._tag === "ReplanSkipped" || event._tag === "TaskReplanned")
      expect(new Set(settled.map((event) => ("taskId" in event ? event.taskId : 0))).size).toBe(settled.length)
      expect(state.status).toBe(failed.every((id) => revised.includes(id)) ? "Succeeded" : "Failed")
    },
    { fastCheck: { numRuns: 150 } }
  )
})
