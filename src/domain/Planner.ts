/**
 * The planner as a decider: the whole lifecycle of a plan, top to bottom.
 *
 * - `decide(state, command)` says what happened, as events, or why the command is refused.
 * - `evolve(state, event)` applies one event. Total and pure: it never fails and never looks anywhere else.
 * - `fold(events)` rebuilds the state from a log: the live state and every past one (time travel).
 *
 * Every state change comes from an event, so `fold(log)` equals the live state at every point. Progress is tracked by
 * task id and status, never by an index that compaction could move.
 */
import { type Effect, Either, Schema } from "effect"
import * as Budget from "./Budget.js"
import {
  type AbandonTask,
  Cancel,
  ClaimTask,
  type ClarificationProvided,
  CompactContext,
  Continue,
  type EditPlan,
  ExpandTask,
  ExtendLease,
  type ForkSession,
  HandleExecutorEvent,
  Initialize,
  type NeedsClarification,
  type PlannerCommand,
  type RecordUsage,
  ReleaseTask,
  type ReviseAfterFailure,
  type SkipReplan,
  type TaskCompleted,
  type TaskFailed
} from "./Commands.js"
import { type Backoff, backoffDelay, defaultConfig, defaultMaxReplans, PlannerConfig } from "./Config.js"
import * as Edits from "./Edits.js"
import {
  EmptyRequest,
  InvalidCompaction,
  InvalidPlan,
  InvalidTransition,
  type PlannerError,
  RequestTooLarge,
  SessionAlreadyStarted,
  SessionFinished,
  SessionNotStarted,
  StaleAttempt,
  TaskAlreadyClaimed,
  UnknownTask
} from "./Errors.js"
import {
  BudgetRaised,
  ClarificationReceived,
  ClarificationRequested,
  ContextCompacted,
  ModelUsageRecorded,
  PlanEdited,
  type PlannerEvent,
  PlannerSource,
  PlanningCompleted,
  PlanOutcome,
  ReplanRequested,
  ReplanSkipped,
  SessionForked,
  TaskClaimed,
  TaskDispatched,
  TaskExpanded,
  TaskLeaseExtended,
  TaskReleased,
  TaskReplanned,
  TaskRetryScheduled,
  TaskStatusUpdated,
  TasksPlanned
} from "./Events.js"
import * as Graph from "./Graph.js"
import * as Parser from "./Parser.js"
import { SubPlanOf } from "./SubPlanLink.js"
import * as SubPlans from "./SubPlans.js"
import {
  Attachment,
  attachmentFromText,
  isTerminal,
  TaskId,
  type TaskPlan,
  TaskState,
  TaskStatus,
  Timestamp
} from "./Task.js"

// ---------------------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------------------

export const SessionStatus = Schema.Literal("NotStarted", "Running", ...PlanOutcome.literals).annotations({
  identifier: "SessionStatus"
})
export type SessionStatus = typeof SessionStatus.Type

/**
 * A replan asked for after task `taskId` failed for good (`onFailure: "replan"`): still `Pending`, `Revised` (the
 * failed task and what depended on it were replaced) or `Skipped` (handled as under `continue`).
 */
export const ReplanRecord = Schema.Struct({
  taskId: TaskId,
  outcome: Schema.Literal("Pending", "Revised", "Skipped")
}).annotations({ identifier: "ReplanRecord" })
export type ReplanRecord = typeof ReplanRecord.Type

/** A session's state as it is encoded (the golden files, the dashboard); the live state adds its `index`. */
export const PlannerState = Schema.Struct({
  status: SessionStatus,
  /** How many events have been folded: the session's sequence, which the next append must expect. */
  version: Schema.Int,
  request: Schema.String,
  attachments: Schema.Array(Attachment),
  config: PlannerConfig,
  source: Schema.optionalWith(PlannerSource, { exact: true }),
  /** The executor the session runs with, when its plan recorded one. */
  executor: Schema.optionalWith(Schema.String, { exact: true }),
  /** Where this session was forked from: the source session and the last of its events copied. */
  forkedFrom: Schema.optionalWith(Schema.Struct({ sessionId: Schema.String, sequence: Schema.Int }), { exact: true }),
  /** For a child session (a sub-plan): its parent session and task, its tree's root and its depth. */
  subPlanOf: Schema.optionalWith(SubPlanOf, { exact: true }),
  /** The budget and the spend on models (see `Budget`); absent until a limit is set or a call recorded. */
  budget: Schema.optionalWith(Budget.BudgetState, { exact: true }),
  /** Task n is at index n - 1. */
  tasks: Schema.Array(TaskState),
  /** The rolling context: what compaction made of earlier results. */
  contextSummary: Schema.String,
  startedAt: Schema.optionalWith(Timestamp, { exact: true }),
  finishedAt: Schema.optionalWith(Timestamp, { exact: true }),
  summary: Schema.optionalWith(Schema.String, { exact: true }),
  /** The replans asked for, in order; absent until the first (so states without any encode as before). */
  replans: Schema.optionalWith(Schema.Array(ReplanRecord), { exact: true })
}).annotations({ identifier: "PlannerState" })

/**
 * What is asked of a state after every event, kept up to date by `evolve` so that the answers cost what changed, not a
 * pass over every task: with passes, a plan of n tasks cost O(n) per event and O(n²) per run. Derived from `tasks`
 * alone (`indexTasks` builds it from scratch, and a property test checks that the two always agree); never encoded.
 */
export interface TaskIndex {
  /** How many tasks are in each status. */
  readonly counts: Readonly<Record<TaskStatus, number>>
  /** For the task at index id - 1, the tasks that depend on it directly. Fixed when the plan is made. */
  readonly dependents: ReadonlyArray<ReadonlyArray<TaskId>>
  /** What `step` may dispatch, in id order: tasks planned with every dependency completed, or waiting to retry. */
  readonly ready: ReadonlyArray<TaskId>
  /** Tasks with a timer, in id order: running (a lease runs out) or waiting to retry. */
  readonly timed: ReadonlyArray<TaskId>
  /** Completed tasks whose results are not compacted yet (the rolling context), in id order. */
  readonly rolling: ReadonlyArray<TaskId>
  /** Tasks expanded into a child session (a sub-plan), in id order. */
  readonly expanded: ReadonlyArray<TaskId>
}

export type PlannerState = typeof PlannerState.Type & { readonly index: TaskIndex }

const noCounts = (): Record<TaskStatus, number> => ({
  Planned: 0,
  Dispatched: 0,
  Running: 0,
  NeedsClarification: 0,
  RetryScheduled: 0,
  Completed: 0,
  Failed: 0,
  Skipped: 0,
  Cancelled: 0
})

const dependenciesCompleted = (tasks: ReadonlyArray<TaskState>, current: TaskState): boolean => {
  for (const dependency of current.dependsOn) {
    if (tasks[dependency - 1]?.status !== "Completed") return false
  }
  return true
}
/** The statuses in which a task can be on the `ready` list. */
const mayBeReady = (status: TaskStatus): boolean => status === "Planned" || status === "RetryScheduled"
const isReady = (tasks: ReadonlyArray<TaskState>, current: TaskState): boolean =>
  current.status === "RetryScheduled" || (current.status === "Planned" && dependenciesCompleted(tasks, current))
const isTimed = (current: TaskState): boolean => current.status === "Running" || current.status === "RetryScheduled"
const isRolling = (current: TaskState): boolean => current.status === "Completed" && !current.compacted
const isExpanded = (current: TaskState): boolean => current.childSessionId !== undefined

