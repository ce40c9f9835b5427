/**
 * A session's tree of sub-plans (#16): on a session page, each expanded task with its child session's tasks nested
 * under it (and their own children, recursively), each child linked to its page; on a child's page, a link up to the
 * parent task's session. The API builds the tree (`GET /api/sessions/:id/subplans`, see src/app/SubPlanApi.ts); this
 * module only shows it. A child's events do not reach its parent's page, so while a child is still going the panel
 * asks again every few seconds; `session.js` also calls `refresh` when the session's own state moves.
 */
import { firstLine, h, pill, taskStatusLabels } from "./dom.js"

const sessionHref = (id) => `/sessions/${encodeURIComponent(id)}`
const finished = new Set(["Succeeded", "Failed", "Cancelled"])
const pollMs = 3000

async function getTree(sessionId) {
  const response = await fetch(`/api/sessions/${encodeURIComponent(sessionId)}/subplans`, {
    headers: { accept: "application/json" }
  })
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  return response.json()
}

const taskPill = (task) => pill(task.status, taskStatusLabels[task.status] ?? task.status)

/** Whether some session of the tree (a child not started yet included) has not ended. */
function going(node) {
  if (!finished.has(node.status)) return true
  return node.tasks.some((task) => task.subPlan !== undefined && going(task.subPlan))
}

/** A child session: its link and status, and its tasks, each with its own child under it. */
function childBlock(subPlan) {
  const status = subPlan.status === "NotStarted" ? "not started yet" : subPlan.status
  return h(
    "div",
    { class: "subplan-child", "data-child": subPlan.sessionId },
    "sub-plan ",
    h("a", { href: sessionHref(subPlan.sessionId), class: "subplan-link" }, subPlan.sessionId),
    " ",
    pill(subPlan.status, status),
    subPlan.tasks.length === 0
      ? null
      : h(
          "ul",
          { class: "subplan-tasks" },
          subPlan.tasks.map((task) =>
            h(
              "li",
              { "data-task": task.id, "data-status": task.status },
              `#${task.id} `,
              h("span", { class: "subplan-task" }, firstLine(task.description, 80)),
              " ",
              taskPill(task),
              task.subPlan === undefined ? null : childBlock(task.subPlan)
            )
          )
        )
  )
}

/** The panel's content for a tree from the API; empty when the session is neither expanded nor a child. */
export function renderSubPlans(tree) {
  const parts = []
  if (tree.parent !== undefined) {
    const parent = tree.parent
    parts.push(
      h(
        "p",
        { class: "subplan-parent", id: "subplan-parent" },
        `Sub-plan of task #${parent.taskId}`,
        parent.description === undefined ? "" : ` (${firstLine(parent.description, 80)})`,
        " of ",
        h("a", { href: sessionHref(parent.sessionId), "data-parent": parent.sessionId }, parent.sessionId),
        parent.rootSessionId === parent.sessionId
          ? null
          : h(
              "span",
              null,
              ", in the tree of ",
              h(
                "a",
                { href: sessionHref(parent.rootSessionId), "data-root": parent.rootSessionId },
                parent.rootSessionId
              )
            ),
        "."
      )
    )
  }
  const expanded = tree.tasks.filter((task) => task.subPlan !== undefined)
  if (expanded.length > 0) {
    parts.push(
      h(
        "ul",
        { class: "subplan-tree", id: "subplan-tree" },
        expanded.map((task) =>
          h(
            "li",
            { "data-task": task.id, "data-status": task.status },
            `#${task.id} `,
            h("span", { class: "subplan-task" }, firstLine(task.description, 80)),
            " ",
            taskPill(task),
            childBlock(task.subPlan)
          )
        )
      )
    )
  }
  return parts
}

/** Fills `panel` with the tree of `sessionId` (hidden when there is none); `refresh` asks again. */
export function mountSubPlans(panel, sessionId) {
  let timer = null
  let busy = false
  let again = false
  async function refresh() {
    if (busy) {
      again = true
      return
    }
    busy = true
    clearTimeout(timer)
    let tree
    try {
      tree = await getTree(sessionId)
    } catch {
      // The tree is extra: the page works without it.
      return
    } finally {
      busy = false
      if (again) {
        again = false
        refresh()
      }
    }
    const parts = renderSubPlans(tree)
    panel.hidden = parts.length === 0
    panel.replaceChildren(h("h2", null, "Sub-plans"), ...parts)
    // A child's events do not reach this page: ask again while a child under this session is still going.
    if (tree.tasks.some((task) => task.subPlan !== undefined && going(task.subPlan))) timer = setTimeout(poll, pollMs)
  }
  function poll() {
    if (document.hidden) timer = setTimeout(poll, pollMs)
    else refresh()
  }
  refresh()
  return { refresh }
}
