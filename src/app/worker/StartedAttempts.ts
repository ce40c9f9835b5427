/**
 * The attempts a worker started, for the lease keeper (`LeaseKeeper`'s `startedHere`): a job of one of them still
 * under the worker's name once it no longer runs here was lost here (its report lost with a server crash, or its fiber
 * died), and its lease is ended; a job the worker never started was taken without its knowing, and is given back.
 *
 * An attempt is remembered while it runs, however long, and for `keepMs` after it ends: the keeper looks at the jobs
 * under the worker's name at least once a lease and decides on one a lease after it first saw it unknown, so `keepMs`
 * has to be longer than two leases and a beat. The latest `floor` ended attempts are remembered however old, so a
 * keeper running late or a clock that jumps loses nothing a count would have kept. Before, the worker kept only its
 * last 10,000 starts: above about 125 starts a second with the default lease, a lost attempt could be forgotten before
 * the keeper looked, and then given back and run again as the same attempt instead of counted as lost. `cap` bounds
 * the memory: beyond it the oldest go first, whatever their age.
 */

export interface StartedAttempts {
  readonly started: (key: string) => void
  readonly ended: (key: string) => void
  /** Whether this worker started the attempt: it runs here, or it ended here within `keepMs`. */
  readonly has: (key: string) => boolean
  /** How many ended attempts are remembered. */
  readonly size: () => number
}

export const make = (options: {
  readonly keepMs: number
  /** How many of the latest ended attempts are remembered however old (a clock that jumps forward, a keeper late). */
  readonly floor: number
  /** The most ended attempts remembered, the oldest forgotten first beyond it. */
  readonly cap: number
  readonly now: () => number
}): StartedAttempts => {
  const running = new Set<string>()
  /** Ended attempts, by when they ended: oldest first, as a Map keeps its insertion order. */
  const ended = new Map<string, number>()
  const forgetOld = (now: number) => {
    for (const [key, at] of ended) {
      const old = now - at > options.keepMs && ended.size > options.floor
      if (!old && ended.size <= options.cap) return
      ended.delete(key)
    }
  }
  return {
    started: (key) => {
      ended.delete(key)
      running.add(key)
    },
    ended: (key) => {
      running.delete(key)
      ended.delete(key)
      const now = options.now()
      ended.set(key, now)
      forgetOld(now)
    },
    has: (key) => running.has(key) || ended.has(key),
    size: () => ended.size
  }
}