interface BuiltIndex {
  readonly counts: Record<TaskStatus, number>
  readonly dependents: ReadonlyArray<ReadonlyArray<TaskId>>
  readonly ready: Array<TaskId>
  readonly timed: Array<TaskId>
  readonly rolling: Array<TaskId>
  readonly expanded: Array<TaskId>
}

const buildIndex = (tasks: ReadonlyArray<TaskState>): BuiltIndex => {
  const dependents: Array<Array<TaskId>> = tasks.map(() => [])
  for (const current of tasks) {
    for (const dependency of current.dependsOn) dependents[dependency - 1]?.push(current.id)
  }
  const index: BuiltIndex = { counts: noCounts(), dependents, ready: [], timed: [], rolling: [], expanded: [] }
  for (const current of tasks) {
    index.counts[current.status] += 1
    if (isReady(tasks, current)) index.ready.push(current.id)
    if (isTimed(current)) index.timed.push(current.id)
    if (isRolling(current)) index.rolling.push(current.id)
    if (isExpanded(current)) index.expanded.push(current.id)
  }
  return index
}

/** The index of a task list, built from scratch (`evolve` keeps it up to date instead). */
export const indexTasks = (tasks: ReadonlyArray<TaskState>): TaskIndex => buildIndex(tasks)

export const initialState: PlannerState = {
  status: "NotStarted",
  version: 0,
  request: "",
  attachments: [],
  config: defaultConfig,
  tasks: [],
  contextSummary: "",
  index: indexTasks([])
}

// ---------------------------------------------------------------------------------------------------------------
// evolve and fold
// ---------------------------------------------------------------------------------------------------------------

type Mutable<T> = { -readonly [K in keyof T]: T[K] }
type IdList = "ready" | "timed" | "rolling" | "expanded"

/**
 * A state being changed in place by `apply`, copy-on-write: its task array and id lists are shared with the state it
 * came from until the first change to each, so applying one event copies only what the event changes. Tasks are
 * replaced, never mutated, so a copied array shares its unchanged tasks safely. `fold` applies a whole log to one
 * draft, which keeps replay linear in the log's length.
 */
class Draft {
  readonly state: Mutable<Omit<PlannerState, "index">> & { index: Mutable<TaskIndex> }
  private ownTasks: Array<TaskState> | undefined
  // Every key from the start: an object that gains keys later changes shape, and slows every access to it.
  private readonly ownLists: Record<IdList, Array<TaskId> | undefined> = {
    ready: undefined,
    timed: undefined,
    rolling: undefined,
    expanded: undefined
  }
  constructor(from: PlannerState) {
    this.state = { ...from, index: { ...from.index, counts: { ...from.index.counts } } }
  }
  get tasks(): ReadonlyArray<TaskState> {
    return this.state.tasks
  }
  get counts(): Record<TaskStatus, number> {
    return this.state.index.counts
  }
  setTask(taskId: TaskId, task: TaskState): void {
    if (this.ownTasks === undefined) {
      this.ownTasks = [...this.state.tasks]
      this.state.tasks = this.ownTasks
    }
    this.ownTasks[taskId - 1] = task
  }
  /** A new plan: its tasks and their index. */
  plan(tasks: Array<TaskState>): void {
    this.ownTasks = tasks
    this.state.tasks = tasks
    const index = buildIndex(tasks)
    this.ownLists.ready = index.ready
    this.ownLists.timed = index.timed
    this.ownLists.rolling = index.rolling
    this.ownLists.expanded = index.expanded
    this.state.index = index
  }
  /** Puts `id` into one of the index's lists (kept in ascending order), or takes it out. */
  setMember(list: IdList, id: TaskId, member: boolean): void {
    const ids = this.state.index[list]
    let low = 0
    let high = ids.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if ((ids[middle] ?? id) < id) low = middle + 1
      else high = middle
    }
    if ((ids[low] === id) === member) return
    let own = this.ownLists[list]
    if (own === undefined) {
      own = [...ids]
      this.ownLists[list] = own
      this.state.index[list] = own
    }
    if (member) own.splice(low, 0, id)
    else own.splice(low, 1)
  }
}

/** Brings the index up to date after task `before` became `after`. */
const reindex = (draft: Draft, before: TaskState, after: TaskState): void => {
  // A task's place in the index follows from its status, whether it is compacted and whether it is expanded (its
  // dependencies did not change in this step). Most events change none (a lease extended), and replays apply every
  // event: leave early.
  if (isExpanded(before) !== isExpanded(after)) draft.setMember("expanded", after.id, isExpanded(after))
  if (before.status === after.status && before.compacted === after.compacted) return
  const { tasks, counts } = draft
  counts[before.status] -= 1
  counts[after.status] += 1
  if (mayBeReady(before.status) || mayBeReady(after.status)) draft.setMember("ready", after.id, isReady(tasks, after))
  if (isTimed(before) !== isTimed(after)) draft.setMember("timed", after.id, isTimed(after))
  if (isRolling(before) !== isRolling(after)) draft.setMember("rolling", after.id, isRolling(after))
  // Whether its dependents may start changes only when it becomes, or stops being, completed.
  if ((before.status === "Completed") !== (after.status === "Completed")) {
    for (const id of draft.state.index.dependents[after.id - 1] ?? []) {
      const dependent = tasks[id - 1]
      if (dependent !== undefined) draft.setMember("ready", id, isReady(tasks, dependent))
    }
  }
}

/** A task without the fields that only make sense while it is running or waiting to retry. */
const idle = (task: TaskState): TaskState => {
  const { lease: _lease, retryAt: _retryAt, ...rest } = task
  return rest
}

const update = (draft: Draft, taskId: TaskId, change: (task: TaskState) => TaskState): void => {
  const before = draft.tasks[taskId - 1]
  // Events come from `decide`, which only names existing tasks; an unknown id in a foreign log changes nothing.
  if (before === undefined) return
  const after = change(before)
  draft.setTask(taskId, after)
  reindex(draft, before, after)
}

