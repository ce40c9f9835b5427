/**
 * The session list: status, progress and age of every session, refreshed while the tab is visible, with a status
 * filter, a search in the requests, a sort order and pages. The choices live in the address (`?status=&q=&sort=&page=`)
 * so a filtered list can be bookmarked or shared; the header says how many are shown out of how many match.
 */
import * as api from "./api.js"
import { firstLine, formatAge, formatDate, h, pill, progressBar, sessionStatus } from "./dom.js"
import { memorySearch } from "./memory.js"

const refreshMs = 4000
const pageSize = 50

const statusChoices = [
  ["", "All statuses"],
  ["Running", "Running"],
  ["Waiting", "Waiting for an answer"],
  ["Succeeded", "Succeeded"],
  ["Failed", "Failed"],
  ["Cancelled", "Cancelled"],
  ["Unreadable", "Unreadable"]
]
const sortChoices = [
  ["newest", "Newest first"],
  ["oldest", "Oldest first"],
  ["updated", "Recently active"]
]

/** The list's choices from the address. */
function readChoices() {
  const params = new URLSearchParams(location.search)
  const page = Number(params.get("page") ?? "1")
  return {
    status: statusChoices.some(([value]) => value === params.get("status")) ? params.get("status") : "",
    q: params.get("q") ?? "",
    sort: sortChoices.some(([value]) => value === params.get("sort")) ? params.get("sort") : "newest",
    page: Number.isInteger(page) && page >= 1 ? page : 1
  }
}

function writeChoices(choices) {
  const params = new URLSearchParams()
  if (choices.status !== "") params.set("status", choices.status)
  if (choices.q !== "") params.set("q", choices.q)
  if (choices.sort !== "newest") params.set("sort", choices.sort)
  if (choices.page > 1) params.set("page", String(choices.page))
  const text = params.toString()
  history.replaceState(null, "", text === "" ? location.pathname : `${location.pathname}?${text}`)
}

const select = (id, label, choices, value) =>
  h(
    "label",
    { class: "control", for: id },
    h("span", { class: "control-label" }, label),
    h(
      "select",
      { id, name: id },
      choices.map(([choice, text]) => h("option", { value: choice, selected: choice === value }, text))
    )
  )

