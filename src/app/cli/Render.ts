/**
 * What the commands print: task lines, a session's state, the event log, the session list, and the JSON shapes of
 * all of them. Pure functions of the state, so `show`, `replay` and the end of a run print the same way.
 */
import * as Budget from "../../domain/Budget.js"
import { defaultMaxReplans, type PlannerConfig } from "../../domain/Config.js"
import * as Edits from "../../domain/Edits.js"
import type { PlannerEvent, PlannerSource } from "../../domain/Events.js"
import * as Planner from "../../domain/Planner.js"
import type { TaskState, TaskStatus } from "../../domain/Task.js"
import type { PlannerEventRecord } from "../../infra/PlannerStore.js"
import { clip, clock, dateTime, firstLine, firstWords, isoTime, plural } from "./Output.js"

/** Short words for statuses in text; JSON keeps the planner's names. */
export const statusLabel: Readonly<Record<TaskStatus, string>> = {
  Planned: "planned",
  Dispatched: "queued",
  Running: "running",
  NeedsClarification: "waiting",
  RetryScheduled: "retrying",
  Completed: "done",
  Failed: "failed",
  Skipped: "skipped",
  Cancelled: "cancelled"
}

/** The question a task waits on, if it waits on one. */
export const pendingQuestion = (task: TaskState): string | undefined => {
  const latest = task.clarifications.at(-1)
  return task.status === "NeedsClarification" && latest !== undefined && latest.answer === undefined
    ? latest.question
    : undefined
}

const list = (ids: ReadonlyArray<number>) =>
  ids.length <= 1 ? ids.join("") : `${ids.slice(0, -1).join(", ")} and ${ids.at(-1)}`

/** One line about where a session stands. */
export const summaryOf = (state: Planner.PlannerState): string => {
  if (state.summary !== undefined) return state.summary
  if (state.status === "NotStarted") return "Not started."
  const waiting = state.tasks.filter((task) => pendingQuestion(task) !== undefined).map((task) => task.id)
  const done = Planner.countByStatus(state).Completed
  const progress = `${done} of ${plural(state.tasks.length, "task")} completed`
  if (waiting.length > 0)
    return `${progress}; waiting for answers to task${waiting.length > 1 ? "s" : ""} ${list(waiting)}.`
  return `${progress} so far.`
}

/** The status word for a session: its outcome, or Waiting / Running. */
export const sessionStatus = (state: Planner.PlannerState): string =>
  Planner.isWaiting(state) ? "Waiting" : state.status === "NotStarted" ? "Empty" : state.status

// --- Text -----------------------------------------------------------------------------------------------------------

/** Where a task stands, for the detail line under it. */
export const taskDetail = (task: TaskState): string | undefined => {
  const question = pendingQuestion(task)
  if (question !== undefined) return `asks: ${firstLine(question, 200)}`
  switch (task.status) {
    case "Completed":
      return task.result === undefined || task.result.trim() === "" ? undefined : firstLine(task.result)
    case "Failed":
    case "Skipped":
    case "Cancelled":
      return task.error === undefined ? undefined : firstLine(task.error)
    case "RetryScheduled":
      return `${task.retryAt === undefined ? "retry" : `retry at ${clock(task.retryAt)}`} after: ${firstLine(task.error ?? "an error")}`
    default:
      return undefined
  }
}

/** How much of a command's output text shows: the head and the tail of longer output, each line clipped. */
const outputHead = 8
const outputTail = 12
const outputLineWidth = 200

/**
 * The output lines of a shell step's result or error (a `ToolCall` task's text after its `$ command (exit 0, 0.1 s)`
 * line), trimmed for a terminal: blank edges dropped, long lines clipped, and for long output the first and last
 * lines with a count of those left out (`show --json` has it all). Empty for other tasks and for one-line text.
 */
