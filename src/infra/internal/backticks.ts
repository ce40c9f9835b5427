/**
 * Finding code spans in task text the way Markdown does: a span opened by a run of N backticks closes at the next run
 * of exactly N. The shell executor (which commands to run) and the attachment checker (which paths are a command's
 * own) must agree on where a span ends, so both use this.
 *
 * @internal
 */

/** Where the run of exactly `run` backticks that closes a span starts, searching from `from`; -1 when none does. */
export const closingRun = (text: string, from: number, run: number): number => {
  let position = from
  while (position < text.length) {
    const start = text.indexOf("`", position)
    if (start < 0) return -1
    let end = start
    while (text[end] === "`") end += 1
    if (end - start === run) return start
    position = end
  }
  return -1
}