/** Applies one event to a draft. */
const apply = (draft: Draft, event: PlannerEvent): void => {
  const state = draft.state
  state.version += 1
  switch (event._tag) {
    case "TasksPlanned": {
      state.status = "Running"
      state.request = event.request
      state.attachments = event.attachments
      state.config = event.config
      state.source = event.source
      {
        const limits = Budget.fromLimits(event.config)
        if (limits !== undefined) state.budget = limits
      }
      if (event.executor !== undefined) state.executor = event.executor
      if (event.subPlanOf !== undefined) state.subPlanOf = event.subPlanOf
      state.startedAt = event.at
      draft.plan(event.tasks.map(plannedTask))
      return
    }
    case "ReplanRequested":
      state.replans = [...(state.replans ?? []), { taskId: event.taskId, outcome: "Pending" }]
      return
    case "TaskReplanned":
      setReplanOutcome(state, event.taskId, "Revised")
      // New tasks change the graph: the index is built again (a replan is rare; this is linear in the plan).
      {
        // `decide` numbers new tasks from the plan's next id on; a task of a foreign log that would take another id
        // (and break `task(state, id)`) changes nothing, as an edit's would.
        const tasks = [...draft.tasks]
        for (const added of event.tasks) if (added.id === tasks.length + 1) tasks.push(plannedTask(added))
        if (tasks.length > draft.tasks.length) draft.plan(tasks)
      }
      return
    case "ReplanSkipped":
      setReplanOutcome(state, event.taskId, "Skipped")
      return
    case "TaskDispatched":
      update(draft, event.taskId, (task) =>
        // A retry dispatched ahead of its time keeps that time: its job is not taken before it.
        event.runAt === undefined
          ? { ...idle(task), status: "Dispatched", attempt: event.attempt }
          : { ...idle(task), status: "Dispatched", attempt: event.attempt, retryAt: event.runAt }
      )
      return
    case "TaskClaimed":
    case "TaskLeaseExtended":
      update(draft, event.taskId, (task) => ({
        ...task,
        status: "Running",
        lease: { workerId: event.workerId, expiresAt: event.leaseExpiresAt }
      }))
      return
    case "TaskReleased":
      update(draft, event.taskId, (task) => ({ ...idle(task), status: "Planned" }))
      return
    case "TaskStatusUpdated":
      if (state.budget !== undefined) state.budget = Budget.answered(state.budget, event.taskId)
      update(draft, event.taskId, (task) => {
        const next: TaskState = { ...idle(task), status: event.status }
        const failures = event.status === "Failed" ? task.failures + 1 : task.failures
        const withResult = event.result === undefined ? next : { ...next, result: event.result }
        return { ...withResult, failures, ...(event.error === undefined ? {} : { error: event.error }) }
      })
      return
    case "TaskRetryScheduled":
      update(draft, event.taskId, (task) => ({
        ...idle(task),
        status: "RetryScheduled",
        failures: task.failures + 1,
        error: event.error,
        retryAt: event.retryAt
      }))
      return
    case "ClarificationRequested":
      if (event.budget !== undefined) state.budget = Budget.asked(state.budget, event.taskId, event.budget)
      update(draft, event.taskId, (task) => ({
        ...idle(task),
        status: "NeedsClarification",
        clarifications: [
          ...task.clarifications,
          event.attachment === undefined
            ? { question: event.question }
            : { question: event.question, attachment: event.attachment }
        ]
      }))
      return
    case "ClarificationReceived":
      if (state.budget !== undefined) state.budget = Budget.answered(state.budget, event.taskId)
      update(draft, event.taskId, (task) => {
        const pending = task.clarifications.at(-1)
        if (pending === undefined || pending.answer !== undefined) {
          return {
            ...task,
            status: "Planned",
            clarifications: [...task.clarifications, { question: "", answer: event.answer }]
          }
        }
        const clarifications = [...task.clarifications.slice(0, -1), { ...pending, answer: event.answer }]
        // An answer about an attachment replaces it.
        const replaced = pending.attachment
        const attachments =
          replaced === undefined
            ? task.attachments
            : task.attachments.map((a) =>
                a.kind === replaced.kind && a.value === replaced.value ? attachmentFromText(event.answer) : a
              )
        return { ...task, status: "Planned", clarifications, attachments }
      })
      return
    case "ContextCompacted": {
      state.contextSummary = event.summary
      for (const id of event.removedTaskIds) update(draft, id, (task) => ({ ...task, compacted: true }))
      return
    }
    case "ModelUsageRecorded":
      state.budget = Budget.addUsage(state.budget, event.usage)
      return
    case "BudgetRaised":
      state.budget = Budget.raise(state.budget, event.unit, event.limit, event.taskId)
      return
    case "TaskExpanded":
      update(draft, event.taskId, (task) => ({ ...task, childSessionId: event.childSessionId }))
      return
    case "SessionForked":
      state.forkedFrom = { sessionId: event.fromSessionId, sequence: event.atSequence }
      // An incremental fork's reused results and removed tasks: the index is built again (once per fork).
      if (Edits.changesTasks(event)) draft.plan(Edits.applyForked(draft.tasks, event))
      return
    case "PlanEdited":
      // Edits change the graph: the index is built again (edits are rare; this is linear in the plan).
      draft.plan(Edits.applyEdits(draft.tasks, event.edits))
      return
    case "PlanningCompleted": {
      state.status = event.outcome
      state.summary = event.summary
      state.finishedAt = event.at
      return
    }
  }
}

const plannedTask = (plan: TaskPlan): TaskState => ({
  ...plan,
  status: "Planned",
  attempt: 0,
  failures: 0,
  clarifications: [],
  compacted: false
})

/** Ends the pending replan of `taskId`, if there is one (a skip for the bound reached had no request). */
const setReplanOutcome = (
  state: Mutable<Omit<PlannerState, "index">>,
  taskId: TaskId,
  outcome: ReplanRecord["outcome"]
): void => {
  const replans = state.replans
  if (replans === undefined) return
  const at = replans.findIndex((replan) => replan.taskId === taskId && replan.outcome === "Pending")
  if (at < 0) return
  state.replans = replans.map((replan, index) => (index === at ? { taskId, outcome } : replan))
}

/** The state after one more event. */
export const evolve = (state: PlannerState, event: PlannerEvent): PlannerState => {
  const draft = new Draft(state)
  apply(draft, event)
  return draft.state
}

/** The state after a log of events, from the beginning or from `from`. */
export const fold = (events: Iterable<PlannerEvent>, from: PlannerState = initialState): PlannerState => {
  const draft = new Draft(from)
  for (const event of events) apply(draft, event)
  return draft.state
}

/** An attempt a worker holds in the task queue, under a lease: see `withHeldAttempts`. */
export interface HeldAttempt {
  readonly taskId: TaskId
  readonly attempt: number
  readonly workerId: string
  readonly leaseExpiresAt: number
}

/**
 * The session as a viewer should see it now: each dispatched task whose current attempt a worker holds in the task
 * queue shows as running on that worker, as the `TaskClaimed` recorded with its outcome will say. A worker on a session
 * that other processes write too records an attempt's start together with its outcome, in one append, so until then
 * the log has the task dispatched while the queue knows who runs it. For views only (`show`, the dashboard): never
 * decided on or folded further, since the log stays what the planner decides from.
 */
export const withHeldAttempts = (state: PlannerState, held: ReadonlyArray<HeldAttempt>): PlannerState => {
  const draft = new Draft(state)
  for (const attempt of held) {
    const current = draft.tasks[attempt.taskId - 1]
    if (current === undefined || current.status !== "Dispatched" || current.attempt !== attempt.attempt) continue
    update(draft, attempt.taskId, (task) => ({
      ...task,
      status: "Running",
      lease: { workerId: attempt.workerId, expiresAt: attempt.leaseExpiresAt }
    }))
  }
  return draft.state
}

// ---------------------------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------------------------

export const isFinished = (state: PlannerState): boolean => state.status !== "NotStarted" && state.status !== "Running"

export const task = (state: PlannerState, id: TaskId): TaskState | undefined => state.tasks[id - 1]

/** Failed tasks waiting for a revised plan (`onFailure: "replan"`), in the order they failed. */
export const pendingReplans = (state: PlannerState): ReadonlyArray<TaskId> =>
  (state.replans ?? []).filter((replan) => replan.outcome === "Pending").map((replan) => replan.taskId)

/** Tasks waiting for an answer, in id order. */
export const pendingClarifications = (state: PlannerState): ReadonlyArray<TaskState> =>
  state.tasks.filter((task) => task.status === "NeedsClarification")

/**
 * The earliest time at which `Continue` will change something without any other input: a retry falling due or a
 * lease running out. The runner sets a durable timer for it.
 */
