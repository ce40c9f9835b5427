/**
 * The commands over the memory of past work (#17): `recall` (the most similar past tasks and sessions), `stats`
 * (success rate, attempts, duration and clarification rate per kind), `memory rebuild` (recompute the index from the
 * log), `prune --finished-before DATE` (remove old finished sessions' events, keeping final snapshots). Each first catches the index up with the log (`MemoryProjection.catchUp`), so it answers for everything
 * stored so far; the index lives in the same database as the log.
 */
import { Effect, Layer, Option } from "effect"
import { type KindStats, type MemoryRecord, stats as memoryStats } from "../../domain/Memory.js"
import { type NodeKind, nodeKinds } from "../../domain/Task.js"
import type { EventStore } from "../../infra/EventStore.js"
import { MemoryIndex, MemoryIndexError, makeMemory, type RecallKind } from "../../infra/MemoryIndex.js"
import * as MemoryProjection from "../../infra/MemoryProjection.js"
import * as SessionSnapshots from "../../infra/SessionSnapshots.js"
import * as MemoryLive from "../MemoryLive.js"
import { reusablePlan } from "../MemoryPlanning.js"
import { visible } from "./ErrorLine.js"
import { type CliFailure, toFailure, unavailable, usage } from "./Failure.js"
import { duration, err, firstLine, isoTime, out, plural, unreadableJson } from "./Output.js"
import * as Prompt from "./Prompt.js"
import { forReading, requireDatabase, resolveExistingStore, type StoreTarget, storeLayer } from "./Store.js"

export interface MemoryReadFlags {
  readonly db: Option.Option<string>
  readonly json: boolean
}

export interface RecallFlags extends MemoryReadFlags {
  readonly text: string
  readonly limit: number
  readonly kind: Option.Option<string>
}

/** The index on the store's own database (see `MemoryLive`). */
export const indexLayer = MemoryLive.indexLayer

/** The store and the index for a target. */
export const memoryLayer = (target: StoreTarget): Layer.Layer<EventStore | MemoryIndex, CliFailure> =>
  indexLayer.pipe(Layer.provideMerge(storeLayer(target)))

const indexFailure = (error: MemoryIndexError) => unavailable(`${error.message}.`)

/** Runs `body` with the store and the index; `writes`: the command changes them, else it may read a store it cannot write. */
const withMemory = <A, E, R extends EventStore | MemoryIndex>(
  flags: MemoryReadFlags,
  body: (store: StoreTarget) => Effect.Effect<A, E, R>,
  writes = false
) => {
  const found = resolveExistingStore(flags.db)
  const store = writes ? found : forReading(found)
  return body(store).pipe(
    Effect.provide(memoryLayer(store)),
    Effect.mapError((error) => (error instanceof MemoryIndexError ? indexFailure(error) : toFailure(error)))
  )
}

/**
 * The index, caught up with the log. On a SQLite store this user may only read (opened read only, see
 * `Store.forReading`) the index cannot move: when it is behind the log, the answer comes from an index rebuilt from the
 * log in this process's memory instead (word search, no embeddings), and a line on stderr says so.
 */
const caughtUpIndex = Effect.gen(function* () {
  const saved = yield* MemoryIndex
  const behind = yield* MemoryProjection.catchUp.pipe(
    Effect.as(false),
    Effect.catchIf(
      // The write is refused by the database, whether the index's or the checkpoint's statement comes first.
      (error) => error._tag !== "CorruptEvent" && /readonly database/i.test(error.message),
      () => Effect.succeed(true)
    )
  )
  if (!behind) return saved
  const inMemory = makeMemory()
  const rebuilt = yield* Effect.provideService(MemoryProjection.rebuild, MemoryIndex, inMemory)
  for (const corrupt of rebuilt.unreadable) {
    yield* err(`memory: session ${corrupt.aggregateId} is left out: ${visible(corrupt.message)}`)
  }
  yield* err(
    "memory: the index is behind the log and this user may not update it: answering from the log, read into memory (word search only). Run `planner memory rebuild` as a user who may write the database to bring it up to date."
  )
  return inMemory
})

const kinds: ReadonlyArray<RecallKind> = ["task", "session", ...nodeKinds]

export const parseKind = (given: Option.Option<string>): RecallKind | undefined | CliFailure => {
  if (Option.isNone(given)) return undefined
  const found = kinds.find((kind) => kind.toLowerCase() === given.value.trim().toLowerCase())
  return found ?? usage(`--kind ${given.value} is not known: use one of ${kinds.join(", ")}.`)
}