export const commandOutput = (task: Pick<TaskState, "kind">, text: string | undefined): ReadonlyArray<string> => {
  if (task.kind !== "ToolCall" || text === undefined) return []
  const lines = text.replace(/\r\n?/g, "\n").split("\n").slice(1)
  while (lines.length > 0 && (lines[0] ?? "").trim() === "") lines.shift()
  while (lines.length > 0 && (lines.at(-1) ?? "").trim() === "") lines.pop()
  const clipLine = (line: string) => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: a command's escapes and control characters stay out
    const plain = line.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "").replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, "")
    return plain.length > outputLineWidth ? `${plain.slice(0, outputLineWidth - 1)}…` : plain.trimEnd()
  }
  if (lines.length <= outputHead + outputTail + 1) return lines.map(clipLine)
  const left = lines.length - outputHead - outputTail
  return [
    ...lines.slice(0, outputHead).map(clipLine),
    `… ${left} more lines …`,
    ...lines.slice(-outputTail).map(clipLine)
  ]
}

/** The output lines of a task's result (or error), indented under it; see `commandOutput`. */
export const taskOutputLines = (task: TaskState, indent = " ".repeat(18)): ReadonlyArray<string> => {
  const text = task.status === "Completed" ? task.result : (task.error ?? task.result)
  return commandOutput(task, text).map((line) => `${indent}${line}`)
}

/** A task as two lines: its status, kind and description; then its result, error or question. */
export const taskLines = (task: TaskState): ReadonlyArray<string> => {
  const notes: Array<string> = []
  if (task.dependsOn.length > 0) notes.push(`after ${task.dependsOn.join(", ")}`)
  if (task.attempt > 1) notes.push(`attempt ${task.attempt}`)
  const head = `${String(task.id).padStart(3)}. ${statusLabel[task.status].padEnd(9)} [${task.kind}] ${task.description}${
    notes.length > 0 ? `  (${notes.join("; ")})` : ""
  }`
  const detail = taskDetail(task)
  return detail === undefined ? [head] : [head, `${" ".repeat(16)}${detail}`, ...taskOutputLines(task)]
}

export interface SessionHeader {
  readonly sessionId: string
  readonly createdAt?: number
  readonly events?: number
  readonly forkedFrom?: ForkOrigin
  /** For `replay`: the event the state is shown after. */
  readonly at?: { readonly sequence: number; readonly record: PlannerEventRecord | undefined }
  /** A root with sub-plans: what the whole tree spent against the root's budget (see `SubPlans.treeSpend`). */
  readonly tree?: { readonly budget: Budget.BudgetState; readonly subPlans: number }
  /** Its events were pruned (`planner prune`): `events` is how many it had. */
  readonly pruned?: true
  /** Running, but no worker serves it (see `HeldAttempts.isStalled`): the command that goes on with it. */
  readonly stalled?: { readonly resume: string }
}

export interface ForkOrigin {
  readonly sessionId: string
  readonly sequence: number
}

/** Where a plan came from, as `show` and the history say it (the dashboard's session.js says it the same way). */
export const describeSource = (source: PlannerSource): string => {
  switch (source._tag) {
    case "Parser":
      return "planned by the parser"
    case "Llm":
      return `planned by ${source.model}`
    case "PlanFile":
      return source.path === "-" ? "planned from a plan file on standard input" : `planned from the file ${source.path}`
  }
}

const sourceText = (state: Planner.PlannerState): string | undefined => {
  const source = state.source
  if (source === undefined) return undefined
  return describeSource(source)
}

