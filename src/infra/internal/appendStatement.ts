/**
 * The SQL of an append: one `INSERT ... SELECT ... RETURNING` that reads the aggregate's last sequence and checks the
 * expected one in the same statement. The store sends it, and the benchmark's hand-written baselines send the very
 * same text with the driver alone.
 *
 * @internal
 */
import type { AlongsideStatement } from "../EventStore.js"

/**
 * The seed of the `pg_advisory_xact_lock` key that serialises appends to one aggregate on PostgreSQL: the key is
 * `hashtextextended(stream || ':' || aggregate, seed)`, so appends to different aggregates never wait for each other
 * (two that hash alike only wait in turn). Arbitrary but fixed.
 */
export const appendLockSeed = 7_243_150_001

/** The lock key of the aggregate named by the parameters `stream` and `aggregate` (PostgreSQL placeholders). */
export const appendLockKey = (stream: string, aggregate: string): string =>
  `hashtextextended(${stream}::text || ':' || ${aggregate}::text, ${appendLockSeed})`

/** Bytes a notification may carry; PostgreSQL refuses payloads of 8,000 and more. */
export const notificationLimit = 7_900

export interface AppendStatement {
  /** The name it is prepared under (PostgreSQL): one per text. */
  readonly name: string
  readonly text: string
}

/**
 * What an append statement does besides inserting, on PostgreSQL:
 * - `insert`: nothing (SQLite; PostgreSQL chunks of a long append after the first).
 * - `notifying`: also sends the notification of its rows (see below), delivered when the caller's transaction commits
 *   and dropped if it rolls back. For an append in a transaction that already holds the aggregate's lock: the
 *   notification costs no statement, no round trip of its own.
 * - `standalone`: the whole append, outside any transaction of ours (see below).
 */
export type AppendShape = "insert" | "notifying" | "standalone"

/**
 * The statement for `count` events; `checked` compares the aggregate's last sequence with an expected one.
 *
 * Parameters: stream, aggregate, created_at, stream, aggregate, then five per event (index, type, version, data,
 * metadata), then the expected sequence when `checked`, then (`notifying`, `standalone`) the channel, then the
 * alongside statement's own. PostgreSQL types the parameters of a SELECT list as text: the text says what they are.
 *
 * `standalone` (PostgreSQL): the statement is the whole append, outside any transaction of ours: one round trip
 * instead of five (BEGIN, the lock, the insert, the notify, COMMIT). A CTE the rows are selected from takes the
 * aggregate's append lock and the transaction's id, so both come before any position is drawn (the high-water mark
 * relies on the id: see `internal/highWater.ts`) and the lock is held until the statement's implicit transaction
 * commits; it sends the notification (the rows, when they fit: see `notificationLimit`), which PostgreSQL delivers on
 * that commit. It only tries the lock: a statement that waited for it would read the aggregate's last sequence from a
 * snapshot taken before the append it waited for, and under contention (two writers of one session) such inserts
 * then failed on the unique constraint, which costs far more than a refusal and leaves a gap in the positions. When
 * the lock is taken it writes nothing and returns one row with `held` false and `last` as its snapshot had it, and the
 * append goes the transaction way, which waits for the lock and then reads afresh (or, `whenBusy: "refuse"`, is
 * refused).
 *
 * `notifying` and `standalone`, refused by the expected sequence: one row with no position and `last`, the aggregate's
 * last sequence as the statement saw it, so that a conflict costs no query of its own. In the transaction way (the
 * lock held before the statement) that is the last sequence. A standalone statement reads from a snapshot taken just
 * before its lock: an append that committed in between is missing from it, so its `last` may be behind, never ahead.
 */
