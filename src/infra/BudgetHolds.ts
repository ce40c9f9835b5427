/**
 * Budget holds: what model calls in flight, and calls answered but not yet in the log, take from a budget, shared by
 * every process on one store (#16: "a budget is never crossed without an approval first", with workers in several
 * processes calling models for one plan at once).
 *
 * The log records what calls used (`ModelUsageRecorded`) once they answered, so a check that reads the budget from the
 * log cannot see a call another process has in flight. Before each call the app takes a hold of the call's estimate
 * (`admit`): under one lock per budget (the tree's root session), it reads the live holds of that budget, decides
 * whether the call fits with them, and stores its own. Once the call answers, its hold is its actual usage
 * (`answered`); once that usage is in the log, the hold says at which version of its session (`recorded`), so a check
 * that read the session at that version or later does not count it twice. Holds end by expiring: an unanswered one
 * when its call can no longer be running (a process that died mid-call frees its hold then), a recorded one after a
 * grace period that covers checks whose budget was read before the record.
 *
 * A hold is coordination, like a job's lease, not a decision: it is not an event. What the budget allowed and what
 * calls used stay in the log; the holds table can be emptied at any time at the cost of the calls in flight then.
 *
 * Layers: the SQL one (`make`, on the event store's client and its `planner_budget_holds` table: a transaction with a
 * `pg_advisory_xact_lock` per budget on PostgreSQL, the database's write lock on SQLite), provided by the SQLite and
 * PostgreSQL store layers; and the process-wide memory one (`memory`), used when no store provides holds.
 */
import { SqlClient } from "@effect/sql"
import { Context, Data, Effect } from "effect"
import { globalValue } from "effect/GlobalValue"
import { retryWhileBusy } from "./internal/sqliteBusy.js"
import { withTransaction } from "./internal/transaction.js"

export interface Hold {
  readonly id: string
  /** The budget's session: the root of the tree of sub-plans, or the session itself. */
  readonly root: string
  /** The session whose call this is (its usage is recorded in that session's log). */
  readonly sessionId: string
  readonly tokens: number
  readonly usd: number | undefined
  /** The version of `sessionId` whose event recorded this call's usage; undefined until then. */
  readonly recordedVersion: number | undefined
  /** Epoch milliseconds after which the hold no longer counts. */
  readonly expiresAt: number
}

export class BudgetHoldsError extends Data.TaggedError("BudgetHoldsError")<{
  readonly operation: string
  readonly reason: string
}> {
  override get message() {
    return `budget holds: ${this.operation} failed: ${this.reason}`
  }
}

export interface BudgetHoldsService {
  /**
   * One atomic step for the budget of `root`: the holds that are live at `now` are given to `decide`; the hold it
   * returns, if any, is stored before any other process can decide for the same budget. True when a hold was stored.
   */
  readonly admit: (
    root: string,
    now: number,
    decide: (live: ReadonlyArray<Hold>) => Hold | undefined
  ) => Effect.Effect<boolean, BudgetHoldsError>
  /** The call answered: its hold is now what it used, until `expiresAt`. */
  readonly answered: (
    id: string,
    used: { readonly tokens: number; readonly usd: number | undefined },
    expiresAt: number
  ) => Effect.Effect<void, BudgetHoldsError>
  /** The calls' usage is in the log from `version` of their session on; the holds last until `expiresAt`. */
  readonly recorded: (
    ids: ReadonlyArray<string>,
    version: number,
    expiresAt: number
  ) => Effect.Effect<void, BudgetHoldsError>
  /** The calls will never be in the log (no answer, or the record failed): their holds end now. */
  readonly release: (ids: ReadonlyArray<string>) => Effect.Effect<void, BudgetHoldsError>
}

export class BudgetHolds extends Context.Tag("event-sourced-planner/BudgetHolds")<BudgetHolds, BudgetHoldsService>() {}

/** Holds in this process's memory, and how many of them wait for their usage to be recorded (for tests). */
export interface MemoryHolds extends BudgetHoldsService {
  readonly unrecorded: () => number
}

