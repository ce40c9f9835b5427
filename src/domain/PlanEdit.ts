/**
 * The shapes of plan edits: what `EditPlan` (a live session) and `ForkSession` (a fork) ask for, and what `PlanEdited`
 * records. Schemas only, so that `Commands` and `Events` can both use them; what an edit does, and when it is
 * refused, is in `Edits`.
 *
 * An edit names tasks by their ids, which never change: a removed task keeps its id (see `TaskState.removed`), and an
 * added task takes the next one.
 */
import { Schema } from "effect"
import { Attachment, NodeKind, TaskId } from "./Task.js"

/**
 * Add a task. `id`, when given, must be the plan's next id (so that later edits of the same batch can name it); left
 * out, it is the next id, and `PlanEdited` records it filled in. `dependents` are planned tasks that now also wait for
 * it (`--before`).
 */
export const AddTask = Schema.TaggedStruct("AddTask", {
  id: Schema.optionalWith(TaskId, { exact: true }),
  description: Schema.NonEmptyString,
  kind: Schema.optionalWith(NodeKind, { default: () => "Processing" }),
  dependsOn: Schema.optionalWith(Schema.Array(TaskId), { default: () => [] }),
  attachments: Schema.optionalWith(Schema.Array(Attachment), { default: () => [] }),
  dependents: Schema.optionalWith(Schema.Array(TaskId), { default: () => [] })
}).annotations({ identifier: "AddTask" })
export type AddTask = typeof AddTask.Type

/** Change what a task that has not started does: its description, its kind, its attachments. */
export const SetTask = Schema.TaggedStruct("SetTask", {
  taskId: TaskId,
  description: Schema.optionalWith(Schema.NonEmptyString, { exact: true }),
  kind: Schema.optionalWith(NodeKind, { exact: true }),
  attachments: Schema.optionalWith(Schema.Array(Attachment), { exact: true })
}).annotations({ identifier: "SetTask" })
export type SetTask = typeof SetTask.Type

/**
 * Take a task that has not started out of the plan. Tasks that depend on it must be handled: with `rewire`, each
 * takes over its dependencies; otherwise the same batch must remove them or change their dependencies.
 */
export const RemoveTask = Schema.TaggedStruct("RemoveTask", {
  taskId: TaskId,
  rewire: Schema.optionalWith(Schema.Boolean, { default: () => false })
}).annotations({ identifier: "RemoveTask" })
export type RemoveTask = typeof RemoveTask.Type

/** Replace the dependencies of a task that has not started. */
export const SetDependencies = Schema.TaggedStruct("SetDependencies", {
  taskId: TaskId,
  dependsOn: Schema.Array(TaskId)
}).annotations({ identifier: "SetDependencies" })
export type SetDependencies = typeof SetDependencies.Type

/**
 * Give a different answer to a question the task asked and had answered: question `index` of its clarifications,
 * by default the last answered one (`PlanEdited` records the index filled in). An answer about an attachment replaces
 * the attachment the old answer had put in its place.
 */
export const SetAnswer = Schema.TaggedStruct("SetAnswer", {
  taskId: TaskId,
  answer: Schema.NonEmptyString,
  index: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { exact: true })
}).annotations({ identifier: "SetAnswer" })
export type SetAnswer = typeof SetAnswer.Type

export const PlanEdit = Schema.Union(AddTask, SetTask, RemoveTask, SetDependencies, SetAnswer).annotations({
  identifier: "PlanEdit"
})
export type PlanEdit = typeof PlanEdit.Type

/**
 * Who edited the plan: a person (`by`, when known), a replan (why, the failed task it answers, the model that
 * revised the plan) or a fork (the edits given with `fork --at`, which name the source session and event).
 */
export const EditSource = Schema.Union(
  Schema.TaggedStruct("User", { by: Schema.optionalWith(Schema.String, { exact: true }) }),
  Schema.TaggedStruct("Replan", {
    reason: Schema.String,
    taskId: Schema.optionalWith(TaskId, { exact: true }),
    model: Schema.optionalWith(Schema.String, { exact: true })
  }),
  Schema.TaggedStruct("Fork", { fromSessionId: Schema.String, atSequence: Schema.Int })
).annotations({ identifier: "EditSource" })
export type EditSource = typeof EditSource.Type

/** A completed task a fork takes over from its source, and the source event that completed it. */
export const ReusedTask = Schema.Struct({
  taskId: TaskId,
  result: Schema.String,
  attempt: Schema.Int.pipe(Schema.nonNegative()),
  /** The source session's event (its sequence) that recorded the result. */
  sequence: Schema.Int.pipe(Schema.positive())
}).annotations({ identifier: "ReusedTask" })
export type ReusedTask = typeof ReusedTask.Type
