/**
 * The schemas that link a child session to its parent (see `SubPlans`): in a module of their own because the commands,
 * the events and the sub-plan logic all use them.
 */
import { Schema } from "effect"
import { TaskId } from "./Task.js"

/** How deep a tree may grow when nobody says otherwise (`--max-depth`): the root is depth 0. */
export const defaultMaxDepth = 3

export const MaxDepth = Schema.Int.pipe(Schema.positive())

/** Where a child session hangs in its tree: recorded in its plan (`TasksPlanned.subPlanOf`). */
export const SubPlanOf = Schema.Struct({
  /** The parent session, and the task of it this session does. */
  sessionId: Schema.NonEmptyString,
  taskId: TaskId,
  /** The session at the top of the tree: what a person started, answers and cancels. */
  rootSessionId: Schema.NonEmptyString,
  /** 1 for a child of the root. */
  depth: Schema.Int.pipe(Schema.positive()),
  /** How deep the tree may go: fixed by the root's expansion, inherited by every child. */
  maxDepth: MaxDepth
}).annotations({ identifier: "SubPlanOf" })
export type SubPlanOf = typeof SubPlanOf.Type

/** A task to expand, and the id of the child session that will do it. */
export const Expansion = Schema.Struct({ taskId: TaskId, childSessionId: Schema.NonEmptyString }).annotations({
  identifier: "Expansion"
})
export type Expansion = typeof Expansion.Type
