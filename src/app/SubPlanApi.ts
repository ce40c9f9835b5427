/**
 * A tree of sessions as JSON (#16): each task that was expanded carries its child session (`subPlan`: its id, status
 * and tasks, recursively), so a reader sees a child's tasks nested under the task it does. `Server` routes
 * `GET /api/sessions/:id/subplans` here (the dashboard's tree, `dashboard/subplans.js`), and `planner show --json` /
 * `replay --json` put the same `subPlan` objects under their tasks (`withTree`).
 */
import { Effect } from "effect"
import * as Planner from "../domain/Planner.js"
import type { TaskState } from "../domain/Task.js"
import { PlannerService } from "./PlannerService.js"
import * as Runner from "./Runner.js"
import * as SubPlans from "./SubPlans.js"

/** A task of a tree as JSON: whatever `taskJson` gives, with its child session under it when it was expanded. */
export type TreeTaskJson<T> = T & { readonly subPlan?: SubPlanJson<T> }

/** A child session under the task it does. */
export interface SubPlanJson<T> {
  readonly sessionId: string
  readonly status: string
  readonly waiting: boolean
  readonly tasks: ReadonlyArray<TreeTaskJson<T>>
  /** Time travel: the child was pruned since, its state at that moment gone with its events (status "Unknown"). */
  readonly prunedSince?: true
}

/** What the API shows of a task: enough to draw it in a tree. */
export interface TaskSummaryJson {
  readonly id: number
  readonly description: string
  readonly kind: string
  readonly status: string
  readonly result?: string
  readonly error?: string
}

export const taskSummary = (task: TaskState): TaskSummaryJson => ({
  id: task.id,
  description: task.description,
  kind: task.kind,
  status: task.status,
  ...(task.result === undefined ? {} : { result: task.result }),
  ...(task.error === undefined || task.status === "Completed" ? {} : { error: task.error })
})

/**
 * `task` as JSON with its child under it: the child's tree when it has started, else (expanded, child not started
 * yet) its id with status NotStarted and no tasks; in time travel, a child pruned since whose state at that moment is
 * gone, its id with status Unknown and `prunedSince`.
 */
const treeTask =
  <T>(tree: SubPlans.Tree, toJson: (task: TaskState) => T) =>
  (task: TaskState): TreeTaskJson<T> => {
    const json = toJson(task)
    const child = tree.children.get(task.id)
    if (child !== undefined) return { ...json, subPlan: subPlanJson(child, toJson) }
    if (task.childSessionId === undefined) return json as TreeTaskJson<T>
    if (tree.prunedSince?.includes(task.id) === true) {
      const subPlan: SubPlanJson<T> = {
        sessionId: task.childSessionId,
        status: "Unknown",
        waiting: false,
        tasks: [],
        prunedSince: true
      }
      return { ...json, subPlan }
    }
    return { ...json, subPlan: { sessionId: task.childSessionId, status: "NotStarted", waiting: false, tasks: [] } }
  }

/** The session at the top of `tree` and, recursively, the children under their tasks. */
export const subPlanJson = <T>(tree: SubPlans.Tree, toJson: (task: TaskState) => T): SubPlanJson<T> => ({
  sessionId: tree.sessionId,
  status: tree.state.status,
  waiting: Planner.isWaiting(tree.state),
  tasks: tree.state.tasks.map(treeTask(tree, toJson))
})

/** A session's JSON (`show --json`) with each expanded task's child under it, as `toJson` writes tasks. */
export const withTree = <J extends { readonly tasks: ReadonlyArray<unknown> }, T>(
  json: J,
  tree: SubPlans.Tree,
  toJson: (task: TaskState) => T
): Omit<J, "tasks"> & { readonly tasks: ReadonlyArray<TreeTaskJson<T>> } => ({
  ...json,
  tasks: tree.state.tasks.map(treeTask(tree, toJson))
})

/** Where a child session hangs: its parent session and task (with the task's description and status), and its root. */
export interface ParentJson {
  readonly sessionId: string
  readonly taskId: number
  readonly rootSessionId: string
  readonly depth: number
  readonly description?: string
  readonly status?: string
}

/** `GET /api/sessions/:id/subplans`: the session's tree, and for a child session its parent task. */
export const sessionTree = (sessionId: string) =>
  Effect.gen(function* () {
    const state = yield* Runner.existing(sessionId)
    const tree = yield* SubPlans.tree(sessionId, state)
    const link = state.subPlanOf
    let parent: ParentJson | undefined
    if (link !== undefined) {
      const service = yield* PlannerService
      const parentState = yield* service.state(link.sessionId)
      const task = Planner.task(parentState, link.taskId)
      parent = {
        sessionId: link.sessionId,
        taskId: link.taskId,
        rootSessionId: link.rootSessionId,
        depth: link.depth,
        ...(task === undefined ? {} : { description: task.description, status: task.status })
      }
    }
    return {
      ...subPlanJson(tree, taskSummary),
      ...(parent === undefined ? {} : { parent }),
      expanded: tree.state.tasks.some((task) => task.childSessionId !== undefined)
    }
  })
