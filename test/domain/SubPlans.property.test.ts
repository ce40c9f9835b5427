/**
 * Property: for trees of sessions driven at random (tasks completed or failed by workers, expanded tasks ended by
 * their child's outcome, cancels carried down as the app carries them), folding each session's log gives exactly the
 * state the decisions left, at every step; an expanded task never has a job; every child of an expanded task that ended
 * without it has ended (or never started), and every child of a waiting one runs.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import {
  Cancel,
  ClaimTask,
  HandleExecutorEvent,
  Initialize,
  type PlannerCommand,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import type { PlannerEvent } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import * as SubPlans from "../../src/domain/SubPlans.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import * as Jobs from "../../src/infra/Jobs.js"

const T0 = 1_700_000_000_000

interface Session {
  readonly log: Array<PlannerEvent>
  state: Planner.PlannerState
}

const plan = (size: number, chain: boolean): ReadonlyArray<TaskPlan> =>
  Array.from({ length: size }, (_, index) => ({
    id: index + 1,
    description: `step ${index + 1}`,
    kind: "Processing" as const,
    dependsOn: chain && index > 0 ? [index] : [],
    attachments: []
  }))

/** One random move: which session (by its index among the running ones), what to do, and a choice of task. */
const move = fc.record({ session: fc.nat(), action: fc.constantFrom("complete", "fail", "cancel"), pick: fc.nat() })

describe("sub-plan trees", () => {
  it("fold equals the live state of every session of a tree, at every step", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.boolean(),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        fc.array(move, { maxLength: 60, size: "max" }),
        (size, chain, expandMask, moves) => {
          const sessions = new Map<string, Session>()
          let at = T0
          const execute = (id: string, command: PlannerCommand): void => {
            const session = sessions.get(id) ?? { log: [], state: Planner.initialState }
            sessions.set(id, session)
            const decided = Planner.decideAndEvolve(session.state, command)
            if (Either.isLeft(decided)) return
            session.log.push(...decided.right.events)
            session.state = decided.right.state
            expect(Planner.fold(session.log)).toEqual(session.state)
            react(id, session.state)
          }
          /** What the app's writer does after a command (see app/SubPlans). */
          const react = (id: string, state: Planner.PlannerState): void => {
            for (const task of SubPlans.childrenInFlight(state)) {
              const child = task.childSessionId ?? ""
              if (sessions.get(child) !== undefined) continue
              const tasks = plan(2, chain)
              execute(
                child,
                new Initialize({
                  request: task.description,
                  tasks,
                  config: defaultConfig,
                  subPlanOf: SubPlans.childLink(id, state, task.id),
                  // Grandchildren: the child's first task is expanded too while the depth allows.
                  ...(SubPlans.depthOf(state) + 2 <= 2
                    ? { expand: [{ taskId: 1, childSessionId: SubPlans.childSessionId(child, 1) }] }
                    : {}),
                  at
                })
              )
            }
            for (const task of SubPlans.childrenToStop(state)) {
              const child = sessions.get(task.childSessionId ?? "")
              if (child?.state.status === "Running") execute(task.childSessionId ?? "", new Cancel({ at }))
            }
            const outcome = SubPlans.outcomeForParent(state)
            if (outcome !== undefined && state.subPlanOf !== undefined) {
              execute(state.subPlanOf.sessionId, new HandleExecutorEvent({ event: outcome, at }))
            }
          }
          const expand = plan(size, chain)
            .filter((task) => expandMask[task.id - 1] === true)
            .map((task) => ({ taskId: task.id, childSessionId: SubPlans.childSessionId("root", task.id) }))
          execute("root", new Initialize({ request: "r", tasks: plan(size, chain), expand, config: defaultConfig, at }))
          for (const { session, action, pick } of moves) {
            at += 1
            const running = [...sessions.entries()].filter(([, s]) => s.state.status === "Running")
            const chosen = running[session % Math.max(1, running.length)]
            if (chosen === undefined) break
            const [id, { state }] = chosen
            if (action === "cancel") {
              if (pick % 7 === 0) execute(id, new Cancel({ at }))
              continue
            }
            const workable = state.tasks.filter(Planner.hasJob)
            const task = workable[pick % Math.max(1, workable.length)]
            if (task === undefined) continue
            execute(id, new ClaimTask({ taskId: task.id, attempt: task.attempt, workerId: "w", at }))
            execute(
              id,
              new HandleExecutorEvent({
                event:
                  action === "complete"
                    ? new TaskCompleted({ taskId: task.id, result: "ok" })
                    : new TaskFailed({ taskId: task.id, error: "boom", retryable: false }),
                at
              })
            )
          }
          for (const [id, { state }] of sessions) {
            // No job for a task a child does; a child of an ended task has ended; a waiting task's child runs.
            for (const job of Jobs.jobsFromState(id, state)) {
              expect(Planner.task(state, job.taskId)?.childSessionId).toBeUndefined()
            }
            for (const task of SubPlans.childrenToStop(state)) {
              // Ended, or never started (an expanded task skipped before it was dispatched).
              const child = sessions.get(task.childSessionId ?? "")?.state ?? Planner.initialState
              expect(child.status === "NotStarted" || Planner.isFinished(child)).toBe(true)
            }
            for (const task of SubPlans.childrenInFlight(state)) {
              expect(sessions.get(task.childSessionId ?? "")?.state.status).toBe("Running")
            }
          }
        }
      ),
      { numRuns: 200 }
    )
  })
})
