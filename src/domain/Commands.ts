/**
 * What can be asked of the planner. Everything non-deterministic (the time, a worker's id, what an LLM planned, what
 * a compactor summarised) arrives inside the command, so `decide` stays pure and its events replay exactly.
 */
import { Schema } from "effect"
import { BudgetNeed, ModelUsage } from "./Budget.js"
import { defaultConfig, PlannerConfig } from "./Config.js"
import { PlannerEvent, PlannerSource } from "./Events.js"
import { EditSource, PlanEdit } from "./PlanEdit.js"
import { Expansion, MaxDepth, SubPlanOf } from "./SubPlanLink.js"
import { Attachment, TaskId, TaskPlan, Timestamp } from "./Task.js"

// --- What executors (and the people answering them) report: the seed's `ExecutorEvent` ---------------------------

const attempt = Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true })

/** The attempt succeeded. `attempt` defaults to the task's current attempt. */
export class TaskCompleted extends Schema.TaggedClass<TaskCompleted>()("TaskCompleted", {
  taskId: TaskId,
  attempt,
  result: Schema.String
}) {}

/** The attempt failed. `retryable: false` means trying again cannot help (for example a malformed command). */
export class TaskFailed extends Schema.TaggedClass<TaskFailed>()("TaskFailed", {
  taskId: TaskId,
  attempt,
  error: Schema.String,
  retryable: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {}

/**
 * The executor cannot go on without an answer. With `attachment`, the question is about that attachment (a file that
 * cannot be read, a link that does not answer) and the answer replaces it.
 */
export class NeedsClarification extends Schema.TaggedClass<NeedsClarification>()("NeedsClarification", {
  taskId: TaskId,
  attempt,
  question: Schema.NonEmptyString,
  attachment: Schema.optionalWith(Attachment, { exact: true }),
  /**
   * The step's next model call would cross the session's budget (see `Budget`): it needs about this much. The planner
   * asks the budget question instead of `question`.
   */
  budget: Schema.optionalWith(BudgetNeed, { exact: true })
}) {}

/** Somebody answered the task's pending question. */
export class ClarificationProvided extends Schema.TaggedClass<ClarificationProvided>()("ClarificationProvided", {
  taskId: TaskId,
  answer: Schema.NonEmptyString
}) {}

export const ExecutorEvent = Schema.Union(TaskCompleted, TaskFailed, NeedsClarification, ClarificationProvided)
export type ExecutorEvent = typeof ExecutorEvent.Type

// --- Commands -------------------------------------------------------------------------------------------------------

/**
 * Start a session. Without `tasks`, the deterministic parser plans `request`; with them (an LLM's plan), they are
 * validated and recorded as given.
 */
export class Initialize extends Schema.TaggedClass<Initialize>()("Initialize", {
  request: Schema.String,
  attachments: Schema.optionalWith(Schema.Array(Attachment), { default: () => [] }),
  tasks: Schema.optionalWith(Schema.Array(TaskPlan), { exact: true }),
  source: Schema.optionalWith(PlannerSource, { exact: true }),
  /** What the planning call used, recorded with the plan as `ModelUsageRecorded`. */
  usage: Schema.optionalWith(Schema.Array(ModelUsage), { exact: true }),
  /** The executor the session runs with, as the user named it; recorded in `TasksPlanned`. */
  executor: Schema.optionalWith(Schema.String, { exact: true }),
  config: Schema.optionalWith(PlannerConfig, { default: () => defaultConfig }),
  /** For a child session: where it hangs in its tree (see `SubPlans`); recorded in `TasksPlanned`. */
  subPlanOf: Schema.optionalWith(SubPlanOf, { exact: true }),
  /** Tasks expanded into child sessions as the plan is recorded (`run --expand`, an LLM's sub-plan steps). */
  expand: Schema.optionalWith(Schema.Array(Expansion), { exact: true }),
  /** The depth bound for those expansions when this session is nobody's child. Default `SubPlans.defaultMaxDepth`. */
  maxDepth: Schema.optionalWith(MaxDepth, { exact: true }),
  /**
   * The session plans another session's request again (`planner fork SOURCE --at 0 --replan`): recorded first, as
   * `SessionForked` at sequence 0 (nothing copied), so lineage and diff know the two runs belong together.
   */
  forkedFrom: Schema.optionalWith(Schema.Struct({ sessionId: Schema.NonEmptyString }), { exact: true }),
  at: Timestamp
}) {}

/**
 * A draw in [0, 1) that spreads a retry's backoff (see `Config.jitteredDelay`), so that after an outage the retries of
 * every session do not all land at the same moment. It arrives inside the command (the domain draws no random
 * numbers) and the `TaskRetryScheduled` it leads to records it, so replay is deterministic. Omitted: no jitter.
 */
export const Jitter = Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThan(1))

export class HandleExecutorEvent extends Schema.TaggedClass<HandleExecutorEvent>()("HandleExecutorEvent", {
  event: ExecutorEvent,
  /** Spreads the backoff of the retry a failure leads to. */
  jitter: Schema.optionalWith(Jitter, { exact: true }),
  at: Timestamp
}) {}

/**
 * A worker took the attempt's job from the task queue and starts it: the log's record of which worker ran each attempt
 * and when. The queue gives a job to one taker at a time; when a taker's lease in the queue runs out, the job goes to
 * a new taker, and the planner accepts that new taker's claim of the same attempt.
 */
export class ClaimTask extends Schema.TaggedClass<ClaimTask>()("ClaimTask", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  workerId: Schema.NonEmptyString,
  at: Timestamp
}) {}

