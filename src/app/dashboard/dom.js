/**
 * Building the page. Every piece of data goes into the DOM as a text node or an attribute value, never through
 * `innerHTML`: task descriptions, results, questions and answers come from people and LLMs and may hold markup.
 */

/**
 * An element. `props` sets attributes (`class`, `data-*`, ...), `on<event>` listeners, `text` and `style` (an object of
 * CSSOM properties); children are nodes
 * or strings (strings become text nodes). `null`, `undefined` and `false` children are skipped.
 *
 * @param {string} tag
 * @param {Record<string, unknown> | null} [props]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const element = document.createElement(tag)
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (key === "text") element.textContent = String(value)
    // Through the CSSOM: the page's CSP forbids inline style attributes.
    else if (key === "style" && typeof value === "object") Object.assign(element.style, value)
    else if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value)
    else element.setAttribute(key, value === true ? "" : String(value))
  }
  appendChildren(element, children)
  return element
}

/** @param {Node} parent @param {unknown[]} children */
function appendChildren(parent, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue
    if (Array.isArray(child)) appendChildren(parent, child)
    else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/** Replaces a node's children only when they differ, so a focused field inside keeps its focus and caret. */
export function setChildren(parent, children) {
  const current = parent.childNodes
  const same = current.length === children.length && children.every((child, index) => current[index] === child)
  if (!same) parent.replaceChildren(...children)
}

/** The first line of a text, cut to `max` characters. */
export function firstLine(text, max = 90) {
  const line = String(text ?? "")
    .trim()
    .split("\n", 1)[0]
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
const dayAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })

/** @param {number} epochMs */
export const formatClock = (epochMs) => clock.format(new Date(epochMs))

/** @param {number} epochMs */
export const formatDate = (epochMs) => dayAndTime.format(new Date(epochMs))

/** "12 s ago", "5 min ago", "3 h ago", "2 days ago". */
export function formatAge(epochMs, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - epochMs) / 1000))
  if (seconds < 60) return `${seconds} s ago`
  const minutes = Math.round(seconds / 60)
  if (minutes < 60) return `${minutes} min ago`
  const hours = Math.round(minutes / 60)
  if (hours < 48) return `${hours} h ago`
  return `${Math.round(hours / 24)} days ago`
}

/** "850 ms", "4.2 s", "3 min 10 s". */
export function formatDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  const minutes = Math.floor(ms / 60_000)
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`
}

/** Task statuses in board order, with their labels. */
export const taskStatusLabels = {
  Planned: "Planned",
  Dispatched: "Dispatched",
  Running: "Running",
  NeedsClarification: "Needs answer",
  RetryScheduled: "Retry scheduled",
  Completed: "Completed",
  Failed: "Failed",
  Skipped: "Skipped",
  Cancelled: "Cancelled"
}

/** The order of the progress bar's segments: finished work first. */
const progressOrder = [
  "Completed",
  "Failed",
  "Skipped",
  "Cancelled",
  "Running",
  "Dispatched",
  "RetryScheduled",
  "NeedsClarification",
  "Planned"
]

/** A stacked bar of task counts by status, with "done of total" beside it. */
export function progressBar(counts, total) {
  const done = (counts.Completed ?? 0) + (counts.Failed ?? 0) + (counts.Skipped ?? 0) + (counts.Cancelled ?? 0)
  const segments = progressOrder
    .filter((status) => (counts[status] ?? 0) > 0)
    .map((status) =>
      h("span", {
        class: `segment s-${status}`,
        style: { flexGrow: String(counts[status]) },
        title: `${taskStatusLabels[status]}: ${counts[status]}`
      })
    )
  return h(
    "div",
    { class: "progress" },
    h("div", { class: "progress-bar", role: "img", "aria-label": `${done} of ${total} tasks finished` }, segments),
    h("span", { class: "progress-text" }, `${done}/${total}`)
  )
}

/** The status of a session as shown: a plan that waits for an answer says so. */
export function sessionStatus(status, waiting, served) {
  if (status === "Running" && waiting) return { key: "Waiting", label: "Waiting for an answer" }
  // A run whose worker died, or that no worker serves, is not shown as running.
  if (status === "Running" && served?.kind === "stalled") return { key: "Stalled", label: "Stalled: worker gone" }
  if (status === "Running" && served?.kind === "unserved") return { key: "Idle", label: "No worker" }
  return { key: status, label: status === "NotStarted" ? "Not started" : status }
}

/** `host/pid/random` worker ids, shown as `host/pid`. */
export const shortWorker = (workerId) => workerId.split("/").slice(0, 2).join("/")

/**
 * One sentence on whether a live process serves a session (see the server's `serving`), or undefined when there is
 * nothing to say (finished).
 */
export function servedText(served, sessionId) {
  const workers = (served.workers ?? []).map(shortWorker).join(", ")
  switch (served.kind) {
    case "held":
      return `Served: a live worker holds its running task${served.workers.length > 1 ? "s" : ""} (${workers}).`
    case "server":
      return `Served by this dashboard's own worker (${workers}): answers given here are acted on at once.`
    case "waiting":
      return "Waiting for an answer: nothing runs until a question is answered."
    case "stalled":
      return `No live worker: the worker that held its running task (${workers}) is gone. Resume it with \`planner resume ${sessionId}\`, a \`planner worker\`, or \`planner serve --worker\`.`
    case "queued":
      return `Queued: no worker holds its tasks yet; a live worker that takes them (${workers}) will as soon as it has room.`
    case "subplans":
      return "What is left of it runs as sub-plans: each child session below says who serves it."
    case "unserved":
      return `No worker is serving this session: its tasks wait. Run \`planner resume ${sessionId}\`, a \`planner worker\`, or \`planner serve --worker\`.`
    default:
      return undefined
  }
}

/** @param {string} status @param {string} label */
export const pill = (status, label) => h("span", { class: `pill s-${status}`, "data-status": status }, label)

/**
 * Asks to confirm an action in a modal dialog (keyboard: Tab between the buttons, Escape cancels). Resolves true when
 * confirmed.
 *
 * @param {{ title: string, body: string, confirm: string, danger?: boolean }} options
 * @returns {Promise<boolean>}
 */
export function confirmAction(options) {
  return new Promise((resolve) => {
    const yes = h(
      "button",
      { type: "submit", class: options.danger ? "danger solid" : "primary", value: "yes", id: "confirm-yes" },
      options.confirm
    )
    const no = h("button", { type: "submit", value: "no", id: "confirm-no" }, "Keep as it is")
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-body" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "confirm-title", class: "confirm-title" }, options.title),
        h("p", { id: "confirm-body" }, options.body),
        h("div", { class: "form-row" }, yes, no)
      )
    )
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes")
      dialog.remove()
    })
    document.body.appendChild(dialog)
    dialog.showModal()
    no.focus()
  })
}
