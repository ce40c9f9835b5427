/**
 * The commands that read sessions, and `cancel`: `sessions`, `history`, `replay --at`, `show`. They load only the
 * store and the command handler, so they start quickly.
 */
import { Clock, Effect, Either, Option, Stream } from "effect"
import { Cancel } from "../../domain/Commands.js"
import * as Planner from "../../domain/Planner.js"
import { type PlannerEventRecord, PlannerStore } from "../../infra/PlannerStore.js"
import * as SessionSnapshots from "../../infra/SessionSnapshots.js"
import * as HeldAttempts from "../HeldAttempts.js"
import { PlannerService } from "../PlannerService.js"
import * as SubPlanApi from "../SubPlanApi.js"
import * as SubPlans from "../SubPlans.js"
import { toFailure, usage } from "./Failure.js"
import { out } from "./Output.js"
import {
  historyJson,
  historyText,
  resultJson,
  type SessionRow,
  sessionsJson,
  sessionsText,
  stateJson,
  stateText,
  taskJson
} from "./Render.js"
import { storable } from "./Request.js"
import { existingLog, existingState, existingStateAt, programName, sessionFacts } from "./Session.js"
import { forReading, plannerLayer, resolveExistingStore, type StoreTarget } from "./Store.js"
import { subPlanLines } from "./TreeRender.js"

export interface ReadFlags {
  readonly db: Option.Option<string>
  readonly json: boolean
}

/** Runs `body` with the store; `writes`: the command writes (`cancel`), else it may read a store it cannot write. */
const withStore = <A, E, R>(flags: ReadFlags, body: (store: StoreTarget) => Effect.Effect<A, E, R>, writes = false) => {
  const found = resolveExistingStore(flags.db)
  const store = writes ? found : forReading(found)
  return body(store).pipe(Effect.provide(plannerLayer(store)), Effect.mapError(toFailure))
}

const print = (json: boolean, value: () => unknown, text: () => string) => out(json ? JSON.stringify(value()) : text())

export interface SessionsFlags extends ReadFlags {
  readonly limit: number
  readonly offset: number
  /** `--tree`: forks under their origin (#15, see `SessionTree`). */
  readonly tree?: boolean
}