export const nextWakeUp = (state: PlannerState): Timestamp | undefined => {
  if (state.status !== "Running") return undefined
  let earliest: number | undefined
  for (const id of state.index.timed) {
    const task = state.tasks[id - 1]
    if (task === undefined) continue
    const at =
      task.status === "RetryScheduled" ? task.retryAt : task.status === "Running" ? task.lease?.expiresAt : undefined
    if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at
  }
  return earliest
}

/**
 * True when nothing can move without an answer: no task is dispatched, running or waiting to retry, and some task
 * waits for a clarification.
 */
export const isWaiting = (state: PlannerState): boolean => {
  const { counts } = state.index
  return (
    state.status === "Running" &&
    counts.NeedsClarification > 0 &&
    counts.Dispatched + counts.Running + counts.RetryScheduled === 0 &&
    pendingReplans(state).length === 0
  )
}

/** Counts of tasks by status. */
export const countByStatus = (state: PlannerState): Readonly<Record<TaskStatus, number>> => state.index.counts

/** Completed tasks whose results are not compacted yet: the rolling context, in id order. */
export const rollingTasks = (state: PlannerState): ReadonlyArray<TaskState> => {
  const found: Array<TaskState> = []
  for (const id of state.index.rolling) {
    const current = state.tasks[id - 1]
    if (current !== undefined) found.push(current)
  }
  return found
}

// ---------------------------------------------------------------------------------------------------------------
// decide
// ---------------------------------------------------------------------------------------------------------------

/**
 * A decision in progress: the events so far, applied to a private draft so each step of the decision sees the
 * consequences of the previous ones (exactly as `fold` will).
 */
class Decision {
  readonly events: Array<PlannerEvent> = []
  readonly draft: Draft
  constructor(state: PlannerState) {
    this.draft = new Draft(state)
  }
  emit(event: PlannerEvent): void {
    this.events.push(event)
    apply(this.draft, event)
  }
  get state(): PlannerState {
    return this.draft.state
  }
}

type Decided = Either.Either<ReadonlyArray<PlannerEvent>, PlannerError>
const none: Decided = Either.right([])

/** What the planner does with a command, as events; or why it refuses. Pure and deterministic. */
export const decide = (
  state: PlannerState,
  command: PlannerCommand
): Effect.Effect<ReadonlyArray<PlannerEvent>, PlannerError> => decideEither(state, command)

/** `decide` for callers outside Effect. */
export const decideEither = (state: PlannerState, command: PlannerCommand): Decided => {
  if (command._tag === "Initialize") return initialize(state, command)
  if (command._tag === "ForkSession") return forkSession(state, command)
  if (state.status === "NotStarted") return Either.left(new SessionNotStarted())
  switch (command._tag) {
    case "HandleExecutorEvent":
      return handleExecutorEvent(state, command)
    case "ClaimTask":
      return claim(state, command)
    case "ExtendLease":
      return extendLease(state, command)
    case "ReleaseTask":
      return release(state, command)
    case "AbandonTask":
      return abandon(state, command)
    case "Continue":
      return isFinished(state) ? none : run(state, (decision) => continueAt(decision, command.at))
    case "CompactContext":
      return compact(state, command)
    case "Cancel":
      return cancel(state, command)
    case "EditPlan":
      return editPlan(state, command)
    case "ReviseAfterFailure":
      return reviseAfterFailure(state, command)
    case "SkipReplan":
      return skipReplan(state, command)
    case "ExpandTask":
      return expand(state, command)
    case "RecordUsage":
      return recordUsage(state, command)
  }
}

/**
 * The state each decision left, by the array of its events (a new array per decision, which is what `decideEither`
 * returns): a command handler that needs the state after its events gets it without applying them again.
 */
const decidedStates = new WeakMap<ReadonlyArray<PlannerEvent>, PlannerState>()

const run = (state: PlannerState, body: (decision: Decision) => PlannerError | undefined): Decided => {
  const decision = new Decision(state)
  const error = body(decision)
  if (error !== undefined) return Either.left(error)
  decidedStates.set(decision.events, decision.state)
  return Either.right(decision.events)
}

/** `decideEither`, with the state after the events: what `fold(events, state)` gives, without applying them again. */
export const decideAndEvolve = (
  state: PlannerState,
  command: PlannerCommand
): Either.Either<{ readonly events: ReadonlyArray<PlannerEvent>; readonly state: PlannerState }, PlannerError> =>
  Either.map(decideEither(state, command), (events) => ({
    events,
    state: events.length === 0 ? state : (decidedStates.get(events) ?? fold(events, state))
  }))

/**
 * The events of every task's attempt (dispatch, claim, lease, outcome) are made without checking their fields again:
 * those come from commands checked when they were made and from the state, and `encodeEvent` checks every event
 * against its schema before it is stored, so an event that broke one never reaches the log. (Checking at construction
 * too was 4% of a one-process task's time.)
 */
const trusted = true

const finished = (state: PlannerState) => new SessionFinished({ outcome: state.status })

/**
 * `backoffDelay` spread by `jitter` (a draw in [0, 1) that arrived inside the command): from three quarters to five
 * quarters of the delay, never over `maxDelayMs`. Without a draw, the plain delay (as before jitter existed).
 */
export const jitteredDelay = (backoff: Backoff, failures: number, jitter: number | undefined): number => {
  const delay = backoffDelay(backoff, failures)
  if (jitter === undefined) return delay
  return Math.min(backoff.maxDelayMs, Math.round(delay * (0.75 + jitter / 2)))
}

/** When the job of a task in flight may be taken: a retry's time, or at once (0). What the task queue holds. */
export const jobRunAt = (current: TaskState): number => current.retryAt ?? 0

/**
 * Whether a task's current attempt has a job in the task queue: dispatched or running, unless a child session does
 * the task (a sub-plan): then it waits for the child, with no job.
 */
export const hasJob = (current: TaskState): boolean =>
  (current.status === "Dispatched" || current.status === "Running") && current.childSessionId === undefined

// --- Initialize -------------------------------------------------------------------------------------------------

const initialize = (state: PlannerState, command: Initialize): Decided => {
  if (state.status !== "NotStarted") return Either.left(new SessionAlreadyStarted())
  if (command.request.length > Parser.MAX_REQUEST_CHARS) {
    return Either.left(new RequestTooLarge({ size: command.request.length, limit: Parser.MAX_REQUEST_CHARS }))
  }
  if (command.request.trim().length === 0) return Either.left(new EmptyRequest())
  const planned = command.tasks === undefined ? Parser.parse(command.request) : Either.right(command.tasks)
  return Either.flatMap(planned, (tasks) =>
    Either.flatMap(Graph.validate(tasks), () =>
      run(state, (decision) => {
        if (command.forkedFrom !== undefined) {
          decision.emit(
            new SessionForked({ fromSessionId: command.forkedFrom.sessionId, atSequence: 0, at: command.at })
          )
        }
        decision.emit(
          new TasksPlanned({
            request: command.request,
            attachments: command.attachments,
            tasks,
            config: command.config,
            source: command.source ?? { _tag: "Parser" },
            ...(command.executor === undefined ? {} : { executor: command.executor }),
            ...(command.subPlanOf === undefined ? {} : { subPlanOf: command.subPlanOf }),
            at: command.at
          })
        )
        const [first, ...more] = command.usage ?? []
        if (first !== undefined) decision.emit(new ModelUsageRecorded({ usage: [first, ...more], at: command.at }))
        for (const expansion of command.expand ?? []) {
          const refused = SubPlans.refusal(decision.state, expansion.taskId, expansion.childSessionId, command.maxDepth)
          if (refused === "repeat") continue
          if (refused !== undefined) return refused
          decision.emit(new TaskExpanded({ ...expansion, at: command.at }))
        }
        return step(decision, command.at)
      })
    )
  )
}

