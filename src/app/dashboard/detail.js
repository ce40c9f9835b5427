/**
 * One event in full: its JSON as stored (data and metadata: event id, correlation, causation, worker), what it changed
 * in the session (task statuses, results, errors, attempts and the plan's status, against the state before it), and
 * the state right after it.
 */
import { formatClock, formatDate, h, taskStatusLabels } from "./dom.js"

const json = (value) => JSON.stringify(value, null, 2)

/** The fields of a task compared between two states, with how each is shown. */
const taskFields = [
  ["status", (value) => taskStatusLabels[value] ?? value],
  ["attempt", String],
  ["result", String],
  ["error", String],
  ["retryAt", (value) => formatClock(value)],
  ["lease", (value) => value.workerId],
  ["compacted", String]
]

/**
 * What changed between two states of a session, one row per changed field.
 *
 * @returns {Array<{ subject: string, field: string, before: string | undefined, after: string | undefined }>}
 */
export function stateDiff(before, after) {
  const rows = []
  if (before?.status !== after.status) {
    rows.push({ subject: "Plan", field: "status", before: before?.status, after: after.status })
  }
  for (const task of after.tasks) {
    const old = before?.tasks.find((candidate) => candidate.id === task.id)
    if (old === undefined) {
      rows.push({ subject: `#${task.id}`, field: "planned", before: undefined, after: task.description })
      continue
    }
    for (const [field, show] of taskFields) {
      const a = old[field]
      const b = task[field]
      if (JSON.stringify(a) === JSON.stringify(b)) continue
      rows.push({
        subject: `#${task.id}`,
        field,
        before: a === undefined ? undefined : show(a),
        after: b === undefined ? undefined : show(b)
      })
    }
    const asked = task.clarifications.length
    if (
      asked !== old.clarifications.length ||
      task.clarifications.at(-1)?.answer !== old.clarifications.at(-1)?.answer
    ) {
      const last = task.clarifications.at(-1)
      rows.push({
        subject: `#${task.id}`,
        field: last?.answer === undefined ? "question" : "answer",
        before: undefined,
        after: last?.answer ?? last?.question
      })
    }
  }
  if ((before?.contextSummary ?? "") !== after.contextSummary) {
    rows.push({ subject: "Plan", field: "context", before: undefined, after: after.contextSummary })
  }
  return rows
}

const valueCell = (value, kind) =>
  h(
    "td",
    { class: kind },
    value === undefined ? h("span", { class: "muted" }, "—") : h("span", { class: "cell-text" }, value)
  )

/**
 * @param {any} record the event as the API gives it
 * @param {{ state: any } | undefined} after the session right after it (undefined while loading)
 * @param {{ state: any } | undefined | null} before right before it (null for the first event; undefined while loading)
 */
export function eventDetail(record, after, before) {
  const metadata = record.metadata ?? {}
  const facts = [
    ["Sequence", String(record.sequence)],
    ["Position", String(record.position)],
    ["Type", `${record.type} v${record.version}`],
    ["Stored", formatDate(record.createdAt)],
    ["Event id", metadata.eventId],
    ["Correlation", metadata.correlationId],
    ["Causation", metadata.causationId],
    ["Worker", record.data.workerId ?? metadata.extra?.workerId]
  ].filter(([, value]) => value !== undefined && value !== "")
  const diff =
    after === undefined || before === undefined
      ? h("p", { class: "muted" }, "Loading the states around it…")
      : (() => {
          const rows = stateDiff(before?.state, after.state)
          return rows.length === 0
            ? h("p", { class: "muted" }, "No task status or result changed.")
            : h(
                "table",
                { class: "diff", "aria-label": "What this event changed" },
                h(
                  "thead",
                  null,
                  h(
                    "tr",
                    null,
                    h("th", null, "What"),
                    h("th", null, "Field"),
                    h("th", null, "Before"),
                    h("th", null, "After")
                  )
                ),
                h(
                  "tbody",
                  null,
                  rows.map((row) =>
                    h(
                      "tr",
                      { "data-subject": row.subject, "data-field": row.field },
                      h("td", { class: "diff-cell" }, row.subject),
                      h("td", { class: "diff-cell" }, row.field),
                      valueCell(row.before, "before"),
                      valueCell(row.after, "after")
                    )
                  )
                )
              )
        })()
  return h(
    "div",
    { class: "event-detail", "data-sequence": record.sequence },
    h("h2", null, `Event ${record.sequence}: ${record.type}`),
    h(
      "dl",
      { class: "event-facts" },
      facts.map(([label, value]) => [h("dt", null, label), h("dd", null, h("code", null, value))])
    ),
    h("h3", null, "What changed"),
    diff,
    h(
      "details",
      { class: "json-block", open: true },
      h("summary", null, "Event JSON"),
      h(
        "pre",
        { class: "json", id: "event-json", tabindex: 0, "aria-label": "The event as stored, in JSON" },
        json({
          sequence: record.sequence,
          position: record.position,
          type: record.type,
          version: record.version,
          createdAt: record.createdAt,
          metadata: record.metadata,
          data: record.data
        })
      )
    ),
    h(
      "details",
      { class: "json-block" },
      h("summary", null, "State right after it"),
      after === undefined
        ? h("p", { class: "muted" }, "Loading…")
        : h(
            "pre",
            { class: "json", id: "state-json", tabindex: 0, "aria-label": "The session's state after this event" },
            json(after.state)
          )
    )
  )
}