export const sessions = (flags: SessionsFlags) =>
  withStore(flags, (store) =>
    Effect.gen(function* () {
      if (!Number.isInteger(flags.limit) || flags.limit < 1 || flags.limit > 10_000)
        return yield* usage(`--limit must be a whole number from 1 to 10000; got ${flags.limit}.`)
      if (!Number.isInteger(flags.offset) || flags.offset < 0)
        return yield* usage(`--offset must be a whole number, 0 or more; got ${flags.offset}.`)
      const plannerStore = yield* PlannerStore
      const page = yield* plannerStore.sessionPage({ limit: flags.limit, offset: flags.offset })
      const stalled = yield* HeldAttempts.makeStalled
      const rows: Array<SessionRow> = yield* Effect.forEach(
        page.sessions,
        (info) =>
          plannerStore.load(info.aggregateId).pipe(
            Effect.flatMap((records) => {
              const state = Planner.fold(records.map((record) => record.event))
              return Effect.map(
                stalled(info.aggregateId, state),
                (stalled): SessionRow => ({
                  sessionId: info.aggregateId,
                  createdAt: info.firstCreatedAt,
                  updatedAt: info.lastCreatedAt,
                  events: info.lastSequence,
                  state,
                  ...(stalled ? { stalled } : {})
                })
              )
            }),
            // One unreadable session must not hide the others.
            Effect.catchTag("CorruptEvent", (error) =>
              Effect.succeed<SessionRow>({
                sessionId: info.aggregateId,
                createdAt: info.firstCreatedAt,
                updatedAt: info.lastCreatedAt,
                events: info.lastSequence,
                state: undefined,
                problem: `event ${error.sequence} cannot be read${error.reason.includes("gap") ? " (a gap in the log)" : ""}`
              })
            )
          ),
        { concurrency: 4 }
      )
      // The pruned sessions (their events gone, their final states kept) come after those that have their events.
      const pruned = yield* SessionSnapshots.prunedPage({
        limit: Math.max(0, flags.limit - rows.length),
        offset: Math.max(0, flags.offset - page.total)
      })
      for (const session of rows.length < flags.limit ? pruned.sessions : []) {
        rows.push({
          sessionId: session.sessionId,
          createdAt: session.createdAt,
          updatedAt: session.finishedAt,
          events: session.events,
          state: session.state,
          pruned: true,
          ...(session.problem === undefined ? {} : { problem: session.problem })
        })
      }
      const range = { total: page.total + pruned.total, limit: flags.limit, offset: flags.offset }
      const tree = flags.tree === true ? yield* Effect.promise(() => import("./SessionTree.js")) : undefined
      if (flags.json) {
        return yield* out(
          JSON.stringify(tree === undefined ? sessionsJson(rows, range) : tree.sessionTreeJson(rows, range))
        )
      }
      if (range.total === 0) {
        return yield* out(
          `No sessions in ${store.label} yet${store._tag === "Sqlite" && store.missing === true ? " (no such file)" : ""}. Start one with: ${programName()} run "Write the code. Then test it."${store.flag}`
        )
      }
      if (rows.length === 0) {
        return yield* out(
          `No sessions at offset ${flags.offset}: ${store.label} has ${range.total}. Try \`${programName()} sessions --offset ${Math.max(0, range.total - flags.limit)}${store.flag}\`.`
        )
      }
      const stalledNote = rows.some((row) => row.stalled === true)
        ? `\nStalled: no worker is running its tasks (its run was stopped, or no worker serves it); go on with \`${programName()} resume SESSION${store.flag}\`.`
        : ""
      yield* out(
        `${tree === undefined ? sessionsText(rows) : tree.sessionTreeText(rows)}\n${pageLine(range, rows.length, `${programName()} sessions`, store.flag)}${stalledNote}`
      )
    })
  )

/** "showing 1-50 of 105 sessions, newest first; more: planner sessions --offset 50" */
export const pageLine = (
  range: { readonly total: number; readonly limit: number; readonly offset: number },
  shown: number,
  command: string,
  flag: string
): string => {
  const next = range.offset + shown
  const more =
    next < range.total
      ? `; more with \`${command} --offset ${next}${range.limit === 50 ? "" : ` --limit ${range.limit}`}${flag}\``
      : ""
  return `(showing ${range.offset + 1}-${next} of ${range.total} session${range.total === 1 ? "" : "s"}, newest first${more})`
}

export interface SessionFlags extends ReadFlags {
  readonly sessionId: string
}

export const history = (flags: SessionFlags) =>
  withStore(flags, (store) =>
    Effect.gen(function* () {
      const last = yield* existingLog(flags.sessionId, store)
      if (last === 0) {
        // Pruned: no events left, only the final state.
        return yield* print(
          flags.json,
          () => ({ ...historyJson(flags.sessionId, []), pruned: true }),
          () =>
            `Session ${flags.sessionId}: no events; it was pruned, and only its final state is kept (see \`planner show ${flags.sessionId}${store.flag}\`).`
        )
      }
      const records: Array<PlannerEventRecord> = []
      const read = yield* Effect.either(
        Stream.runForEach(Stream.unwrap(Effect.map(PlannerStore, (s) => s.read(flags.sessionId))), (record) =>
          Effect.sync(() => records.push(record))
        )
      )
      // As text, the events before one that cannot be read are shown, then the error: where the log broke, and what
      // a fork before it would keep. As JSON, all or nothing.
      if (Either.isLeft(read) && (flags.json || records.length === 0)) return yield* read.left
      yield* print(
        flags.json,
        () => historyJson(flags.sessionId, records),
        () => historyText(flags.sessionId, records, Either.isLeft(read) ? last : records.length)
      )
      if (Either.isLeft(read)) return yield* read.left
    })
  )