/** @param {HTMLElement} root */
export function mountSessions(root) {
  document.title = "Sessions · planner"
  const choices = readChoices()
  const body = h("tbody")
  const summary = h("p", { class: "page-note", id: "sessions-summary", "aria-live": "polite" }, "Loading sessions…")
  const table = h(
    "table",
    { class: "sessions", "aria-describedby": "sessions-summary" },
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col" }, "Request"),
        h("th", { scope: "col" }, "Progress"),
        h("th", { scope: "col" }, "Started"),
        h("th", { scope: "col" }, "Last event")
      )
    ),
    body
  )
  const empty = h("div", { class: "empty", hidden: true })

  const statusSelect = select("filter-status", "Status", statusChoices, choices.status)
  const sortSelect = select("sort-order", "Sort", sortChoices, choices.sort)
  const search = h("input", {
    type: "search",
    id: "search-requests",
    name: "q",
    placeholder: "Search requests or ids…",
    value: choices.q,
    "aria-label": "Search in the requests and session ids"
  })
  const previous = h("button", { type: "button", id: "page-previous", "aria-label": "Previous page" }, "‹ Previous")
  const next = h("button", { type: "button", id: "page-next", "aria-label": "Next page" }, "Next ›")
  const pageLabel = h("span", { class: "page-label", id: "page-label" })
  const controls = h(
    "form",
    { class: "list-controls", role: "search", onsubmit: (event) => event.preventDefault() },
    statusSelect,
    h(
      "label",
      { class: "control grow", for: "search-requests" },
      h("span", { class: "control-label" }, "Search"),
      search
    ),
    sortSelect
  )
  const pager = h("nav", { class: "pager", "aria-label": "Pages of sessions" }, previous, pageLabel, next)
  root.replaceChildren(
    h("section", { class: "page-head" }, h("h1", null, "Sessions"), summary),
    controls,
    h("div", { class: "panel table-panel" }, table, empty),
    pager,
    memorySearch()
  )

  const row = (session) => {
    const unreadable = session.status === "Unreadable"
    const status = unreadable
      ? { key: "Failed", label: "Unreadable" }
      : sessionStatus(session.status, session.waiting, session.served)
    const href = `/sessions/${encodeURIComponent(session.id)}`
    return h(
      "tr",
      { "data-session-id": session.id, "data-status": session.status },
      h(
        "td",
        { class: "status-cell" },
        pill(status.key, status.label),
        session.served?.kind === "held" || session.served?.kind === "server"
          ? h("div", { class: "served-note", title: (session.served.workers ?? []).join(", ") }, "worker live")
          : null,
        session.pruned === true
          ? h(
              "div",
              { class: "pruned-mark", title: "Its events were pruned (planner prune); its final state is kept." },
              "pruned"
            )
          : null
      ),
      h(
        "td",
        { class: "request-cell" },
        unreadable
          ? h(
              "span",
              { class: "error-text" },
              session.pruned === true
                ? `This pruned session's final state cannot be read: ${session.problem ?? "a corrupt snapshot"}.`
                : `This session's log cannot be read: ${session.problem ?? "a corrupt event"}.`
            )
          : h("a", { href, class: "request-link" }, firstLine(session.request, 110) || "(empty request)"),
        h("div", { class: "session-id" }, session.id)
      ),
      h("td", { class: "progress-cell" }, unreadable ? "" : progressBar(session.counts, session.taskCount)),
      h("td", { class: "age", title: formatDate(session.createdAt) }, formatAge(session.createdAt)),
      h("td", { class: "age", title: formatDate(session.updatedAt) }, formatAge(session.updatedAt))
    )
  }

  let timer
  let generation = 0
  const refresh = async () => {
    const mine = ++generation
    clearTimeout(timer)
    writeChoices(choices)
    try {
      const page = await api.listSessions({
        limit: pageSize,
        offset: (choices.page - 1) * pageSize,
        status: choices.status,
        q: choices.q,
        sort: choices.sort
      })
      if (mine !== generation) return
      // A page past the end (sessions went away, or a filter narrowed the list) shows the last one instead.
      const pages = Math.max(1, Math.ceil(page.total / pageSize))
      if (choices.page > pages) {
        choices.page = pages
        refresh()
        return
      }
      body.replaceChildren(...page.sessions.map(row))
      const filtered = choices.status !== "" || choices.q !== ""
      empty.hidden = page.sessions.length > 0
      table.hidden = page.sessions.length === 0
      empty.replaceChildren(
        ...(filtered
          ? [h("p", null, "No session matches.")]
          : [
              h("p", null, "No sessions in this store yet."),
              h("p", null, "Start one with ", h("code", null, 'planner run "Write the code. Then test it."'), ".")
            ])
      )
      const first = page.sessions.length === 0 ? 0 : page.offset + 1
      const last = page.offset + page.sessions.length
      const shown = page.sessions.length === page.total ? `${page.total}` : `${first}–${last}`
      summary.textContent = `Showing ${shown} of ${page.total} session${page.total === 1 ? "" : "s"}${
        filtered ? ` that match (${page.all} in the store)` : ""
      } · updated ${new Date().toLocaleTimeString()}`
      summary.classList.remove("error-text")
      summary.dataset.total = String(page.total)
      pageLabel.textContent = `Page ${choices.page} of ${pages}`
      previous.disabled = choices.page <= 1
      next.disabled = choices.page >= pages
      pager.hidden = pages <= 1
    } catch (error) {
      if (mine !== generation) return
      summary.textContent = error instanceof Error ? error.message : String(error)
      summary.classList.add("error-text")
    }
    if (!document.hidden) timer = setTimeout(refresh, refreshMs)
  }

  const choose = (change) => {
    Object.assign(choices, change)
    refresh()
  }
  statusSelect
    .querySelector("select")
    .addEventListener("change", (event) => choose({ status: event.target.value, page: 1 }))
  sortSelect
    .querySelector("select")
    .addEventListener("change", (event) => choose({ sort: event.target.value, page: 1 }))
  let typing
  search.addEventListener("input", () => {
    clearTimeout(typing)
    typing = setTimeout(() => choose({ q: search.value.trim(), page: 1 }), 250)
  })
  previous.addEventListener("click", () => choose({ page: Math.max(1, choices.page - 1) }))
  next.addEventListener("click", () => choose({ page: choices.page + 1 }))
  document.addEventListener("visibilitychange", () => {
    clearTimeout(timer)
    if (!document.hidden) refresh()
  })
  refresh()
}
