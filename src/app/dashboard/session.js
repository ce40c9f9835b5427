/**
 * One session: its task board, live from the session's event stream, and a timeline to see the board as it was after
 * any event (time travel). The board of the past comes from the API's state-at endpoint, which folds the log on the
 * server with the planner's own `fold`, so the dashboard never reimplements the planner.
 */
import * as api from "./api.js"
import { budgetEventLabels, budgetEventText, budgetFact } from "./budget.js"
import { eventDetail } from "./detail.js"
import {
  confirmAction,
  firstLine,
  formatClock,
  formatDate,
  formatDuration,
  h,
  pill,
  progressBar,
  servedText,
  sessionStatus,
  setChildren,
  shortWorker,
  taskStatusLabels
} from "./dom.js"
import { mountPlanEditor } from "./editplan.js"
import { renderGantt } from "./gantt.js"
import { renderGraph } from "./graph.js"
import { mountLineage } from "./lineage.js"
import { clarificationFlags } from "./memory.js"
import { mountSubPlans } from "./subplans.js"
import { taskDuration, taskSegments } from "./timing.js"

const boardColumns = [
  { key: "planned", title: "Planned", statuses: ["Planned"] },
  { key: "active", title: "In progress", statuses: ["Dispatched", "Running", "RetryScheduled"] },
  { key: "waiting", title: "Needs your answer", statuses: ["NeedsClarification"] },
  { key: "done", title: "Done", statuses: ["Completed", "Failed", "Skipped", "Cancelled"] }
]

const finishedStatuses = new Set(["Succeeded", "Failed", "Cancelled"])

const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`

/** Where a plan file came from (`-` is standard input); `show` says it the same way (Render.describeSource). */
const fromPlanFile = (source) =>
  source.path === "-" ? "from a plan file on standard input" : `from the file ${source.path}`

/** Where the plan came from, as the session's header says it. */
const plannedBy = (source) => {
  if (source._tag === "Llm") return `planned by ${source.model}`
  if (source._tag === "PlanFile") return `planned ${fromPlanFile(source)}`
  return "planned by the parser"
}

const taskList = (ids) => ids.map((id) => `#${id}`).join(", ")

/** One plan edit in a few words; `planner history` says it the same way (Edits.describeEdit). */
function describeEdit(edit) {
  switch (edit._tag) {
    case "AddTask": {
      const after = edit.dependsOn.length === 0 ? "" : ` after ${taskList(edit.dependsOn)}`
      const before = edit.dependents.length === 0 ? "" : ` before ${taskList(edit.dependents)}`
      const kind = edit.kind === "Processing" ? "" : ` (${edit.kind})`
      return `add #${edit.id ?? "next"}${kind}${after}${before}: ${firstLine(edit.description, 60)}`
    }
    case "SetTask": {
      const parts = []
      if (edit.description !== undefined) parts.push(`"${firstLine(edit.description, 60)}"`)
      if (edit.kind !== undefined) parts.push(`kind ${edit.kind}`)
      if (edit.attachments !== undefined) parts.push(plural(edit.attachments.length, "attachment"))
      return `set #${edit.taskId} to ${parts.join(", ")}`
    }
    case "RemoveTask":
      return `remove #${edit.taskId}${edit.rewire ? " (its dependents take over its dependencies)" : ""}`
    case "SetDependencies":
      return `#${edit.taskId} now depends on ${edit.dependsOn.length === 0 ? "nothing" : taskList(edit.dependsOn)}`
    case "SetAnswer":
      return `new answer for #${edit.taskId}: ${firstLine(edit.answer, 60)}`
    default:
      return edit._tag
  }
}

/** Who edited the plan, in a few words (Edits.describeSource). */
function describeEditSource(source) {
  switch (source._tag) {
    case "User":
      return source.by === undefined ? "by the user" : `by ${source.by}`
    case "Replan":
      return `by a replan${source.taskId === undefined ? "" : ` of #${source.taskId}`}`
    case "Fork":
      return `by the fork of ${source.fromSessionId} at event ${source.atSequence}`
    default:
      return ""
  }
}