/** A whole session as text: header, request, tasks, summary. */
export const stateText = (
  state: Planner.PlannerState,
  header: SessionHeader,
  /** Lines to print under a task (its sub-plan's tasks, see `TreeRender`). */
  under?: (task: TaskState) => ReadonlyArray<string>
): string => {
  const lines: Array<string> = []
  const at = header.at
  lines.push(
    at === undefined
      ? `Session ${header.sessionId}: ${header.stalled === undefined ? sessionStatus(state) : "Stalled"}`
      : `Session ${header.sessionId} as it was after event ${at.sequence}${
          header.events === undefined ? "" : ` of ${header.events}`
        }: ${sessionStatus(state)}`
  )
  if (at?.record !== undefined) {
    lines.push(
      `Event ${at.sequence}: ${at.record.event._tag} at ${dateTime(at.record.createdAt)}, ${gist(at.record.event)}`
    )
  }
  lines.push(`Request: ${clip(state.request, 300)}`)
  const facts: Array<string> = []
  if (state.startedAt !== undefined) facts.push(`started ${dateTime(state.startedAt)}`)
  if (state.finishedAt !== undefined) facts.push(`finished ${dateTime(state.finishedAt)}`)
  if (header.events !== undefined && at === undefined) {
    facts.push(
      header.pruned === true
        ? `its ${plural(header.events, "event")} pruned (only the final state is kept)`
        : plural(header.events, "event")
    )
  }
  const source = sourceText(state)
  if (source !== undefined) facts.push(source)
  if (facts.length > 0) lines.push(capitalize(facts.join("; ")))
  if (header.forkedFrom !== undefined) {
    lines.push(`Forked from session ${header.forkedFrom.sessionId} at event ${header.forkedFrom.sequence}`)
  }
  if (state.attachments.length > 0) {
    lines.push(`Attachments: ${state.attachments.map((a) => `${a.kind} ${a.value}`).join(", ")}`)
  }
  if (state.status !== "NotStarted") lines.push(...settingsLines(state.config))
  if (state.budget !== undefined) lines.push(`Model spend: ${Budget.describe(state.budget)}`)
  if (header.tree !== undefined) {
    const count = `${header.tree.subPlans} sub-plan${header.tree.subPlans === 1 ? "" : "s"}`
    lines.push(`Tree spend (this session and its ${count}): ${Budget.describe(header.tree.budget)}`)
  }
  lines.push("")
  for (const task of state.tasks) lines.push(...taskLines(task), ...(under?.(task) ?? []))
  lines.push("")
  lines.push(summaryOf(state))
  if (header.stalled !== undefined) {
    lines.push(
      `No worker is running its tasks (its run was stopped, or no worker serves it). Go on with: ${header.stalled.resume}`
    )
  }
  return lines.join("\n")
}

/** The settings a plan was recorded with: how it runs, and how its context is compacted. */
export const settingsLines = (config: PlannerConfig): ReadonlyArray<string> => [
  `Settings: max parallel ${config.maxParallel}, max attempts ${config.maxAttempts}, on failure ${config.onFailure}${config.onFailure === "replan" ? ` (max replans ${config.maxReplans ?? defaultMaxReplans})` : ""}`,
  `Compaction: token budget ${config.tokenBudget}, profile ${config.profile}, error char limit ${config.errorCharLimit}`,
  `System prompt: ${config.systemPrompt.trim() === "" ? "(none)" : clip(config.systemPrompt, 200)}`
]

const capitalize = (text: string) => text.charAt(0).toUpperCase() + text.slice(1)

/** One line about an event, for the history. */
export const gist = (event: PlannerEvent): string => {
  switch (event._tag) {
    case "TasksPlanned":
      return `${plural(event.tasks.length, "task")} ${describeSource(event.source)}: ${clip(event.request, 60)}`
    case "TaskDispatched":
      return `task ${event.taskId} attempt ${event.attempt} dispatched (${event.kind})`
    case "TaskClaimed":
      return `task ${event.taskId} attempt ${event.attempt} claimed by ${event.workerId}`
    case "TaskLeaseExtended":
      return `task ${event.taskId} lease extended to ${clock(event.leaseExpiresAt)}`
    case "TaskReleased":
      return `task ${event.taskId} attempt ${event.attempt} released by ${event.workerId}`
    case "TaskStatusUpdated": {
      const text = event.result ?? event.error
      return `task ${event.taskId} ${event.status.toLowerCase()}${text === undefined ? "" : `: ${clip(text, 100)}`}`
    }
    case "TaskRetryScheduled":
      return `task ${event.taskId} attempt ${event.attempt} failed, retry at ${clock(event.retryAt)}: ${clip(event.error, 80)}`
    case "ClarificationRequested":
      return `task ${event.taskId} asks: ${clip(event.question, 100)}`
    case "ClarificationReceived":
      return `task ${event.taskId} answered: ${clip(event.answer, 100)}`
    case "ContextCompacted":
      return `context compacted: task${event.removedTaskIds.length === 1 ? "" : "s"} ${event.removedTaskIds.join(", ")} folded into the summary`
    case "PlanningCompleted":
      return `plan ${event.outcome.toLowerCase()}: ${clip(event.summary, 100)}`
    case "TaskExpanded":
      return `task ${event.taskId} expanded into sub-plan ${event.childSessionId}`
    case "SessionForked":
      return `forked from session ${event.fromSessionId} at event ${event.atSequence}${event.reused === undefined ? "" : `, reusing ${event.reused.length} completed task${event.reused.length === 1 ? "" : "s"}`}`
    case "PlanEdited":
      return Edits.gist(event)
    case "ReplanRequested":
      return `task ${event.taskId} failed for good: a revised plan is wanted`
    case "TaskReplanned":
      return `task ${event.taskId} replanned (${describeSource(event.source)}): new task${event.tasks.length === 1 ? "" : "s"} ${event.tasks.map((t) => t.id).join(", ")}${event.supersededTaskIds.length === 0 ? "" : ` replacing ${event.supersededTaskIds.join(", ")}`}`
    case "ReplanSkipped":
      return `task ${event.taskId} not replanned, continuing without it: ${clip(event.reason, 100)}`
    case "ModelUsageRecorded":
      return Budget.usageGist(event.usage)
    case "BudgetRaised":
      return `budget raised by ${Budget.formatAmount(event.unit, event.by)} to ${Budget.formatAmount(event.unit, event.limit)}${event.taskId === undefined ? "" : ` (task ${event.taskId})`}`
  }
}

