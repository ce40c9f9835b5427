/**
 * A session's lineage (#15): the session it was forked from (and that one's origin, ...), the forks made from it, and a
 * diff view between a session and its origin: task by task what differs in the plan and the outcome, and the first
 * event where the two logs part. The API computes both (`/lineage`, `/diff`, see src/app/LineageApi.ts); this module
 * only shows them.
 */
import * as api from "./api.js"
import { firstLine, h, pill, taskStatusLabels } from "./dom.js"

const sessionHref = (id) => `/sessions/${encodeURIComponent(id)}`

const fieldLabels = {
  description: "description",
  kind: "kind",
  dependsOn: "after",
  status: "status",
  result: "result",
  error: "error",
  answers: "answers"
}

/** A field's value in a cell. */
function valueText(field, value) {
  if (value === undefined || value === null) return "(none)"
  if (field === "status") return taskStatusLabels[value] ?? value
  if (Array.isArray(value)) {
    if (value.length === 0) return "(none)"
    return field === "dependsOn" ? value.map((id) => `#${id}`).join(", ") : value.join(" · ")
  }
  return firstLine(String(value), 160)
}

/** The diff view: the tasks that differ (a row per changed field), how many are the same, and where the logs part. */
export function renderDiff(diff) {
  if (!diff.comparable) return h("p", { class: "muted" }, diff.reason)
  const rows = []
  let same = 0
  const reused = diff.tasks.filter((task) => task.reusedFrom !== undefined).length
  for (const task of diff.tasks) {
    if (task.change === "same") {
      same += 1
      continue
    }
    const label = h(
      "th",
      { scope: "row" },
      `#${task.id} `,
      h("span", { class: "diff-task" }, firstLine(task.description, 60))
    )
    if (task.change === "onlyA" || task.change === "onlyB") {
      rows.push(
        h(
          "tr",
          { class: `diff-row diff-${task.change}`, "data-task": task.id, "data-change": task.change },
          label,
          h("td", null, "task"),
          h("td", null, task.change === "onlyA" ? "in this one only" : "(not planned)"),
          h("td", null, task.change === "onlyB" ? "in this one only" : "(not planned)")
        )
      )
      continue
    }
    task.changes.forEach((change, index) => {
      rows.push(
        h(
          "tr",
          { class: "diff-row diff-changed", "data-task": task.id, "data-field": change.field },
          index === 0 ? label : h("th", { scope: "row", class: "diff-cont" }, ""),
          h("td", null, fieldLabels[change.field] ?? change.field),
          h("td", { class: "diff-a" }, valueText(change.field, change.a)),
          h("td", { class: "diff-b" }, valueText(change.field, change.b))
        )
      )
    })
  }
  const divergence =
    diff.divergence === null
      ? diff.logsCompared
        ? "The logs are the same event for event (times and worker ids aside)."
        : "The logs cannot be compared: one of the sessions has no events left."
      : `The logs part at event ${diff.divergence.sequence}: ${diff.divergence.a?.type ?? "(end of log)"} in ${diff.a.sessionId}, ${
          diff.divergence.b?.type ?? "(end of log)"
        } in ${diff.b.sessionId}.`
  return h(
    "div",
    { class: "diff-view", id: "diff-view", "data-identical": diff.identical ? "true" : "false" },
    h(
      "p",
      null,
      "Comparing ",
      h("a", { href: sessionHref(diff.a.sessionId) }, diff.a.sessionId),
      ` (${diff.a.status}) with `,
      h("a", { href: sessionHref(diff.b.sessionId) }, diff.b.sessionId),
      ` (${diff.b.status})`,
      diff.forkedAt === undefined ? "" : `, forked from it at event ${diff.forkedAt}`,
      "."
    ),
    h("p", { class: "diff-divergence", id: "diff-divergence" }, divergence),
    rows.length === 0
      ? h("p", { class: "diff-none" }, `All ${diff.tasks.length} tasks are the same.`)
      : h(
          "table",
          { class: "diff-table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", { scope: "col" }, "Task"),
              h("th", { scope: "col" }, "What"),
              h("th", { scope: "col" }, diff.a.sessionId),
              h("th", { scope: "col" }, diff.b.sessionId)
            )
          ),
          h("tbody", null, rows)
        ),
    rows.length === 0 || same === 0
      ? null
      : h("p", { class: "muted" }, `${same} other task${same === 1 ? " is" : "s are"} the same.`),
    reused === 0
      ? null
      : h(
          "p",
          { class: "muted", id: "diff-reused" },
          `${reused} task${reused === 1 ? "" : "s"} of ${diff.b.sessionId} took over the result${reused === 1 ? "" : "s"} of ${diff.a.sessionId} without running.`
        )
  )
}

