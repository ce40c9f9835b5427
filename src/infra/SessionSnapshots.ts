/**
 * Retention (`planner prune --finished-before DATE`): the events of finished sessions older than a date are removed,
 * and each keeps a final snapshot (its final `PlannerState`, encoded, and its memory records) in `session_snapshots`
 * (migration 0005), so `show`, `recall`, `stats` and `memory rebuild` still know it. A session with a fork still
 * running is kept (the fork may need its source), and so is a sub-plan's parent or root whose child still runs (see
 * `dependsOn`), and a finished sub-plan whose parent or root still runs (`unfinishedAbove` in `prune`: the tree's
 * budget counts what it spent). Snapshot and deletion commit together, one session at a time.
 *
 * On the SQL stores the snapshots are rows of `session_snapshots`; on the in-memory store they live beside it, for as
 * long as it does (the store's layer has no table), so prune keeps the same promises there. A store without the port's
 * optional `deleteAggregate` cannot prune, and `prune` fails saying so.
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Effect, Either, Option, Schema } from "effect"
import { type MemoryRecord, recordsOf } from "../domain/Memory.js"
import * as Planner from "../domain/Planner.js"
import {
  type CorruptEvent,
  EventStore,
  EventStoreError,
  type EventStoreService,
  type ReadError,
  readableUpTo,
  type SequenceConflict,
  unlessUnreadable
} from "./EventStore.js"
import { withTransaction } from "./internal/transaction.js"
import * as PlannerStore from "./PlannerStore.js"

const encodeState = Schema.encodeSync(Planner.PlannerState)
const decodeState = Schema.decodeUnknownEither(Planner.PlannerState)

const failWith =
  (operation: string) =>
  (error: SqlError): EventStoreError =>
    new EventStoreError({ operation, reason: error.message })

const sqlClient = Effect.serviceOption(SqlClient.SqlClient)

interface Snapshot {
  /** The encoded final state. */
  readonly state: unknown
  readonly records: ReadonlyArray<MemoryRecord>
  /** When its first event was appended. */
  readonly createdAt: number
}

/** The in-memory stores' snapshots, by store: they go when the store goes. */
const inMemory = new WeakMap<EventStoreService, Map<string, Snapshot>>()

/** The snapshots kept beside the in-memory store in context, when there is one and no SQL client. */
const memorySnapshots = Effect.map(Effect.serviceOption(EventStore), (store) => {
  if (Option.isNone(store)) return undefined
  let snapshots = inMemory.get(store.value)
  if (snapshots === undefined) {
    snapshots = new Map()
    inMemory.set(store.value, snapshots)
  }
  return snapshots
})

/**
 * A pruned session's final snapshot that cannot be read (damaged by hand or by a bad restore): its events are gone, so
 * nothing can rebuild it.
 */
export class SnapshotUnreadable extends Schema.TaggedError<SnapshotUnreadable>()("SnapshotUnreadable", {
  sessionId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `The final snapshot of pruned session ${this.sessionId} cannot be read (${this.reason}): its events were pruned, so it cannot be rebuilt from the log. Restore the database from a backup to see it.`
  }
}

/** A snapshot's state, indexed as a fold leaves it; undefined when it cannot be read. */
const decodedState = (encoded: unknown): Planner.PlannerState | undefined => {
  const decoded = decodeState(encoded)
  return Either.isLeft(decoded) ? undefined : { ...decoded.right, index: Planner.indexTasks(decoded.right.tasks) }
}

const decodeSnapshot = (sessionId: string, encoded: unknown) => {
  const state = decodedState(encoded)
  return state === undefined
    ? Effect.fail(
        new SnapshotUnreadable({
          sessionId,
          reason: encoded === undefined ? "it is not JSON" : "it is not a state this planner can read"
        })
      )
    : Effect.succeed(Option.some(state))
}

