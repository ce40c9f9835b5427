/**
 * `planner sessions --tree`: the page of sessions with each fork under its origin (see `Lineage`). A fork whose origin
 * is not on the page stays at the top, its origin named.
 */
import { flatten, type LineageNode, lineageTree } from "../Lineage.js"
import { type SessionRow, sessionsJson, sessionsText } from "./Render.js"

const originOf = (row: SessionRow) => row.state?.forkedFrom

export const sessionTree = (rows: ReadonlyArray<SessionRow>) => lineageTree(rows, (row) => row.sessionId, originOf)

/** The table of `sessions`, the session column indented under each origin: `└─ ID (at 7)`. */
export const sessionTreeText = (rows: ReadonlyArray<SessionRow>): string => {
  const shown = flatten(sessionTree(rows)).map(({ node, depth }): SessionRow => {
    const origin = node.origin
    const note =
      origin === undefined
        ? ""
        : node.originElsewhere
          ? ` (fork of ${origin.sessionId} at ${origin.sequence})`
          : ` (at ${origin.sequence})`
    const indent = depth === 0 ? "" : `${"   ".repeat(depth - 1)}└─ `
    return { ...node.item, sessionId: `${indent}${node.item.sessionId}${note}` }
  })
  return sessionsText(shown)
}

interface TreeJson {
  readonly forkedFrom?: { readonly sessionId: string; readonly sequence: number }
  readonly forks: ReadonlyArray<unknown>
}

/** `sessions --tree --json`: the page's rows as `sessions --json` has them, each with its `forks` nested. */
export const sessionTreeJson = (
  rows: ReadonlyArray<SessionRow>,
  range: { readonly total: number; readonly limit: number; readonly offset: number }
) => {
  const flat = sessionsJson(rows, range)
  const byId = new Map(flat.sessions.map((session) => [session.sessionId, session] as const))
  const toJson = (node: LineageNode<SessionRow>): Record<string, unknown> & TreeJson => ({
    ...byId.get(node.item.sessionId),
    ...(node.origin === undefined ? {} : { forkedFrom: node.origin }),
    forks: node.forks.map(toJson)
  })
  return { total: flat.total, offset: flat.offset, limit: flat.limit, sessions: sessionTree(rows).map(toJson) }
}