/**
 * Fills `panel` with the session's lineage; hidden when the session has neither an origin nor forks. `refresh()`
 * reads it again (after a fork from this page).
 *
 * @param {HTMLElement} panel @param {string} sessionId
 */
export function mountLineage(panel, sessionId) {
  const diffSlot = h("div", { class: "diff-slot" })

  async function showDiff(forkId, button) {
    button.disabled = true
    try {
      const diff = await api.getDiff(forkId)
      diffSlot.replaceChildren(renderDiff(diff))
    } catch (error) {
      diffSlot.replaceChildren(h("p", { class: "error-text" }, error instanceof Error ? error.message : String(error)))
    } finally {
      button.disabled = false
    }
  }

  /** A session of the lineage whose events were pruned: named, with its final status, but not comparable. */
  const prunedMark = (entry) =>
    entry.pruned === true
      ? h(
          "span",
          { class: "pruned-mark", title: "Its events were pruned (planner prune); its final state is kept." },
          "pruned"
        )
      : null

  const compareButton = (forkId, label) => {
    const button = h("button", { type: "button", class: "link-button compare", "data-compare": forkId }, label)
    button.addEventListener("click", () => showDiff(forkId, button))
    return button
  }

  const forkList = (forks) =>
    h(
      "ul",
      { class: "fork-list" },
      forks.map((fork) =>
        h(
          "li",
          { "data-fork": fork.sessionId },
          h("a", { href: sessionHref(fork.sessionId) }, fork.sessionId),
          " ",
          pill(fork.status, fork.status),
          prunedMark(fork),
          ` forked at event ${fork.atSequence} `,
          // A pruned fork has no events to compare.
          fork.pruned === true ? null : compareButton(fork.sessionId, "compare with this one"),
          fork.forks.length === 0 ? null : forkList(fork.forks)
        )
      )
    )

  async function refresh() {
    let lineage
    try {
      lineage = await api.getLineage(sessionId)
    } catch {
      // The lineage is extra: the page works without it.
      return
    }
    const parts = [h("h2", null, "Lineage")]
    if (lineage.ancestors.length > 0) {
      const [origin, ...older] = lineage.ancestors
      parts.push(
        h(
          "p",
          { class: "lineage-origin", id: "lineage-origin" },
          "Forked from ",
          h("a", { href: sessionHref(origin.sessionId) }, origin.sessionId),
          " ",
          pill(origin.status, origin.status),
          prunedMark(origin),
          ` at event ${origin.atSequence}`,
          older.length === 0 ? "" : `, itself a fork of ${older.map((entry) => entry.sessionId).join(" ← ")}`,
          ". ",
          // An origin that was pruned has no events to compare with.
          origin.pruned === true ? null : compareButton(sessionId, "Compare with the origin")
        )
      )
    }
    if (lineage.forks.length > 0) {
      parts.push(
        h("p", { class: "lineage-forks-title" }, `Forks of this session (${lineage.forks.length}):`),
        h("div", { id: "lineage-forks" }, forkList(lineage.forks))
      )
    }
    panel.hidden = parts.length === 1
    panel.replaceChildren(...parts, diffSlot)
  }

  refresh()
  return { refresh }
}
