/**
 * The plan as a graph: tasks as nodes, dependencies as edges, laid out left to right by dependency depth (a task sits
 * one column right of its deepest dependency), so each column is a group of tasks that may run in parallel. The
 * critical path (the chain of dependencies that took, or will take, longest) is marked. Plain SVG built with the DOM,
 * no library: every text goes in as a text node.
 */
import { taskStatusLabels } from "./dom.js"

const svgNs = "http://www.w3.org/2000/svg"

/** @param {string} tag @param {Record<string, unknown>} [attributes] @param {...(Node | string | null)} children */
function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(svgNs, tag)
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value)
    else element.setAttribute(key, String(value))
  }
  for (const child of children) {
    if (child === null || child === undefined) continue
    element.appendChild(typeof child === "string" ? document.createTextNode(child) : child)
  }
  return element
}

const nodeWidth = 232
const nodeHeight = 70
const columnGap = 72
const rowGap = 22
const headerHeight = 30
const margin = 12

/**
 * Each task's depth: 0 without dependencies, else one more than its deepest dependency. A dependency on a task that
 * does not exist counts as none (the planner refuses such plans; this only keeps the page from looping).
 *
 * @param {ReadonlyArray<{ id: number, dependsOn: ReadonlyArray<number> }>} tasks
 * @returns {Map<number, number>}
 */
export function depths(tasks) {
  const byId = new Map(tasks.map((task) => [task.id, task]))
  const depth = new Map()
  const visiting = new Set()
  const of = (id) => {
    const known = depth.get(id)
    if (known !== undefined) return known
    const task = byId.get(id)
    if (task === undefined || visiting.has(id)) return -1
    visiting.add(id)
    const value = task.dependsOn.reduce((deepest, dep) => Math.max(deepest, of(dep) + 1), 0)
    visiting.delete(id)
    depth.set(id, value)
    return value
  }
  for (const task of tasks) of(task.id)
  return depth
}

/**
 * The critical path: the chain of dependencies with the largest total weight, a task's weight being how long it took
 * (or has been running) plus one millisecond, so that before anything ran the longest chain by count wins.
 *
 * @param {ReadonlyArray<{ id: number, dependsOn: ReadonlyArray<number> }>} tasks
 * @param {(id: number) => number} durationOf
 * @returns {Set<number>} the ids on it
 */
export function criticalPath(tasks, durationOf) {
  const depth = depths(tasks)
  const ordered = [...tasks].sort((a, b) => (depth.get(a.id) ?? 0) - (depth.get(b.id) ?? 0) || a.id - b.id)
  const best = new Map()
  for (const task of ordered) {
    let before = { total: 0, via: undefined }
    for (const dep of task.dependsOn) {
      const candidate = best.get(dep)
      if (candidate !== undefined && candidate.total > before.total) before = { total: candidate.total, via: dep }
    }
    best.set(task.id, { total: before.total + durationOf(task.id) + 1, via: before.via })
  }
  let end
  for (const [id, entry] of best) if (end === undefined || entry.total > best.get(end).total) end = id
  const path = new Set()
  while (end !== undefined) {
    path.add(end)
    end = best.get(end)?.via
  }
  return path
}

/** The text of a node's line, cut to fit the node. */
const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

/**
 * The graph of `state`'s tasks as an SVG element.
 *
 * @param {{ tasks: ReadonlyArray<any> }} state
 * @param {{ selected: number | null, durationOf: (id: number) => number, onSelect: (id: number) => void }} options
 */
