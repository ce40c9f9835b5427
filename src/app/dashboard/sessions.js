/** The session list: status, progress and age of every session, refreshed while the tab is visible. */
import * as api from "./api.js"
import { firstLine, formatAge, formatDate, h, pill, progressBar, sessionStatus } from "./dom.js"

const refreshMs = 4000

/** @param {HTMLElement} root */
export function mountSessions(root) {
  document.title = "Sessions · planner"
  const body = h("tbody")
  const summary = h("p", { class: "page-note" }, "Loading sessions…")
  const table = h(
    "table",
    { class: "sessions" },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", null, "Status"),
        h("th", null, "Request"),
        h("th", null, "Progress"),
        h("th", null, "Started"),
        h("th", null, "Last event")
      )
    ),
    body
  )
  const empty = h(
    "div",
    { class: "empty", hidden: true },
    h("p", null, "No sessions in this store yet."),
    h("p", null, "Start one with ", h("code", null, 'planner run "Write the code. Then test it."'), ".")
  )
  root.replaceChildren(
    h("section", { class: "page-head" }, h("h1", null, "Sessions"), summary),
    h("div", { class: "panel table-panel" }, table, empty)
  )

  const row = (session) => {
    const status = sessionStatus(session.status, session.waiting)
    const href = `/sessions/${encodeURIComponent(session.id)}`
    return h(
      "tr",
      { "data-session-id": session.id },
      h("td", null, pill(status.key, status.label)),
      h(
        "td",
        { class: "request-cell" },
        h("a", { href, class: "request-link" }, firstLine(session.request, 110) || "(empty request)"),
        h("div", { class: "session-id" }, session.id)
      ),
      h("td", { class: "progress-cell" }, progressBar(session.counts, session.taskCount)),
      h("td", { class: "age", title: formatDate(session.createdAt) }, formatAge(session.createdAt)),
      h("td", { class: "age", title: formatDate(session.updatedAt) }, formatAge(session.updatedAt))
    )
  }

  let timer
  const refresh = async () => {
    try {
      const { sessions } = await api.listSessions()
      body.replaceChildren(...sessions.map(row))
      empty.hidden = sessions.length > 0
      table.hidden = sessions.length === 0
      const running = sessions.filter((session) => session.status === "Running").length
      summary.textContent = `${sessions.length} session${sessions.length === 1 ? "" : "s"}, ${running} running · updated ${new Date().toLocaleTimeString()}`
    } catch (error) {
      summary.textContent = error instanceof Error ? error.message : String(error)
      summary.classList.add("error-text")
    }
    clearTimeout(timer)
    if (!document.hidden) timer = setTimeout(refresh, refreshMs)
  }
  document.addEventListener("visibilitychange", () => {
    clearTimeout(timer)
    if (!document.hidden) refresh()
  })
  refresh()
}
