/**
 * The dependency graph of a plan: validation, order, parallel groups and the critical path. Plain graph code: an LLM
 * may propose the edges, but whether they form a valid plan is decided here.
 */
import { Either } from "effect"
import { InvalidPlan } from "./Errors.js"
import type { TaskId } from "./Task.js"

/** The part of a task the graph needs. */
export interface Node {
  readonly id: TaskId
  readonly dependsOn: ReadonlyArray<TaskId>
}

/** The most tasks one plan may have. */
export const MAX_TASKS = 10_000

/**
 * A cycle in the graph as the ids along it, first id repeated at the end (`[2, 3, 2]`), or undefined when there is
 * none. Iterative, so a 10,000-task chain does not overflow the stack.
 */
export const findCycle = (nodes: ReadonlyArray<Node>): ReadonlyArray<TaskId> | undefined => {
  const byId = new Map(nodes.map((node) => [node.id, node]))
  // 0: unvisited, 1: on the current path, 2: finished
  const mark = new Map<TaskId, 0 | 1 | 2>()
  for (const root of nodes) {
    if ((mark.get(root.id) ?? 0) !== 0) continue
    const path: Array<TaskId> = []
    const stack: Array<{ id: TaskId; next: number }> = [{ id: root.id, next: 0 }]
    mark.set(root.id, 1)
    path.push(root.id)
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]
      if (frame === undefined) break
      const deps = byId.get(frame.id)?.dependsOn ?? []
      const dep = deps[frame.next]
      if (dep === undefined) {
        mark.set(frame.id, 2)
        stack.pop()
        path.pop()
        continue
      }
      frame.next += 1
      const state = mark.get(dep) ?? 0
      if (state === 1) return [...path.slice(path.indexOf(dep)), dep]
      if (state === 0 && byId.has(dep)) {
        mark.set(dep, 1)
        path.push(dep)
        stack.push({ id: dep, next: 0 })
      }
    }
  }
  return undefined
}

/**
 * Checks that a plan is well formed: at least one task, at most `MAX_TASKS`, ids 1..n in order, every dependency
 * names another existing task once, and there is no cycle.
 */
export const validate = (nodes: ReadonlyArray<Node>): Either.Either<void, InvalidPlan> => {
  const fail = (reason: string) => Either.left(new InvalidPlan({ reason }))
  if (nodes.length === 0) return fail("it has no tasks")
  if (nodes.length > MAX_TASKS) return fail(`it has ${nodes.length} tasks, over the limit of ${MAX_TASKS}`)
  for (const [index, node] of nodes.entries()) {
    if (node.id !== index + 1)
      return fail(`task ids must be 1..${nodes.length} in order, found ${node.id} at position ${index + 1}`)
    const seen = new Set<TaskId>()
    for (const dep of node.dependsOn) {
      if (dep === node.id) return fail(`task ${node.id} depends on itself`)
      if (dep < 1 || dep > nodes.length) return fail(`task ${node.id} depends on unknown task ${dep}`)
      if (seen.has(dep)) return fail(`task ${node.id} lists task ${dep} twice`)
      seen.add(dep)
    }
  }
  const cycle = findCycle(nodes)
  if (cycle !== undefined) return fail(`tasks ${cycle.join(" -> ")} form a cycle`)
  return Either.void
}

/** Dependencies first; among tasks that are free at the same time, lower ids first. Assumes a valid graph. */
export const topologicalOrder = (nodes: ReadonlyArray<Node>): ReadonlyArray<TaskId> => parallelGroups(nodes).flat()

/**
 * Groups of tasks that can run at the same time: group k holds the tasks whose longest chain of dependencies has
 * k links. Every task's dependencies are in earlier groups. Assumes a valid graph.
 */
export const parallelGroups = (nodes: ReadonlyArray<Node>): ReadonlyArray<ReadonlyArray<TaskId>> => {
  const depth = depths(nodes)
  const groups: Array<Array<TaskId>> = []
  for (const node of nodes) {
    const level = depth.get(node.id) ?? 0
    while (groups.length <= level) groups.push([])
    groups[level]?.push(node.id)
  }
  return groups.map((group) => group.sort((a, b) => a - b))
}

/**
 * The longest chain of dependent tasks, weighted by `cost` (1 per task by default): the tasks that bound how fast
 * the plan can finish however many run in parallel. Ties go to the lower ids. Assumes a valid graph.
 */
export const criticalPath = (
  nodes: ReadonlyArray<Node>,
  cost: (id: TaskId) => number = () => 1
): ReadonlyArray<TaskId> => {
  const byId = new Map(nodes.map((node) => [node.id, node]))
  const best = new Map<TaskId, { total: number; via: TaskId | undefined }>()
  for (const id of topologicalOrder(nodes)) {
    let via: TaskId | undefined
    let before = 0
    for (const dep of byId.get(id)?.dependsOn ?? []) {
      const total = best.get(dep)?.total ?? 0
      if (total > before || (total === before && via !== undefined && dep < via)) {
        before = total
        via = dep
      }
    }
    best.set(id, { total: before + cost(id), via })
  }
  let end: TaskId | undefined
  let longest = Number.NEGATIVE_INFINITY
  for (const [id, { total }] of best) {
    if (total > longest || (total === longest && end !== undefined && id < end)) {
      longest = total
      end = id
    }
  }
  const path: Array<TaskId> = []
  for (let id = end; id !== undefined; id = best.get(id)?.via) path.push(id)
  return path.reverse()
}