// --- Executor outcomes ------------------------------------------------------------------------------------------

const handleExecutorEvent = (state: PlannerState, command: HandleExecutorEvent): Decided => {
  const event = command.event
  const current = task(state, event.taskId)
  if (current === undefined) return Either.left(new UnknownTask({ taskId: event.taskId }))
  switch (event._tag) {
    case "TaskCompleted":
      return completed(state, current, event, command.at)
    case "TaskFailed":
      return failed(state, current, event, command.at, command.jitter)
    case "NeedsClarification":
      return needsClarification(state, current, event, command.at)
    case "ClarificationProvided":
      return clarificationProvided(state, current, event, command.at)
  }
}

/**
 * Checks that an outcome is about the attempt in flight. Undefined means "go ahead"; otherwise the refusal. A missing
 * `attempt` means the current one.
 */
const checkAttempt = (current: TaskState, attempt: number | undefined, action: string): PlannerError | undefined => {
  if (attempt !== undefined && attempt < current.attempt) {
    return new StaleAttempt({ taskId: current.id, attempt, current: current.attempt })
  }
  if (attempt !== undefined && attempt > current.attempt) {
    return new InvalidTransition({
      taskId: current.id,
      status: current.status,
      action: `${action} for attempt ${attempt}, which was never dispatched`
    })
  }
  if (current.status !== "Dispatched" && current.status !== "Running") {
    return new InvalidTransition({ taskId: current.id, status: current.status, action })
  }
  return undefined
}

/** An outcome that arrives after its task was cancelled or skipped, or after the plan ended, changes nothing. */
const isLate = (state: PlannerState, current: TaskState): boolean =>
  isFinished(state) || current.status === "Cancelled" || current.status === "Skipped"

const sameAttempt = (current: TaskState, attempt: number | undefined) =>
  attempt === undefined || attempt === current.attempt

/**
 * The gate every outcome of an attempt passes. A repeat of what is already recorded, and an outcome that arrives after
 * its task or the plan ended, change nothing; an outcome for another attempt, or for a task not in flight, is refused.
 * Otherwise `record` emits what the outcome means, and the plan moves on.
 */
const acceptOutcome = (
  state: PlannerState,
  current: TaskState,
  outcome: { readonly attempt?: number | undefined; readonly action: string; readonly isRepeat: boolean },
  at: Timestamp,
  record: (decision: Decision) => void
): Decided => {
  if (outcome.isRepeat || isLate(state, current)) return none
  const refused = checkAttempt(current, outcome.attempt, outcome.action)
  if (refused !== undefined) return Either.left(refused)
  return run(state, (decision) => {
    record(decision)
    return step(decision, at)
  })
}

const completed = (state: PlannerState, current: TaskState, event: TaskCompleted, at: Timestamp): Decided =>
  acceptOutcome(
    state,
    current,
    {
      attempt: event.attempt,
      action: "complete",
      isRepeat: current.status === "Completed" && sameAttempt(current, event.attempt) && current.result === event.result
    },
    at,
    (decision) =>
      decision.emit(
        new TaskStatusUpdated(
          { taskId: current.id, status: "Completed", attempt: current.attempt, result: event.result, at },
          trusted
        )
      )
  )

const failed = (
  state: PlannerState,
  current: TaskState,
  event: TaskFailed,
  at: Timestamp,
  jitter: number | undefined
): Decided =>
  acceptOutcome(
    state,
    current,
    {
      attempt: event.attempt,
      action: "fail",
      isRepeat:
        sameAttempt(current, event.attempt) &&
        current.error === event.error &&
        (current.status === "Failed" || current.status === "RetryScheduled")
    },
    at,
    (decision) => attemptFailed(decision, current, event.error, event.retryable, at, jitter)
  )

/** The retry policy, then the failure policy. */
const attemptFailed = (
  decision: Decision,
  current: TaskState,
  error: string,
  retryable: boolean,
  at: Timestamp,
  jitter?: number
): void => {
  const { config } = decision.state
  const failures = current.failures + 1
  if (retryable && failures < config.maxAttempts) {
    const retryAt = at + jitteredDelay(config.backoff, failures, jitter)
    decision.emit(
      new TaskRetryScheduled(
        {
          taskId: current.id,
          attempt: current.attempt,
          error,
          retryAt,
          ...(jitter === undefined ? {} : { jitter }),
          at
        },
        trusted
      )
    )
    return
  }
  decision.emit(
    new TaskStatusUpdated({ taskId: current.id, status: "Failed", attempt: current.attempt, error, at }, trusted)
  )
  if (config.onFailure === "abort") {
    cancelUnfinished(decision, "Failed", `the plan was aborted because task ${current.id} failed`, at)
    return
  }
  if (config.onFailure === "replan") {
    const asked = decision.state.replans?.length ?? 0
    const allowed = config.maxReplans ?? defaultMaxReplans
    if (asked < allowed) {
      decision.emit(new ReplanRequested({ taskId: current.id, error, at }))
      return
    }
    decision.emit(
      new ReplanSkipped({
        taskId: current.id,
        reason: `the session has asked for ${asked} replan${asked === 1 ? "" : "s"}, the most it may (max replans ${allowed})`,
        at
      })
    )
  }
  skipDependents(decision, current.id, at)
}

/** What `continue` does after task `failedId` failed for good: every unfinished task downstream of it is skipped. */
const skipDependents = (decision: Decision, failedId: TaskId, at: Timestamp): void => {
  for (const id of Graph.dependentsOf(decision.state.tasks, failedId)) {
    const dependent = task(decision.state, id)
    if (dependent !== undefined && !isTerminal(dependent.status)) {
      decision.emit(
        new TaskStatusUpdated({
          taskId: id,
          status: "Skipped",
          attempt: dependent.attempt,
          error: `skipped because task ${failedId} failed`,
          at
        })
      )
    }
  }
}

const needsClarification = (
  state: PlannerState,
  current: TaskState,
  event: NeedsClarification,
  at: Timestamp
): Decided => {
  const pending = current.clarifications.at(-1)
  return acceptOutcome(
    state,
    current,
    {
      attempt: event.attempt,
      action: "ask for a clarification",
      isRepeat:
        current.status === "NeedsClarification" &&
        sameAttempt(current, event.attempt) &&
        pending?.answer === undefined &&
        pending?.question === event.question
    },
    at,
    (decision) => {
      const ask = event.budget === undefined ? undefined : budgetAsk(state, event.budget)
      decision.emit(
        new ClarificationRequested({
          taskId: current.id,
          question: ask === undefined ? event.question : Budget.questionText(ask),
          ...(event.attachment === undefined ? {} : { attachment: event.attachment }),
          ...(ask === undefined ? {} : { budget: ask }),
          at
        })
      )
    }
  )
}

/**
 * The budget question for a call needing `need`. The worker saw the call would cross; should the limit have been
 * raised meanwhile so that it fits, the question is still asked, with the figures as they stand now.
 */
