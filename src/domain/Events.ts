/**
 * The planner's events: the only record of what happened. Each variant is stored under its own type name (the
 * reference implementation stored every variant as "PlannerEvent", so subscriptions filtering on a type never fired)
 * and with its own version.
 *
 * Versioning: events are always written with the current schema. Older versions are read through one-way upcasters
 * chosen by the stored version; an upcaster refuses to encode, so an old format can never be written by accident.
 */
import { Either, ParseResult, Schema, SchemaAST } from "effect"
import { BudgetAsk, BudgetUnit, ModelUsage } from "./Budget.js"
import { PlannerConfig } from "./Config.js"
import { EditSource, PlanEdit, ReusedTask } from "./PlanEdit.js"
import * as SchemaGuard from "./SchemaGuard.js"
import { SubPlanOf } from "./SubPlanLink.js"
import { Attachment, AttachmentKind, Clarification, TaskId, TaskPlan, Timestamp } from "./Task.js"

/**
 * Which planner produced a plan: the deterministic parser (and why it was used), an LLM (and what was corrected
 * in its proposal, such as dependencies rejected for a cycle), or nobody: a plan file the user wrote or edited
 * (`planner run --plan PATH`). `PlanFile` was added later; sources stored before it decode unchanged.
 */
export const PlannerSource = Schema.Union(
  Schema.TaggedStruct("Parser", { reason: Schema.optionalWith(Schema.String, { exact: true }) }),
  Schema.TaggedStruct("Llm", {
    model: Schema.String,
    notes: Schema.optionalWith(Schema.Array(Schema.String), { exact: true })
  }),
  /** `path` as the user gave it, `-` for standard input. */
  Schema.TaggedStruct("PlanFile", { path: Schema.String })
).annotations({ identifier: "PlannerSource" })
export type PlannerSource = typeof PlannerSource.Type

export class TasksPlanned extends Schema.TaggedClass<TasksPlanned>()("TasksPlanned", {
  /** The request exactly as the user gave it. */
  request: Schema.String,
  /** Attachments given for the whole request (the seed's `Initialize { attachments }`). */
  attachments: Schema.Array(Attachment),
  tasks: Schema.Array(TaskPlan),
  config: PlannerConfig,
  source: PlannerSource,
  /** The executor the session runs with, as the user named it (`--executor`); absent in logs from before. */
  executor: Schema.optionalWith(Schema.String, { exact: true }),
  /** For a child session (a sub-plan): its parent session and task, its tree's root and its depth. */
  subPlanOf: Schema.optionalWith(SubPlanOf, { exact: true }),
  at: Timestamp
}) {}

/**
 * A task is handed to executors: its job goes into the task queue in the same transaction. Carries everything an
 * executor needs, including every answer given so far. `runAt`, when given, is when the job may be taken (a retry's
 * backoff); omitted, at once. (Logs written before the task queue never have it.)
 */
export class TaskDispatched extends Schema.TaggedClass<TaskDispatched>()("TaskDispatched", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  kind: TaskPlan.fields.kind,
  description: Schema.String,
  clarifications: Schema.Array(Clarification),
  runAt: Schema.optionalWith(Timestamp, { exact: true }),
  at: Timestamp
}) {}

/** A worker took a dispatched task; nobody else runs this attempt unless the lease expires. */
export class TaskClaimed extends Schema.TaggedClass<TaskClaimed>()("TaskClaimed", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  workerId: Schema.String,
  leaseExpiresAt: Timestamp,
  at: Timestamp
}) {}

/** A worker still running a long task pushed its lease forward. */
export class TaskLeaseExtended extends Schema.TaggedClass<TaskLeaseExtended>()("TaskLeaseExtended", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  workerId: Schema.String,
  leaseExpiresAt: Timestamp,
  at: Timestamp
}) {}

/** A worker gave a task back without running it to the end (for example on shutdown); it is dispatched again. */
export class TaskReleased extends Schema.TaggedClass<TaskReleased>()("TaskReleased", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  workerId: Schema.String,
  at: Timestamp
}) {}

