/**
 * The timeline view: each task's attempts on one time axis (queued, running, waiting for an answer, retry backoff),
 * so a user sees where the time went. Bars are positioned through the CSSOM (the page's CSP forbids style attributes).
 */
import { formatClock, formatDuration, h, taskStatusLabels } from "./dom.js"
import { segmentLabels, taskDuration } from "./timing.js"

/**
 * @param {{ tasks: ReadonlyArray<any> }} state
 * @param {{ tasks: Map<number, any[]>, start: number | undefined, end: number | undefined }} timing
 * @param {number} now the end of open segments (now when live, the event's time in the past)
 */
export function renderGantt(state, timing, now) {
  const start = timing.start
  if (start === undefined) return h("p", { class: "muted" }, "Nothing has happened yet.")
  let end = Math.max(timing.end ?? start, start + 1)
  for (const segments of timing.tasks.values()) {
    for (const segment of segments) end = Math.max(end, segment.end ?? now)
  }
  const span = end - start
  const percent = (at) => `${(((at - start) / span) * 100).toFixed(3)}%`
  const ticks = []
  for (let index = 0; index <= 4; index++) {
    const at = start + (span * index) / 4
    ticks.push(
      h(
        "span",
        { class: "tick", style: { left: percent(at) } },
        index === 0 ? formatClock(at) : `+${formatDuration(at - start)}`
      )
    )
  }
  const rows = state.tasks.map((task) => {
    const segments = timing.tasks.get(task.id) ?? []
    const total = taskDuration(segments, now)
    return h(
      "div",
      { class: "gantt-row", role: "listitem", "data-task-id": task.id },
      h(
        "div",
        { class: "gantt-label" },
        h("span", { class: "task-id" }, `#${task.id}`),
        h("span", { class: "gantt-name", title: task.description }, task.description),
        h("span", { class: `gantt-status s-${task.status}` }, taskStatusLabels[task.status] ?? task.status)
      ),
      h(
        "div",
        {
          class: "gantt-track",
          "aria-label": `Task ${task.id}: ${
            segments.length === 0
              ? "not started"
              : segments
                  .map(
                    (segment) =>
                      `${segmentLabels[segment.kind]} ${formatDuration((segment.end ?? now) - segment.start)} (attempt ${segment.attempt})`
                  )
                  .join(", ")
          }`
        },
        segments.map((segment) => {
          const to = segment.end ?? now
          return h("span", {
            class: `seg seg-${segment.kind}${segment.end === undefined ? " open" : ""}`,
            "data-kind": segment.kind,
            "data-attempt": segment.attempt,
            title: `${segmentLabels[segment.kind]}, attempt ${segment.attempt}: ${formatClock(segment.start)} to ${
              segment.end === undefined ? "now" : formatClock(to)
            } (${formatDuration(to - segment.start)})`,
            style: {
              left: percent(segment.start),
              width: `max(2px, ${(((to - segment.start) / span) * 100).toFixed(3)}%)`
            }
          })
        })
      ),
      h("div", { class: "gantt-total" }, segments.length === 0 ? "" : formatDuration(total))
    )
  })
  return h(
    "div",
    { class: "gantt" },
    h(
      "div",
      { class: "gantt-legend" },
      Object.entries(segmentLabels).map(([kind, label]) =>
        h("span", { class: "legend-item" }, h("span", { class: `swatch seg-${kind}` }), label)
      )
    ),
    h("div", { class: "gantt-axis", "aria-hidden": "true" }, ticks),
    h("div", { class: "gantt-rows", role: "list", "aria-label": "Each task's attempts over time" }, rows)
  )
}
