/**
 * Tasks: what a plan is made of.
 *
 * A `TaskPlan` is what a planner (the parser or an LLM) produced and what `TasksPlanned` records. A `TaskState` is
 * the same task as it moves through its lifecycle; it only ever changes by folding events.
 */
import { Schema } from "effect"

/** A task's id inside its session: 1, 2, 3, ... in plan order, so the n-th task is always at index n - 1. */
export const TaskId = Schema.Int.pipe(Schema.positive()).annotations({ identifier: "TaskId" })
export type TaskId = typeof TaskId.Type

/** Epoch milliseconds. Time reaches the domain only inside commands, so replay never reads a clock. */
export const Timestamp = Schema.Int.pipe(Schema.nonNegative()).annotations({ identifier: "Timestamp" })
export type Timestamp = typeof Timestamp.Type

/**
 * What a task is, used to route it to an executor. The first three are the seed's v1 set; the rest are its
 * phase-2 kinds, routed to specialised executors when the user has them and to a generic one otherwise.
 */
export const NodeKind = Schema.Literal(
  "Clarification",
  "ToolCall",
  "Processing",
  "UnitTest",
  "Retrieval",
  "Analysis",
  "Refactor",
  "CodeImplementation"
).annotations({ identifier: "NodeKind" })
export type NodeKind = typeof NodeKind.Type
export const nodeKinds: ReadonlyArray<NodeKind> = NodeKind.literals

/**
 * Where a task is in its lifecycle.
 *
 * - `Planned`: waiting for its dependencies or for a free parallel slot.
 * - `Dispatched`: handed to executors, not yet claimed by a worker.
 * - `Running`: claimed by a worker, under a lease.
 * - `NeedsClarification`: paused until a person answers a question.
 * - `RetryScheduled`: an attempt failed; it is dispatched again at `retryAt`.
 * - `Completed`, `Failed`, `Skipped` (a dependency did not complete), `Cancelled`: terminal.
 */
export const TaskStatus = Schema.Literal(
  "Planned",
  "Dispatched",
  "Running",
  "NeedsClarification",
  "RetryScheduled",
  "Completed",
  "Failed",
  "Skipped",
  "Cancelled"
).annotations({ identifier: "TaskStatus" })
export type TaskStatus = typeof TaskStatus.Type

const terminalStatuses: ReadonlySet<TaskStatus> = new Set(["Completed", "Failed", "Skipped", "Cancelled"])
export const isTerminal = (status: TaskStatus): boolean => terminalStatuses.has(status)

/** Something a task refers to: a URL, an image, or a file. `value` is the URL, path or opaque id. */
export const AttachmentKind = Schema.Literal("Link", "ImageRef", "FileRef").annotations({
  identifier: "AttachmentKind"
})
export type AttachmentKind = typeof AttachmentKind.Type

export const Attachment = Schema.Struct({
  kind: AttachmentKind,
  value: Schema.NonEmptyString,
  label: Schema.optionalWith(Schema.String, { exact: true })
}).annotations({ identifier: "Attachment" })
export type Attachment = typeof Attachment.Type

const imageExtension = /\.(png|jpe?g|gif|webp|svg|bmp)(?:[?#].*)?$/i

/**
 * An attachment from a bare reference a person typed (an answer to "that file cannot be read, where is it?"): a URL
 * is a link, an image path or URL an image, anything else a file.
 */
export const attachmentFromText = (text: string): Attachment => {
  const value = text.trim()
  if (imageExtension.test(value)) return { kind: "ImageRef", value }
  return { kind: /^https?:\/\//i.test(value) ? "Link" : "FileRef", value }
}

/** A task as planned: what to do, of what kind, after which other tasks, with what attached. */
export const TaskPlan = Schema.Struct({
  id: TaskId,
  description: Schema.NonEmptyString,
  kind: NodeKind,
  dependsOn: Schema.Array(TaskId),
  attachments: Schema.Array(Attachment)
}).annotations({ identifier: "TaskPlan" })
export type TaskPlan = typeof TaskPlan.Type

/**
 * A question a task asked and, once given, its answer. When the question is about an attachment that could not be
 * read or reached, `attachment` names it, and the answer replaces it.
 */
export const Clarification = Schema.Struct({
  question: Schema.String,
  answer: Schema.optionalWith(Schema.String, { exact: true }),
  attachment: Schema.optionalWith(Attachment, { exact: true })
}).annotations({ identifier: "Clarification" })
export type Clarification = typeof Clarification.Type

/** The worker holding a running task, and until when its claim is valid. */
export const Lease = Schema.Struct({
  workerId: Schema.String,
  expiresAt: Timestamp
}).annotations({ identifier: "Lease" })
export type Lease = typeof Lease.Type

/** A task as the fold of its events has it now. */
export const TaskState = Schema.Struct({
  ...TaskPlan.fields,
  status: TaskStatus,
  /** How many times the task has been dispatched; the current attempt's number. 0 before the first dispatch. */
  attempt: Schema.Int,
  /** How many attempts failed; compared with `maxAttempts` by the retry policy. */
  failures: Schema.Int,
  result: Schema.optionalWith(Schema.String, { exact: true }),
  error: Schema.optionalWith(Schema.String, { exact: true }),
  clarifications: Schema.Array(Clarification),
  lease: Schema.optionalWith(Lease, { exact: true }),
  retryAt: Schema.optionalWith(Timestamp, { exact: true }),
  /** The child session doing this task, once it was expanded into a sub-plan (`TaskExpanded`). */
  childSessionId: Schema.optionalWith(Schema.String, { exact: true }),
  /** True once a `ContextCompacted` folded this task's result into the rolling summary. */
  compacted: Schema.Boolean,
  /** True once a plan edit took the task out of the plan (`RemoveTask`): it keeps its id, as `Cancelled`. */
  removed: Schema.optionalWith(Schema.Literal(true), { exact: true })
}).annotations({ identifier: "TaskState" })
export type TaskState = typeof TaskState.Type
