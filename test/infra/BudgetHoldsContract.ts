/**
 * The contract of `BudgetHolds`, run over the memory holds and the SQL holds on SQLite and PostgreSQL. `open` gives
 * holds services on one shared store: for SQL ones, each over its own connection, as separate processes would be.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import type { BudgetHoldsService, Hold } from "../../src/infra/BudgetHolds.js"

const T0 = 1_750_000_000_000

/** A hold of 100 tokens on the budget of "root", live for a minute from `T0`. */
export const hold = (id: string, fields: Partial<Hold> = {}): Hold => ({
  id,
  root: "root",
  sessionId: "root",
  tokens: 100,
  usd: undefined,
  recordedVersion: undefined,
  expiresAt: T0 + 60_000,
  ...fields
})

/** Admits `id` (for a minute from `now`) when the live holds of the budget and this one stay within `limit` tokens. */
const within = (holds: BudgetHoldsService, id: string, limit: number, now = T0, root = "root") =>
  holds.admit(root, now, (live) =>
    live.reduce((sum, other) => sum + other.tokens, 0) + 100 <= limit
      ? hold(id, { root, expiresAt: now + 60_000 })
      : undefined
  )

const liveOf = (holds: BudgetHoldsService, root: string, now: number) =>
  Effect.gen(function* () {
    let seen: ReadonlyArray<Hold> = []
    yield* holds.admit(root, now, (live) => {
      seen = live
      return undefined
    })
    return [...seen].sort((a, b) => a.id.localeCompare(b.id))
  })

export const budgetHoldsContract = (
  name: string,
  open: (count: number) => Effect.Effect<ReadonlyArray<BudgetHoldsService>, unknown, Scope.Scope>
) =>
  describe(`budget holds on ${name}`, () => {
    it.scopedLive("admits exactly what fits when eight callers on separate connections ask at once", () =>
      Effect.gen(function* () {
        const services = yield* open(2)
        const root = `race-${crypto.randomUUID()}`
        const results = yield* Effect.all(
          Array.from({ length: 8 }, (_, index) =>
            within(services[index % services.length] as BudgetHoldsService, `race-${index}-${root}`, 300, T0, root)
          ),
          { concurrency: "unbounded" }
        )
        expect(results.filter(Boolean)).toHaveLength(3)
        expect(yield* liveOf(services[0] as BudgetHoldsService, root, T0)).toHaveLength(3)
      })
    )

    it.scopedLive("a hold counts until it expires; another budget's holds never count", () =>
      Effect.gen(function* () {
        const [holds] = (yield* open(1)) as [BudgetHoldsService]
        const root = `expiry-${crypto.randomUUID()}`
        expect(yield* within(holds, `a-${root}`, 100, T0, root)).toBe(true)
        expect(yield* within(holds, `b-${root}`, 100, T0 + 59_999, root)).toBe(false)
        expect(yield* within(holds, `other-${root}`, 100, T0, `${root}-other`)).toBe(true)
        // At its expiry the hold is gone, for the check and from the store.
        expect(yield* within(holds, `c-${root}`, 100, T0 + 60_000, root)).toBe(true)
        expect((yield* liveOf(holds, root, T0 + 60_000)).map((live) => live.id)).toEqual([`c-${root}`])
        expect(yield* liveOf(holds, root, T0 + 120_000)).toEqual([])
      })
    )

    it.scopedLive("answered, recorded and released change what the others see", () =>
      Effect.gen(function* () {
        const [first, second] = (yield* open(2)) as [BudgetHoldsService, BudgetHoldsService]
        const root = `life-${crypto.randomUUID()}`
        const ids = ["a", "b", "c"].map((id) => `${id}-${root}`) as [string, string, string]
        for (const id of ids) {
          expect(yield* first.admit(root, T0, () => hold(id, { root, sessionId: `${root}~2`, usd: 0.5 }))).toBe(true)
        }
        yield* first.answered(ids[0], { tokens: 42, usd: 0.25 }, T0 + 3_600_000)
        yield* first.recorded([ids[0], ids[1]], 7, T0 + 3_600_000)
        yield* first.release([ids[2]])
        yield* first.release([])
        yield* first.recorded([], 8, T0)
        const live = yield* liveOf(second, root, T0 + 120_000)
        expect(live).toEqual([
          hold(ids[0], {
            root,
            sessionId: `${root}~2`,
            tokens: 42,
            usd: 0.25,
            recordedVersion: 7,
            expiresAt: T0 + 3_600_000
          }),
          hold(ids[1], { root, sessionId: `${root}~2`, usd: 0.5, recordedVersion: 7, expiresAt: T0 + 3_600_000 })
        ])
      })
    )
  })