const percent = (rate: number) => `${Math.round(rate * 100)}%`

/** One hit as text: what it was, how it ended, and its result or summary. */
export const recordText = (record: MemoryRecord): string => {
  if (record._tag === "Session") {
    const lines = [
      `session ${record.sessionId}  ${record.outcome}  ${plural(record.plan.length, "task")}  ${duration(record.durationMs)}`,
      `  request: ${firstLine(record.request)}`
    ]
    if (record.summary.length > 0) lines.push(`  outcome: ${firstLine(record.summary)}`)
    return lines.join("\n")
  }
  const lines = [
    `task ${record.taskId} of ${record.sessionId}  ${record.kind}  ${record.status}  ${record.attempts} attempt${record.attempts === 1 ? "" : "s"}  ${duration(record.durationMs)}`,
    `  ${firstLine(record.description)}`
  ]
  if (record.result.length > 0)
    lines.push(`  ${record.status === "Completed" ? "result" : "error"}: ${firstLine(record.result)}`)
  for (const question of record.questions) lines.push(`  asked: ${firstLine(question)}`)
  return lines.join("\n")
}

export const recall = (flags: RecallFlags) =>
  withMemory(flags, () =>
    Effect.gen(function* () {
      if (flags.text.trim().length === 0) return yield* usage("recall needs some text to look for, in quotes.")
      if (!Number.isInteger(flags.limit) || flags.limit < 1 || flags.limit > 1_000) {
        return yield* usage(`--limit must be a whole number from 1 to 1000; got ${flags.limit}.`)
      }
      const kind = parseKind(flags.kind)
      if (kind !== undefined && typeof kind !== "string") return yield* kind
      const index = yield* caughtUpIndex
      const hits = yield* index.search({
        text: flags.text,
        limit: flags.limit,
        ...(kind === undefined ? {} : { kind })
      })
      if (flags.json) {
        return yield* out(
          JSON.stringify({ query: flags.text, hits: hits.map(({ record, score }) => ({ score, ...record })) })
        )
      }
      if (hits.length === 0) {
        return yield* out(`Nothing similar to "${firstLine(flags.text, 60)}" in memory yet.`)
      }
      yield* out(hits.map(({ record }) => recordText(record)).join("\n\n"))
    })
  )

const kindLine = (name: string, figures: KindStats) =>
  `${name.padEnd(20)}${String(figures.tasks).padStart(6)}  ${percent(figures.successRate).padStart(7)}  ${figures.meanAttempts.toFixed(2).padStart(8)}  ${duration(figures.meanDurationMs).padStart(10)}  ${percent(figures.clarificationRate).padStart(7)}`

export const stats = (flags: MemoryReadFlags) =>
  withMemory(flags, () =>
    Effect.gen(function* () {
      const index = yield* caughtUpIndex
      const figures = memoryStats(yield* index.all)
      if (flags.json) return yield* out(JSON.stringify(figures))
      if (figures.overall.tasks === 0 && figures.sessions.finished === 0) {
        return yield* out("No finished work in memory yet.")
      }
      const header = `${"kind".padEnd(20)}${"tasks".padStart(6)}  ${"success".padStart(7)}  ${"attempts".padStart(8)}  ${"mean time".padStart(10)}  ${"asked".padStart(7)}`
      const rows = (Object.entries(figures.byKind) as Array<[NodeKind, KindStats]>).map(([kind, row]) =>
        kindLine(kind, row)
      )
      yield* out(
        [
          header,
          ...rows,
          kindLine("all tasks", figures.overall),
          "",
          `sessions: ${figures.sessions.finished} finished, ${figures.sessions.succeeded} succeeded (${percent(figures.sessions.successRate)})`
        ].join("\n")
      )
    })
  )

export const rebuild = (flags: MemoryReadFlags) =>
  withMemory(
    flags,
    (store) =>
      Effect.gen(function* () {
        yield* requireDatabase(store)
        const rebuilt = yield* MemoryProjection.rebuild
        // Events written while it rebuilt are projected by the consumer from its saved position, as usual.
        yield* MemoryProjection.catchUp
        // A session whose log cannot be read is left out; the rest is rebuilt, and the command says which it left out.
        if (flags.json)
          return yield* out(JSON.stringify({ ...rebuilt, unreadable: rebuilt.unreadable.map(unreadableJson) }))
        yield* out(
          `Memory rebuilt from the log: ${plural(rebuilt.records, "record")} from ${plural(rebuilt.sessions, "session")}.`
        )
        for (const corrupt of rebuilt.unreadable) {
          yield* err(visible(`Left out session ${corrupt.aggregateId}: ${corrupt.message}`))
        }
      }),
    true
  )

