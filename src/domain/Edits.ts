/**
 * Plan edits and incremental forks: what an edit does to a plan, when it is refused, which tasks it reaches, and what
 * a fork reuses. Pure, like the rest of the domain; `Planner` calls it from `decide` (commands `EditPlan`,
 * `ForkSession`) and from `evolve` (events `PlanEdited`, `SessionForked`).
 *
 * A live session may only change what has not started: a task is editable while it is `Planned` (it has no job and
 * nobody runs it). A fork starts from a plan in which nothing has run yet, so there every task may be edited; the
 * fork then reuses the results of the completed tasks that no edit reaches, and runs the rest: the edited tasks, what
 * is downstream of them, and what had not completed in the source.
 *
 * A fork also carries what its source had at the fork point (`ForkPlan.carried`, `ForkPlan.expanded`): the spend on
 * models and the raised limits (so a budget is not reset by forking), the compacted context when every task it folded
 * in is reused, and the sub-plans: a task the source had expanded that the fork runs is expanded again, into the
 * fork's own child. A replan pending at the fork point is not carried: its failed task simply runs again in the fork
 * (and, under `onFailure: "replan"`, is replanned there if it fails again).
 */
import { Either } from "effect"
import {
  EditCreatesCycle,
  InvalidEdit,
  type PlannerError,
  SessionNotStarted,
  TaskHasDependents,
  TaskNotEditable,
  UnknownTask
} from "./Errors.js"
import {
  BudgetRaised,
  ContextCompacted,
  ModelUsageRecorded,
  PlanEdited,
  type PlannerEvent,
  SessionForked,
  TaskExpanded,
  TaskStatusUpdated,
  TasksPlanned
} from "./Events.js"
import * as Graph from "./Graph.js"
import type { AddTask, EditSource, PlanEdit, ReusedTask } from "./PlanEdit.js"
import type { PlannerState } from "./Planner.js"
import { childSessionId } from "./SubPlans.js"
import {
  attachmentFromText,
  type Clarification,
  isTerminal,
  type TaskId,
  type TaskState,
  type Timestamp
} from "./Task.js"

/** What a removed task records as its error. */
export const removedNote = "removed from the plan"

/** Whether a live edit may change the task: it has not started and is still in the plan. */
export const isEditable = (task: TaskState): boolean => task.status === "Planned" && task.removed !== true

// ---------------------------------------------------------------------------------------------------------------
// Applying edits (evolve): total, never fails
// ---------------------------------------------------------------------------------------------------------------

const modify = (tasks: Array<TaskState>, id: TaskId, change: (task: TaskState) => TaskState): void => {
  const before = tasks[id - 1]
  if (before !== undefined) tasks[id - 1] = change(before)
}

const withoutDuplicates = (ids: ReadonlyArray<TaskId>): Array<TaskId> => [...new Set(ids)]

const applyEdit = (tasks: Array<TaskState>, edit: PlanEdit): void => {
  switch (edit._tag) {
    case "AddTask": {
      const id = edit.id ?? tasks.length + 1
      // `decide` only records the next id; anything else in a foreign log changes nothing.
      if (id !== tasks.length + 1) return
      tasks.push({
        id,
        description: edit.description,
        kind: edit.kind,
        dependsOn: edit.dependsOn,
        attachments: edit.attachments,
        status: "Planned",
        attempt: 0,
        failures: 0,
        clarifications: [],
        compacted: false
      })
      for (const dependent of edit.dependents) {
        modify(tasks, dependent, (task) =>
          task.dependsOn.includes(id) ? task : { ...task, dependsOn: [...task.dependsOn, id] }
        )
      }
      return
    }
    case "SetTask":
      modify(tasks, edit.taskId, (task) => ({
        ...task,
        ...(edit.description === undefined ? {} : { description: edit.description }),
        ...(edit.kind === undefined ? {} : { kind: edit.kind }),
        ...(edit.attachments === undefined ? {} : { attachments: edit.attachments })
      }))
      return
    case "RemoveTask": {
      const removed = tasks[edit.taskId - 1]
      if (removed === undefined) return
      if (edit.rewire) {
        for (const current of tasks) {
          if (current.id === removed.id || !current.dependsOn.includes(removed.id)) continue
          modify(tasks, current.id, (task) => ({
            ...task,
            dependsOn: withoutDuplicates(
              task.dependsOn.flatMap((dep) => (dep === removed.id ? removed.dependsOn : [dep]))
            ).filter((dep) => dep !== task.id)
          }))
        }
      }
      const { lease: _lease, retryAt: _retryAt, ...rest } = removed
      tasks[edit.taskId - 1] = { ...rest, status: "Cancelled", removed: true, error: removedNote }
      return
    }
    case "SetDependencies":
      modify(tasks, edit.taskId, (task) => ({ ...task, dependsOn: edit.dependsOn }))
      return
    case "SetAnswer":
      modify(tasks, edit.taskId, (task) => {
        const index = edit.index ?? lastAnswered(task)
        const asked = index === undefined ? undefined : task.clarifications[index]
        if (index === undefined || asked === undefined) return task
        const clarifications = task.clarifications.map((c, at) => (at === index ? { ...c, answer: edit.answer } : c))
        // The old answer had replaced the attachment the question was about; the new one replaces it in turn.
        const was = asked.attachment === undefined || asked.answer === undefined ? undefined : asked.answer
        const old = was === undefined ? undefined : attachmentFromText(was)
        const attachments =
          old === undefined
            ? task.attachments
            : task.attachments.map((a) =>
                a.kind === old.kind && a.value === old.value ? attachmentFromText(edit.answer) : a
              )
        return { ...task, clarifications, attachments }
      })
      return
  }
}