/** A task reached a final status. */
export class TaskStatusUpdated extends Schema.TaggedClass<TaskStatusUpdated>()("TaskStatusUpdated", {
  taskId: TaskId,
  status: Schema.Literal("Completed", "Failed", "Skipped", "Cancelled"),
  attempt: Schema.Int.pipe(Schema.nonNegative()),
  result: Schema.optionalWith(Schema.String, { exact: true }),
  error: Schema.optionalWith(Schema.String, { exact: true }),
  at: Timestamp
}) {}

/**
 * An attempt failed but may succeed later: the next attempt runs at `retryAt` (dispatched at once, its job not taken
 * before then). `jitter` is the draw that spread the backoff, when the command carried one.
 */
export class TaskRetryScheduled extends Schema.TaggedClass<TaskRetryScheduled>()("TaskRetryScheduled", {
  taskId: TaskId,
  attempt: Schema.Int.pipe(Schema.positive()),
  error: Schema.String,
  retryAt: Timestamp,
  jitter: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThan(1)), { exact: true }),
  at: Timestamp
}) {}

/**
 * A task is paused until somebody answers `question`. Only it, and what depends on it, waits. With `attachment`, the
 * question is about that attachment and the answer replaces it.
 */
export class ClarificationRequested extends Schema.TaggedClass<ClarificationRequested>()("ClarificationRequested", {
  taskId: TaskId,
  question: Schema.String,
  attachment: Schema.optionalWith(Attachment, { exact: true }),
  /** The question is the budget question (see `Budget`): its figures, and the answer raises the limit or fails the task. */
  budget: Schema.optionalWith(BudgetAsk, { exact: true }),
  at: Timestamp
}) {}

/** The answer to a task's pending question; the task is dispatched again with it. */
export class ClarificationReceived extends Schema.TaggedClass<ClarificationReceived>()("ClarificationReceived", {
  taskId: TaskId,
  answer: Schema.String,
  at: Timestamp
}) {}

/** The results of `removedTaskIds` were folded into `summary`, the rolling context passed to later steps. */
export class ContextCompacted extends Schema.TaggedClass<ContextCompacted>()("ContextCompacted", {
  summary: Schema.String,
  removedTaskIds: Schema.Array(TaskId),
  tokenBudget: Schema.Int.pipe(Schema.positive()),
  at: Timestamp
}) {}

/**
 * Model calls made for this session (planning, compaction, a step, replanning) and what each used: the spend is the
 * sum of these events (see `Budget`). Recorded whatever became of the call's result.
 */
export class ModelUsageRecorded extends Schema.TaggedClass<ModelUsageRecorded>()("ModelUsageRecorded", {
  usage: Schema.NonEmptyArray(ModelUsage),
  at: Timestamp
}) {}

/**
 * The budget's limit in `unit` is now `limit` (it was `limit - by`): somebody answered yes to the budget question of
 * `taskId`. Recorded before the call it allows is made.
 */
export class BudgetRaised extends Schema.TaggedClass<BudgetRaised>()("BudgetRaised", {
  unit: BudgetUnit,
  limit: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  by: Schema.Number.pipe(Schema.finite(), Schema.positive()),
  taskId: Schema.optionalWith(TaskId, { exact: true }),
  at: Timestamp
}) {}

/**
 * This session is a fork of `fromSessionId` at its event `atSequence`. A copy fork: the events before this one were
 * copied from the source's first `atSequence` events (the copies keep their types and payloads). An incremental fork
 * (see `Edits`): the one event before it is the source's plan at that point, and `reused` lists the completed tasks it
 * takes over (with the source event that completed each), `removed` the tasks edits had taken out of the plan, and
 * `clarifications` the answers carried over for tasks that run again. What follows is this session's own.
 */