/** JSON text as stored, or a value no state decodes from when the text is not JSON. */
const parsedOrInvalid = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** A pruned session's final state, if it was pruned. */
export const load = (
  sessionId: string
): Effect.Effect<Option.Option<Planner.PlannerState>, EventStoreError | SnapshotUnreadable> =>
  Effect.gen(function* () {
    const sql = yield* sqlClient
    if (Option.isNone(sql)) {
      const found = (yield* memorySnapshots)?.get(sessionId)
      return found === undefined ? Option.none() : yield* decodeSnapshot(sessionId, found.state)
    }
    const rows = yield* sql.value<{
      state: string
    }>`SELECT state FROM session_snapshots WHERE session_id = ${sessionId}`.pipe(
      Effect.mapError(failWith("read a session's snapshot"))
    )
    const row = rows[0]
    if (row === undefined) return Option.none()
    return yield* decodeSnapshot(sessionId, parsedOrInvalid(row.state))
  })

/**
 * A session's state as its log folds it, or, when the log holds nothing (the state is NotStarted), its final snapshot if
 * `planner prune` emptied it.
 */
export const orSnapshot = (
  sessionId: string,
  state: Planner.PlannerState
): Effect.Effect<Planner.PlannerState, EventStoreError | SnapshotUnreadable> =>
  state.status !== "NotStarted"
    ? Effect.succeed(state)
    : Effect.map(
        load(sessionId),
        Option.getOrElse(() => state)
      )

/** Whether the session was pruned (it has a final snapshot), without reading the snapshot. */
export const isPruned = (sessionId: string): Effect.Effect<boolean, EventStoreError> =>
  Effect.gen(function* () {
    const sql = yield* sqlClient
    if (Option.isNone(sql)) return (yield* memorySnapshots)?.has(sessionId) === true
    const rows = yield* sql.value`SELECT 1 AS found FROM session_snapshots WHERE session_id = ${sessionId}`.pipe(
      Effect.mapError(failWith("read a session's snapshot"))
    )
    return rows.length > 0
  })

/** A pruned session as the session list shows it. */
export interface PrunedSession {
  readonly sessionId: string
  /** How many events it had. */
  readonly events: number
  /**
   * When it began: its first event's time, or for a snapshot taken before that was kept, its state's start time (for a
   * fork, its origin's).
   */
  readonly createdAt: number
  readonly finishedAt: number
  /** Its final state; undefined when its snapshot cannot be read, which `problem` then says. */
  readonly state: Planner.PlannerState | undefined
  readonly problem?: string
}

/** A pruned session for the list, from its encoded snapshot: one that cannot be read is listed with why. */
const prunedSession = (
  sessionId: string,
  kept: { readonly events?: number; readonly createdAt?: number | null; readonly finishedAt?: number },
  encoded: unknown
): PrunedSession => {
  const state = decodedState(encoded)
  const finishedAt = kept.finishedAt ?? state?.finishedAt ?? 0
  const createdAt = kept.createdAt ?? state?.startedAt ?? finishedAt
  if (state === undefined) {
    return {
      sessionId,
      events: kept.events ?? 0,
      createdAt,
      finishedAt,
      state: undefined,
      problem: "its snapshot cannot be read"
    }
  }
  return { sessionId, events: kept.events ?? state.version, createdAt, finishedAt, state }
}

/** A snapshot row's columns as the driver gives them (BIGINT comes back as text from PostgreSQL). */
interface KeptColumns {
  readonly last_sequence: number | string
  readonly created_at: number | string | null
  readonly finished_at: number | string
}

const keptOf = (row: KeptColumns) => ({
  events: Number(row.last_sequence),
  createdAt: row.created_at === null ? null : Number(row.created_at),
  finishedAt: Number(row.finished_at)
})

/** The in-memory store's pruned sessions, those in `known` as they are. */
const memoryPruned = (known: ReadonlyMap<string, PrunedSession> = new Map()) =>
  Effect.map(memorySnapshots, (snapshots) =>
    [...(snapshots?.entries() ?? [])].map(
      ([sessionId, snapshot]) =>
        known.get(sessionId) ?? prunedSession(sessionId, { createdAt: snapshot.createdAt }, snapshot.state)
    )
  )

/**
 * One page of the pruned sessions (their events gone, their final states kept), the latest finished first, and how
 * many there are: the session list shows them after the sessions that still have their events. A snapshot that cannot
 * be read is listed with the problem, never hiding the others.
 */