export interface PruneFlags extends MemoryReadFlags {
  readonly finishedBefore: string
  readonly dryRun: boolean
}

/** `2025-01-31` (midnight UTC) or a full ISO date and time; undefined when it is neither. */
export const parseDate = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(trimmed)) return undefined
  const millis = Date.parse(trimmed)
  return Number.isNaN(millis) ? undefined : millis
}

export const prune = (flags: PruneFlags) =>
  withMemory(
    flags,
    () =>
      Effect.gen(function* () {
        const before = parseDate(flags.finishedBefore)
        if (before === undefined) {
          return yield* usage(
            `--finished-before ${flags.finishedBefore} is not a date: give YYYY-MM-DD or an ISO date and time (2025-01-31T12:00:00Z).`
          )
        }
        // The index must hold every pruned session's records before their events go.
        if (!flags.dryRun) yield* MemoryProjection.catchUp
        const report = yield* SessionSnapshots.prune(before, { dryRun: flags.dryRun })
        if (flags.json) {
          return yield* out(
            JSON.stringify({
              ...report,
              unreadable: report.unreadable.map(unreadableJson),
              ...(flags.dryRun ? { dryRun: true } : {})
            })
          )
        }
        const lines: Array<string> = []
        const events = report.pruned.reduce((total, session) => total + session.events, 0)
        const sessions = plural(report.pruned.length, "finished session")
        if (report.pruned.length === 0) lines.push(`No finished session before ${flags.finishedBefore} to prune.`)
        else {
          lines.push(
            flags.dryRun
              ? `Would prune the events of ${sessions} (${plural(events, "event")}), keeping their final snapshots and memory:`
              : `Pruned the events of ${sessions} (${plural(events, "event")}); their final snapshots and memory stay, so show, recall and stats still know them:`
          )
          for (const session of report.pruned) {
            lines.push(`  ${session.sessionId}  finished ${isoTime(session.finishedAt)}  ${session.events} events`)
          }
        }
        for (const session of report.kept) lines.push(`Kept ${session.sessionId}: ${session.reason}.`)
        for (const corrupt of report.unreadable) {
          lines.push(visible(`Kept ${corrupt.aggregateId}: an event of its log cannot be read. ${corrupt.message}`))
        }
        if (flags.dryRun) lines.push("Dry run: nothing was removed.")
        yield* out(lines.join("\n"))
      }),
    // A dry run only reads.
    !flags.dryRun
  )

/** The person's word for yes; anything else (no, Ctrl-D) plans the request as usual. */
const isYes = (answer: string) => /^(y|yes)$/i.test(answer.trim())

/**
 * `run` at a terminal without `--from-memory` (and without an LLM, which gets past plans as examples instead): when a
 * past successful session planned a closely matching request, shows its plan and asks whether to reuse it. The plan to
 * reuse when the person says yes; undefined otherwise, or when nothing matches.
 */
export const offerReuse = (request: string) =>
  Effect.gen(function* () {
    const found = yield* Effect.provide(reusablePlan(request), indexLayer)
    if (Option.isNone(found)) return undefined
    const { fromSession, tasks } = found.value
    const answer = yield* Prompt.ask(
      [
        `Past session ${fromSession.sessionId} planned a closely matching request and succeeded: ${JSON.stringify(firstLine(fromSession.request, 100))}`,
        ...tasks.map(
          (task) =>
            `  ${task.id}. [${task.kind}] ${firstLine(task.description, 100)}${task.dependsOn.length === 0 ? "" : ` (after ${task.dependsOn.join(", ")})`}`
        )
      ],
      "Reuse its plan (as --from-memory does)? [y/n] "
    )
    if (Option.isSome(answer) && isYes(answer.value)) {
      yield* err(`Reusing the plan of session ${fromSession.sessionId} from memory (${plural(tasks.length, "task")}).`)
      return found.value
    }
    yield* err("Planning the request instead.")
    return undefined
  })