const budgetAsk = (state: PlannerState, need: Budget.BudgetNeed): Budget.BudgetAsk => {
  // A session of a tree of sub-plans: the tree's figures, as the worker saw them (see `Budget.treeBudget`).
  if (need.spent !== undefined && need.limit !== undefined) {
    return {
      unit: "tokens",
      spent: need.spent,
      limit: need.limit,
      needed: need.tokens,
      suggested: Budget.suggestedRaise("tokens", need.spent, need.limit, need.tokens)
    }
  }
  const crossing = Budget.wouldCross(state.budget, need)
  if (crossing !== undefined) return crossing
  const spent = Budget.totalTokens(state.budget?.spent ?? { inputTokens: 0, outputTokens: 0, calls: 0 })
  const limit = state.budget?.tokens ?? spent
  return {
    unit: "tokens",
    spent,
    limit,
    needed: need.tokens,
    suggested: Budget.suggestedRaise("tokens", spent, limit, need.tokens)
  }
}

const clarificationProvided = (
  state: PlannerState,
  current: TaskState,
  event: ClarificationProvided,
  at: Timestamp
): Decided => {
  if (isFinished(state)) return Either.left(finished(state))
  if (current.status !== "NeedsClarification") {
    // The same answer twice (a retried request, a double click) is a no-op; an answer nobody asked for is refused.
    if (current.clarifications.at(-1)?.answer === event.answer) return none
    return Either.left(
      new InvalidTransition({
        taskId: current.id,
        status: current.status,
        action: "take an answer: it has no question pending"
      })
    )
  }
  const ask = Budget.questionOf(state.budget, current.id)
  if (ask !== undefined) return budgetAnswered(state, current, ask, event.answer, at)
  return run(state, (decision) => {
    decision.emit(new ClarificationReceived({ taskId: current.id, answer: event.answer, at }))
    // A Clarification task exists to ask the user; the answer is its result.
    if (current.kind === "Clarification") {
      decision.emit(
        new TaskStatusUpdated({
          taskId: current.id,
          status: "Completed",
          attempt: current.attempt,
          result: event.answer,
          at
        })
      )
    }
    return step(decision, at)
  })
}

/**
 * The answer to a budget question: "yes" raises the limit by an event (before the call it allows is tried again, as
 * the task is dispatched anew); "no" fails the task for good, since trying again would ask again.
 */
const budgetAnswered = (
  state: PlannerState,
  current: TaskState,
  ask: Budget.BudgetAsk,
  answer: string,
  at: Timestamp
): Decided => {
  const reading = Budget.parseAnswer(answer, ask)
  if (reading === undefined) {
    return Either.left(
      new InvalidTransition({
        taskId: current.id,
        status: current.status,
        action: `take ${JSON.stringify(answer)} as the answer to its budget question: answer yes, yes AMOUNT (for example yes ${Budget.formatTokens(ask.suggested)}) or no`
      })
    )
  }
  return run(state, (decision) => {
    if (reading._tag === "Allow") {
      const limit = Budget.raisedLimit(ask, decision.state.budget, reading.amount)
      decision.emit(new BudgetRaised({ unit: ask.unit, limit, by: reading.amount, taskId: current.id, at }))
      decision.emit(new ClarificationReceived({ taskId: current.id, answer, at }))
      return step(decision, at)
    }
    decision.emit(new ClarificationReceived({ taskId: current.id, answer, at }))
    const now = task(decision.state, current.id) ?? current
    attemptFailed(
      decision,
      now,
      `the budget was not raised: ${Budget.formatAmount(ask.unit, ask.spent)} of ${Budget.formatAmount(ask.unit, ask.limit)} used, the next step needed about ${Budget.formatAmount(ask.unit, ask.needed)}`,
      false,
      at
    )
    return step(decision, at)
  })
}

/**
 * Usage is recorded while the plan runs. Once it ended nothing more is recorded (a log ends with its
 * `PlanningCompleted`), so a call still in flight when the plan was cancelled is not counted: it is refused, and the
 * app logs that.
 */
const recordUsage = (state: PlannerState, command: RecordUsage): Decided => {
  if (isFinished(state)) return Either.left(finished(state))
  const [first, ...more] = command.usage
  if (first === undefined) return none
  return Either.right([new ModelUsageRecorded({ usage: [first, ...more], at: command.at })])
}

// --- Workers ----------------------------------------------------------------------------------------------------

const lookup = (state: PlannerState, taskId: TaskId): Either.Either<TaskState, PlannerError> => {
  if (isFinished(state)) return Either.left(finished(state))
  const current = task(state, taskId)
  return current === undefined ? Either.left(new UnknownTask({ taskId })) : Either.right(current)
}

const claim = (state: PlannerState, command: ClaimTask): Decided =>
  Either.flatMap(lookup(state, command.taskId), (current) => {
    // A task done by a sub-plan has no job: no worker runs it, whatever asks.
    if (current.childSessionId !== undefined) {
      return Either.left(
        new InvalidTransition({
          taskId: current.id,
          status: current.status,
          action: "be claimed: its sub-plan does it"
        })
      )
    }
    if (command.attempt < current.attempt) {
      return Either.left(new StaleAttempt({ taskId: current.id, attempt: command.attempt, current: current.attempt }))
    }
    // The task queue gives a job to one taker at a time: a claim of the attempt by another worker than the one on
    // record means that worker's lease in the queue ran out, and the job went to this one. The new taker is accepted.
    if (current.status === "Running" && current.attempt === command.attempt) {
      if (current.lease?.workerId === command.workerId) return none
    } else if (current.status !== "Dispatched" || command.attempt !== current.attempt) {
      return Either.left(
        new InvalidTransition({
          taskId: current.id,
          status: current.status,
          action: `be claimed for attempt ${command.attempt}`
        })
      )
    }
    return Either.right([new TaskClaimed(leaseOf(state, current, command), trusted)])
  })

/** A lease on the task's current attempt for the command's worker, from the command's time. */
const leaseOf = (
  state: PlannerState,
  current: TaskState,
  command: { readonly workerId: string; readonly at: Timestamp }
) => ({
  taskId: current.id,
  attempt: current.attempt,
  workerId: command.workerId,
  leaseExpiresAt: command.at + state.config.leaseMs,
  at: command.at
})

/** Checks that `workerId` holds the lease on the attempt. */
const holding = (
  current: TaskState,
  command: ExtendLease | ReleaseTask | AbandonTask,
  action: string
): PlannerError | undefined => {
  if (command.attempt < current.attempt) {
    return new StaleAttempt({ taskId: current.id, attempt: command.attempt, current: current.attempt })
  }
  if (current.status !== "Running" || command.attempt !== current.attempt) {
    return new InvalidTransition({ taskId: current.id, status: current.status, action })
  }
  if (current.lease?.workerId !== command.workerId) {
    return new TaskAlreadyClaimed({ taskId: current.id, workerId: current.lease?.workerId ?? "unknown" })
  }
  return undefined
}

const extendLease = (state: PlannerState, command: ExtendLease): Decided =>
  Either.flatMap(lookup(state, command.taskId), (current) => {
    const refused = holding(current, command, "have its lease extended")
    if (refused !== undefined) return Either.left(refused)
    return Either.right([new TaskLeaseExtended(leaseOf(state, current, command), trusted)])
  })

const release = (state: PlannerState, command: ReleaseTask): Decided =>
  Either.flatMap(lookup(state, command.taskId), (current) => {
    const refused = holding(current, command, "be released")
    if (refused !== undefined) return Either.left(refused)
    return run(state, (decision) => {
      decision.emit(
        new TaskReleased({ taskId: current.id, attempt: current.attempt, workerId: command.workerId, at: command.at })
      )
      return step(decision, command.at)
    })
  })

