/**
 * The high-water mark of a PostgreSQL event store: the highest position below which every position is final, either
 * committed and visible or never to be (rolled back, deleted). Subscribers read up to it and no further, which is what
 * keeps global order gap-safe while appends to different sessions commit in parallel.
 *
 * Why a mark. Positions come from an identity sequence (cache 1): drawn in increasing order, but made visible at each
 * transaction's commit, so position 7 can be visible while 6 is still in flight. A reader that moved past 6 would miss
 * it for good. Marten's answer is a high-water mark behind which gaps are known to be final; Emmett's is to read only
 * rows written by transactions older than the snapshot's oldest running one. This is the first, with the second's test
 * for when a gap is final:
 *
 * - Positions seen without a gap are final at once: everything up to them has committed. Most of the time the mark
 *   just walks the positions this process already has (its own appends and the rows other processes' notifications
 *   carry), with no query.
 * - A gap below a visible position belongs to a transaction that drew it before the visible one was drawn. Every
 *   append asks for its transaction id before it draws a position (`pg_current_xact_id()` first, see the append), so
 *   that transaction's id was assigned before the probe that saw the gap. An id drawn after that probe (`R`, asked for
 *   by the mark) is therefore higher, and once a snapshot's `xmin` is above `R` every transaction up to `R` has ended:
 *   the gap is then final whatever it was, and the mark moves to the highest position that probe saw.
 *
 * A gap costs subscribers a wait of one in-flight transaction (the usual case: the append commits, its notification
 * fills the gap) or, for a rolled-back one, until every transaction older than the gap's discovery has ended. A long
 * transaction holding an id holds back delivery past a gap, not the writers.
 *
 * @internal
 */
import { Effect } from "effect"

/** What one probe saw, in one snapshot. */
export interface Probe {
  /** The snapshot's oldest running transaction id (`pg_snapshot_xmin`): every id below it has ended. */
  readonly xmin: bigint
  /** Visible positions above the mark, ascending: those among the next page of positions (1,000 on PostgreSQL). */
  readonly positions: ReadonlyArray<number>
  /** The highest visible position. */
  readonly head: number
}

/** Positions up to `through` are final once a snapshot's `xmin` is above `xid`. */
export interface Barrier {
  readonly through: number
  readonly xid: bigint
}

export interface MarkState {
  readonly safe: number
  readonly barrier: Barrier | undefined
}

export const initial: MarkState = { safe: 0, barrier: undefined }

/** Follows positions known to be committed, from the mark on, while they run without a gap. */
export const walk = (safe: number, has: (position: number) => boolean): number => {
  let mark = safe
  while (has(mark + 1)) mark += 1
  return mark
}

/**
 * The mark after a probe: a barrier whose transactions have all ended is passed, then the visible positions are
 * walked. `wantsBarrier` says that visible positions lie beyond a gap and no barrier is waiting for it yet.
 */
export const afterProbe = (
  state: MarkState,
  probe: Probe
): { readonly state: MarkState; readonly wantsBarrier: boolean } => {
  let safe = state.safe
  let barrier = state.barrier
  if (barrier !== undefined && probe.xmin > barrier.xid) {
    safe = Math.max(safe, barrier.through)
    barrier = undefined
  }
  for (const position of probe.positions) {
    if (position <= safe) continue
    if (position !== safe + 1) break
    safe = position
  }
  return { state: { safe, barrier }, wantsBarrier: barrier === undefined && probe.head > safe }
}

/** The mark, and whether visible rows wait beyond it (a gap not yet known to be final). */
export interface Mark {
  readonly safe: number
  readonly stalled: boolean
}

/**
 * The mark of one store instance. `probe` reads the table in one snapshot; `freshXid` asks for a new transaction id
 * (and ends its transaction); `known` says whether this process has the committed row at a position.
 */
export const make = <E extends Error>(options: {
  readonly probe: (after: number) => Effect.Effect<Probe, E>
  readonly freshXid: Effect.Effect<bigint, E>
  readonly known: (position: number) => boolean
}): Effect.Effect<{
  /** Advances the mark from what this process knows, then from a probe of the table. */
  readonly advance: Effect.Effect<Mark, E>
}> =>
  Effect.map(Effect.makeSemaphore(1), (lock) => {
    let state = initial
    // Subscribers woken together need one probe, but only one that began after they asked: an older probe's snapshot
    // may predate the append that woke them.
    let asked = 0
    let probed = 0
    let last: Mark = { safe: 0, stalled: false }
    const advance = Effect.suspend(() => {
      const ask = ++asked
      return lock.withPermits(1)(
        Effect.suspend(() => {
          if (probed >= ask) return Effect.succeed(last)
          const started = asked
          return Effect.gen(function* () {
            let probe = yield* options.probe(walk(state.safe, options.known))
            let next = afterProbe({ ...state, safe: walk(state.safe, options.known) }, probe)
            if (next.wantsBarrier) {
              // A gap: its owner may still commit. Most gaps are an append committing right now; a rolled-back one
              // is final as soon as the transactions older than its discovery have ended, often by the next probe.
              const barrier = { through: probe.head, xid: yield* options.freshXid }
              probe = yield* options.probe(next.state.safe)
              next = afterProbe({ safe: walk(next.state.safe, options.known), barrier }, probe)
            }
            state = { ...next.state, safe: walk(next.state.safe, options.known) }
            probed = started
            last = { safe: state.safe, stalled: probe.head > state.safe }
            return last
          })
        })
      )
    })
    return { advance }
  })