/** The tasks after a batch of edits, applied in order. */
export const applyEdits = (tasks: ReadonlyArray<TaskState>, edits: ReadonlyArray<PlanEdit>): Array<TaskState> => {
  const next = [...tasks]
  for (const edit of edits) applyEdit(next, edit)
  return next
}

const lastAnswered = (task: TaskState): number | undefined => {
  for (let index = task.clarifications.length - 1; index >= 0; index--) {
    if (task.clarifications[index]?.answer !== undefined) return index
  }
  return undefined
}

/** The tasks after a fork's `SessionForked`: the reused results, the removed tasks, the answers carried over. */
export const applyForked = (tasks: ReadonlyArray<TaskState>, event: SessionForked): Array<TaskState> => {
  const next = [...tasks]
  for (const carried of event.clarifications ?? []) {
    modify(next, carried.taskId, (task) => ({ ...task, clarifications: carried.clarifications }))
  }
  for (const reused of event.reused ?? []) {
    modify(next, reused.taskId, (task) => ({
      ...task,
      status: "Completed",
      attempt: reused.attempt,
      result: reused.result
    }))
  }
  for (const id of event.removed ?? []) {
    modify(next, id, (task) => ({ ...task, status: "Cancelled", removed: true, error: removedNote }))
  }
  return next
}

/** Whether `SessionForked` carries an incremental fork's tasks (a copy fork's carries none). */
export const changesTasks = (event: SessionForked): boolean =>
  event.reused !== undefined || event.removed !== undefined || event.clarifications !== undefined

// ---------------------------------------------------------------------------------------------------------------
// Deciding edits
// ---------------------------------------------------------------------------------------------------------------

/** A batch of edits as decided: filled in (ids, indexes), and the tasks it reaches directly. */
export interface DecidedEdits {
  readonly edits: ReadonlyArray<PlanEdit>
  readonly reached: ReadonlySet<TaskId>
  readonly tasks: ReadonlyArray<TaskState>
}

const refuse = (reason: string) => new InvalidEdit({ reason })

/** The task `id` as a target of an edit: it exists, is still in the plan, and (for a change) has not started. */
const target = (tasks: ReadonlyArray<TaskState>, id: TaskId): PlannerError | TaskState => {
  const current = tasks[id - 1]
  if (current === undefined) return new UnknownTask({ taskId: id })
  if (current.removed === true) return refuse(`task ${id} was removed from the plan`)
  if (!isEditable(current)) return new TaskNotEditable({ taskId: id, status: current.status })
  return current
}

/** Checks the dependencies a task would have: existing, not itself, each once, each able to complete. */
const checkDependencies = (
  tasks: ReadonlyArray<TaskState>,
  id: TaskId,
  dependsOn: ReadonlyArray<TaskId>
): PlannerError | undefined => {
  const seen = new Set<TaskId>()
  for (const dep of dependsOn) {
    if (dep === id) return refuse(`task ${id} cannot depend on itself`)
    if (seen.has(dep)) return refuse(`task ${id} lists task ${dep} twice`)
    seen.add(dep)
    const dependency = tasks[dep - 1]
    if (dependency === undefined) return new UnknownTask({ taskId: dep })
    if (dependency.removed === true) return refuse(`task ${id} cannot depend on task ${dep}: it was removed`)
    if (isTerminal(dependency.status) && dependency.status !== "Completed") {
      return refuse(`task ${id} cannot depend on task ${dep}: it is ${dependency.status} and will never complete`)
    }
  }
  return undefined
}