export const appendStatement = (
  dialect: "pg" | "sqlite",
  count: number,
  checked: boolean,
  shape: AppendShape,
  /** `standalone`: a statement that commits with the append (see `AlongsideStatement`), its parameters last. */
  alongside?: Pick<AlongsideStatement, "shape" | "text" | "returned">
): AppendStatement => {
  const isPg = dialect === "pg"
  const standalone = shape === "standalone"
  const at = (n: number) => (isPg ? `$${n}` : "?")
  const values = Array.from({ length: count }, (_, index) => {
    const first = 6 + index * 5
    return isPg
      ? `(${at(first)}::bigint, ${at(first + 1)}, ${at(first + 2)}, ${at(first + 3)}::jsonb, ${at(first + 4)}::jsonb)`
      : "(?, ?, ?, ?, ?)"
  })
  const conditions = [
    ...(checked ? [`head.last = ${at(6 + count * 5)}`] : []),
    ...(standalone ? ["append_lock.held"] : [])
  ]
  const returning =
    shape === "insert"
      ? "position, sequence"
      : "position, sequence, stream_id, aggregate_id, event_type, event_version, data, metadata, created_at"
  const head = `SELECT coalesce((SELECT sequence FROM events WHERE stream_id = ${at(4)} AND aggregate_id = ${at(5)}
                  ORDER BY sequence DESC LIMIT 1), 0) AS last`
  const insert = `INSERT INTO events (stream_id, event_type, aggregate_id, sequence, event_version, data, metadata, created_at)
    SELECT ${at(1)}, v.column2, ${at(2)}, head.last + v.column1, v.column3, v.column4, v.column5, ${at(3)}${isPg ? "::timestamptz" : ""}
    FROM ${standalone ? "append_lock, " : ""}${shape === "insert" ? `(${head}) AS head` : "head"},
         (VALUES ${values.join(", ")}) AS v
    ${conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`}
    ORDER BY v.column1
    RETURNING ${returning}`
  const after = 6 + count * 5 + (checked ? 1 : 0)
  const notified = `notified AS (
           SELECT json_agg(json_build_object('p', position, 's', stream_id, 'a', aggregate_id, 'q', sequence,
             't', event_type, 'v', event_version, 'd', data::text, 'm', metadata::text,
             'c', (extract(epoch FROM created_at) * 1000)::bigint) ORDER BY position)::text AS rows,
             max(position)::text AS last
           FROM inserted)`
  const wakeUp = `(SELECT pg_notify(${at(after)}, CASE WHEN octet_length(rows) <= ${notificationLimit} THEN rows ELSE last END)
          FROM notified WHERE last IS NOT NULL) AS wake_up`
  /** A standalone statement whose alongside returns rows: they come back as one JSON column of the inserted rows. */
  const alongsideReturns = standalone && alongside?.returned !== undefined
  // A refused append says where the aggregate was (see `appendStatement`'s comment).
  const refusal = !checked
    ? ""
    : `
       UNION ALL
       SELECT NULL, NULL, true, head.last${alongsideReturns ? ", NULL::text" : ""} FROM ${standalone ? "append_lock, head WHERE append_lock.held AND" : "head WHERE"}
         NOT EXISTS (SELECT 1 FROM inserted)`
  const text =
    shape === "standalone"
      ? `WITH append_lock AS MATERIALIZED (
           SELECT pg_try_advisory_xact_lock(${appendLockKey(at(1), at(2))}) AS held, pg_current_xact_id() AS xact),
         head AS MATERIALIZED (${head}),
         inserted AS (${insert}),
         ${notified}${
           alongside === undefined
             ? ""
             : `,
         ${alongside.text(after + 1)}`
         }
       SELECT position, sequence, true AS held, NULL::bigint AS last${
         alongsideReturns ? ", (SELECT json_agg(returned)::text FROM alongside AS returned) AS returned" : ""
       }
       FROM inserted,
         ${wakeUp}
       UNION ALL
       SELECT NULL, NULL, false, head.last${alongsideReturns ? ", NULL::text" : ""} FROM append_lock, head WHERE NOT append_lock.held${refusal}`
      : shape === "notifying"
        ? `WITH head AS MATERIALIZED (${head}),
         inserted AS (${insert}),
         ${notified}
       SELECT position, sequence, true AS held, NULL::bigint AS last FROM inserted, ${wakeUp}${refusal}`
        : insert
  return { name: appendStatementName(count, checked, shape, alongside?.shape), text }
}

/** The name of `appendStatement`'s statement of that shape, one per text. */
export const appendStatementName = (count: number, checked: boolean, shape: AppendShape, alongside?: string): string =>
  `event_store_append_${count}_${checked ? "checked" : "any"}${shape === "insert" ? "" : `_${shape}`}${alongside === undefined ? "" : `_with_${alongside}`}`