export class SessionForked extends Schema.TaggedClass<SessionForked>()("SessionForked", {
  fromSessionId: Schema.String,
  atSequence: Schema.Int.pipe(Schema.nonNegative()),
  reused: Schema.optionalWith(Schema.Array(ReusedTask), { exact: true }),
  removed: Schema.optionalWith(Schema.Array(TaskId), { exact: true }),
  clarifications: Schema.optionalWith(
    Schema.Array(Schema.Struct({ taskId: TaskId, clarifications: Schema.Array(Clarification) })),
    { exact: true }
  ),
  at: Timestamp
}) {}

/**
 * The plan was edited (see `Edits`): `edits` applied in order, all together, by `source` (a person, a replan, a
 * fork's edits). The tasks that became ready are dispatched by the events that follow.
 */
export class PlanEdited extends Schema.TaggedClass<PlanEdited>()("PlanEdited", {
  edits: Schema.Array(PlanEdit),
  source: EditSource,
  at: Timestamp
}) {}

/**
 * Task `taskId` is done by a child session, `childSessionId` (a sub-plan, see `SubPlans`): when it is ready it is
 * dispatched without a job, and it waits until the child ends; the child's outcome is the task's.
 */
export class TaskExpanded extends Schema.TaggedClass<TaskExpanded>()("TaskExpanded", {
  taskId: TaskId,
  childSessionId: Schema.String,
  at: Timestamp
}) {}

/**
 * Under `onFailure: "replan"`, task `taskId` failed for good and the bound on replans allows one more: a revised plan
 * for it and what depends on it is wanted. The plan does not end while this is pending; the app (see `app/Replan`)
 * answers with `ReviseAfterFailure` (recorded as `TaskReplanned`) or `SkipReplan` (recorded as `ReplanSkipped`).
 */
export class ReplanRequested extends Schema.TaggedClass<ReplanRequested>()("ReplanRequested", {
  taskId: TaskId,
  error: Schema.String,
  at: Timestamp
}) {}

/**
 * The plan edit a replan makes: failed task `taskId` and the tasks downstream of it (`supersededTaskIds`, none of them
 * started) are replaced by `tasks`, appended with the next ids. Their dependencies name each other or tasks kept from
 * the plan. `source` says who revised the plan (the LLM and its model). The superseded tasks are then recorded as
 * skipped; the failed task stays failed in the log, but no longer makes the plan's outcome `Failed`.
 */
export class TaskReplanned extends Schema.TaggedClass<TaskReplanned>()("TaskReplanned", {
  taskId: TaskId,
  supersededTaskIds: Schema.Array(TaskId),
  tasks: Schema.Array(TaskPlan),
  source: PlannerSource,
  at: Timestamp
}) {}

/**
 * No revised plan for failed task `taskId` (no LLM configured, its answer unusable, the bound on replans reached):
 * the failure is handled as under `continue`, and `reason` says why.
 */
export class ReplanSkipped extends Schema.TaggedClass<ReplanSkipped>()("ReplanSkipped", {
  taskId: TaskId,
  reason: Schema.String,
  at: Timestamp
}) {}

export const PlanOutcome = Schema.Literal("Succeeded", "Failed", "Cancelled").annotations({ identifier: "PlanOutcome" })
export type PlanOutcome = typeof PlanOutcome.Type

/** The plan ended. Emitted exactly once per session, whatever the outcome. */
export class PlanningCompleted extends Schema.TaggedClass<PlanningCompleted>()("PlanningCompleted", {
  outcome: PlanOutcome,
  summary: Schema.String,
  at: Timestamp
}) {}

export const PlannerEvent = Schema.Union(
  TasksPlanned,
  TaskExpanded,
  ModelUsageRecorded,
  BudgetRaised,
  TaskDispatched,
  TaskClaimed,
  TaskLeaseExtended,
  TaskReleased,
  TaskStatusUpdated,
  TaskRetryScheduled,
  ClarificationRequested,
  ClarificationReceived,
  ContextCompacted,
  SessionForked,
  PlanningCompleted,
  ReplanRequested,
  TaskReplanned,
  ReplanSkipped,
  PlanEdited
)
export type PlannerEvent = typeof PlannerEvent.Type
export type PlannerEventType = PlannerEvent["_tag"]