const isError = (value: PlannerError | TaskState): value is PlannerError => "_tag" in value

/** Checks one edit against the tasks so far; the edit filled in, and the tasks it reaches, or why it is refused. */
const checkEdit = (
  tasks: ReadonlyArray<TaskState>,
  edit: PlanEdit
): Either.Either<{ readonly edit: PlanEdit; readonly reached: ReadonlyArray<TaskId> }, PlannerError> => {
  switch (edit._tag) {
    case "AddTask": {
      const next = tasks.length + 1
      if (edit.id !== undefined && edit.id !== next) {
        return Either.left(refuse(`a new task takes the next id, ${next}, not ${edit.id}`))
      }
      if (next > Graph.MAX_TASKS) return Either.left(refuse(`a plan has at most ${Graph.MAX_TASKS} tasks`))
      const refused = checkDependencies(tasks, next, edit.dependsOn)
      if (refused !== undefined) return Either.left(refused)
      for (const dependent of withoutDuplicates(edit.dependents)) {
        const found = target(tasks, dependent)
        if (isError(found)) return Either.left(found)
      }
      const filled: AddTask = { ...edit, id: next, dependents: withoutDuplicates(edit.dependents) }
      return Either.right({ edit: filled, reached: [next, ...filled.dependents] })
    }
    case "SetTask": {
      const found = target(tasks, edit.taskId)
      if (isError(found)) return Either.left(found)
      if (edit.description === undefined && edit.kind === undefined && edit.attachments === undefined) {
        return Either.left(refuse(`the change of task ${edit.taskId} names nothing to change`))
      }
      return Either.right({ edit, reached: [edit.taskId] })
    }
    case "RemoveTask": {
      const found = target(tasks, edit.taskId)
      if (isError(found)) return Either.left(found)
      const dependents = tasks.filter((t) => t.removed !== true && t.dependsOn.includes(edit.taskId)).map((t) => t.id)
      if (edit.rewire) {
        for (const dependent of dependents) {
          const other = target(tasks, dependent)
          if (isError(other)) return Either.left(other)
        }
      }
      return Either.right({ edit, reached: [edit.taskId, ...(edit.rewire ? dependents : [])] })
    }
    case "SetDependencies": {
      const found = target(tasks, edit.taskId)
      if (isError(found)) return Either.left(found)
      const refused = checkDependencies(tasks, edit.taskId, edit.dependsOn)
      return refused === undefined ? Either.right({ edit, reached: [edit.taskId] }) : Either.left(refused)
    }
    case "SetAnswer": {
      const found = target(tasks, edit.taskId)
      if (isError(found)) return Either.left(found)
      const index = edit.index ?? lastAnswered(found)
      if (index === undefined) return Either.left(refuse(`task ${edit.taskId} has no answered question to change`))
      if (found.clarifications[index]?.answer === undefined) {
        return Either.left(refuse(`task ${edit.taskId} has no answered question number ${index + 1}`))
      }
      return Either.right({ edit: { ...edit, index }, reached: [edit.taskId] })
    }
  }
}

/**
 * Decides a batch of edits on `tasks`: each is checked against the plan the previous ones left, and the batch as a
 * whole must leave a plan that can run: no task still in it depends on a removed one, and there is no cycle. All or
 * nothing.
 */
export const decideEdits = (
  tasks: ReadonlyArray<TaskState>,
  edits: ReadonlyArray<PlanEdit>
): Either.Either<DecidedEdits, PlannerError> => {
  if (edits.length === 0) return Either.left(refuse("there are no edits"))
  const working = [...tasks]
  const filled: Array<PlanEdit> = []
  const reached = new Set<TaskId>()
  for (const edit of edits) {
    const checked = checkEdit(working, edit)
    if (Either.isLeft(checked)) return Either.left(checked.left)
    filled.push(checked.right.edit)
    for (const id of checked.right.reached) reached.add(id)
    applyEdit(working, checked.right.edit)
  }
  for (const current of working) {
    if (current.removed !== true) continue
    const dependents = working
      .filter((t) => t.removed !== true && !isTerminal(t.status) && t.dependsOn.includes(current.id))
      .map((t) => t.id)
    if (dependents.length > 0) return Either.left(new TaskHasDependents({ taskId: current.id, dependents }))
  }
  const cycle = Graph.findCycle(working.filter((t) => t.removed !== true))
  if (cycle !== undefined) return Either.left(new EditCreatesCycle({ cycle: [...cycle] }))
  return Either.right({ edits: filled, reached, tasks: working })
}