/** `total`: how many events the log holds, when only the first `records` of them could be read. */
export const historyText = (
  sessionId: string,
  records: ReadonlyArray<PlannerEventRecord>,
  total: number = records.length
): string => {
  const width = String(records.length).length
  const typeWidth = Math.max(4, ...records.map((record) => record.event._tag.length))
  const count =
    total > records.length ? `the first ${records.length} of ${total} events can be read` : `${records.length} events`
  const lines = [`Session ${sessionId}: ${count}`, ""]
  lines.push(`${"SEQ".padStart(Math.max(3, width))}  ${"TIME".padEnd(19)}  ${"TYPE".padEnd(typeWidth)}  WHAT`)
  for (const record of records) {
    lines.push(
      `${String(record.sequence).padStart(Math.max(3, width))}  ${dateTime(record.createdAt)}  ${record.event._tag.padEnd(typeWidth)}  ${gist(record.event)}`
    )
  }
  return lines.join("\n")
}

export interface SessionRow {
  readonly sessionId: string
  readonly createdAt: number
  readonly updatedAt: number
  readonly events: number
  /** Undefined when the session's events cannot be read. */
  readonly state: Planner.PlannerState | undefined
  readonly problem?: string
  /** Running, but no worker serves it (see `HeldAttempts.isStalled`). */
  readonly stalled?: boolean
  /** Its events were pruned: only its final state is kept (`planner prune`). */
  readonly pruned?: true
}

/** "3/4 done, 1 waiting". */
export const taskCounts = (state: Planner.PlannerState): string => {
  const counts = Planner.countByStatus(state)
  const parts = [`${counts.Completed}/${state.tasks.length} done`]
  const extra: ReadonlyArray<[TaskStatus, string]> = [
    ["Running", "running"],
    ["NeedsClarification", "waiting"],
    ["RetryScheduled", "retrying"],
    ["Failed", "failed"],
    ["Skipped", "skipped"],
    ["Cancelled", "cancelled"]
  ]
  for (const [status, word] of extra) if (counts[status] > 0) parts.push(`${counts[status]} ${word}`)
  return parts.join(", ")
}

export const sessionsText = (rows: ReadonlyArray<SessionRow>): string => {
  const cells = rows.map((row) => [
    row.sessionId,
    dateTime(row.createdAt),
    row.state === undefined
      ? `Unreadable${row.pruned === true ? " (pruned)" : ""}`
      : row.stalled === true
        ? "Stalled"
        : `${sessionStatus(row.state)}${row.pruned === true ? " (pruned)" : ""}`,
    row.state === undefined ? (row.problem ?? "") : taskCounts(row.state),
    row.state === undefined ? "" : firstWords(row.state.request)
  ])
  const header = ["SESSION", "CREATED", "STATUS", "TASKS", "REQUEST"]
  const widths = header.map((title, column) =>
    Math.max(title.length, ...cells.map((row) => (row[column] ?? "").length))
  )
  const format = (row: ReadonlyArray<string>) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join("  ")
      .trimEnd()
  return [format(header), ...cells.map(format)].join("\n")
}

