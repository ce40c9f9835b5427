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
  /** How many lines it remembers: never more than `remembered`. */
  readonly size: () => number
  /**
   * The lines held back since they were last printed, each once with its count, for the end of the command: a count
   * is otherwise only told when its line comes again. Forgets them.
   */
  readonly heldBack: () => ReadonlyArray<string>
}

/**
 * The most lines remembered: past it the line printed longest ago is forgotten (it may then be printed again within
 * its window), so that memory and the time per line stay bounded however many different warnings come.
 */
export const remembered = 1_000

const counted = (line: string, held: number) =>
  `${line} (${held} more time${held === 1 ? "" : "s"} since it was last printed)`

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
      // Re-inserted, so that the map's order stays the order lines were last printed in: the first is the oldest.
      seen.delete(line)
      if (seen.size >= remembered) {
        const oldest = seen.keys().next()
        if (oldest.done !== true) seen.delete(oldest.value)
      }
      seen.set(line, { printedAt: at, held: 0 })
      if (last === undefined || last.held === 0) return line
      return counted(line, last.held)
    },
    size: () => seen.size,
    heldBack: () => {
      const lines = [...seen].flatMap(([line, entry]) => (entry.held === 0 ? [] : [counted(line, entry.held)]))
      seen.clear()
      return lines
    }
  }
}