/**
 * The tasks downstream of `seeds`, the seeds included, following the dependencies of both `before` and `after` (an
 * edit may have cut an edge: what depended on a task before the edit is still reached by it). In id order.
 */
export const downstream = (
  seeds: Iterable<TaskId>,
  before: ReadonlyArray<TaskState>,
  after: ReadonlyArray<TaskState> = before
): ReadonlyArray<TaskId> => {
  const dependents = new Map<TaskId, Array<TaskId>>()
  for (const tasks of [before, after]) {
    for (const current of tasks) {
      for (const dep of current.dependsOn) {
        const known = dependents.get(dep) ?? []
        known.push(current.id)
        dependents.set(dep, known)
      }
    }
  }
  const found = new Set<TaskId>()
  const queue = [...seeds]
  while (queue.length > 0) {
    const id = queue.pop()
    if (id === undefined || found.has(id)) continue
    found.add(id)
    for (const next of dependents.get(id) ?? []) if (!found.has(next)) queue.push(next)
  }
  return [...found].sort((a, b) => a - b)
}

// ---------------------------------------------------------------------------------------------------------------
// Incremental fork
// ---------------------------------------------------------------------------------------------------------------

export interface ForkRequest {
  readonly fromSessionId: string
  /** The last source event the fork starts from. */
  readonly atSequence: number
  readonly edits: ReadonlyArray<PlanEdit>
  readonly editSource: EditSource
  /** Tasks to run again although no edit reaches them (`planner rerun --task N`), with what is downstream. */
  readonly rerun: ReadonlyArray<TaskId>
  readonly at: Timestamp
  /**
   * The fork's own session id, which names the children of its expanded tasks (`INTO~TASK`). Without it an expanded
   * task of the source is not expanded in the fork.
   */
  readonly intoSessionId?: string | undefined
}

/** What an incremental fork records, and which tasks it reuses and runs. */
export interface ForkPlan {
  readonly planned: TasksPlanned
  readonly forked: SessionForked
  readonly edited: PlanEdited | undefined
  /**
   * What the fork carries over from the source at the fork point, recorded right after `forked`: the spend on models
   * (one `ModelUsageRecorded` with every call the source had recorded, so the spend is still the sum of the usage
   * events), the raises of the budget's limits, and the compacted context when every task it folded in is reused.
   */
  readonly carried: ReadonlyArray<ModelUsageRecorded | BudgetRaised | ContextCompacted>
  /** The tasks the source had expanded into a sub-plan that the fork runs: expanded again, into `INTO~TASK`. */
  readonly expanded: ReadonlyArray<TaskExpanded>
  /** Completed in the source and taken over. */
  readonly reused: ReadonlyArray<TaskId>
  /** Completed in the source and run again: the completed tasks an edit or a re-run reaches, or downstream of one. */
  readonly rerun: ReadonlyArray<TaskId>
  /** Every task the fork runs: the re-run ones, what had not completed in the source, and added tasks. */
  readonly run: ReadonlyArray<TaskId>
}

/** For each completed task, the sequence (1-based, in `events`) of the last event that completed it. */
const completions = (events: ReadonlyArray<PlannerEvent>): Map<TaskId, number> => {
  const found = new Map<TaskId, number>()
  events.forEach((event, index) => {
    if (event._tag === "TaskStatusUpdated" && event.status === "Completed") found.set(event.taskId, index + 1)
    else if (event._tag === "SessionForked")
      for (const reused of event.reused ?? []) found.set(reused.taskId, index + 1)
  })
  return found
}

const answeredOnly = (clarifications: ReadonlyArray<Clarification>): ReadonlyArray<Clarification> =>
  clarifications.filter((c) => c.answer !== undefined)

/**
 * Plans an incremental fork of a session whose first `request.atSequence` events are `events` (folded: `source`).
 * The fork's plan is the source's plan at that point; its edits are decided on that plan with nothing run yet (so any
 * task may be edited), and the completed tasks that no edit or re-run reaches, nor anything upstream of them that is
 * reached, keep their results.
 */