// ---------------------------------------------------------------------------------------------------------------
// Versions and upcasters
// ---------------------------------------------------------------------------------------------------------------

/**
 * Version 1 of `TasksPlanned`: the seed's shape, an ordered list of tasks with the three v1 kinds and nothing else.
 * It is upcast to a chain (each task after the previous one) under the v1 policy, which is frozen here on purpose:
 * an upcaster must give the same result forever, so it never reads today's defaults.
 */
const TasksPlannedV1 = Schema.Struct({
  tasks: Schema.Array(
    Schema.Struct({
      id: TaskId,
      description: Schema.NonEmptyString,
      kind: Schema.Literal("Clarification", "ToolCall", "Processing"),
      attachments: Schema.optionalWith(
        Schema.Array(
          Schema.Struct({
            kind: AttachmentKind,
            value: Schema.NonEmptyString,
            label: Schema.optionalWith(Schema.NullOr(Schema.String), { exact: true })
          })
        ),
        { default: () => [] }
      )
    })
  )
})

const v1Config: PlannerConfig = {
  maxParallel: 1,
  maxAttempts: 1,
  backoff: { initialDelayMs: 1_000, factor: 2, maxDelayMs: 60_000 },
  onFailure: "continue",
  leaseMs: 60_000,
  tokenBudget: 2_000,
  systemPrompt: "",
  profile: "coding",
  errorCharLimit: 2_000
}

const oneWay = (ast: SchemaAST.AST, actual: unknown) =>
  ParseResult.fail(new ParseResult.Forbidden(ast, actual, "old event versions are read, never written"))

const TasksPlannedFromV1 = Schema.transformOrFail(TasksPlannedV1, Schema.typeSchema(TasksPlanned), {
  strict: true,
  decode: (v1) =>
    ParseResult.succeed(
      new TasksPlanned({
        request: v1.tasks.map((task) => task.description).join("\n"),
        attachments: [],
        tasks: v1.tasks.map((task, index) => ({
          id: task.id,
          description: task.description,
          kind: task.kind,
          dependsOn: index === 0 ? [] : [v1.tasks[index - 1]?.id ?? task.id - 1],
          attachments: task.attachments.map(({ kind, label, value }) =>
            label === undefined || label === null ? { kind, value } : { kind, value, label }
          )
        })),
        config: v1Config,
        source: { _tag: "Parser", reason: "imported from a version 1 TasksPlanned event" },
        at: 0
      })
    ),
  encode: (current, _, ast) => oneWay(ast, current)
})

type EventSchema = Schema.Schema<PlannerEvent, unknown>
type Decoder = (data: unknown) => Either.Either<PlannerEvent, ParseResult.ParseError>

/** An event class, as far as decoding needs it. */
interface EventClass {
  readonly ast: SchemaAST.AST
  readonly prototype: PlannerEvent
}

/**
 * The current version's decoder. A payload that `SchemaGuard` accepts decodes to itself, so it only needs the class's
 * prototype; anything else is decoded with the class's encoded side (the struct of its fields, the `from` of the
 * class's own transformation), and only that path can fail, with the schema's own message. Either way the class's
 * constructor is skipped: it copies the fields, deletes and re-adds `_tag` and looks for defaults, which cost three
 * times the decoding itself, and replays decode every event. A property test checks this gives what the class's own
 * schema gives, for valid and broken payloads alike.
 */
const currentDecoder = (eventClass: EventClass): Decoder => {
  const ast = eventClass.ast
  if (!SchemaAST.isTransformation(ast)) throw new Error(`not a schema class: ${String(ast)}`)
  const decodeFields = Schema.decodeUnknownEither(Schema.make<object, unknown, never>(ast.from))
  const guard = SchemaGuard.compile(ast.from)
  const instance = (fields: object) => Object.assign(Object.create(eventClass.prototype) as PlannerEvent, fields)
  return (data) =>
    guard?.(data) === true ? Either.right(instance(data as object)) : Either.map(decodeFields(data), instance)
}

interface EventCodec {
  readonly current: number
  /** Decoders by stored version. */
  readonly decoders: ReadonlyMap<number, Decoder>
}

