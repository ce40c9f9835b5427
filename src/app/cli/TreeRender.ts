/**
 * A tree of sessions as text (`planner show` of a session with sub-plans): each child's tasks under the task it does,
 * indented one step per level, with the child's id and status.
 */
import type { TaskState } from "../../domain/Task.js"
import type { Tree } from "../SubPlans.js"
import { taskLines } from "./Render.js"

const indent = "      "

/** The lines to print under each task of `tree`'s root: its child's status and tasks, recursively. */
export const subPlanLines =
  (tree: Tree, depth = 1) =>
  (task: TaskState): ReadonlyArray<string> => {
    const child = tree.children.get(task.id)
    const pad = indent.repeat(depth)
    if (child === undefined) {
      return task.childSessionId !== undefined && tree.prunedSince?.includes(task.id) === true
        ? [`${pad}sub-plan ${task.childSessionId}: pruned since; its state at this moment went with its events`]
        : []
    }
    const lines = [`${pad}sub-plan ${child.sessionId}: ${child.state.status.toLowerCase()}`]
    for (const sub of child.state.tasks) {
      for (const line of taskLines(sub)) lines.push(`${pad}${line}`)
      lines.push(...subPlanLines(child, depth + 1)(sub))
    }
    return lines
  }