export const planFork = (
  source: PlannerState,
  events: ReadonlyArray<PlannerEvent>,
  request: ForkRequest
): Either.Either<ForkPlan, PlannerError> => {
  if (source.status === "NotStarted") return Either.left(new SessionNotStarted())
  // Out of the fork's plan: tasks an edit removed, and those a revised plan replaced (a replan's failed task and the
  // tasks it superseded; their replacements are in the plan).
  const replaced = new Set<TaskId>()
  for (const event of events) {
    if (event._tag !== "TaskReplanned") continue
    replaced.add(event.taskId)
    for (const id of event.supersededTaskIds) replaced.add(id)
  }
  const gone = (t: TaskState): boolean => t.removed === true || replaced.has(t.id)
  const removed = source.tasks.filter(gone).map((t) => t.id)
  // The plan with nothing run: what the fork's edits are decided on.
  const fresh: Array<TaskState> = source.tasks.map((t) => ({
    id: t.id,
    description: t.description,
    kind: t.kind,
    dependsOn: t.dependsOn,
    attachments: t.attachments,
    status: gone(t) ? "Cancelled" : "Planned",
    attempt: 0,
    failures: 0,
    clarifications: answeredOnly(t.clarifications),
    compacted: false,
    ...(gone(t) ? { removed: true, error: removedNote } : {})
  }))
  for (const id of request.rerun) {
    const found = target(fresh, id)
    if (isError(found)) return Either.left(found)
  }
  const decided: Either.Either<DecidedEdits | undefined, PlannerError> =
    request.edits.length === 0 ? Either.right(undefined) : decideEdits(fresh, request.edits)
  if (Either.isLeft(decided)) return Either.left(decided.left)
  const edited = decided.right
  const after = edited?.tasks ?? fresh
  const affected = new Set(downstream([...(edited?.reached ?? []), ...request.rerun], fresh, after))
  const completedAt = completions(events)
  const reused: Array<ReusedTask> = []
  const rerun: Array<TaskId> = []
  for (const current of source.tasks) {
    if (current.status !== "Completed" || gone(current)) continue
    if (affected.has(current.id)) {
      rerun.push(current.id)
      continue
    }
    reused.push({
      taskId: current.id,
      result: current.result ?? "",
      attempt: current.attempt,
      sequence: completedAt.get(current.id) ?? request.atSequence
    })
  }
  const reusedIds = new Set(reused.map((r) => r.taskId))
  const run = after.filter((t) => t.removed !== true && !reusedIds.has(t.id)).map((t) => t.id)
  const carried = fresh
    .filter((t) => !reusedIds.has(t.id) && t.removed !== true && t.clarifications.length > 0)
    .map((t) => ({ taskId: t.id, clarifications: t.clarifications }))
  const at = request.at
  const carriedEvents = carriedFrom(source, events, reusedIds, at)
  const expanded =
    request.intoSessionId === undefined
      ? []
      : after
          .filter(
            (t) =>
              t.removed !== true &&
              !reusedIds.has(t.id) &&
              t.kind !== "Clarification" &&
              source.tasks[t.id - 1]?.childSessionId !== undefined
          )
          .map(
            (t) =>
              new TaskExpanded({
                taskId: t.id,
                childSessionId: childSessionId(request.intoSessionId ?? "", t.id),
                at
              })
          )
  return Either.right({
    planned: new TasksPlanned({
      request: source.request,
      attachments: source.attachments,
      tasks: source.tasks.map(({ attachments, dependsOn, description, id, kind }) => ({
        id,
        description,
        kind,
        dependsOn,
        attachments
      })),
      config: source.config,
      source: source.source ?? { _tag: "Parser" },
      ...(source.executor === undefined ? {} : { executor: source.executor }),
      at
    }),
    forked: new SessionForked({
      fromSessionId: request.fromSessionId,
      atSequence: request.atSequence,
      reused,
      removed,
      clarifications: carried,
      at
    }),
    edited: edited === undefined ? undefined : new PlanEdited({ edits: edited.edits, source: request.editSource, at }),
    carried: carriedEvents,
    expanded,
    reused: reused.map((r) => r.taskId),
    rerun,
    run
  })
}

/**
 * The spend, the limits and the compacted context of the source at the fork point, as events of the fork (see
 * `ForkPlan.carried`). A raise keeps its limit and amount but not its task: the fork's tasks have not asked anything.
 */