export const prunedPage = (page: {
  readonly limit: number
  readonly offset: number
}): Effect.Effect<{ readonly total: number; readonly sessions: ReadonlyArray<PrunedSession> }, EventStoreError> =>
  Effect.gen(function* () {
    const sql = yield* sqlClient
    if (Option.isNone(sql)) {
      const sessions = yield* memoryPruned()
      sessions.sort((a, b) => b.finishedAt - a.finishedAt || (a.sessionId < b.sessionId ? -1 : 1))
      return { total: sessions.length, sessions: sessions.slice(page.offset, page.offset + page.limit) }
    }
    const [count] = yield* sql.value<{ total: number | string }>`SELECT count(*) AS total FROM session_snapshots`.pipe(
      Effect.mapError(failWith("count the pruned sessions"))
    )
    const rows = yield* sql.value<KeptColumns & { session_id: string; state: string }>`SELECT session_id,
        last_sequence, created_at, finished_at, state FROM session_snapshots
        ORDER BY finished_at DESC, session_id LIMIT ${page.limit} OFFSET ${page.offset}`.pipe(
      Effect.mapError(failWith("list the pruned sessions"))
    )
    const sessions = rows.map((row) => prunedSession(row.session_id, keptOf(row), parsedOrInvalid(row.state)))
    return { total: Number(count?.total ?? 0), sessions }
  })

/** How many snapshots one statement reads at most (the bound on its `IN` list). */
const readChunk = 500

/**
 * Every pruned session, for a list that keeps them between looks (the dashboard's, refreshed every few seconds):
 * the snapshots of sessions in `known` with the same event count are not read and decoded again, only new ones.
 * A snapshot that cannot be read is listed with the problem.
 */
export const allPruned = (
  known: ReadonlyMap<string, PrunedSession> = new Map()
): Effect.Effect<ReadonlyArray<PrunedSession>, EventStoreError> =>
  Effect.gen(function* () {
    const sql = yield* sqlClient
    if (Option.isNone(sql)) return yield* memoryPruned(known)
    const keys = yield* sql.value<KeptColumns & { session_id: string }>`SELECT session_id, last_sequence, created_at,
        finished_at FROM session_snapshots`.pipe(Effect.mapError(failWith("list the pruned sessions")))
    const fresh = keys.filter((key) => known.get(key.session_id)?.events !== Number(key.last_sequence))
    const read = new Map<string, PrunedSession>()
    for (let start = 0; start < fresh.length; start += readChunk) {
      const chunk = fresh.slice(start, start + readChunk)
      const rows = yield* sql.value<{ session_id: string; state: string }>`SELECT session_id, state
          FROM session_snapshots WHERE session_id IN ${sql.value.in(chunk.map((key) => key.session_id))}`.pipe(
        Effect.mapError(failWith("read the pruned sessions' snapshots"))
      )
      const byId = new Map(chunk.map((key) => [key.session_id, key]))
      for (const row of rows) {
        const key = byId.get(row.session_id)
        if (key === undefined) continue
        read.set(row.session_id, prunedSession(row.session_id, keptOf(key), parsedOrInvalid(row.state)))
      }
    }
    return keys.flatMap((key) => {
      const session = read.get(key.session_id) ?? known.get(key.session_id)
      return session === undefined ? [] : [session]
    })
  })

/** The memory records kept with every snapshot, for `memory rebuild`. */
export const allRecords: Effect.Effect<ReadonlyArray<MemoryRecord>, EventStoreError> = Effect.gen(function* () {
  const sql = yield* sqlClient
  if (Option.isNone(sql)) {
    const snapshots = yield* memorySnapshots
    return snapshots === undefined
      ? []
      : [...snapshots.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).flatMap(([, snapshot]) => snapshot.records)
  }
  const rows = yield* sql.value<{
    session_id: string
    records: string
  }>`SELECT session_id, records FROM session_snapshots ORDER BY session_id`.pipe(
    Effect.mapError(failWith("read the snapshots"))
  )
  // A snapshot whose records are not a list is left out with a warning, never taking the others with it.
  const records: Array<MemoryRecord> = []
  for (const row of rows) {
    const parsed = parsedOrInvalid(row.records)
    if (Array.isArray(parsed)) records.push(...(parsed as Array<MemoryRecord>))
    else
      yield* Effect.logWarning(
        `Left out of the memory index: the snapshot of pruned session ${row.session_id} cannot be read`
      )
  }
  return records
})