const abandon = (state: PlannerState, command: AbandonTask): Decided =>
  Either.flatMap(lookup(state, command.taskId), (current) => {
    // Abandoning what is no longer held (it finished, or was abandoned already) changes nothing.
    if (current.status !== "Running" || current.attempt !== command.attempt) {
      return command.attempt <= current.attempt
        ? none
        : Either.left(new StaleAttempt({ taskId: current.id, attempt: command.attempt, current: current.attempt }))
    }
    const refused = holding(current, command, "be abandoned")
    if (refused !== undefined) return Either.left(refused)
    return run(state, (decision) => {
      attemptFailed(decision, current, command.reason, true, command.at, command.jitter)
      return step(decision, command.at)
    })
  })

// --- Sub-plans ----------------------------------------------------------------------------------------------------

/** Expands a planned task into a child session (see `SubPlans`); it is dispatched, without a job, once it is ready. */
const expand = (state: PlannerState, command: ExpandTask): Decided => {
  if (isFinished(state)) return Either.left(finished(state))
  const refused = SubPlans.refusal(state, command.taskId, command.childSessionId, command.maxDepth)
  if (refused === "repeat") return none
  if (refused !== undefined) return Either.left(refused)
  return run(state, (decision) => {
    decision.emit(new TaskExpanded({ taskId: command.taskId, childSessionId: command.childSessionId, at: command.at }))
    return step(decision, command.at)
  })
}

// --- Plan edits and incremental forks (the rules are in `Edits`) ---------------------------------------------------

const editPlan = (state: PlannerState, command: EditPlan): Decided => {
  if (isFinished(state)) return Either.left(finished(state))
  return Either.flatMap(Edits.decideEdits(state.tasks, command.edits), ({ edits }) =>
    run(state, (decision) => {
      decision.emit(new PlanEdited({ edits, source: command.source, at: command.at }))
      return step(decision, command.at)
    })
  )
}

const forkSession = (state: PlannerState, command: ForkSession): Decided => {
  if (state.status !== "NotStarted") return Either.left(new SessionAlreadyStarted())
  const source = fold(command.sourceEvents)
  return Either.flatMap(Edits.planFork(source, command.sourceEvents, command), (planned) =>
    run(state, (decision) => {
      decision.emit(planned.planned)
      decision.emit(planned.forked)
      for (const carried of planned.carried) decision.emit(carried)
      if (planned.edited !== undefined) decision.emit(planned.edited)
      for (const expanded of planned.expanded) decision.emit(expanded)
      for (const done of Edits.answeredClarificationTasks(decision.state.tasks, command.at)) decision.emit(done)
      return step(decision, command.at)
    })
  )
}

// --- Continue, compaction, cancellation ---------------------------------------------------------------------------

/**
 * Leases are the task queue's: a lease that runs out there hands the job to another worker, whose claim the planner
 * accepts. So `Continue` only moves the plan on; a lease recorded in the log never fails an attempt by itself.
 */
const continueAt = (decision: Decision, at: Timestamp): PlannerError | undefined => step(decision, at)

const compact = (state: PlannerState, command: CompactContext): Decided => {
  if (isFinished(state)) return Either.left(finished(state))
  const seen = new Set<TaskId>()
  for (const id of command.removedTaskIds) {
    const current = task(state, id)
    if (current === undefined) return Either.left(new UnknownTask({ taskId: id }))
    if (seen.has(id)) return Either.left(new InvalidCompaction({ reason: `task ${id} is listed twice` }))
    seen.add(id)
    if (current.status !== "Completed") {
      return Either.left(
        new InvalidCompaction({ reason: `task ${id} is ${current.status} and has no result to fold in yet` })
      )
    }
    if (current.compacted) return Either.left(new InvalidCompaction({ reason: `task ${id} was already compacted` }))
  }
  if (command.removedTaskIds.length === 0 && command.summary === state.contextSummary) return none
  return Either.right([
    new ContextCompacted({
      summary: command.summary,
      removedTaskIds: command.removedTaskIds,
      tokenBudget: command.maxTokens,
      at: command.at
    })
  ])
}

const cancel = (state: PlannerState, command: Cancel): Decided => {
  if (state.status === "Cancelled") return none
  if (isFinished(state)) return Either.left(finished(state))
  return run(state, (decision) => {
    cancelUnfinished(decision, "Cancelled", command.reason, command.at)
    return undefined
  })
}

/** Cancels every unfinished task and ends the plan: cancelled by request, or failed when a failure aborted it. */
const cancelUnfinished = (decision: Decision, outcome: "Failed" | "Cancelled", reason: string, at: Timestamp): void => {
  for (const current of decision.state.tasks) {
    if (!isTerminal(current.status)) {
      decision.emit(
        new TaskStatusUpdated({ taskId: current.id, status: "Cancelled", attempt: current.attempt, error: reason, at })
      )
    }
  }
  decision.emit(new PlanningCompleted({ outcome, summary: withReason(summarize(decision.state), reason), at }))
}

// --- Replanning after a failure ----------------------------------------------------------------------------------

/**
 * The pending replan of `taskId`: the task itself; `none` when its replan is already settled (the same answer twice,
 * as after a restart); a refusal when no replan was ever asked for it.
 */
const pendingReplan = (
  state: PlannerState,
  taskId: TaskId,
  action: string
): Either.Either<TaskState | undefined, PlannerError> => {
  if (isFinished(state)) return Either.left(finished(state))
  const current = task(state, taskId)
  if (current === undefined) return Either.left(new UnknownTask({ taskId }))
  const replans = (state.replans ?? []).filter((replan) => replan.taskId === taskId)
  if (replans.some((replan) => replan.outcome === "Pending")) return Either.right(current)
  if (replans.length > 0) return Either.right(undefined)
  return Either.left(
    new InvalidTransition({ taskId, status: current.status, action: `${action}: no replan is pending for it` })
  )
}

const reviseAfterFailure = (state: PlannerState, command: ReviseAfterFailure): Decided =>
  Either.flatMap(pendingReplan(state, command.taskId, "be replanned"), (current) => {
    if (current === undefined) return none
    const superseded: Array<TaskId> = []
    for (const id of Graph.dependentsOf(state.tasks, current.id)) {
      const dependent = task(state, id)
      if (dependent === undefined || isTerminal(dependent.status)) continue
      if (dependent.status !== "Planned") {
        return Either.left(
          new InvalidTransition({ taskId: id, status: dependent.status, action: "be replaced by a revised plan" })
        )
      }
      superseded.push(id)
    }
    const refused = checkRevision(state, current.id, superseded, command.tasks)
    if (refused !== undefined) return Either.left(refused)
    return run(state, (decision) => {
      decision.emit(
        new TaskReplanned({
          taskId: current.id,
          supersededTaskIds: superseded,
          tasks: command.tasks,
          source: command.source,
          at: command.at
        })
      )
      const first = command.tasks[0]?.id ?? 0
      const last = command.tasks.at(-1)?.id ?? first
      const replacement = first === last ? `task ${first}` : `tasks ${first} to ${last}`
      for (const id of superseded) {
        const dependent = task(decision.state, id)
        decision.emit(
          new TaskStatusUpdated({
            taskId: id,
            status: "Skipped",
            attempt: dependent?.attempt ?? 0,
            error: `replaced by ${replacement} after task ${current.id} failed`,
            at: command.at
          })
        )
      }
      return step(decision, command.at)
    })
  })