const codec = (
  eventClass: EventClass,
  current = 1,
  older: ReadonlyArray<readonly [number, EventSchema]> = []
): EventCodec => ({
  current,
  decoders: new Map([
    ...older.map(([version, schema]) => [version, Schema.decodeUnknownEither(schema)] as const),
    [current, currentDecoder(eventClass)]
  ])
})

const codecs: { readonly [K in PlannerEventType]: EventCodec } = {
  TasksPlanned: codec(TasksPlanned, 2, [[1, TasksPlannedFromV1 as EventSchema]]),
  ModelUsageRecorded: codec(ModelUsageRecorded),
  BudgetRaised: codec(BudgetRaised),
  TaskDispatched: codec(TaskDispatched),
  TaskExpanded: codec(TaskExpanded),
  TaskClaimed: codec(TaskClaimed),
  TaskLeaseExtended: codec(TaskLeaseExtended),
  TaskReleased: codec(TaskReleased),
  TaskStatusUpdated: codec(TaskStatusUpdated),
  TaskRetryScheduled: codec(TaskRetryScheduled),
  ClarificationRequested: codec(ClarificationRequested),
  ClarificationReceived: codec(ClarificationReceived),
  ContextCompacted: codec(ContextCompacted),
  SessionForked: codec(SessionForked),
  PlanEdited: codec(PlanEdited),
  PlanningCompleted: codec(PlanningCompleted),
  ReplanRequested: codec(ReplanRequested),
  TaskReplanned: codec(TaskReplanned),
  ReplanSkipped: codec(ReplanSkipped)
}

/** Every stored event type name, for subscriptions and filters. */
export const eventTypes: ReadonlyArray<PlannerEventType> = Object.keys(codecs) as Array<PlannerEventType>

export const isEventType = (type: string): type is PlannerEventType => Object.hasOwn(codecs, type)

/** The version an event of this type is written with today. */
export const currentVersion = (type: PlannerEventType): number => codecs[type].current

/** An event as it is stored: its type name, its schema version, and its JSON-ready payload. */
export interface EncodedEvent {
  readonly type: PlannerEventType
  readonly version: number
  readonly data: unknown
}

const encodeCurrent = Schema.encodeSync(PlannerEvent)

export const encodeEvent = (event: PlannerEvent): EncodedEvent => ({
  type: event._tag,
  version: codecs[event._tag].current,
  data: encodeCurrent(event)
})

/** Why a stored event could not be read back. */
export class UndecodableEvent extends Schema.TaggedError<UndecodableEvent>()("UndecodableEvent", {
  type: Schema.String,
  version: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `A stored ${this.type} event (version ${this.version}) cannot be read: ${this.reason}`
  }
}

/**
 * Reads a stored event back, upcasting older versions. Unknown types and versions, and payloads that do not match
 * their schema, are reported, never skipped.
 */
export const decodeEvent = (
  type: string,
  version: number | string,
  data: unknown
): Either.Either<PlannerEvent, UndecodableEvent> => {
  const versionText = String(version)
  if (!isEventType(type)) {
    return Either.left(new UndecodableEvent({ type, version: versionText, reason: "unknown event type" }))
  }
  const decode = codecs[type].decoders.get(Number(version))
  if (decode === undefined) {
    return Either.left(
      new UndecodableEvent({
        type,
        version: versionText,
        reason: `unknown version (this build reads ${[...codecs[type].decoders.keys()].join(", ")})`
      })
    )
  }
  // Written out rather than piped: replays call this for every event.
  const decoded = decode(data)
  if (Either.isLeft(decoded)) {
    return Either.left(
      new UndecodableEvent({
        type,
        version: versionText,
        reason: ParseResult.TreeFormatter.formatErrorSync(decoded.left)
      })
    )
  }
  return decoded.right._tag === type
    ? Either.right(decoded.right)
    : Either.left(new UndecodableEvent({ type, version: versionText, reason: `payload is a ${decoded.right._tag}` }))
}
