/**
 * `planner expand SESSION TASK`: a planned task of a session is done by a child session of its own (a sub-plan, see
 * `domain/SubPlans`), planned from the task's description when the task is dispatched, and run with the rest of the
 * tree by `resume` (or any run of the session). Refused for a task that has started, and past the tree's depth bound.
 */
import { Clock, Effect } from "effect"
import { ExpandTask } from "../../domain/Commands.js"
import * as SubPlans from "../../domain/SubPlans.js"
import { PlannerService } from "../PlannerService.js"
import { toFailure, usage } from "./Failure.js"
import { out } from "./Output.js"
import { existingState } from "./Session.js"
import { plannerLayer, resolveExistingStore } from "./Store.js"

export interface ExpandFlags {
  readonly db: import("effect").Option.Option<string>
  readonly json: boolean
  readonly sessionId: string
  readonly taskId: number
  readonly maxDepth: number
}

export const expand = (flags: ExpandFlags) => {
  const store = resolveExistingStore(flags.db)
  return Effect.gen(function* () {
    if (flags.maxDepth < 1 || flags.maxDepth > 20) {
      return yield* usage(`--max-depth must be between 1 and 20, not ${flags.maxDepth}.`)
    }
    const before = yield* existingState(flags.sessionId, store)
    if (before.tasks[flags.taskId - 1] === undefined) {
      return yield* usage(
        `Session ${flags.sessionId} has no task ${flags.taskId}: its tasks are numbered 1 to ${before.tasks.length}.`
      )
    }
    const service = yield* PlannerService
    const childSessionId = SubPlans.childSessionId(flags.sessionId, flags.taskId)
    const { state } = yield* service.execute(
      flags.sessionId,
      new ExpandTask({
        taskId: flags.taskId,
        childSessionId,
        maxDepth: flags.maxDepth,
        at: yield* Clock.currentTimeMillis
      })
    )
    const task = state.tasks[flags.taskId - 1]
    yield* out(
      flags.json
        ? JSON.stringify({ sessionId: flags.sessionId, taskId: flags.taskId, childSessionId, status: task?.status })
        : `Task ${flags.taskId} of session ${flags.sessionId} will run as sub-plan ${childSessionId}${
            task?.status === "Dispatched" ? " (started now)" : " once it is ready"
          }; go on with: planner resume ${flags.sessionId}${store.flag}`
    )
  }).pipe(Effect.provide(plannerLayer(store)), Effect.mapError(toFailure))
}