const carriedFrom = (
  source: PlannerState,
  events: ReadonlyArray<PlannerEvent>,
  reused: ReadonlySet<TaskId>,
  at: Timestamp
): Array<ModelUsageRecorded | BudgetRaised | ContextCompacted> => {
  const usage: Array<ModelUsageRecorded["usage"][number]> = []
  const raises: Array<BudgetRaised> = []
  let compaction: ContextCompacted | undefined
  for (const event of events) {
    if (event._tag === "ModelUsageRecorded") usage.push(...event.usage)
    else if (event._tag === "BudgetRaised") {
      raises.push(new BudgetRaised({ unit: event.unit, limit: event.limit, by: event.by, at }))
    } else if (event._tag === "ContextCompacted") compaction = event
  }
  const carried: Array<ModelUsageRecorded | BudgetRaised | ContextCompacted> = []
  const [first, ...more] = usage
  if (first !== undefined) carried.push(new ModelUsageRecorded({ usage: [first, ...more], at }))
  carried.push(...raises)
  const compacted = source.tasks.filter((t) => t.compacted).map((t) => t.id)
  if (
    compaction !== undefined &&
    source.contextSummary !== undefined &&
    compacted.length > 0 &&
    compacted.every((id) => reused.has(id))
  ) {
    carried.push(
      new ContextCompacted({
        summary: source.contextSummary,
        removedTaskIds: compacted,
        tokenBudget: compaction.tokenBudget,
        at
      })
    )
  }
  return carried
}

/**
 * A fork runs a Clarification task again by taking its answer (the source's, or the edited one) as its result, as
 * answering it did in the source: the events that complete the answered ones among `tasks`.
 */
export const answeredClarificationTasks = (
  tasks: ReadonlyArray<TaskState>,
  at: Timestamp
): ReadonlyArray<TaskStatusUpdated> => {
  const done: Array<TaskStatusUpdated> = []
  for (const current of tasks) {
    if (current.kind !== "Clarification" || current.status !== "Planned") continue
    const index = lastAnswered(current)
    const answer = index === undefined ? undefined : current.clarifications[index]?.answer
    if (answer === undefined) continue
    done.push(
      new TaskStatusUpdated({ taskId: current.id, status: "Completed", attempt: current.attempt, result: answer, at })
    )
  }
  return done
}

// ---------------------------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------------------------

const clip = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

/** One edit in a few words, for histories and the dashboard. */
export const describeEdit = (edit: PlanEdit): string => {
  switch (edit._tag) {
    case "AddTask": {
      const after = edit.dependsOn.length === 0 ? "" : ` after ${edit.dependsOn.join(", ")}`
      const before = edit.dependents.length === 0 ? "" : ` before ${edit.dependents.join(", ")}`
      return `add task ${edit.id ?? "(next)"}${after}${before}: ${clip(edit.description, 60)}`
    }
    case "SetTask": {
      const parts: Array<string> = []
      if (edit.description !== undefined) parts.push(`"${clip(edit.description, 60)}"`)
      if (edit.kind !== undefined) parts.push(`kind ${edit.kind}`)
      if (edit.attachments !== undefined) parts.push(`${edit.attachments.length} attachment(s)`)
      return `set task ${edit.taskId} to ${parts.join(", ")}`
    }
    case "RemoveTask":
      return `remove task ${edit.taskId}${edit.rewire ? " (its dependents take over its dependencies)" : ""}`
    case "SetDependencies":
      return `task ${edit.taskId} now depends on ${edit.dependsOn.length === 0 ? "nothing" : edit.dependsOn.join(", ")}`
    case "SetAnswer":
      return `new answer for task ${edit.taskId}: ${clip(edit.answer, 60)}`
  }
}

/** Who made an edit, in a few words. */
export const describeSource = (source: EditSource): string => {
  switch (source._tag) {
    case "User":
      return source.by === undefined ? "by the user" : `by ${source.by}`
    case "Replan":
      return `by a replan${source.taskId === undefined ? "" : ` of task ${source.taskId}`}: ${clip(source.reason, 60)}`
    case "Fork":
      return `with the fork of ${source.fromSessionId} at ${source.atSequence}`
  }
}

/** A `PlanEdited` in one line. */
export const gist = (event: PlanEdited): string =>
  `plan edited ${describeSource(event.source)}: ${event.edits.map(describeEdit).join("; ")}`