/** The worker holding a task is still at it. */
export class ExtendLease extends Schema.TaggedClass<ExtendLease>()("ExtendLease", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  workerId: Schema.NonEmptyString,
  at: Timestamp
}) {}

/** The worker holding a task gives it back unfinished. */
export class ReleaseTask extends Schema.TaggedClass<ReleaseTask>()("ReleaseTask", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  workerId: Schema.NonEmptyString,
  at: Timestamp
}) {}

/**
 * The worker holding a task is known to be gone (for example its process no longer exists), so its attempt is
 * treated as failed now instead of when its lease runs out. Counts as a retryable failure.
 */
export class AbandonTask extends Schema.TaggedClass<AbandonTask>()("AbandonTask", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  workerId: Schema.NonEmptyString,
  reason: Schema.String,
  jitter: Schema.optionalWith(Jitter, { exact: true }),
  at: Timestamp
}) {}

/**
 * Move the plan forward as of `at`: dispatch ready tasks (and retries an older log left waiting, with the job's
 * `runAt` at their retry time), and end the plan when nothing is left. Idempotent: a second `Continue` at the same
 * time does nothing. Leases live in the task queue: a lease that runs out hands the job to another worker.
 */
export class Continue extends Schema.TaggedClass<Continue>()("Continue", {
  at: Timestamp
}) {}

/** Fold the results of `removedTaskIds` into `summary` (produced by a `Compactor`) under `maxTokens`. */
export class CompactContext extends Schema.TaggedClass<CompactContext>()("CompactContext", {
  maxTokens: Schema.Int.pipe(Schema.positive()),
  summary: Schema.String,
  removedTaskIds: Schema.Array(TaskId),
  at: Timestamp
}) {}

/**
 * Model calls made for the session and what they used (see `Budget`): recorded as `ModelUsageRecorded` while the
 * plan runs (refused once it ended: a log ends with its `PlanningCompleted`).
 */
export class RecordUsage extends Schema.TaggedClass<RecordUsage>()("RecordUsage", {
  usage: Schema.Array(ModelUsage),
  at: Timestamp
}) {}

/** Stop the plan: every unfinished task is cancelled and the plan ends. */
export class Cancel extends Schema.TaggedClass<Cancel>()("Cancel", {
  reason: Schema.optionalWith(Schema.String, { default: () => "cancelled by the user" }),
  at: Timestamp
}) {}