/** One line about an event, for the timeline. */
function describeEvent(record) {
  const data = record.data
  switch (record.type) {
    case "TasksPlanned": {
      if (data.source._tag === "PlanFile")
        return `Planned ${plural(data.tasks.length, "task")} ${fromPlanFile(data.source)}`
      const source = data.source._tag === "Llm" ? `LLM ${data.source.model}` : "the parser"
      return `Planned ${plural(data.tasks.length, "task")} with ${source}`
    }
    case "TaskDispatched":
      return `#${data.taskId} dispatched, attempt ${data.attempt}`
    case "TaskClaimed":
      return `#${data.taskId} claimed by ${shortWorker(data.workerId)}`
    case "TaskLeaseExtended":
      return `#${data.taskId} lease extended`
    case "TaskReleased":
      return `#${data.taskId} released by ${shortWorker(data.workerId)}`
    case "TaskStatusUpdated": {
      const detail = data.result ?? data.error
      return `#${data.taskId} ${data.status.toLowerCase()}${detail === undefined ? "" : `: ${firstLine(detail, 70)}`}`
    }
    case "TaskRetryScheduled":
      return `#${data.taskId} failed, retry at ${formatClock(data.retryAt)}: ${firstLine(data.error, 50)}`
    case "ClarificationRequested":
      return `#${data.taskId} asks: ${firstLine(data.question, 80)}`
    case "ClarificationReceived":
      return `#${data.taskId} answered: ${firstLine(data.answer, 80)}`
    case "ContextCompacted":
      return data.removedTaskIds.length === 0
        ? "Context summary updated"
        : `Context compacted: ${data.removedTaskIds.map((id) => `#${id}`).join(", ")}`
    case "PlanningCompleted":
      return `Plan ${data.outcome.toLowerCase()}: ${firstLine(data.summary, 80)}`
    case "SessionForked": {
      const reused =
        data.reused === undefined || data.reused.length === 0
          ? ""
          : `, reusing ${data.reused.map((task) => `#${task.taskId}`).join(", ")}`
      const removed =
        data.removed === undefined || data.removed.length === 0
          ? ""
          : `, without ${data.removed.map((id) => `#${id}`).join(", ")}`
      return `Forked from ${data.fromSessionId} at event ${data.atSequence}${reused}${removed}`
    }
    case "PlanEdited": {
      const shown = data.edits.slice(0, 3).map(describeEdit).join("; ")
      const more = data.edits.length > 3 ? `; and ${data.edits.length - 3} more` : ""
      return `Plan edited ${describeEditSource(data.source)}: ${shown}${more}`
    }
    case "ReplanRequested":
      return `#${data.taskId} failed for good: revised plan wanted`
    case "TaskReplanned": {
      const by = data.source._tag === "Llm" ? `LLM ${data.source.model}` : "the parser"
      const ids = data.tasks.map((task) => `#${task.id}`).join(", ")
      return `#${data.taskId} replanned by ${by}: ${ids}${data.supersededTaskIds.length === 0 ? "" : ` replace ${data.supersededTaskIds.map((id) => `#${id}`).join(", ")}`}`
    }
    case "ReplanSkipped":
      return `#${data.taskId} not replanned: ${firstLine(data.reason, 80)}`
    default:
      return budgetEventText(record) ?? record.type
  }
}

const eventLabels = {
  ...budgetEventLabels,
  TasksPlanned: "planned",
  TaskDispatched: "dispatched",
  TaskClaimed: "claimed",
  TaskLeaseExtended: "lease",
  TaskReleased: "released",
  TaskStatusUpdated: "status",
  TaskRetryScheduled: "retry",
  ClarificationRequested: "question",
  ClarificationReceived: "answer",
  ContextCompacted: "context",
  SessionForked: "forked",
  PlanEdited: "edited",
  ReplanRequested: "replan",
  TaskReplanned: "replanned",
  ReplanSkipped: "no replan",
  PlanningCompleted: "finished"
}