/**
 * Checks a revised plan: at least one task, ids from the plan's next id on in order, and dependencies on each other or
 * on tasks the plan keeps (neither the failed task nor those it replaces), without a cycle.
 */
const checkRevision = (
  state: PlannerState,
  failedId: TaskId,
  superseded: ReadonlyArray<TaskId>,
  tasks: ReadonlyArray<TaskPlan>
): InvalidPlan | undefined => {
  if (tasks.length === 0) return new InvalidPlan({ reason: `the revised plan for task ${failedId} has no tasks` })
  const replaced = new Set([failedId, ...superseded])
  for (const revised of tasks) {
    for (const dependency of revised.dependsOn) {
      if (replaced.has(dependency)) {
        return new InvalidPlan({
          reason: `revised task ${revised.id} depends on task ${dependency}, which the revision replaces`
        })
      }
    }
  }
  const valid = Graph.validate([...state.tasks, ...tasks])
  return Either.isLeft(valid) ? valid.left : undefined
}

const skipReplan = (state: PlannerState, command: SkipReplan): Decided =>
  Either.flatMap(pendingReplan(state, command.taskId, "skip its replan"), (current) => {
    if (current === undefined) return none
    return run(state, (decision) => {
      decision.emit(new ReplanSkipped({ taskId: current.id, reason: command.reason, at: command.at }))
      skipDependents(decision, current.id, command.at)
      return step(decision, command.at)
    })
  })

// --- Moving the plan forward --------------------------------------------------------------------------------------

/**
 * Dispatches what can run (ready tasks and due retries, lowest ids first, within `maxParallel`), asks the questions
 * of ready Clarification tasks, and ends the plan once every task is final.
 */
const step = (decision: Decision, at: Timestamp): undefined => {
  if (decision.state.status !== "Running") return undefined
  const { maxParallel } = decision.state.config
  const { counts } = decision.state.index
  let inFlight = counts.Dispatched + counts.Running
  // The list as it was: dispatching takes tasks off it (and nothing done here makes another task ready). When
  // `maxParallel` leaves fewer slots than there are ready tasks, the critical path and the longest chains go first.
  const ready = decision.state.index.ready
  const order =
    ready.length > maxParallel - inFlight ? Graph.orderReady(ready, prioritiesOf(decision.state)) : [...ready]
  for (const id of order) {
    const current = task(decision.state, id)
    if (current === undefined) continue
    // On the list, a planned task has every dependency completed. A retry is dispatched at once; its job is not taken
    // before its time (`runAt`), so nobody needs a timer for it.
    const runAt = current.status === "RetryScheduled" && (current.retryAt ?? 0) > at ? current.retryAt : undefined
    if (current.kind === "Clarification" && !current.clarifications.some((c) => c.answer !== undefined)) {
      decision.emit(new ClarificationRequested({ taskId: current.id, question: current.description, at }))
      continue
    }
    if (inFlight >= maxParallel) continue
    inFlight += 1
    decision.emit(
      new TaskDispatched(
        {
          taskId: current.id,
          attempt: current.attempt + 1,
          kind: current.kind,
          description: current.description,
          clarifications: current.clarifications,
          ...(runAt === undefined ? {} : { runAt }),
          at
        },
        trusted
      )
    )
  }
  let final = 0
  for (const status of taskStatuses) if (isTerminal(status)) final += counts[status]
  // A pending replan may still add tasks: the plan does not end before it is settled.
  if (final === decision.state.tasks.length && pendingReplans(decision.state).length === 0) {
    decision.emit(
      new PlanningCompleted({
        outcome: counts.Failed > revisedCount(decision.state) ? "Failed" : "Succeeded",
        summary: summarize(decision.state),
        at
      })
    )
  }
  return undefined
}

const taskStatuses = TaskStatus.literals

/** Each plan's task priorities (critical path, longest remaining chain), computed once: keyed by its fixed graph. */
const planPriorities = new WeakMap<ReadonlyArray<ReadonlyArray<TaskId>>, ReadonlyMap<TaskId, Graph.Priority>>()
const prioritiesOf = (state: PlannerState): ReadonlyMap<TaskId, Graph.Priority> => {
  const key = state.index.dependents
  let known = planPriorities.get(key)
  if (known === undefined) {
    known = Graph.priorities(state.tasks)
    planPriorities.set(key, known)
  }
  return known
}

/** How many failed tasks were replaced by a revised plan: they no longer make the plan fail. */
const revisedCount = (state: PlannerState): number => {
  let revised = 0
  for (const replan of state.replans ?? []) if (replan.outcome === "Revised") revised += 1
  return revised
}

/** One deterministic line about how the plan went. */
const summarize = (state: PlannerState): string => {
  const counts = countByStatus(state)
  const parts = [`${counts.Completed} of ${state.tasks.length} task${state.tasks.length === 1 ? "" : "s"} completed`]
  const revised = new Set((state.replans ?? []).filter((r) => r.outcome === "Revised").map((r) => r.taskId))
  for (const current of state.tasks) {
    if (current.status === "Failed")
      parts.push(
        `task ${current.id} failed${revised.has(current.id) ? " and was replanned" : ""}: ${firstLine(current.error ?? "unknown error")}`
      )
  }
  if (counts.Skipped > 0) parts.push(`${counts.Skipped} skipped`)
  if (counts.Cancelled > 0) parts.push(`${counts.Cancelled} cancelled`)
  return `${parts.join("; ")}.`
}

const firstLine = (text: string): string => {
  const line = text.split("\n", 1)[0] ?? ""
  return line.length > 200 ? `${line.slice(0, 199)}…` : line
}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1)

/** A summary and the reason the plan ended, as one sentence more: none for a blank reason, one full stop at its end. */
const withReason = (summary: string, reason: string): string => {
  const said = reason.trim().replace(/[.\s]+$/, "")
  return said === "" ? summary : `${summary} ${capitalize(said)}.`
}

// ---------------------------------------------------------------------------------------------------------------
// Fork
// ---------------------------------------------------------------------------------------------------------------

/**
 * The events that start a fork: the source's first events as they are, `SessionForked` saying where they came from,
 * and the attempts running at that point given up (each a retryable failure, so it runs again in the fork). Pure:
 * `at` is the time of the fork, `jitters` a draw per attempt given up (see `jitteredDelay`).
 */
export const forkEvents = (
  copied: ReadonlyArray<PlannerEvent>,
  origin: { readonly fromSessionId: string; readonly atSequence: number; readonly reason: string },
  at: Timestamp,
  jitter?: number
): ReadonlyArray<PlannerEvent> => {
  const decision = new Decision(initialState)
  for (const event of copied) decision.emit(event)
  decision.emit(new SessionForked({ fromSessionId: origin.fromSessionId, atSequence: origin.atSequence, at }))
  if (!isFinished(decision.state)) {
    for (const current of [...decision.state.tasks]) {
      const now = task(decision.state, current.id)
      if (now?.status !== "Running") continue
      attemptFailed(decision, now, origin.reason, true, at, jitter)
      if (isFinished(decision.state)) break
    }
    if (!isFinished(decision.state)) step(decision, at)
  }
  return decision.events
}

// Re-exported so users of the namespace find the command and event constructors in one place.
export {
  Cancel,
  ClaimTask,
  CompactContext,
  Continue,
  ExpandTask,
  ExtendLease,
  HandleExecutorEvent,
  Initialize,
  ReleaseTask
}
