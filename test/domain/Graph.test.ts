import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as Graph from "../../src/domain/Graph.js"

/** A random DAG: each task depends only on earlier ones. */
const dagArb = fc.array(fc.array(fc.boolean(), { maxLength: 12 }), { minLength: 1, maxLength: 12 }).map((masks) =>
  masks.map((mask, index) => ({
    id: index + 1,
    dependsOn: mask.slice(0, index).flatMap((on, dep) => (on ? [dep + 1] : []))
  }))
)

describe("Graph", () => {
  it("validates a chain and refuses the malformed plans", () => {
    expect(
      Either.isRight(
        Graph.validate([
          { id: 1, dependsOn: [] },
          { id: 2, dependsOn: [1] }
        ])
      )
    ).toBe(true)
    const reason = (nodes: ReadonlyArray<Graph.Node>) =>
      Either.flip(Graph.validate(nodes)).pipe(Either.getOrThrow).reason
    expect(reason([])).toBe("it has no tasks")
    expect(reason([{ id: 2, dependsOn: [] }])).toBe("task ids must be 1..1 in order, found 2 at position 1")
    expect(reason([{ id: 1, dependsOn: [1] }])).toBe("task 1 depends on itself")
    expect(reason([{ id: 1, dependsOn: [3] }])).toBe("task 1 depends on unknown task 3")
    expect(
      reason([
        { id: 1, dependsOn: [] },
        { id: 2, dependsOn: [1, 1] }
      ])
    ).toBe("task 2 lists task 1 twice")
    expect(
      reason([
        { id: 1, dependsOn: [3] },
        { id: 2, dependsOn: [1] },
        { id: 3, dependsOn: [2] }
      ])
    ).toBe("tasks 1 -> 3 -> 2 -> 1 form a cycle")
  })

  it("handles a 10,000-task chain without overflowing the stack", () => {
    const chain = Array.from({ length: Graph.MAX_TASKS }, (_, index) => ({
      id: index + 1,
      dependsOn: index === 0 ? [] : [index]
    }))
    expect(Either.isRight(Graph.validate(chain))).toBe(true)
    expect(Graph.criticalPath(chain)).toHaveLength(Graph.MAX_TASKS)
  })

  it("finds the parallel groups and the critical path of a diamond", () => {
    const diamond = [
      { id: 1, dependsOn: [] },
      { id: 2, dependsOn: [1] },
      { id: 3, dependsOn: [1] },
      { id: 4, dependsOn: [3] },
      { id: 5, dependsOn: [2, 4] }
    ]
    expect(Graph.parallelGroups(diamond)).toEqual([[1], [2, 3], [4], [5]])
    expect(Graph.criticalPath(diamond)).toEqual([1, 3, 4, 5])
    expect(Graph.criticalPath(diamond, (id) => (id === 2 ? 10 : 1))).toEqual([1, 2, 5])
    expect(Graph.dependentsOf(diamond, 3)).toEqual([4, 5])
  })

  it("orders ready tasks for a scheduler: critical path first, then the longest work after them, then ids", () => {
    // 1 -> 3 -> 4 -> 5 is the critical path; 2 and 6 are ready beside 1; 6 has more work after it than 2.
    const plan = [
      { id: 1, dependsOn: [] },
      { id: 2, dependsOn: [] },
      { id: 3, dependsOn: [1] },
      { id: 4, dependsOn: [3] },
      { id: 5, dependsOn: [4] },
      { id: 6, dependsOn: [] },
      { id: 7, dependsOn: [6] }
    ]
    const priority = Graph.priorities(plan)
    expect(priority.get(1)).toEqual({ critical: true, remaining: 4 })
    expect(priority.get(6)).toEqual({ critical: false, remaining: 2 })
    expect(Graph.orderReady([2, 6, 1], priority)).toEqual([1, 6, 2])
    // A tie (one unit of work after each) goes to the lower id.
    expect(Graph.orderReady([7, 2], priority)).toEqual([2, 7])
    expect(Graph.orderReady([], priority)).toEqual([])
    // Costs change what is critical: with task 2 taking 10 units, it goes first.
    expect(
      Graph.orderReady(
        [1, 2, 6],
        Graph.priorities(plan, (id) => (id === 2 ? 10 : 1))
      )
    ).toEqual([2, 1, 6])
  })

  it.prop("orderReady puts a critical-path task first whenever one is ready", [dagArb], ([nodes]) => {
    const priority = Graph.priorities(nodes)
    const roots = nodes.filter((node) => node.dependsOn.length === 0).map((node) => node.id)
    const ordered = Graph.orderReady(roots, priority)
    expect([...ordered].sort((a, b) => a - b)).toEqual(roots)
    expect(ordered[0]).toBe(Graph.criticalPath(nodes)[0])
  })

  it.prop("a DAG is valid, and its groups and order respect every dependency", [dagArb], ([nodes]) => {
    expect(Either.isRight(Graph.validate(nodes))).toBe(true)
    const groups = Graph.parallelGroups(nodes)
    const groupOf = new Map(groups.flatMap((group, level) => group.map((id) => [id, level] as const)))
    expect(groups.flat().sort((a, b) => a - b)).toEqual(nodes.map((node) => node.id))
    const order = Graph.topologicalOrder(nodes)
    for (const node of nodes) {
      for (const dep of node.dependsOn) {
        expect(groupOf.get(dep) ?? Number.POSITIVE_INFINITY).toBeLessThan(groupOf.get(node.id) ?? -1)
        expect(order.indexOf(dep)).toBeLessThan(order.indexOf(node.id))
      }
    }
  })

  it.prop("the critical path is a chain of dependencies as long as the number of groups", [dagArb], ([nodes]) => {
    const path = Graph.criticalPath(nodes)
    expect(path.length).toBe(Graph.parallelGroups(nodes).length)
    for (let i = 1; i < path.length; i++) {
      const node = nodes.find((n) => n.id === path[i])
      expect(node?.dependsOn).toContain(path[i - 1])
    }
  })

  it.prop(
    "adding an edge from a task back to one it depends on is reported as a cycle",
    [dagArb, fc.nat()],
    ([nodes, pick]) => {
      const withDeps = nodes.filter((node) => node.dependsOn.length > 0)
      const node = withDeps[pick % Math.max(1, withDeps.length)]
      if (node === undefined) return
      const target = node.dependsOn[0] ?? 1
      const cyclic = nodes.map((n) => (n.id === target ? { ...n, dependsOn: [...n.dependsOn, node.id] } : n))
      const cycle = Graph.findCycle(cyclic)
      expect(cycle).toBeDefined()
      expect(cycle?.[0]).toBe(cycle?.at(-1))
      expect(Either.isLeft(Graph.validate(cyclic))).toBe(true)
    }
  )

  it.prop("chain turns any task list into a valid chain", [dagArb], ([nodes]) => {
    const chained = Graph.chain(nodes)
    expect(Either.isRight(Graph.validate(chained))).toBe(true)
    expect(Graph.parallelGroups(chained)).toHaveLength(nodes.length)
  })
})