/** @param {HTMLElement} root @param {string} sessionId */
export function mountSession(root, sessionId) {
  document.title = `${sessionId} · planner`

  const model = {
    /** The latest view of the session from the API: `{ id, lastSequence, waiting, counts, state }`. */
    live: null,
    /** Every event so far, in sequence order. */
    events: [],
    /** `null` while live; otherwise the sequence whose board is shown. */
    viewing: null,
    /** Past boards by sequence. A past never changes, so they are kept. */
    past: new Map(),
    connection: "connecting",
    /** The view shown: the plan's graph, the board of cards, or the timeline of attempts. */
    view: ["graph", "board", "timeline"].includes(localStorage.getItem("planner.view"))
      ? localStorage.getItem("planner.view")
      : "graph",
    /** The task picked in the graph, shown in full beside it. */
    selectedTask: null
  }
  /** Answers being typed, by task and question, so a re-render never loses one. */
  const drafts = new Map()
  /** Cards by task id, reused while their task is unchanged, so a half-typed answer keeps its focus. */
  const cards = new Map()
  let stream = null

  // --- Layout ------------------------------------------------------------------------------------------------------

  const title = h("h1", { class: "session-title" })
  const statusSlot = h("div", { class: "status-slot" })
  const progressSlot = h("div", { class: "progress-slot" })
  const facts = h("div", { class: "facts" })
  const cancelButton = h("button", { type: "button", class: "danger", id: "cancel-plan", hidden: true }, "Cancel plan")
  const resumeButton = h(
    "button",
    {
      type: "button",
      id: "resume-plan",
      hidden: true,
      title: "Record a Continue, as `planner resume` does: ready tasks and due retries are dispatched"
    },
    "Resume"
  )
  const forkButton = h("button", { type: "button", id: "fork-plan" }, "Fork")
  // #15: the edit form on planned tasks (editplan.js).
  const planEditor = mountPlanEditor({
    sessionId,
    onEdited: (view, count) => {
      acceptLive(view)
      said(`Edited the plan: ${count} edit${count === 1 ? "" : "s"} recorded.`)
    }
  })
  const actionStatus = h("p", { class: "action-status", id: "action-status", role: "status", hidden: true })
  const servedSlot = h("div", { class: "served", id: "served", role: "status" })
  const head = h(
    "section",
    { class: "session-head panel" },
    h("nav", { class: "crumbs" }, h("a", { href: "/" }, "Sessions"), " / ", h("code", null, sessionId)),
    title,
    h(
      "div",
      { class: "head-row" },
      statusSlot,
      progressSlot,
      facts,
      h("div", { class: "spacer" }),
      h(
        "div",
        { class: "actions", role: "group", "aria-label": "Act on this session" },
        resumeButton,
        planEditor.button,
        forkButton,
        cancelButton
      )
    ),
    servedSlot,
    actionStatus,
    planEditor.panel
  )

  const slider = h("input", {
    type: "range",
    id: "timeline-slider",
    min: 1,
    max: 1,
    value: 1,
    step: 1,
    "aria-label": "Event in the session's history"
  })
  const stepButton = (id, label, text) =>
    h("button", { type: "button", class: "step", id, title: label, "aria-label": label }, text)
  const firstButton = stepButton("step-first", "First event", "«")
  const previousButton = stepButton("step-back", "Previous event", "‹")
  const nextButton = stepButton("step-forward", "Next event", "›")
  const positionLabel = h("div", { class: "position", id: "timeline-position", "aria-live": "polite" })
  const liveDot = h("span", { class: "live-dot" })
  const liveButton = h(
    "button",
    { type: "button", id: "go-live", class: "live-button" },
    liveDot,
    h("span", { class: "live-text" }, "Live")
  )
  const timeline = h(
    "section",
    { class: "timeline panel" },
    h("div", { class: "steps" }, firstButton, previousButton, nextButton),
    h("div", { class: "slider-wrap" }, slider, positionLabel),
    liveButton
  )

  const bannerText = h("span")
  const banner = h(
    "div",
    { class: "banner", id: "time-travel-banner", hidden: true, role: "status" },
    h("span", { class: "banner-icon", "aria-hidden": "true" }, "⟲"),
    bannerText,
    h("button", { type: "button", class: "link-button", onclick: () => goLive() }, "Back to live")
  )

  const columnLists = new Map()
  const columnCounts = new Map()
  const columnElements = new Map()
  const wideScreen = window.matchMedia("(min-width: 1100px)")
  wideScreen.addEventListener("change", () => render())
  const board = h(
    "section",
    { class: "board", id: "board", role: "tabpanel", "aria-labelledby": "view-board" },
    boardColumns.map((column) => {
      const list = h("div", { class: "column-cards" })
      const count = h("span", { class: "column-count" })
      columnLists.set(column.key, list)
      columnCounts.set(column.key, count)
      const element = h(
        "div",
        { class: `column column-${column.key}`, "data-column": column.key },
        h("h2", { class: "column-title" }, column.title, count),
        list
      )
      columnElements.set(column.key, element)
      return element
    })
  )

  const views = [
    { key: "graph", label: "Graph" },
    { key: "board", label: "Board" },
    { key: "timeline", label: "Timeline" }
  ]
  const viewTabs = new Map()
  const tabList = h(
    "div",
    { class: "view-tabs", role: "tablist", "aria-label": "How to show the plan" },
    views.map((view) => {
      const tab = h(
        "button",
        {
          type: "button",
          role: "tab",
          id: `view-${view.key}`,
          "aria-controls": view.key === "timeline" ? "gantt" : view.key,
          onclick: () => setView(view.key),
          onkeydown: (event) => {
            const index = views.findIndex((candidate) => candidate.key === view.key)
            const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0
            if (step === 0) return
            event.preventDefault()
            event.stopPropagation()
            const next = views[(index + step + views.length) % views.length].key
            setView(next)
            viewTabs.get(next).focus()
          }
        },
        view.label
      )
      viewTabs.set(view.key, tab)
      return tab
    })
  )
  const graphCanvas = h("div", { class: "graph-canvas", tabindex: -1 })
  const graphSide = h("div", { class: "graph-side", id: "graph-task", "aria-live": "polite" })
  const graphPanel = h(
    "section",
    { class: "graph panel", id: "graph", role: "tabpanel", "aria-labelledby": "view-graph" },
    h(
      "div",
      { class: "graph-legend" },
      h("span", { class: "legend-item" }, h("span", { class: "swatch critical-swatch" }), "critical path"),
      h(
        "span",
        { class: "legend-item" },
        h("span", { class: "swatch parallel-swatch" }),
        "tasks that may run in parallel"
      ),
      h("span", { class: "muted" }, "Select a task to see it in full.")
    ),
    h("div", { class: "graph-layout" }, graphCanvas, graphSide)
  )
  const ganttPanel = h("section", {
    class: "panel gantt-panel",
    id: "gantt",
    role: "tabpanel",
    "aria-labelledby": "view-timeline"
  })

  const contextBody = h("div", { class: "context-body" })
  const detailBody = h("div", { class: "detail-body", id: "event-detail" })
  const eventList = h("ol", { class: "events", id: "event-list" })
  const eventCount = h("span", { class: "muted" })
  const lower = h(
    "section",
    { class: "lower" },
    h(
      "div",
      { class: "panel events-panel" },
      h("h2", null, "Events ", eventCount),
      h("div", { class: "events-scroll" }, eventList)
    ),
    h("div", { class: "panel detail-panel" }, detailBody),
    h("div", { class: "panel context-panel" }, contextBody)
  )
  const notice = h("p", { class: "notice error-text", role: "alert", hidden: true })
  // #15: the session's origin and forks, and a diff with the origin (lineage.js).
  const lineagePanel = h("section", { class: "panel lineage-panel", id: "lineage", hidden: true })
  let lineage = null
  // #16: each expanded task's child session nested under it, and a child's parent task (subplans.js).
  const subPlanPanel = h("section", { class: "panel subplan-panel", id: "subplans", hidden: true })
  let subPlans = null

  root.replaceChildren(h("p", { class: "loading" }, "Loading the session…"))

  // --- Showing a board -----------------------------------------------------------------------------------------------

  const latestSequence = () => Math.max(model.live?.lastSequence ?? 0, model.events.at(-1)?.sequence ?? 0)

  /** The view on screen: the live one, or the past one being looked at once it has arrived. */
  const shownView = () => (model.viewing === null ? model.live : (model.past.get(model.viewing) ?? null))

  /**
   * How a view is drawn: "live" offers the actions, "past" is a moment being looked at (time travel), and "pruned" is
   * a pruned session's final state, read-only (its events are gone, and with them every action).
   */
  const modeOf = (view) => (model.viewing !== null ? "past" : view.pruned === true ? "pruned" : "live")

  function showError(error) {
    notice.textContent = error instanceof Error ? error.message : String(error)
    notice.hidden = false
  }

  /** When the latest question was asked, from the events shown. */
  function lastQuestionAt() {
    const position = model.viewing ?? latestSequence()
    for (let index = Math.min(position, model.events.length) - 1; index >= 0; index--) {
      const record = model.events[index]
      if (record.type === "ClarificationRequested") return record.data.at ?? record.createdAt
    }
    return undefined
  }

  function renderHead(view, mode) {
    const state = view.state
    title.textContent = firstLine(state.request, 300) || "(empty request)"
    title.title = state.request
    const status = sessionStatus(state.status, view.waiting, mode === "live" ? view.served : undefined)
    statusSlot.replaceChildren(pill(status.key, status.label))
    const served = mode === "live" && view.served !== undefined ? servedText(view.served, sessionId) : undefined
    servedSlot.hidden = served === undefined
    servedSlot.textContent = served ?? ""
    servedSlot.dataset.served = view.served?.kind ?? ""
    progressSlot.replaceChildren(progressBar(view.counts, state.tasks.length))
    const bits = []
    if (state.startedAt !== undefined) {
      const today = new Date(state.startedAt).toDateString() === new Date().toDateString()
      bits.push(
        h(
          "span",
          { title: formatDate(state.startedAt) },
          `started ${today ? formatClock(state.startedAt) : formatDate(state.startedAt)}`
        )
      )
      const end = state.finishedAt ?? (mode === "live" ? Date.now() : undefined)
      const asked = view.waiting ? lastQuestionAt() : undefined
      if (asked !== undefined && state.finishedAt === undefined) {
        bits.push(h("span", { title: formatDate(asked) }, `waiting for an answer since ${formatClock(asked)}`))
      } else if (end !== undefined) {
        bits.push(
          h(
            "span",
            null,
            `${state.finishedAt === undefined ? "running for" : "took"} ${formatDuration(end - state.startedAt)}`
          )
        )
      }
    }
    if (state.source !== undefined) {
      bits.push(h("span", null, plannedBy(state.source)))
    }
    bits.push(h("span", null, `${state.config.maxParallel} in parallel`))
    if (state.executor !== undefined) bits.push(h("span", null, `runs with ${state.executor}`))
    const spend = budgetFact(state)
    if (spend !== null) bits.push(spend)
    if (state.forkedFrom !== undefined) {
      bits.push(
        h(
          "span",
          null,
          "forked from ",
          h("a", { href: `/sessions/${encodeURIComponent(state.forkedFrom.sessionId)}` }, state.forkedFrom.sessionId),
          ` at event ${state.forkedFrom.sequence}`
        )
      )
    }
    facts.replaceChildren(
      ...bits.flatMap((bit, index) => (index === 0 ? [bit] : [h("span", { class: "dot" }, "·"), bit]))
    )
    cancelButton.hidden = mode !== "live" || state.status !== "Running"
    resumeButton.hidden = mode !== "live" || state.status !== "Running" || view.waiting
    // A pruned session kept its final state only: there is no event to fork from.
    forkButton.hidden = view.pruned === true
    planEditor.update(view, mode)
    const position = model.viewing ?? latestSequence()
    forkButton.textContent = `Fork from event ${position}`
    forkButton.title = `A new session from events 1 to ${position} of this one, as \`planner fork ${sessionId} --at ${position}\` makes`
  }

  function dependencyChips(task, state) {
    if (task.dependsOn.length === 0) return null
    return h(
      "span",
      { class: "deps" },
      "after ",
      task.dependsOn.map((dep) => {
        const status = state.tasks[dep - 1]?.status ?? "Planned"
        return h(
          "span",
          {
            class: `dep s-${status}`,
            title: `Task ${dep}: ${taskStatusLabels[status] ?? status}`,
            onmouseenter: () => highlight(dep, true),
            onmouseleave: () => highlight(dep, false)
          },
          `#${dep}`
        )
      })
    )
  }

  function highlight(taskId, on) {
    board.querySelector(`[data-task-id="${taskId}"]`)?.classList.toggle("highlight", on)
  }

  function textBlock(kind, label, text) {
    return h(
      "div",
      { class: `block ${kind}` },
      h("div", { class: "block-label" }, label),
      h("pre", { class: "block-text" }, text)
    )
  }

  function answerForm(task, question) {
    const key = `${task.id}:${task.clarifications.length}`
    const fieldId = `answer-${task.id}`
    const field = h("textarea", {
      id: fieldId,
      name: "answer",
      rows: 2,
      required: true,
      placeholder: "Type your answer…",
      oninput: () => drafts.set(key, field.value),
      onkeydown: (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit()
      }
    })
    field.value = drafts.get(key) ?? ""
    const submit = h("button", { type: "submit", class: "primary" }, "Send answer")
    const status = h("span", { class: "form-status", role: "status" })
    const form = h(
      "form",
      {
        class: "answer-form",
        "data-task-id": task.id,
        onsubmit: async (event) => {
          event.preventDefault()
          const text = field.value.trim()
          if (text === "") {
            status.textContent = "Type an answer first."
            return
          }
          submit.disabled = true
          status.textContent = "Sending…"
          status.classList.remove("error-text")
          try {
            const view = await api.answer(sessionId, task.id, text)
            drafts.delete(key)
            acceptLive(view)
          } catch (error) {
            submit.disabled = false
            status.textContent = error instanceof Error ? error.message : String(error)
            status.classList.add("error-text")
          }
        }
      },
      h(
        "label",
        { for: fieldId, class: "form-label" },
        question.attachment === undefined ? "Your answer" : "Where is it?"
      ),
      field,
      h("div", { class: "form-row" }, submit, status)
    )
    return form
  }

  function taskCard(task, state, mode) {
    const pending = task.clarifications.at(-1)
    const asking =
      mode === "live" && task.status === "NeedsClarification" && pending !== undefined && pending.answer === undefined
    const meta = []
    if (task.attempt > 1 || task.failures > 0) {
      meta.push(h("span", null, `attempt ${task.attempt}`))
      if (task.failures > 0) meta.push(h("span", { class: "warn" }, plural(task.failures, "failure")))
    }
    if (task.status === "Dispatched") meta.push(h("span", null, "waiting for a worker"))
    if (task.lease !== undefined)
      meta.push(h("span", { title: task.lease.workerId }, `on ${shortWorker(task.lease.workerId)}`))
    if (task.retryAt !== undefined) meta.push(h("span", { class: "warn" }, `retry at ${formatClock(task.retryAt)}`))
    if (task.compacted) {
      meta.push(h("span", { class: "badge", title: "Its result was folded into the rolling context" }, "in context"))
    }
    return h(
      "article",
      { class: `card s-${task.status}`, "data-task-id": task.id, "data-status": task.status },
      h(
        "header",
        { class: "card-head" },
        h("span", { class: "task-id" }, `#${task.id}`),
        h("span", { class: "kind" }, task.kind),
        h("span", { class: "spacer" }),
        pill(task.status, taskStatusLabels[task.status] ?? task.status)
      ),
      h("p", { class: "description" }, task.description),
      task.dependsOn.length > 0 || meta.length > 0
        ? h("div", { class: "card-meta" }, dependencyChips(task, state), meta)
        : null,
      task.attachments.length > 0
        ? h(
            "ul",
            { class: "attachments" },
            task.attachments.map((attachment) =>
              h("li", null, h("span", { class: "attachment-kind" }, attachment.kind), h("code", null, attachment.value))
            )
          )
        : null,
      task.clarifications.map((clarification) =>
        h(
          "div",
          { class: "qa" },
          clarification.question === "" ? null : h("p", { class: "question" }, clarification.question),
          clarification.answer === undefined ? null : h("p", { class: "answer" }, clarification.answer)
        )
      ),
      task.result === undefined ? null : textBlock("result", "Result", task.result),
      task.error === undefined ? null : textBlock("error", task.status === "Skipped" ? "Why" : "Error", task.error),
      asking ? answerForm(task, pending) : null,
      mode === "live" && task.status === "Failed"
        ? h(
            "div",
            { class: "form-row" },
            h(
              "button",
              {
                type: "button",
                class: "retry-task",
                "data-task-id": task.id,
                onclick: () => retryTask(task)
              },
              `Retry task #${task.id}`
            )
          )
        : null
    )
  }

  /** A task's card, reused while its task is unchanged (so a half-typed answer keeps its focus). */
  function cardFor(task, state, mode) {
    const dependencies = task.dependsOn.map((dep) => state.tasks[dep - 1]?.status)
    const signature = JSON.stringify([mode, task, dependencies])
    let cached = cards.get(task.id)
    if (cached === undefined || cached.signature !== signature) {
      cached = { signature, element: taskCard(task, state, mode) }
      cards.set(task.id, cached)
    }
    return cached.element
  }

  function renderBoard(view, mode) {
    const state = view.state
    board.classList.toggle("past", mode === "past")
    const byColumn = new Map(boardColumns.map((column) => [column.key, []]))
    for (const task of state.tasks) {
      const column = boardColumns.find((candidate) => candidate.statuses.includes(task.status)) ?? boardColumns[0]
      byColumn.get(column.key).push(cardFor(task, state, mode))
    }
    // Columns share the width by how many cards they hold, so a busy column lays its cards side by side; an ended
    // plan has no use for empty columns at all.
    const ended = finishedStatuses.has(state.status)
    const tracks = []
    for (const column of boardColumns) {
      const elements = byColumn.get(column.key)
      setChildren(columnLists.get(column.key), elements.length > 0 ? elements : [emptyColumn(column.key)])
      columnCounts.get(column.key).textContent = String(elements.length)
      const hidden = ended && elements.length === 0
      columnElements.get(column.key).hidden = hidden
      if (!hidden)
        tracks.push(
          elements.length === 0 ? "minmax(150px, 0.45fr)" : `minmax(250px, ${Math.min(elements.length, 3)}fr)`
        )
    }
    board.style.gridTemplateColumns = wideScreen.matches ? tracks.join(" ") : ""
  }

  const emptyColumns = new Map()
  function emptyColumn(key) {
    let element = emptyColumns.get(key)
    if (element === undefined) {
      element = h("p", { class: "column-empty" }, "Nothing here")
      emptyColumns.set(key, element)
    }
    return element
  }

  function renderContext(view) {
    const state = view.state
    const compacted = state.tasks.filter((task) => task.compacted).map((task) => `#${task.id}`)
    const sections = [
      h("h2", null, "Rolling context"),
      state.contextSummary === ""
        ? h("p", { class: "muted" }, "Nothing compacted yet: each task sees the earlier results in full.")
        : h("pre", { class: "context-text" }, state.contextSummary),
      compacted.length > 0 ? h("p", { class: "muted" }, `Folded in: ${compacted.join(", ")}`) : null
    ]
    if (state.summary !== undefined)
      sections.push(h("h2", null, "Outcome"), h("p", { class: "outcome" }, state.summary))
    sections.push(h("h2", null, "Request"), h("pre", { class: "request-text" }, state.request))
    if (state.attachments.length > 0) {
      sections.push(
        h(
          "ul",
          { class: "attachments" },
          state.attachments.map((attachment) =>
            h("li", null, h("span", { class: "attachment-kind" }, attachment.kind), h("code", null, attachment.value))
          )
        )
      )
    }
    const config = state.config
    sections.push(
      h(
        "dl",
        { class: "config" },
        h("dt", null, "Parallel"),
        h("dd", null, String(config.maxParallel)),
        h("dt", null, "Attempts"),
        h("dd", null, String(config.maxAttempts)),
        h("dt", null, "On failure"),
        h("dd", null, config.onFailure),
        h("dt", null, "Token budget"),
        h("dd", null, String(config.tokenBudget))
      )
    )
    contextBody.replaceChildren(...sections.filter((section) => section !== null))
  }

  function renderTimeline() {
    const latest = latestSequence()
    const position = model.viewing ?? latest
    slider.max = String(Math.max(latest, 1))
    slider.value = String(position)
    slider.disabled = latest <= 1
    firstButton.disabled = previousButton.disabled = position <= 1
    nextButton.disabled = model.viewing === null || position >= latest
    const record = model.events[position - 1]
    const when = record === undefined ? "" : ` · ${formatClock(record.data.at ?? record.createdAt)}`
    positionLabel.textContent =
      model.viewing === null
        ? `Live · event ${latest}${when}`
        : `Event ${position} of ${latest}${when}${record === undefined ? "" : ` · ${record.type}`}`
    liveButton.classList.toggle("active", model.viewing === null)
    liveButton.dataset.connection = model.connection
    liveButton.title =
      model.connection === "live"
        ? "Receiving events as they happen"
        : model.connection === "finished"
          ? "The plan has ended"
          : "Reconnecting to the event stream…"
    banner.hidden = model.viewing === null
    if (model.viewing !== null) {
      bannerText.textContent = `You are looking at the board as it was after event ${position} of ${latest}${
        record === undefined ? "" : ` (${record.type}, ${formatClock(record.data.at ?? record.createdAt)})`
      }. New events keep arriving in the timeline.`
    }
    for (const item of eventList.children) {
      const sequence = Number(item.dataset.sequence)
      item.classList.toggle("current", sequence === position)
      item.classList.toggle("future", sequence > position)
    }
    const current = eventList.children[position - 1]
    if (current !== undefined) keepInView(current)
  }

  function keepInView(item) {
    const scroller = eventList.parentElement
    if (scroller === null) return
    const top = item.offsetTop - scroller.offsetTop
    if (top < scroller.scrollTop) scroller.scrollTop = top
    else if (top + item.offsetHeight > scroller.scrollTop + scroller.clientHeight) {
      scroller.scrollTop = top + item.offsetHeight - scroller.clientHeight
    }
  }

  /** Each task's segments from the events up to the one shown. */
  function timingShown() {
    const position = model.viewing ?? latestSequence()
    return taskSegments(model.events.slice(0, position))
  }

  function renderGraphView(view, mode) {
    const state = view.state
    const timing = timingShown()
    const now = mode === "live" ? Date.now() : (timing.end ?? Date.now())
    const hadFocus = graphCanvas.contains(document.activeElement)
      ? document.activeElement?.getAttribute("data-node")
      : null
    graphCanvas.replaceChildren(
      renderGraph(state, {
        selected: model.selectedTask,
        durationOf: (id) => taskDuration(timing.tasks.get(id), now),
        onSelect: (id) => {
          model.selectedTask = model.selectedTask === id ? null : id
          render()
        }
      })
    )
    graphCanvas.querySelector(".graph-svg").classList.toggle("past", mode === "past")
    if (hadFocus !== null && hadFocus !== undefined) graphCanvas.querySelector(`[data-node="${hadFocus}"]`)?.focus()
    const selected =
      model.selectedTask === null ? undefined : state.tasks.find((task) => task.id === model.selectedTask)
    if (selected === undefined) {
      const asking = state.tasks.filter((task) => task.status === "NeedsClarification")
      setChildren(graphSide, [
        h(
          "p",
          { class: "muted graph-hint" },
          asking.length > 0
            ? `${asking.map((task) => `#${task.id}`).join(", ")} ${asking.length === 1 ? "waits" : "wait"} for your answer: select ${asking.length === 1 ? "it" : "one"} to answer.`
            : "Select a task in the graph to see its description, result and questions."
        )
      ])
    } else {
      // The board's card, with its answer form when the task asks.
      setChildren(graphSide, [cardFor(selected, state, mode)])
    }
  }

  function renderGanttView(view, mode) {
    const timing = timingShown()
    ganttPanel.replaceChildren(
      h("h2", null, "Where the time went"),
      renderGantt(view.state, timing, mode === "live" ? Date.now() : (timing.end ?? Date.now()))
    )
  }

  function setView(key) {
    model.view = key
    localStorage.setItem("planner.view", key)
    render()
  }

  function renderViews() {
    for (const [key, tab] of viewTabs) {
      const active = key === model.view
      tab.setAttribute("aria-selected", active ? "true" : "false")
      tab.tabIndex = active ? 0 : -1
    }
    graphPanel.hidden = model.view !== "graph"
    board.hidden = model.view !== "board"
    ganttPanel.hidden = model.view !== "timeline"
  }

  /** The detail of the event the timeline is on, with the states around it (fetched once each). */
  function renderDetail() {
    const position = model.viewing ?? latestSequence()
    const record = model.events[position - 1]
    if (record === undefined) {
      detailBody.replaceChildren(h("p", { class: "muted" }, "No events yet."))
      return
    }
    const stateAfter = (sequence) => {
      if (sequence === 0) return null
      if (model.live !== null && model.live.lastSequence === sequence) return model.live
      const known = model.past.get(sequence)
      if (known === undefined) fetchPast(sequence)
      return known
    }
    const after = stateAfter(position)
    const before = stateAfter(position - 1)
    if (detailBody.dataset.shown === `${position}:${after !== undefined}:${before !== undefined}`) return
    detailBody.dataset.shown = `${position}:${after !== undefined}:${before !== undefined}`
    detailBody.replaceChildren(eventDetail(record, after ?? undefined, before === undefined ? undefined : before))
  }

  const fetching = new Set()
  function fetchPast(sequence) {
    if (fetching.has(sequence) || model.past.has(sequence)) return
    fetching.add(sequence)
    api
      .getStateAt(sessionId, sequence)
      .then((view) => {
        model.past.set(sequence, view)
        render()
      })
      .catch(showError)
      .finally(() => fetching.delete(sequence))
  }

  function render() {
    const view = shownView()
    renderViews()
    if (view !== null) {
      const mode = modeOf(view)
      renderHead(view, mode)
      if (model.view === "board") renderBoard(view, mode)
      else if (model.view === "graph") renderGraphView(view, mode)
      else renderGanttView(view, mode)
      renderContext(view)
    }
    renderTimeline()
    renderDetail()
  }

  // --- Events and time travel ----------------------------------------------------------------------------------------

  function addEvent(record) {
    if (record.sequence <= (model.events.at(-1)?.sequence ?? 0)) return
    model.events.push(record)
    const item = h(
      "li",
      { class: `event t-${record.type}`, "data-sequence": record.sequence },
      h(
        "button",
        {
          type: "button",
          onclick: () => showAt(record.sequence),
          title: `Show event ${record.sequence} in full, and the plan right after it`,
          "aria-label": `Event ${record.sequence}: ${describeEvent(record)}`
        },
        h("span", { class: "event-seq" }, String(record.sequence)),
        h("span", { class: "event-time" }, formatClock(record.data.at ?? record.createdAt)),
        h("span", { class: "event-type" }, eventLabels[record.type] ?? record.type),
        h("span", { class: "event-text" }, describeEvent(record))
      )
    )
    eventList.appendChild(item)
    eventCount.textContent = `(${model.events.length})`
  }

  function showAt(sequence) {
    // A pruned session's events are gone: there is no moment before its final state to show.
    if (model.live?.pruned === true) return
    const latest = latestSequence()
    const target = Math.min(Math.max(1, Math.round(sequence)), latest)
    if (target >= latest) {
      goLive()
      return
    }
    model.viewing = target
    if (!model.past.has(target)) {
      api
        .getStateAt(sessionId, target)
        .then((view) => {
          model.past.set(target, view)
          if (model.viewing === target) render()
        })
        .catch(showError)
    }
    render()
  }

  function goLive() {
    model.viewing = null
    render()
  }

  /** Takes a newer view of the session; an older answer that arrives late is ignored. */
  function acceptLive(view) {
    if (model.live === null || view.lastSequence >= model.live.lastSequence) model.live = view
    model.past.set(view.lastSequence, view)
    render()
    subPlans?.refresh()
    closeStreamWhenDone()
  }

  // Several events in a burst cause one request at a time, and one more after it.
  let refreshing = false
  let refreshAgain = false
  async function refreshLive() {
    if (refreshing) {
      refreshAgain = true
      return
    }
    refreshing = true
    try {
      acceptLive(await api.getSession(sessionId))
    } catch (error) {
      showError(error)
    } finally {
      refreshing = false
    }
    if (refreshAgain) {
      refreshAgain = false
      refreshLive()
    }
  }

  function setConnection(connection) {
    model.connection = connection
    renderTimeline()
  }

  /** A finished plan changes no more; the stream closes once every event up to the end is in the timeline. */
  function closeStreamWhenDone() {
    const live = model.live
    if (stream === null || live === null || !finishedStatuses.has(live.state.status)) return
    if ((model.events.at(-1)?.sequence ?? 0) < live.lastSequence) return
    stream.close()
    stream = null
    setConnection("finished")
  }

  function connect() {
    stream = api.openStream(sessionId, model.events.at(-1)?.sequence ?? 0)
    stream.addEventListener("open", () => setConnection("live"))
    stream.addEventListener("planner-event", (message) => {
      addEvent(JSON.parse(message.data))
      if (model.connection !== "live") setConnection("live")
      refreshLive()
    })
    // The browser reconnects by itself, sending the last event's id, so nothing is missed meanwhile.
    stream.addEventListener("error", () => {
      if (stream !== null) setConnection("reconnecting")
    })
  }

  // --- Controls ------------------------------------------------------------------------------------------------------

  slider.addEventListener("input", () => showAt(Number(slider.value)))
  firstButton.addEventListener("click", () => showAt(1))
  previousButton.addEventListener("click", () => showAt((model.viewing ?? latestSequence()) - 1))
  nextButton.addEventListener("click", () => showAt((model.viewing ?? latestSequence()) + 1))
  liveButton.addEventListener("click", () => goLive())
  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement) return
    if (event.key === "ArrowLeft") previousButton.click()
    else if (event.key === "ArrowRight" && model.viewing !== null) nextButton.click()
    else if (event.key === "Escape") goLive()
  })

  function said(text, link) {
    actionStatus.replaceChildren(text, ...(link === undefined ? [] : [" ", link]))
    actionStatus.classList.remove("error-text")
    actionStatus.hidden = false
  }

  function failed(error) {
    actionStatus.textContent = error instanceof Error ? error.message : String(error)
    actionStatus.classList.add("error-text")
    actionStatus.hidden = false
  }

  const sessionLink = (id) =>
    h("a", { href: `/sessions/${encodeURIComponent(id)}`, class: "new-session" }, `Open ${id}`)

  cancelButton.addEventListener("click", async () => {
    const ok = await confirmAction({
      title: "Cancel this plan?",
      body: "Running tasks are stopped and nothing more is dispatched, as `planner cancel` does. A cancelled plan can be forked, not resumed.",
      confirm: "Cancel the plan",
      danger: true
    })
    if (!ok) return
    try {
      acceptLive(await api.cancel(sessionId))
      said("Cancelled: a Cancel was recorded in the log.")
    } catch (error) {
      failed(error)
    }
  })

  resumeButton.addEventListener("click", async () => {
    const ok = await confirmAction({
      title: "Resume this plan?",
      body: "Ready tasks and retries that fell due are dispatched, as `planner resume` does before it runs them. They run in whichever worker serves this session.",
      confirm: "Resume"
    })
    if (!ok) return
    try {
      const view = await api.resume(sessionId)
      acceptLive(view)
      said(
        view.appended === 0
          ? "Nothing was waiting to be dispatched."
          : `Resumed: ${view.appended} event${view.appended === 1 ? "" : "s"} recorded.`
      )
    } catch (error) {
      failed(error)
    }
  })

  forkButton.addEventListener("click", async () => {
    const at = model.viewing ?? latestSequence()
    const ok = await confirmAction({
      title: `Fork from event ${at}?`,
      body: `A new session starts from events 1 to ${at} of this one (this one is not changed), as \`planner fork ${sessionId} --at ${at}\` does. Tasks running at that point run again.`,
      confirm: "Fork"
    })
    if (!ok) return
    try {
      const forked = await api.fork(sessionId, at)
      said(`Forked at event ${at} into ${forked.id}.`, sessionLink(forked.id))
      lineage?.refresh()
    } catch (error) {
      failed(error)
    }
  })

  async function retryTask(task) {
    const ok = await confirmAction({
      title: `Retry task #${task.id}?`,
      body: "It runs again in a new session forked from just before it was first dispatched (this session's log is not changed). Tasks that ran after that point run again too.",
      confirm: `Retry task #${task.id}`
    })
    if (!ok) return
    try {
      const forked = await api.retry(sessionId, task.id)
      said(
        `Task #${task.id} is retried in ${forked.id} (forked at event ${forked.forkedFrom.sequence}).`,
        sessionLink(forked.id)
      )
    } catch (error) {
      failed(error)
    }
  }

  // Ages and "running for" move on even when nothing happens, and so does liveness: a lease runs out without an event.
  setInterval(() => {
    if (model.viewing !== null || model.live === null || document.hidden) return
    if (finishedStatuses.has(model.live.state.status)) renderHead(model.live, modeOf(model.live))
    else refreshLive()
  }, 5000)

  /** What a pruned session's page says in place of its timeline and events. */
  const prunedNote = () =>
    h(
      "p",
      { class: "notice pruned-note", id: "pruned-note", role: "status" },
      "Its events were pruned (",
      h("code", null, "planner prune"),
      "): this is its final state. Its history, time travel, forks and lineage are gone with them."
    )

  // --- Start ---------------------------------------------------------------------------------------------------------
  ;(async () => {
    try {
      const view = await api.getSession(sessionId)
      if (view.pruned === true) {
        // `planner prune` removed its events and kept its final state: that is all there is to show.
        root.replaceChildren(head, prunedNote(), tabList, graphPanel, board, ganttPanel)
        acceptLive(view)
        setConnection("finished")
        return
      }
      for (const record of await api.getAllEvents(sessionId)) addEvent(record)
      root.replaceChildren(
        head,
        timeline,
        banner,
        notice,
        clarificationFlags(sessionId),
        tabList,
        graphPanel,
        board,
        ganttPanel,
        subPlanPanel,
        lower,
        lineagePanel
      )
      lineage = mountLineage(lineagePanel, sessionId)
      subPlans = mountSubPlans(subPlanPanel, sessionId)
      acceptLive(view)
      if (!finishedStatuses.has(view.state.status) || (model.events.at(-1)?.sequence ?? 0) < view.lastSequence) {
        connect()
        closeStreamWhenDone()
      } else {
        setConnection("finished")
      }
      keepInView(eventList.lastElementChild ?? eventList)
    } catch (error) {
      const unknown = error instanceof api.ApiError && error.status === 404
      root.replaceChildren(
        h(
          "div",
          { class: "empty" },
          h("h1", null, unknown ? "No such session" : "This session cannot be shown"),
          h("p", null, error instanceof Error ? error.message : String(error)),
          h("p", null, h("a", { href: "/" }, "See all sessions"))
        )
      )
    }
  })()
}