/** Holds in this process's memory: enough when every call on a budget is made by this process. */
export const makeMemory = (): MemoryHolds => {
  const holds = new Map<string, Hold>()
  const sweep = (now: number) => {
    for (const [id, hold] of holds) if (hold.expiresAt <= now) holds.delete(id)
  }
  const update = (id: string, change: (hold: Hold) => Hold) => {
    const hold = holds.get(id)
    if (hold !== undefined) holds.set(id, change(hold))
  }
  return {
    admit: (root, now, decide) =>
      Effect.sync(() => {
        sweep(now)
        const chosen = decide([...holds.values()].filter((hold) => hold.root === root))
        if (chosen === undefined) return false
        holds.set(chosen.id, chosen)
        return true
      }),
    answered: (id, used, expiresAt) =>
      Effect.sync(() => update(id, (hold) => ({ ...hold, tokens: used.tokens, usd: used.usd, expiresAt }))),
    recorded: (ids, version, expiresAt) =>
      Effect.sync(() => {
        for (const id of ids) update(id, (hold) => ({ ...hold, recordedVersion: version, expiresAt }))
      }),
    release: (ids) =>
      Effect.sync(() => {
        for (const id of ids) holds.delete(id)
      }),
    unrecorded: () => [...holds.values()].filter((hold) => hold.recordedVersion === undefined).length
  }
}

/** The process-wide memory holds, for work on stores that provide none (the in-memory store). */
export const memory: MemoryHolds = globalValue("event-sourced-planner/BudgetHolds/memory", makeMemory)

interface HoldRow {
  readonly id: string
  readonly root_session_id: string
  readonly session_id: string
  readonly tokens: number | string
  readonly usd: number | string | null
  readonly recorded_version: number | string | null
  readonly expires_at: number | string
}

const fromRow = (row: HoldRow): Hold => ({
  id: row.id,
  root: row.root_session_id,
  sessionId: row.session_id,
  tokens: Number(row.tokens),
  usd: row.usd === null ? undefined : Number(row.usd),
  recordedVersion: row.recorded_version === null ? undefined : Number(row.recorded_version),
  expiresAt: Number(row.expires_at)
})

/** The holds over the `SqlClient` in context, which must already be migrated (the event store's layers do it). */
export const make: Effect.Effect<BudgetHoldsService, never, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  const failed = (operation: string) => (error: unknown) =>
    new BudgetHoldsError({ operation, reason: error instanceof Error ? error.message : String(error) })
  // PostgreSQL: one lock per budget for the transaction. SQLite: the transaction's first statement is a write, so it
  // holds the database's write lock before it reads anything (a read snapshot gone stale meanwhile fails busy, and the
  // whole step is tried again).
  const lock = (root: string) =>
    sql.onDialectOrElse({
      pg: () => sql`SELECT pg_advisory_xact_lock(hashtextextended(${`planner_budget_holds:${root}`}, 0))`,
      orElse: () => Effect.void
    })
  return {
    admit: (root, now, decide) =>
      Effect.gen(function* () {
        yield* lock(root)
        yield* sql`DELETE FROM planner_budget_holds WHERE expires_at <= ${now}`
        const rows = yield* sql<HoldRow>`SELECT * FROM planner_budget_holds WHERE root_session_id = ${root}`
        const chosen = decide(rows.map(fromRow))
        if (chosen === undefined) return false
        yield* sql`INSERT INTO planner_budget_holds
          (id, root_session_id, session_id, tokens, usd, recorded_version, expires_at)
          VALUES (${chosen.id}, ${chosen.root}, ${chosen.sessionId}, ${chosen.tokens}, ${chosen.usd ?? null},
                  ${chosen.recordedVersion ?? null}, ${chosen.expiresAt})`
        return true
      }).pipe(withTransaction(sql), retryWhileBusy, Effect.mapError(failed("admit"))),
    answered: (id, used, expiresAt) =>
      sql`UPDATE planner_budget_holds SET tokens = ${used.tokens}, usd = ${used.usd ?? null}, expires_at = ${expiresAt}
          WHERE id = ${id}`.pipe(retryWhileBusy, Effect.asVoid, Effect.mapError(failed("answered"))),
    recorded: (ids, version, expiresAt) =>
      ids.length === 0
        ? Effect.void
        : sql`UPDATE planner_budget_holds SET recorded_version = ${version}, expires_at = ${expiresAt}
              WHERE id IN ${sql.in(ids)}`.pipe(retryWhileBusy, Effect.asVoid, Effect.mapError(failed("recorded"))),
    release: (ids) =>
      ids.length === 0
        ? Effect.void
        : sql`DELETE FROM planner_budget_holds WHERE id IN ${sql.in(ids)}`.pipe(
            retryWhileBusy,
            Effect.asVoid,
            Effect.mapError(failed("release"))
          )
  }
})