// --- JSON -----------------------------------------------------------------------------------------------------------

export interface TaskJson {
  readonly id: number
  readonly description: string
  readonly kind: string
  readonly status: TaskStatus
  readonly attempts: number
  /** The worker running it (a running task). */
  readonly worker?: string
  readonly result?: string
  readonly error?: string
  readonly question?: string
}

export const taskJson = (task: TaskState): TaskJson => {
  const question = pendingQuestion(task)
  return {
    id: task.id,
    description: task.description,
    kind: task.kind,
    status: task.status,
    attempts: task.attempt,
    ...(task.status === "Running" && task.lease !== undefined ? { worker: task.lease.workerId } : {}),
    ...(task.result === undefined ? {} : { result: task.result }),
    ...(task.error === undefined || task.status === "Completed" ? {} : { error: task.error }),
    ...(question === undefined ? {} : { question })
  }
}

/** The object `run`, `answer`, `resume` and `fork` print with `--json`. */
export const resultJson = (sessionId: string, state: Planner.PlannerState) => ({
  sessionId,
  status: state.status,
  waiting: Planner.isWaiting(state),
  tasks: state.tasks.map(taskJson),
  summary: summaryOf(state),
  ...(state.budget === undefined ? {} : { budget: budgetJson(state.budget) })
})

/** The budget and the spend (see `Budget`), with the spend's total in tokens. */
export const budgetJson = (budget: Budget.BudgetState) => ({
  ...budget,
  spentTokens: Budget.totalTokens(budget.spent)
})

/** `show` and `replay`: the same, with what the session is and where it came from. */
export const stateJson = (state: Planner.PlannerState, header: SessionHeader) => ({
  ...resultJson(header.sessionId, state),
  request: state.request,
  attachments: state.attachments,
  version: state.version,
  ...(header.at === undefined ? {} : { at: header.at.sequence }),
  ...(header.events === undefined ? {} : { events: header.events }),
  ...(state.startedAt === undefined ? {} : { startedAt: isoTime(state.startedAt) }),
  ...(state.finishedAt === undefined ? {} : { finishedAt: isoTime(state.finishedAt) }),
  ...(state.source === undefined ? {} : { source: state.source }),
  ...(header.forkedFrom === undefined ? {} : { forkedFrom: header.forkedFrom }),
  ...(state.status === "NotStarted" ? {} : { config: state.config }),
  ...(header.tree === undefined
    ? {}
    : { treeBudget: { ...budgetJson(header.tree.budget), subPlans: header.tree.subPlans } }),
  ...(header.stalled === undefined ? {} : { stalled: true, resume: header.stalled.resume }),
  ...(header.pruned === true ? { pruned: true } : {})
})

export const historyJson = (sessionId: string, records: ReadonlyArray<PlannerEventRecord>) => ({
  sessionId,
  events: records.map((record) => ({
    sequence: record.sequence,
    position: record.position,
    time: isoTime(record.createdAt),
    type: record.event._tag,
    gist: gist(record.event),
    data: record.event,
    metadata: record.metadata
  }))
})

/** `sessions --json`: one page of the list, with how many sessions there are in all. */
export const sessionsJson = (
  rows: ReadonlyArray<SessionRow>,
  range: { readonly total: number; readonly limit: number; readonly offset: number }
) => ({
  total: range.total,
  offset: range.offset,
  limit: range.limit,
  sessions: rows.map((row) => ({
    sessionId: row.sessionId,
    createdAt: isoTime(row.createdAt),
    updatedAt: isoTime(row.updatedAt),
    events: row.events,
    status: row.state === undefined ? "Unreadable" : row.state.status,
    waiting: row.state === undefined ? false : Planner.isWaiting(row.state),
    ...(row.stalled === true ? { stalled: true } : {}),
    ...(row.pruned === true ? { pruned: true } : {}),
    tasks: row.state === undefined ? {} : { total: row.state.tasks.length, ...Planner.countByStatus(row.state) },
    request: row.state?.request ?? "",
    ...(row.problem === undefined ? {} : { problem: row.problem })
  }))
})
