/**
 * The memory of past work (#17) in the dashboard: a search box over the same search as `planner recall` (on the
 * session list), and the clarification flags of a session's tasks (on its page): a task whose similar past tasks
 * usually asked a question, which is worth answering before it runs.
 */
import * as api from "./api.js"
import { firstLine, formatDate, formatDuration, h, pill } from "./dom.js"

const kindChoices = [
  ["", "Tasks and sessions"],
  ["task", "Tasks"],
  ["session", "Sessions"],
  ["Analysis", "Analysis tasks"],
  ["Clarification", "Clarification tasks"],
  ["CodeImplementation", "Code tasks"],
  ["Processing", "Processing tasks"],
  ["Refactor", "Refactor tasks"],
  ["Retrieval", "Retrieval tasks"],
  ["ToolCall", "Tool call tasks"],
  ["UnitTest", "Unit test tasks"]
]

const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`

const sessionLink = (id, text) => h("a", { href: `/sessions/${encodeURIComponent(id)}` }, text)

/** One hit: what it was, how it ended, and its result or outcome. */
function hitItem(hit) {
  if (hit._tag === "Session") {
    return h(
      "li",
      { class: "memory-hit", "data-kind": "session", "data-session-id": hit.sessionId },
      h(
        "div",
        { class: "memory-hit-head" },
        pill(hit.outcome, hit.outcome),
        h("span", { class: "memory-what" }, "Session"),
        sessionLink(hit.sessionId, firstLine(hit.request, 110) || hit.sessionId)
      ),
      h(
        "div",
        { class: "memory-meta" },
        `${plural(hit.plan.length, "task")} · ${formatDuration(hit.durationMs)} · finished ${formatDate(hit.finishedAt)}`
      ),
      hit.summary === "" ? null : h("div", { class: "memory-result" }, firstLine(hit.summary, 200))
    )
  }
  return h(
    "li",
    { class: "memory-hit", "data-kind": "task", "data-session-id": hit.sessionId, "data-task-id": hit.taskId },
    h(
      "div",
      { class: "memory-hit-head" },
      pill(hit.status, hit.status),
      h("span", { class: "memory-what" }, `Task #${hit.taskId} · ${hit.kind}`),
      h("span", { class: "memory-description" }, firstLine(hit.description, 140))
    ),
    h(
      "div",
      { class: "memory-meta" },
      `${plural(hit.attempts, "attempt")} · ${formatDuration(hit.durationMs)} · in `,
      sessionLink(hit.sessionId, hit.sessionId)
    ),
    hit.result === ""
      ? null
      : h(
          "div",
          { class: hit.status === "Completed" ? "memory-result" : "memory-result error-text" },
          `${hit.status === "Completed" ? "Result" : "Error"}: ${firstLine(hit.result, 200)}`
        ),
    ...hit.questions.map((question) => h("div", { class: "memory-asked" }, `Asked: ${firstLine(question, 200)}`))
  )
}

/** The search box over past tasks and sessions, with its results; a section to put on a page. */
export function memorySearch() {
  const input = h("input", {
    type: "search",
    id: "memory-search",
    name: "memory-q",
    placeholder: "Describe a task or request…",
    "aria-label": "Search the memory of past tasks and sessions"
  })
  const kind = h(
    "select",
    { id: "memory-kind", name: "memory-kind" },
    kindChoices.map(([value, text]) => h("option", { value }, text))
  )
  const note = h("p", { class: "page-note", id: "memory-summary", "aria-live": "polite" })
  const results = h("ol", { class: "memory-results", id: "memory-results" })
  const form = h(
    "form",
    { class: "list-controls", role: "search", id: "memory-form" },
    h(
      "label",
      { class: "control grow", for: "memory-search" },
      h("span", { class: "control-label" }, "Recall similar past work"),
      input
    ),
    h("label", { class: "control", for: "memory-kind" }, h("span", { class: "control-label" }, "Look in"), kind),
    h("button", { type: "submit", id: "memory-go" }, "Recall")
  )

  let generation = 0
  const search = async () => {
    const text = input.value.trim()
    const mine = ++generation
    if (text === "") {
      results.replaceChildren()
      note.textContent = ""
      delete note.dataset.count
      return
    }
    note.textContent = "Searching…"
    try {
      const found = await api.recall(text, kind.value)
      if (mine !== generation) return
      results.replaceChildren(...found.hits.map(hitItem))
      note.classList.remove("error-text")
      note.textContent =
        found.hits.length === 0
          ? `Nothing similar to “${firstLine(text, 60)}” in memory yet.`
          : `${plural(found.hits.length, "similar past result")}, closest first.`
      note.dataset.count = String(found.hits.length)
    } catch (error) {
      if (mine !== generation) return
      note.textContent = error instanceof Error ? error.message : String(error)
      note.classList.add("error-text")
    }
  }
  let typing
  form.addEventListener("submit", (event) => {
    event.preventDefault()
    clearTimeout(typing)
    search()
  })
  input.addEventListener("input", () => {
    clearTimeout(typing)
    typing = setTimeout(search, 300)
  })
  kind.addEventListener("change", search)

  return h(
    "section",
    { class: "memory panel", id: "memory", "aria-labelledby": "memory-title" },
    h("h2", { id: "memory-title" }, "Memory of past work"),
    h(
      "p",
      { class: "page-note" },
      "The most similar finished tasks and sessions, with their results and outcomes (as ",
      h("code", null, "planner recall"),
      " finds them)."
    ),
    form,
    note,
    results
  )
}

/**
 * The clarification flags of a session's tasks that have not ended: hidden when there are none, or when memory
 * cannot be read (it is advice, never in the way).
 */
export function clarificationFlags(sessionId) {
  const list = h("ul", { class: "memory-flag-list" })
  const box = h(
    "div",
    { class: "banner memory-flags", id: "memory-flags", role: "note", hidden: true },
    h("span", { class: "banner-icon", "aria-hidden": "true" }, "?"),
    h("div", null, h("strong", null, "From memory: "), list)
  )
  api
    .getMemoryFlags(sessionId)
    .then(({ flags }) => {
      list.replaceChildren(
        ...flags.map((flag) =>
          h(
            "li",
            { "data-task-id": flag.taskId, "data-asked": flag.asked, "data-of": flag.of },
            `Task #${flag.taskId}: similar tasks asked for clarification ${flag.asked} times in ${flag.of}. Consider answering it in advance.`
          )
        )
      )
      box.hidden = flags.length === 0
    })
    .catch(() => {
      box.hidden = true
    })
  return box
}