export const show = (flags: SessionFlags) =>
  withStore(flags, (store) =>
    Effect.gen(function* () {
      const state = yield* HeldAttempts.asShown(flags.sessionId, yield* existingState(flags.sessionId, store))
      const facts = yield* sessionFacts(flags.sessionId)
      // A pruned session has its final state and no events left.
      const pruned = (yield* Effect.flatMap(PlannerStore, (s) => s.lastSequence(flags.sessionId))) === 0
      const header = {
        sessionId: flags.sessionId,
        events: state.version,
        ...(pruned ? { pruned: true as const } : {}),
        ...(facts.createdAt === undefined ? {} : { createdAt: facts.createdAt }),
        ...(facts.forkedFrom === undefined ? {} : { forkedFrom: facts.forkedFrom })
      }
      // Sub-plans: each child's tasks under the task it does.
      const tree = yield* SubPlans.tree(flags.sessionId, state)
      const spend = SubPlans.treeSpend(tree)
      const withSpend = spend === undefined ? header : { ...header, tree: spend }
      const shown = (yield* Effect.flatMap(HeldAttempts.makeStalled, (stalled) => stalled(flags.sessionId, state)))
        ? { ...withSpend, stalled: { resume: `${programName()} resume ${flags.sessionId}${store.flag}` } }
        : withSpend
      yield* print(
        flags.json,
        () => SubPlanApi.withTree(stateJson(state, shown), tree, taskJson),
        () => stateText(state, shown, subPlanLines(tree))
      )
    })
  )

export interface ReplayFlags extends SessionFlags {
  readonly at: number
}

export const replay = (flags: ReplayFlags) =>
  withStore(flags, (store) =>
    Effect.gen(function* () {
      // Only the first `at` events are read: an unreadable event after them does not stop time travel before it.
      const { state, last } = yield* existingStateAt(flags.sessionId, store, flags.at)
      const [record] = yield* Effect.flatMap(PlannerStore, (s) =>
        s.load(flags.sessionId, { fromSequence: flags.at, toSequence: flags.at })
      )
      const facts = yield* sessionFacts(flags.sessionId)
      const header = {
        sessionId: flags.sessionId,
        events: last,
        at: { sequence: flags.at, record },
        ...(facts.forkedFrom === undefined ? {} : { forkedFrom: facts.forkedFrom })
      }
      // Sub-plans as they were at that moment.
      const tree = yield* SubPlans.treeAt(flags.sessionId, flags.at)
      const spend = SubPlans.treeSpend(tree)
      const withSpend = spend === undefined ? header : { ...header, tree: spend }
      yield* print(
        flags.json,
        () => SubPlanApi.withTree(stateJson(state, withSpend), tree, taskJson),
        () => stateText(state, withSpend, subPlanLines(tree))
      )
    })
  )

export interface CancelFlags extends SessionFlags {
  readonly reason: Option.Option<string>
}

export const cancel = (flags: CancelFlags) =>
  withStore(
    flags,
    (store) =>
      Effect.gen(function* () {
        if (Option.isSome(flags.reason) && flags.reason.value.trim() === "") {
          return yield* usage("--reason is empty: say why the session is cancelled, or leave --reason out.")
        }
        const before = yield* existingState(flags.sessionId, store)
        if (Planner.isFinished(before) && before.status !== "Cancelled") {
          return yield* usage(
            `Session ${flags.sessionId} has already finished (${before.status}): there is nothing to cancel.`
          )
        }
        const service = yield* PlannerService
        const at = yield* Clock.currentTimeMillis
        const reason = yield* storable(
          "--reason",
          Option.isSome(flags.reason) ? flags.reason.value.trim() : "cancelled by the user"
        )
        const { state } = yield* service.execute(flags.sessionId, new Cancel({ reason, at }))
        yield* print(
          flags.json,
          () => resultJson(flags.sessionId, state),
          () => `Cancelled session ${flags.sessionId}: ${state.summary ?? ""}`.trim()
        )
      }),
    true
  )