export function renderGraph(state, options) {
  const tasks = state.tasks
  const depth = depths(tasks)
  const columns = []
  for (const task of tasks) {
    const column = depth.get(task.id) ?? 0
    while (columns.length <= column) columns.push([])
    columns[column].push(task)
  }
  // Within a column, tasks sit near the tasks they depend on (by their average row), which keeps edges short.
  const row = new Map()
  for (const column of columns) {
    const weight = (task) =>
      task.dependsOn.length === 0
        ? task.id / 1000
        : task.dependsOn.reduce((sum, dep) => sum + (row.get(dep) ?? 0), 0) / task.dependsOn.length
    column.sort((a, b) => weight(a) - weight(b) || a.id - b.id)
    for (const [index, task] of column.entries()) row.set(task.id, index)
  }
  const rows = Math.max(1, ...columns.map((column) => column.length))
  const width = margin * 2 + columns.length * nodeWidth + Math.max(0, columns.length - 1) * columnGap
  const height = margin * 2 + headerHeight + rows * nodeHeight + (rows - 1) * rowGap
  const position = (id) => {
    const column = depth.get(id) ?? 0
    const count = columns[column]?.length ?? 1
    // A column with fewer tasks is centred vertically.
    const offset = ((rows - count) * (nodeHeight + rowGap)) / 2
    return {
      x: margin + column * (nodeWidth + columnGap),
      y: margin + headerHeight + offset + (row.get(id) ?? 0) * (nodeHeight + rowGap)
    }
  }
  const critical = criticalPath(tasks, options.durationOf)

  const bands = columns.map((column, index) => {
    const x = margin + index * (nodeWidth + columnGap)
    const parallel = column.length > 1
    return s(
      "g",
      { class: `band${parallel ? " parallel" : ""}`, "data-column": index },
      s("rect", {
        x: x - 8,
        y: margin,
        width: nodeWidth + 16,
        height: height - margin * 2,
        rx: 10,
        class: "band-bg"
      }),
      s(
        "text",
        { x: x + 2, y: margin + 18, class: "band-label" },
        parallel ? `Step ${index + 1} · ${column.length} in parallel` : `Step ${index + 1}`
      )
    )
  })

  const edges = []
  for (const task of tasks) {
    for (const dep of task.dependsOn) {
      if (!depth.has(dep)) continue
      const from = position(dep)
      const to = position(task.id)
      const x1 = from.x + nodeWidth
      const y1 = from.y + nodeHeight / 2
      const x2 = to.x - 6
      const y2 = to.y + nodeHeight / 2
      const bend = Math.max(24, (x2 - x1) / 2)
      const onPath = critical.has(task.id) && critical.has(dep)
      const source = tasks.find((candidate) => candidate.id === dep)
      edges.push(
        s("path", {
          d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
          class: `edge s-${source?.status ?? "Planned"}${onPath ? " critical" : ""}`,
          "data-edge": `${dep}-${task.id}`,
          "marker-end": onPath ? "url(#arrow-critical)" : "url(#arrow)"
        })
      )
    }
  }

  const nodes = tasks.map((task) => {
    const { x, y } = position(task.id)
    const label = taskStatusLabels[task.status] ?? task.status
    const onPath = critical.has(task.id)
    const selected = options.selected === task.id
    const node = s(
      "g",
      {
        class: `node s-${task.status}${onPath ? " critical" : ""}${selected ? " selected" : ""}`,
        "data-node": task.id,
        "data-status": task.status,
        transform: `translate(${x} ${y})`,
        tabindex: 0,
        role: "button",
        "aria-pressed": selected ? "true" : "false",
        "aria-label": `Task ${task.id}, ${task.kind}: ${task.description}. ${label}${onPath ? ", on the critical path" : ""}${
          task.dependsOn.length > 0 ? `, after ${task.dependsOn.map((dep) => `task ${dep}`).join(", ")}` : ""
        }`,
        onclick: () => options.onSelect(task.id),
        onkeydown: (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault()
            options.onSelect(task.id)
          }
        }
      },
      s("title", {}, `#${task.id} ${task.description}`),
      s("rect", { class: "node-box", width: nodeWidth, height: nodeHeight, rx: 9 }),
      s("rect", { class: "node-stripe", width: 5, height: nodeHeight, rx: 2 }),
      s("text", { class: "node-head", x: 14, y: 20 }, `#${task.id} · ${task.kind}`),
      s("text", { class: "node-text", x: 14, y: 40 }, clip(task.description, 30)),
      s("text", { class: "node-status", x: 14, y: 59 }, label),
      task.attempt > 1
        ? s(
            "text",
            { class: "node-attempt", x: nodeWidth - 10, y: 59, "text-anchor": "end" },
            `attempt ${task.attempt}`
          )
        : null
    )
    return node
  })

  const arrow = (id) =>
    s(
      "marker",
      { id, viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: id })
    )

  return s(
    "svg",
    {
      class: "graph-svg",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "group",
      "aria-label": `Plan graph: ${tasks.length} tasks in ${columns.length} steps; critical path ${[...critical]
        .sort((a, b) => a - b)
        .map((id) => `#${id}`)
        .join(" → ")}`
    },
    s("defs", {}, arrow("arrow"), arrow("arrow-critical")),
    s("g", { class: "bands" }, ...bands),
    s("g", { class: "edges" }, ...edges),
    s("g", { class: "nodes" }, ...nodes)
  )
}
