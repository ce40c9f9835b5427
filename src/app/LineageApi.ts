/**
 * The dashboard's lineage and diff (#15): where a session came from, the forks made from it, and what differs between
 * it and its origin (or any other session). `Server` routes `GET /api/sessions/:id/lineage` and
 * `GET /api/sessions/:id/diff?with=ID` here.
 *
 * A fork records its origin in its own log (`SessionForked`, folded into `forkedFrom`), not in the origin's; so the
 * forks of a session are found by looking at every session's origin. Each session's origin and status are kept while
 * its last sequence is unchanged, so a page load folds only the sessions that moved.
 *
 * A pruned session (`planner prune`: its events gone, its final state kept) takes its place in lineages from its
 * snapshot, marked `pruned`: an origin that was pruned is still named with its status, and its own origin after it,
 * and a pruned fork is still listed. There is nothing to compare with it: it has no events.
 */
import { Effect } from "effect"
import { encodeEvent } from "../domain/Events.js"
import * as Planner from "../domain/Planner.js"
import { PlannerStore } from "../infra/PlannerStore.js"
import * as SessionSnapshots from "../infra/SessionSnapshots.js"
import type { Origin } from "./Lineage.js"
import { PlannerService } from "./PlannerService.js"
import * as Runner from "./Runner.js"
import { type DivergentEvent, diffSessions } from "./SessionDiff.js"

interface Known {
  readonly lastSequence: number
  readonly createdAt: number
  readonly origin: Origin | undefined
  readonly status: string
  readonly request: string
  readonly pruned?: true
}

/** A session as the lineage panel lists it. */
export interface LineageEntry {
  readonly sessionId: string
  readonly status: string
  readonly createdAt: number
  /** For a fork: the event of its origin it was forked at. */
  readonly atSequence?: number
  /** Its events were pruned: it is known from its final snapshot, and cannot be compared with. */
  readonly pruned?: true
}

/** A fork in a lineage, with the forks made from it in turn. */
export interface ForkNode extends LineageEntry {
  readonly forks: ReadonlyArray<ForkNode>
}

/** Each session's origin and status, kept per server while the session does not move. */
export const makeOrigins = () => {
  const cache = new Map<string, Known>()
  let prunedRead = new Map<string, SessionSnapshots.PrunedSession>()
  const all = Effect.gen(function* () {
    const store = yield* PlannerStore
    const service = yield* PlannerService
    const infos = yield* store.sessions
    // Pruned sessions are extra to a lineage: when their snapshots cannot be listed, the last list read serves.
    const pruned = yield* SessionSnapshots.allPruned(prunedRead).pipe(
      Effect.tapError((error) => Effect.logWarning(`could not list the pruned sessions: ${error.message}`)),
      Effect.orElseSucceed(() => [...prunedRead.values()])
    )
    prunedRead = new Map(pruned.map((session) => [session.sessionId, session]))
    const live = new Set(infos.map((info) => info.aggregateId))
    for (const id of cache.keys()) if (!live.has(id) && !prunedRead.has(id)) cache.delete(id)
    for (const session of pruned) {
      if (live.has(session.sessionId)) continue
      const state = session.state
      cache.set(session.sessionId, {
        lastSequence: session.events,
        createdAt: session.createdAt,
        origin: state?.forkedFrom,
        status: state?.status ?? "Unreadable",
        request: state?.request ?? "",
        pruned: true
      })
    }
    yield* Effect.forEach(
      infos,
      (info) => {
        const cached = cache.get(info.aggregateId)
        if (cached !== undefined && cached.lastSequence === info.lastSequence) return Effect.void
        return service.state(info.aggregateId).pipe(
          Effect.tap((state) =>
            Effect.sync(() =>
              cache.set(info.aggregateId, {
                lastSequence: info.lastSequence,
                createdAt: info.firstCreatedAt,
                origin: state.forkedFrom,
                status: Planner.isWaiting(state) ? "Waiting" : state.status,
                request: state.request
              })
            )
          ),
          // An unreadable session has no known origin; it is left out of lineages rather than failing them.
          Effect.catchTag("CorruptEvent", () => Effect.void)
        )
      },
      { concurrency: 4, discard: true }
    )
    return cache as ReadonlyMap<string, Known>
  })
  return { all }
}

