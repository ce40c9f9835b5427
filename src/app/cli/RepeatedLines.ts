/**
 * Warnings that say the same thing again and again are printed once a window. A store that is away makes every
 * periodic look of a long-lived worker fail each second (the dead-worker sweep, the reports sweep, the take loop, the
 * memory consumer), and an outage of minutes would print hundreds of lines that say nothing new. A line is held back
 * while the very same line was printed less than `windowMs` ago; when it next comes after that, it says how many
 * times it was held back. Lines are compared whole: two sessions' warnings, or two attempts', stay apart.
 */

export interface RepeatedLines {
  /** The line to print now (with the count of those held back since it was last printed), or undefined to hold it. */
  readonly admit: (line: string) => string | undefined
}

/** Forgets lines not seen for a window once this many are remembered: a bound on memory only. */
const remembered = 1_000

export const make = (windowMs: number, now: () => number): RepeatedLines => {
  const seen = new Map<string, { printedAt: number; held: number }>()
  return {
    admit: (line) => {
      const at = now()
      const last = seen.get(line)
      if (last !== undefined && at - last.printedAt < windowMs) {
        last.held += 1
        return undefined
      }
      if (seen.size >= remembered) {
        for (const [text, entry] of seen) if (at - entry.printedAt >= windowMs) seen.delete(text)
      }
      // Re-inserted, so that the map's order stays the order lines were last printed in.
      seen.delete(line)
      seen.set(line, { printedAt: at, held: 0 })
      if (last === undefined || last.held === 0) return line
      return `${line} (${last.held} more time${last.held === 1 ? "" : "s"} since it was last printed)`
    }
  }
}
