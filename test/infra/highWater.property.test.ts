/**
 * The high-water mark against a model of PostgreSQL: transactions get ids in increasing order, draw positions from one
 * sequence in increasing order (an append asks for its id before it draws), and commit or roll back in any order; a
 * probe sees the committed positions and the oldest running id. Whatever the interleaving, the mark never passes a
 * position whose transaction is still running (a subscriber would skip it for good when it commits), and once nothing
 * runs it reaches the highest committed position.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import * as HighWater from "../../src/infra/internal/highWater.js"

type Step =
  | { readonly kind: "begin" }
  | { readonly kind: "draw" | "commit" | "rollback"; readonly pick: number }
  | { readonly kind: "advance" }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constant<Step>({ kind: "begin" }), weight: 2 },
  { arbitrary: fc.nat().map((pick): Step => ({ kind: "draw", pick })), weight: 4 },
  { arbitrary: fc.nat().map((pick): Step => ({ kind: "commit", pick })), weight: 2 },
  { arbitrary: fc.nat().map((pick): Step => ({ kind: "rollback", pick })), weight: 1 },
  { arbitrary: fc.constant<Step>({ kind: "advance" }), weight: 3 }
)

interface Transaction {
  readonly xid: bigint
  readonly positions: Array<number>
  status: "running" | "committed" | "aborted"
}

/** The database: ids, the sequence, the transactions, and what a snapshot shows. */
const model = () => {
  let nextXid = 100n
  let nextPosition = 1
  const transactions: Array<Transaction> = []
  const running = () => transactions.filter((transaction) => transaction.status === "running")
  const committed = () =>
    transactions
      .filter((transaction) => transaction.status === "committed")
      .flatMap((transaction) => transaction.positions)
      .sort((a, b) => a - b)
  const begin = () => {
    const transaction: Transaction = { xid: nextXid, positions: [], status: "running" }
    nextXid += 1n
    transactions.push(transaction)
  }
  const probe = (after: number): HighWater.Probe => {
    const visible = committed()
    // PostgreSQL's xmin: the oldest running id, or one past the newest completed one when none runs.
    const oldest = running().reduce<bigint | undefined>(
      (min, t) => (min === undefined || t.xid < min ? t.xid : min),
      undefined
    )
    const newestCompleted = transactions
      .filter((transaction) => transaction.status !== "running")
      .map((transaction) => transaction.xid)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      .at(-1)
    return {
      xmin: oldest ?? (newestCompleted ?? 99n) + 1n,
      head: visible[visible.length - 1] ?? 0,
      // The visible positions among the next page of positions (3 here, 1,000 in the store's probe).
      positions: visible.filter((position) => position > after && position <= after + 3)
    }
  }
  const freshXid = () => {
    // An id of its own transaction, which ends at once.
    const transaction: Transaction = { xid: nextXid, positions: [], status: "committed" }
    nextXid += 1n
    transactions.push(transaction)
    return transaction.xid
  }
  const apply = (step: Step) => {
    if (step.kind === "begin") return begin()
    if (step.kind === "advance") return
    const open = running()
    const transaction = open[step.pick % Math.max(1, open.length)]
    if (transaction === undefined) return
    if (step.kind === "draw") {
      transaction.positions.push(nextPosition)
      nextPosition += 1
    } else {
      transaction.status = step.kind === "commit" ? "committed" : "aborted"
    }
  }
  return { apply, probe, freshXid, running, committed, transactions }
}

const runSteps = (steps: ReadonlyArray<Step>, knownEvery: number) =>
  Effect.gen(function* () {
    const db = model()
    // What this process heard of: some committed positions (its own appends, notifications).
    const known = (position: number) => position % knownEvery === 0 && db.committed().includes(position)
    const mark = yield* HighWater.make({
      probe: (after: number) => Effect.sync(() => db.probe(after)),
      freshXid: Effect.sync(() => db.freshXid()),
      known
    })
    const check = (safe: number) => {
      for (const transaction of db.running()) {
        for (const position of transaction.positions) expect(position).toBeGreaterThan(safe)
      }
      expect(safe).toBeLessThanOrEqual(db.committed().at(-1) ?? 0)
    }
    let last = 0
    for (const step of steps) {
      db.apply(step)
      if (step.kind !== "advance") continue
      const { safe } = yield* mark.advance
      check(safe)
      // The mark never goes back.
      expect(safe).toBeGreaterThanOrEqual(last)
      last = safe
    }
    // Everything ends; the mark then reaches the last committed position.
    for (const transaction of db.running()) transaction.status = steps.length % 2 === 0 ? "committed" : "aborted"
    const settled = yield* mark.advance
    expect(settled).toEqual({ safe: db.committed().at(-1) ?? last, stalled: false })
  })

describe("the high-water mark (a model of PostgreSQL)", () => {
  it.prop(
    "never passes a position that may still commit, never goes back, and reaches the head once nothing runs",
    [fc.array(stepArb, { minLength: 10, maxLength: 120, size: "max" }), fc.integer({ min: 1, max: 4 })],
    ([steps, knownEvery]) => Effect.runSync(runSteps(steps, knownEvery)),
    { fastCheck: { numRuns: 400 } }
  )

  it("a gap waits for its transaction, and a rolled-back one is passed once older transactions have ended", () =>
    Effect.runSync(
      Effect.gen(function* () {
        const db = model()
        const mark = yield* HighWater.make({
          probe: (after: number) => Effect.sync(() => db.probe(after)),
          freshXid: Effect.sync(() => db.freshXid()),
          known: () => false
        })
        db.apply({ kind: "begin" }) // slow, draws 1
        db.apply({ kind: "draw", pick: 0 })
        db.apply({ kind: "begin" }) // quick, draws 2 and commits
        db.apply({ kind: "draw", pick: 1 })
        db.apply({ kind: "commit", pick: 1 })
        expect(yield* mark.advance).toEqual({ safe: 0, stalled: true })
        db.apply({ kind: "rollback", pick: 0 })
        expect(yield* mark.advance).toEqual({ safe: 2, stalled: false })
      })
    ))
})
