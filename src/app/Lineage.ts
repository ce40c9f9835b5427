/**
 * Lineage (#15): which session was forked from which. A fork records its origin as the `SessionForked` event at its
 * start (folded into `PlannerState.forkedFrom`), so the tree is built from each session's own state: forks under their
 * origin, recursively. `planner sessions --tree` and the dashboard's lineage panel use it.
 */

export interface Origin {
  readonly sessionId: string
  readonly sequence: number
}

export interface LineageNode<T> {
  readonly item: T
  /** Where it was forked from, when it is a fork. */
  readonly origin: Origin | undefined
  /** True when it is a fork whose origin is not among the items given (shown at the top level, with its origin named). */
  readonly originElsewhere: boolean
  readonly forks: ReadonlyArray<LineageNode<T>>
}

/**
 * The items as a forest: each fork under its origin when the origin is among them, in the order given; the others
 * (and forks of sessions not given) at the top. A fork chain that loops (which no store can produce) is cut where it
 * would repeat.
 */
export const lineageTree = <T>(
  items: ReadonlyArray<T>,
  idOf: (item: T) => string,
  originOf: (item: T) => Origin | undefined
): ReadonlyArray<LineageNode<T>> => {
  const byId = new Map(items.map((item) => [idOf(item), item] as const))
  const children = new Map<string, Array<T>>()
  const roots: Array<T> = []
  for (const item of items) {
    const origin = originOf(item)
    if (origin !== undefined && byId.has(origin.sessionId) && origin.sessionId !== idOf(item)) {
      const list = children.get(origin.sessionId) ?? []
      list.push(item)
      children.set(origin.sessionId, list)
    } else {
      roots.push(item)
    }
  }
  const placed = new Set<string>()
  const node = (item: T): LineageNode<T> => {
    placed.add(idOf(item))
    const origin = originOf(item)
    const forks = (children.get(idOf(item)) ?? []).filter((child) => !placed.has(idOf(child))).map(node)
    return { item, origin, originElsewhere: origin !== undefined && !byId.has(origin.sessionId), forks }
  }
  const forest = roots.map(node)
  // Items on a loop of origins have no root: show them at the top rather than lose them.
  for (const item of items) if (!placed.has(idOf(item))) forest.push(node(item))
  return forest
}

/** The nodes of a forest in display order, each with its depth. */
export const flatten = <T>(
  forest: ReadonlyArray<LineageNode<T>>,
  depth = 0
): ReadonlyArray<{ readonly node: LineageNode<T>; readonly depth: number; readonly last: boolean }> =>
  forest.flatMap((node, index) => [
    { node, depth, last: index === forest.length - 1 },
    ...flatten(node.forks, depth + 1)
  ])