/** A session a running session needs, and how it is linked to it. */
export interface Dependency {
  readonly sessionId: string
  readonly as: "fork" | "child"
}

/**
 * The sessions this one needs while it runs: the session it was forked from, and (a sub-plan) its parent and the root
 * of its tree. A finished session that a running one needs is never pruned.
 */
export const dependsOn = (state: Planner.PlannerState): ReadonlyArray<Dependency> => {
  const needed: Array<Dependency> = []
  if (state.forkedFrom !== undefined) needed.push({ sessionId: state.forkedFrom.sessionId, as: "fork" })
  const link = state.subPlanOf
  if (link !== undefined) {
    needed.push({ sessionId: link.sessionId, as: "child" })
    if (link.rootSessionId !== link.sessionId) needed.push({ sessionId: link.rootSessionId, as: "child" })
  }
  return needed
}

/** Why a session stays: "its fork f still running", "its child sessions a, b still running", or both. */
const keptBecause = (running: ReadonlyArray<Dependency & { readonly by: string }>): string => {
  const list = (as: Dependency["as"], word: string) => {
    const ids = [...new Set(running.filter((entry) => entry.as === as).map((entry) => entry.by))]
    return ids.length === 0 ? [] : [`${word}${ids.length === 1 ? "" : "s"} ${ids.join(", ")}`]
  }
  return `its ${[...list("fork", "fork"), ...list("child", "child session")].join(" and ")} still running`
}

export interface PruneReport {
  readonly pruned: ReadonlyArray<{ readonly sessionId: string; readonly events: number; readonly finishedAt: number }>
  readonly kept: ReadonlyArray<{ readonly sessionId: string; readonly reason: string }>
  /** Sessions with an event that cannot be read: not pruned, and what they need is kept (see `prune`). */
  readonly unreadable: ReadonlyArray<CorruptEvent>
}

