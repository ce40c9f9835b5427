/**
 * Sub-plans: a task expanded into a child session, with its own plan of tasks, run by the same workers.
 *
 * - `ExpandTask` (or `Initialize { expand }`) records `TaskExpanded { taskId, childSessionId }` on the parent. The task
 *   keeps its place in the plan: when it is ready it is dispatched as any other, but it has no job in the task queue
 *   (`Planner.hasJob`): its child does the work, and the task waits, in flight, until the child ends.
 * - The child's plan (`TasksPlanned.subPlanOf`) names its parent session and task, the root of the tree and its depth,
 *   so the link goes both ways and the child knows how deep it may expand in turn.
 * - The child's outcome is the task's (`outcomeForParent`): its summary is the result; a failed or cancelled child
 *   fails the task for good (the child applied its own retries), and the parent's failure policy does the rest.
 *
 * Pure: the app (src/app/SubPlans.ts) starts children, carries outcomes up and cancels down, through the writer.
 */
import { Either } from "effect"
import { type ExecutorEvent, TaskCompleted, TaskFailed } from "./Commands.js"
import { DepthExceeded, InvalidTransition, type PlannerError, UnknownTask } from "./Errors.js"
import * as Parser from "./Parser.js"
import type { PlannerState } from "./Planner.js"
import { defaultMaxDepth, type SubPlanOf } from "./SubPlanLink.js"
import { isTerminal, type TaskPlan, type TaskState } from "./Task.js"

export { defaultMaxDepth, Expansion, MaxDepth, SubPlanOf } from "./SubPlanLink.js"

/**
 * The id of the child session of `parentSessionId`'s task `taskId`. A function of the two, so that expanding the same
 * task again after a crash, or from two processes at once, names the same child and never makes a second one.
 */
export const childSessionId = (parentSessionId: string, taskId: number): string => `${parentSessionId}~${taskId}`

/** A session's depth in its tree: 0 for a session that is nobody's child. */
export const depthOf = (state: PlannerState): number => state.subPlanOf?.depth ?? 0

/** The depth bound that applies to a session's expansions: the tree's, else the command's, else the default. */
export const maxDepthOf = (state: PlannerState, requested: number | undefined): number =>
  state.subPlanOf?.maxDepth ?? requested ?? defaultMaxDepth

/** Where a child of this session's task `taskId` hangs. */
export const childLink = (
  sessionId: string,
  state: PlannerState,
  taskId: number,
  requestedMaxDepth?: number
): SubPlanOf => ({
  sessionId,
  taskId,
  rootSessionId: state.subPlanOf?.rootSessionId ?? sessionId,
  depth: depthOf(state) + 1,
  maxDepth: maxDepthOf(state, requestedMaxDepth)
})

/**
 * Why `taskId` cannot be expanded into `child`, `"repeat"` when it already is (the same command again changes
 * nothing), or undefined: go ahead. Only a task that has not started can be expanded: once dispatched, its job is in
 * the queue and a worker may hold it.
 */
export const refusal = (
  state: PlannerState,
  taskId: number,
  child: string,
  requestedMaxDepth: number | undefined
): PlannerError | "repeat" | undefined => {
  const current: TaskState | undefined = state.tasks[taskId - 1]
  if (current === undefined) return new UnknownTask({ taskId })
  if (current.childSessionId !== undefined) {
    return current.childSessionId === child
      ? "repeat"
      : new InvalidTransition({
          taskId,
          status: current.status,
          action: `be expanded into ${child}: it is expanded into ${current.childSessionId} already`
        })
  }
  if (current.kind === "Clarification") {
    return new InvalidTransition({
      taskId,
      status: current.status,
      action: "be expanded: it asks the person a question"
    })
  }
  if (current.status !== "Planned") {
    return new InvalidTransition({ taskId, status: current.status, action: "be expanded: only a planned task can be" })
  }
  const depth = depthOf(state) + 1
  const maxDepth = maxDepthOf(state, requestedMaxDepth)
  if (depth > maxDepth) return new DepthExceeded({ taskId, depth, maxDepth })
  return undefined
}

/** Whether a task waits on a child session rather than on a worker. */
export const isExpanded = (task: TaskState): boolean => task.childSessionId !== undefined

/**
 * What the end of a child session means for its parent's task: its summary as the result when it succeeded; a
 * failure that retrying cannot help when it failed or was cancelled. Undefined while it runs.
 */
export const outcomeForParent = (child: PlannerState): ExecutorEvent | undefined => {
  const link = child.subPlanOf
  if (link === undefined) return undefined
  switch (child.status) {
    case "Succeeded":
      return new TaskCompleted({ taskId: link.taskId, result: child.summary ?? "" })
    case "Failed":
    case "Cancelled":
      return new TaskFailed({
        taskId: link.taskId,
        error: `sub-plan ${child.status === "Failed" ? "failed" : "was cancelled"}: ${child.summary ?? ""}`.trim(),
        retryable: false
      })
    default:
      return undefined
  }
}

/** The tasks expanded into a child session, from the state's index: no pass over every task. */
const expanded = (state: PlannerState): ReadonlyArray<TaskState> =>
  state.index.expanded.flatMap((id) => {
    const task = state.tasks[id - 1]
    return task === undefined ? [] : [task]
  })

/** Tasks whose child session should be running: expanded and dispatched, waiting for it. */
export const childrenInFlight = (state: PlannerState): ReadonlyArray<TaskState> =>
  state.status === "Running" && state.index.expanded.length > 0
    ? expanded(state).filter((task) => task.status === "Dispatched")
    : []

/** Tasks whose child session must stop: expanded, and ended by the parent itself (cancelled, skipped, failed). */
export const childrenToStop = (state: PlannerState): ReadonlyArray<TaskState> =>
  expanded(state).filter((task) => isTerminal(task.status) && task.status !== "Completed")

/** Every child a session has named, in task order. */
export const childrenOf = (
  state: PlannerState
): ReadonlyArray<{ readonly taskId: number; readonly sessionId: string }> =>
  expanded(state).map((task) => ({ taskId: task.id, sessionId: task.childSessionId ?? "" }))

/**
 * The tasks of a plan that are themselves multi-step requests (the parser finds several tasks in their description),
 * each with the id its child session gets: what `planner run --expand` expands. Clarification tasks ask the person;
 * they are never expanded.
 */
export const multiStepExpansions = (
  sessionId: string,
  tasks: ReadonlyArray<TaskPlan>
): ReadonlyArray<{ readonly taskId: number; readonly childSessionId: string }> =>
  tasks.flatMap((task) => {
    if (task.kind === "Clarification") return []
    const parsed = Parser.parse(task.description)
    return Either.isRight(parsed) && parsed.right.length > 1
      ? [{ taskId: task.id, childSessionId: childSessionId(sessionId, task.id) }]
      : []
  })