/**
 * How urgent each task is for a scheduler that can run only some of the ready tasks: whether it is on the critical
 * path, and the cost of the longest chain of tasks from it to the end of the plan (itself included). Assumes a valid
 * graph.
 */
export interface Priority {
  readonly critical: boolean
  readonly remaining: number
}

/** Every task's `Priority`, computed once per plan (linear in tasks and dependencies). */
export const priorities = (
  nodes: ReadonlyArray<Node>,
  cost: (id: TaskId) => number = () => 1
): ReadonlyMap<TaskId, Priority> => {
  const dependents = new Map<TaskId, Array<TaskId>>()
  for (const node of nodes) {
    for (const dep of node.dependsOn) {
      const list = dependents.get(dep)
      if (list === undefined) dependents.set(dep, [node.id])
      else list.push(node.id)
    }
  }
  const remaining = new Map<TaskId, number>()
  const order = topologicalOrder(nodes)
  for (let index = order.length - 1; index >= 0; index--) {
    const id = order[index]
    if (id === undefined) continue
    let after = 0
    for (const next of dependents.get(id) ?? []) after = Math.max(after, remaining.get(next) ?? 0)
    remaining.set(id, after + cost(id))
  }
  const critical = new Set(criticalPath(nodes, cost))
  return new Map(
    nodes.map((node) => [node.id, { critical: critical.has(node.id), remaining: remaining.get(node.id) ?? 0 }])
  )
}

/**
 * The order in which to start `ready` tasks when not all of them can run (`--max-parallel`): critical-path tasks
 * first, then the ones with the longest chain of work after them, then lower ids. Longest-remaining-path first is the
 * classic list-scheduling rule: it starts early what would otherwise delay the end of the plan. Pass `priority` from
 * `priorities(nodes)` to avoid recomputing it for every decision.
 */
export const orderReady = (
  ready: ReadonlyArray<TaskId>,
  priority: ReadonlyMap<TaskId, Priority>
): ReadonlyArray<TaskId> =>
  [...ready].sort((a, b) => {
    const pa = priority.get(a)
    const pb = priority.get(b)
    const critical = Number(pb?.critical ?? false) - Number(pa?.critical ?? false)
    if (critical !== 0) return critical
    const remaining = (pb?.remaining ?? 0) - (pa?.remaining ?? 0)
    return remaining !== 0 ? remaining : a - b
  })

/** Every task that depends on `id`, directly or through others, in id order. */
export const dependentsOf = (nodes: ReadonlyArray<Node>, id: TaskId): ReadonlyArray<TaskId> => {
  const direct = new Map<TaskId, Array<TaskId>>()
  for (const node of nodes) {
    for (const dep of node.dependsOn) {
      const list = direct.get(dep)
      if (list === undefined) direct.set(dep, [node.id])
      else list.push(node.id)
    }
  }
  const found = new Set<TaskId>()
  const pending = [...(direct.get(id) ?? [])]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (found.has(next)) continue
    found.add(next)
    pending.push(...(direct.get(next) ?? []))
  }
  return [...found].sort((a, b) => a - b)
}

/** The same tasks as a chain, each after the previous one: the fallback when proposed dependencies are invalid. */
export const chain = <N extends Node>(nodes: ReadonlyArray<N>): ReadonlyArray<N> =>
  nodes.map((node, index) => ({ ...node, dependsOn: index === 0 ? [] : [nodes[index - 1]?.id ?? node.id - 1] }))

/** Longest number of dependency links below each task. Iterative over a topological sweep. */
const depths = (nodes: ReadonlyArray<Node>): ReadonlyMap<TaskId, number> => {
  const byId = new Map(nodes.map((node) => [node.id, node]))
  const dependents = new Map<TaskId, Array<TaskId>>()
  const remaining = new Map<TaskId, number>()
  for (const node of nodes) {
    const known = node.dependsOn.filter((dep) => byId.has(dep))
    remaining.set(node.id, known.length)
    for (const dep of known) {
      const list = dependents.get(dep)
      if (list === undefined) dependents.set(dep, [node.id])
      else list.push(node.id)
    }
  }
  const depth = new Map<TaskId, number>()
  const queue = nodes.filter((node) => remaining.get(node.id) === 0).map((node) => node.id)
  for (let index = 0; index < queue.length; index++) {
    const id = queue[index]
    if (id === undefined) continue
    const level = Math.max(0, ...(byId.get(id)?.dependsOn ?? []).map((dep) => (depth.get(dep) ?? -1) + 1))
    depth.set(id, level)
    for (const next of dependents.get(id) ?? []) {
      const left = (remaining.get(next) ?? 1) - 1
      remaining.set(next, left)
      if (left === 0) queue.push(next)
    }
  }
  return depth
}