export type Origins = ReturnType<typeof makeOrigins>

const entry = (sessionId: string, known: Known | undefined, atSequence?: number): LineageEntry => ({
  sessionId,
  status: known?.status ?? "Unknown",
  createdAt: known?.createdAt ?? 0,
  ...(atSequence === undefined ? {} : { atSequence }),
  ...(known?.pruned === true ? { pruned: true as const } : {})
})

/**
 * A session's lineage: its ancestors (origin first, then the origin's origin, ...), and its forks, each with the forks
 * made from it in turn (newest first).
 */
export const lineage = (origins: Origins, sessionId: string) =>
  Effect.gen(function* () {
    yield* Runner.existing(sessionId)
    const known = yield* origins.all
    const ancestors: Array<LineageEntry> = []
    const seen = new Set([sessionId])
    let origin = known.get(sessionId)?.origin
    while (origin !== undefined && !seen.has(origin.sessionId)) {
      seen.add(origin.sessionId)
      const parent = known.get(origin.sessionId)
      ancestors.push({ ...entry(origin.sessionId, parent), atSequence: origin.sequence })
      origin = parent?.origin
    }
    const children = new Map<string, Array<[string, Known]>>()
    for (const [id, info] of known) {
      if (info.origin === undefined) continue
      const list = children.get(info.origin.sessionId) ?? []
      list.push([id, info])
      children.set(info.origin.sessionId, list)
    }
    const forksOf = (id: string, depth: number): ReadonlyArray<ForkNode> =>
      depth > 20
        ? []
        : (children.get(id) ?? [])
            .filter(([child]) => !seen.has(child))
            .sort(([, a], [, b]) => b.createdAt - a.createdAt)
            .map(([child, info]) => {
              seen.add(child)
              return { ...entry(child, info, info.origin?.sequence), forks: forksOf(child, depth + 1) }
            })
    const self = known.get(sessionId)
    return {
      sessionId,
      ...(self?.origin === undefined ? {} : { origin: self.origin }),
      ancestors,
      forks: forksOf(sessionId, 0)
    }
  })

const divergentView = (side: DivergentEvent | undefined) =>
  side === undefined ? null : { type: side.type, data: encodeEvent(side.event).data }

/** What differs between `otherId` (A: by default the session's origin) and `sessionId` (B). */
export const diffWith = (sessionId: string, otherId: string | undefined) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore
    const state = yield* Runner.existing(sessionId)
    const baseId = otherId ?? state.forkedFrom?.sessionId
    if (baseId === undefined) return { sessionId, comparable: false as const, reason: "This session is not a fork." }
    const base = yield* Runner.existing(baseId)
    const [eventsA, eventsB] = yield* Effect.all([store.load(baseId), store.load(sessionId)])
    const diff = diffSessions(
      { sessionId: baseId, state: base, events: eventsA.map((record) => record.event) },
      { sessionId, state, events: eventsB.map((record) => record.event) }
    )
    return {
      sessionId,
      comparable: true as const,
      a: diff.a,
      b: diff.b,
      ...(state.forkedFrom?.sessionId === baseId ? { forkedAt: state.forkedFrom.sequence } : {}),
      identical: diff.identical,
      logsCompared: diff.logsCompared,
      ...(diff.request === undefined ? {} : { request: diff.request }),
      divergence:
        diff.divergence === undefined
          ? null
          : {
              sequence: diff.divergence.sequence,
              a: divergentView(diff.divergence.a),
              b: divergentView(diff.divergence.b)
            },
      tasks: diff.tasks
    }
  })