/** Prunes every finished session that finished before `finishedBefore` (epoch milliseconds). */
export const prune = (
  finishedBefore: number,
  /** Only say what would be pruned and kept: nothing is written. */
  options: { readonly dryRun?: boolean } = {}
): Effect.Effect<PruneReport, ReadError | SequenceConflict, EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const sql = yield* sqlClient
    const deleteAggregate = store.deleteAggregate
    const snapshots = Option.isNone(sql) ? yield* memorySnapshots : undefined
    if (deleteAggregate === undefined || (Option.isNone(sql) && snapshots === undefined)) {
      return yield* new EventStoreError({
        operation: "prune",
        reason: "this store keeps every event (it cannot delete an aggregate's events)"
      })
    }
    const plannerStore = yield* Effect.provideService(PlannerStore.make, EventStore, store)
    const sessions = yield* store.aggregates(PlannerStore.plannerStreamId)
    const states = new Map<string, { state: Planner.PlannerState; records: ReadonlyArray<MemoryRecord> }>()
    const neededBy = new Map<string, Array<Dependency & { readonly by: string }>>()
    const unreadable: Array<PruneReport["unreadable"][number]> = []
    /** Unreadable sessions whose links are not known, with when they began. */
    const blind: Array<{ readonly sessionId: string; readonly since: number }> = []
    const begun = new Map(sessions.map((session) => [session.aggregateId, session.firstCreatedAt]))
    /** The sessions a session that is not finished needs are kept (see `dependsOn`). */
    const needs = (sessionId: string, state: Planner.PlannerState) => {
      for (const needed of dependsOn(state)) {
        neededBy.set(needed.sessionId, [...(neededBy.get(needed.sessionId) ?? []), { ...needed, by: sessionId }])
      }
    }
    for (const session of sessions) {
      const sessionId = session.aggregateId
      const loaded = yield* unlessUnreadable(plannerStore.load(sessionId))
      if (Either.isLeft(loaded)) {
        // Not pruned: whether it finished is not known. It counts as running, and what it needs (the session it was
        // forked from, its parent) is in its first event, in the part of its log that reads well.
        unreadable.push(loaded.left)
        const readableTo = readableUpTo(loaded.left)
        if (readableTo === 0) {
          // Not even its first event reads: what it was forked or started from is not known, so every session begun
          // no later than it (a source or a parent always begins first) is kept for it.
          blind.push({ sessionId, since: session.firstCreatedAt })
          continue
        }
        const readable = yield* plannerStore.load(sessionId, { toSequence: readableTo })
        needs(sessionId, Planner.fold(readable.map((record) => record.event)))
        continue
      }
      const events = loaded.right.map((record) => record.event)
      const state = Planner.fold(events)
      states.set(sessionId, { state, records: recordsOf(sessionId, events) })
      if (!Planner.isFinished(state)) needs(sessionId, state)
    }
    const unreadableIds = new Set(unreadable.map((error) => error.aggregateId))
    /**
     * Why a finished sub-plan stays while its tree runs (its parent or its root not finished, or unreadable): the
     * tree's budget counts what each of its sessions spent, and its tree shows their tasks, both from their logs.
     */
    const unfinishedAbove = (state: Planner.PlannerState): string | undefined => {
      const link = state.subPlanOf
      if (link === undefined) return undefined
      for (const [id, role] of [
        [link.sessionId, "parent session"],
        [link.rootSessionId, "root session"]
      ] as const) {
        if (unreadableIds.has(id)) return `its ${role} ${id} cannot be read, so whether it still runs is not known`
        const found = states.get(id)
        if (found !== undefined && !Planner.isFinished(found.state)) return `its ${role} ${id} is still running`
      }
      return undefined
    }
    const now = yield* Clock.currentTimeMillis
    const pruned: Array<PruneReport["pruned"][number]> = []
    const kept: Array<PruneReport["kept"][number]> = []
    for (const [sessionId, { state, records }] of states) {
      const finishedAt = state.finishedAt
      if (!Planner.isFinished(state) || finishedAt === undefined || finishedAt >= finishedBefore) continue
      const running = neededBy.get(sessionId)
      if (running !== undefined) {
        kept.push({ sessionId, reason: keptBecause(running) })
        continue
      }
      const above = unfinishedAbove(state)
      if (above !== undefined) {
        kept.push({ sessionId, reason: above })
        continue
      }
      const mayNeed = blind.filter((other) => (begun.get(sessionId) ?? 0) <= other.since)
      if (mayNeed.length > 0) {
        const ids = mayNeed.map((other) => other.sessionId).join(", ")
        kept.push({
          sessionId,
          reason: `the first event of ${mayNeed.length === 1 ? "session" : "sessions"} ${ids} cannot be read, so whether ${mayNeed.length === 1 ? "it needs" : "they need"} this one is not known`
        })
        continue
      }
      const createdAt = begun.get(sessionId) ?? state.startedAt ?? finishedAt
      if (options.dryRun === true) {
        pruned.push({ sessionId, events: state.version, finishedAt })
        continue
      }
      if (Option.isNone(sql)) {
        // The in-memory store: the deletion checks the version and runs at once; the snapshot follows it.
        const events = yield* deleteAggregate(PlannerStore.plannerStreamId, sessionId, state.version)
        snapshots?.set(sessionId, { state: encodeState(state), records, createdAt })
        pruned.push({ sessionId, events, finishedAt })
        continue
      }
      const events = yield* withTransaction(sql.value)(
        Effect.zipRight(
          sql.value`INSERT INTO session_snapshots (session_id, last_sequence, created_at, finished_at, pruned_at,
                state, records)
              VALUES (${sessionId}, ${state.version}, ${createdAt}, ${finishedAt}, ${now},
                ${JSON.stringify(encodeState(state))}, ${JSON.stringify(records)})
              ON CONFLICT (session_id) DO UPDATE SET last_sequence = excluded.last_sequence,
                created_at = excluded.created_at, finished_at = excluded.finished_at, pruned_at = excluded.pruned_at,
                state = excluded.state, records = excluded.records`,
          deleteAggregate(PlannerStore.plannerStreamId, sessionId, state.version)
        )
      ).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(failWith("prune a session")(error))))
      pruned.push({ sessionId, events, finishedAt })
    }
    return { pruned, kept, unreadable }
  })