/**
 * Expand a planned task into a child session (`planner expand SESSION TASK`): the task waits while `childSessionId`
 * runs a plan of its own, and the child's outcome becomes the task's. Refused beyond `maxDepth` (the tree's bound
 * when this session is a child; else this, else `SubPlans.defaultMaxDepth`).
 */
export class ExpandTask extends Schema.TaggedClass<ExpandTask>()("ExpandTask", {
  taskId: TaskId,
  childSessionId: Schema.NonEmptyString,
  maxDepth: Schema.optionalWith(MaxDepth, { exact: true }),
  at: Timestamp
}) {}

/**
 * The revised plan for failed task `taskId` that a pending replan asked for (see `ReplanRequested`): `tasks` replace
 * the failed task and every task downstream of it, with ids from the plan's next id on, in order; their dependencies
 * name each other or tasks kept from the plan. `source` says who revised it (what an LLM answered arrives here, so
 * the decision stays pure). Recorded as `TaskReplanned`; a replan that is no longer pending changes nothing.
 */
export class ReviseAfterFailure extends Schema.TaggedClass<ReviseAfterFailure>()("ReviseAfterFailure", {
  taskId: TaskId,
  tasks: Schema.Array(TaskPlan),
  source: PlannerSource,
  at: Timestamp
}) {}

/**
 * No revised plan can be had for failed task `taskId` (no LLM, an unusable answer): its pending replan ends and the
 * failure is handled as under `continue`. Recorded as `ReplanSkipped` with `reason`.
 */
export class SkipReplan extends Schema.TaggedClass<SkipReplan>()("SkipReplan", {
  taskId: TaskId,
  reason: Schema.String,
  at: Timestamp
}) {}

/**
 * Edit a live plan (see `Edits`): the edits are applied in order, all or none, and only to tasks that have not
 * started. Recorded as `PlanEdited`; the tasks the edit makes ready are dispatched at once.
 */
export class EditPlan extends Schema.TaggedClass<EditPlan>()("EditPlan", {
  edits: Schema.Array(PlanEdit),
  source: Schema.optionalWith(EditSource, { default: () => ({ _tag: "User" }) as const }),
  at: Timestamp
}) {}

/**
 * Start this (empty) session as an incremental fork of `fromSessionId` at its event `atSequence`, whose first
 * `atSequence` events are `sourceEvents`: the source's plan at that point with `edits` applied, reusing the results of
 * the completed tasks that no edit (nor `rerun`) reaches. Recorded as `TasksPlanned`, `SessionForked` (what is
 * reused), `PlanEdited` (the edits, by `editSource`) and the dispatches that follow.
 */
export class ForkSession extends Schema.TaggedClass<ForkSession>()("ForkSession", {
  fromSessionId: Schema.String,
  atSequence: Schema.Int.pipe(Schema.positive()),
  sourceEvents: Schema.Array(PlannerEvent),
  edits: Schema.optionalWith(Schema.Array(PlanEdit), { default: () => [] }),
  editSource: Schema.optionalWith(EditSource, { default: () => ({ _tag: "User" }) as const }),
  rerun: Schema.optionalWith(Schema.Array(TaskId), { default: () => [] }),
  /** The fork's own id: the source's expanded tasks that the fork runs are expanded into `INTO~TASK` (see `Edits`). */
  intoSessionId: Schema.optionalWith(Schema.String, { exact: true }),
  at: Timestamp
}) {}

export const PlannerCommand = Schema.Union(
  Initialize,
  ExpandTask,
  HandleExecutorEvent,
  RecordUsage,
  ClaimTask,
  ExtendLease,
  ReleaseTask,
  AbandonTask,
  Continue,
  CompactContext,
  Cancel,
  ReviseAfterFailure,
  SkipReplan,
  EditPlan,
  ForkSession
)
export type PlannerCommand = typeof PlannerCommand.Type
