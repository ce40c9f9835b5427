/**
 * Compaction without a model. Context: recent results are kept whole while they fit, older ones shrink to their
 * first line and their error lines, and anything cut is cut between words. Errors: error types, file paths and line
 * numbers are kept, repeated stack frames dropped. Both respect their limit exactly, measured with a real tokenizer
 * (context) or in characters (errors).
 */
import { Effect, Layer } from "effect"
import { type CompactionInput, type CompactionResult, Compactor, type CompactorService, entryIds } from "./Compactor.js"
import * as Tokenizer from "./Tokenizer.js"

const ellipsis = "…"

/** Lines worth keeping from a result that is otherwise dropped: they say what went wrong. */
const errorLine =
  /\b(error|errors|exception|fail|failed|failure|failing|fatal|panic|panicked|traceback|warning|denied|refused|timed? ?out)\b/i

/**
 * The longest prefix of `text` that ends between words and has at most `budget` tokens, with "…" appended when
 * something was cut (if it fits). Never cuts inside a word: a single word longer than the budget is dropped whole.
 */
export const truncateToTokens = (text: string, budget: number, counter: Tokenizer.TokenCounter): string => {
  if (counter.count(text) <= budget) return text
  // Word ends: positions where a prefix may stop without splitting a word.
  const ends: Array<number> = []
  for (const match of text.matchAll(/\S+/g)) ends.push(match.index + match[0].length)
  const fits = (end: number, marker: string) => counter.count(text.slice(0, end) + marker) <= budget
  const longest = (marker: string): number => {
    // Counts grow with the prefix almost everywhere; search, then step back while the guess does not fit.
    let low = 0
    let high = ends.length
    while (low < high) {
      const middle = Math.ceil((low + high) / 2)
      const end = ends[middle - 1] ?? 0
      if (fits(end, marker)) low = middle
      else high = middle - 1
    }
    while (low > 0 && !fits(ends[low - 1] ?? 0, marker)) low -= 1
    return low
  }
  const withMarker = longest(` ${ellipsis}`)
  if (withMarker > 0) return `${text.slice(0, ends[withMarker - 1] ?? 0)} ${ellipsis}`
  const bare = longest("")
  return bare > 0 ? text.slice(0, ends[bare - 1] ?? 0) : ""
}

/** A result reduced to what matters when space is short: its first line and its error lines. */
const condense = (text: string): string => {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
  const kept: Array<string> = []
  for (const [index, line] of lines.entries()) {
    if ((index === 0 || errorLine.test(line)) && !kept.includes(line)) kept.push(line)
  }
  return kept.join("\n")
}

interface Block {
  readonly full: string
  readonly condensed: string
  /** What the block currently contributes ("" when left out). */
  chosen: string
}

const entryHeader = (taskId: number) => `Task ${taskId}:`

const blocksOf = (input: CompactionInput): Array<Block> => {
  const blocks: Array<Block> = []
  const previous = input.summary.trim()
  if (previous.length > 0) blocks.push({ full: previous, condensed: condense(previous), chosen: "" })
  for (const entry of input.entries) {
    const text = entry.text.trim()
    const header = entryHeader(entry.taskId)
    const full = text.length === 0 ? `${header} (no output)` : `${header} ${text}`
    const condensed = text.length === 0 ? full : `${header} ${condense(text)}`
    blocks.push({ full, condensed, chosen: "" })
  }
  return blocks
}

/** The summary and every entry in full: what compaction returns when it all fits. */
export const fullText = (input: CompactionInput): string =>
  blocksOf(input)
    .map((block) => block.full)
    .join("\n")

/**
 * Folds `entries` into `summary` under `budget` tokens. Every entry is reported as removed: whatever of it did not
 * fit is gone for good, which is what compaction means.
 */
export const compactContext = (
  input: CompactionInput,
  counter: Tokenizer.TokenCounter = Tokenizer.fallback
): CompactionResult => {
  const removedTaskIds = entryIds(input.entries)
  const budget = Math.max(0, Math.floor(input.budget))
  const blocks = blocksOf(input)
  const assemble = () =>
    blocks
      .map((block) => block.chosen)
      .filter((chosen) => chosen.length > 0)
      .join("\n")
  const everything = blocks.map((block) => block.full).join("\n")
  if (counter.count(everything) <= budget) return { summary: everything, removedTaskIds }

  // What the chosen blocks cost, kept up to date as blocks are chosen (`Tokenizer.joinedLines`, exactly the count of
  // the assembled text): counting the assembled text after every choice made compaction quadratic in its length.
  const lines = Tokenizer.joinedLines(counter, blocks.length)
  const choose = (index: number, text: string) => {
    const block = blocks[index] as Block
    block.chosen = text
    lines.set(index, text)
  }
  const tryChoose = (index: number, text: string): boolean => {
    const before = (blocks[index] as Block).chosen
    choose(index, text)
    if (lines.total() <= budget) return true
    choose(index, before)
    return false
  }
  // Newest first: the latest results matter most to the next step; the old summary is the oldest material.
  const byPriority = blocks.map((_, index) => index).reverse()
  // Pass 1: every block's gist (first line and error lines), newest first, cut between words when short of room.
  for (const index of byPriority) {
    const block = blocks[index] as Block
    if (tryChoose(index, block.condensed)) continue
    choose(index, "")
    const room = budget - lines.total() - 1
    if (room > 0) {
      const cut = truncateToTokens(block.condensed, room, counter)
      if (cut.length > 0) tryChoose(index, cut)
    }
  }
  // Pass 2: newest first, whole results where they still fit.
  for (const index of byPriority) {
    const block = blocks[index] as Block
    if (block.chosen !== block.full) tryChoose(index, block.full)
  }
  return { summary: truncateToTokens(assemble(), budget, counter), removedTaskIds }
}

// ---------------------------------------------------------------------------------------------------------------
// Error messages
// ---------------------------------------------------------------------------------------------------------------

/** A stack frame in the usual runtimes' formats: JavaScript, Python, Rust, Java/Go-style. */
const stackFrame = /^\s*(at\s|File\s+".*",\s+line\s+\d+|\d+:\s+\S|\.\.\.\s*\d+\s+more|[\w$.<>]+\([\w$.]*:\d+\)$)/
/** A line naming what went wrong. */
const errorHeader =
  /(^|\s)([A-Z]\w*(Error|Exception|Failure)|error(\[\w+\])?:|panicked at|Traceback|Caused by|FAIL|fatal:|ERR!|E\d{3,})/
/** A file path with a line number: `src/a.ts:12:5`, `(file.py, line 3)`, `main.rs:10`. */
const fileAndLine = /([\w.\-/\\~@]+\.[A-Za-z]\w*):(\d+)(:\d+)?|line \d+/

/** Cuts `text` to at most `limit` characters, between words when a boundary is near enough, marking the cut. */
export const truncateChars = (text: string, limit: number): string => {
  if (text.length <= limit) return text
  if (limit <= 0) return ""
  if (limit === 1) return ellipsis
  const room = text.slice(0, limit - 1)
  const boundary = room.search(/\s\S*$/)
  const cut = boundary >= Math.floor((limit - 1) / 2) ? room.slice(0, boundary) : room
  return `${cut.trimEnd()}${ellipsis}`
}

/**
 * Shortens an error message to at most `limit` characters (one that fits is returned as is). Repeated lines collapse
 * into a count, stack frames seen before and library frames are dropped, and when that is not enough the lines naming error types, files and line numbers are kept
 * before everything else.
 */
export const compactError = (message: string, limit: number): string => {
  const max = Math.max(0, Math.floor(limit))
  if (message.length <= max) return message
  const lines = message
    .replace(/\r\n?/g, "\n")
    .split("\n")
    .map((line) => line.trimEnd())
  const deduplicated: Array<string> = []
  const seenFrames = new Set<string>()
  let omittedFrames = 0
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index] ?? ""
    if (line.trim().length === 0) continue
    if (stackFrame.test(line)) {
      const key = line.trim()
      if (seenFrames.has(key) || /node:internal|node_modules[\\/]/.test(key)) {
        omittedFrames += 1
        continue
      }
      seenFrames.add(key)
      deduplicated.push(line)
      continue
    }
    let repeats = 0
    while (lines[index + 1] === line) {
      repeats += 1
      index += 1
    }
    deduplicated.push(repeats > 0 ? `${line} (repeated ${repeats + 1} times)` : line)
  }
  if (omittedFrames > 0) deduplicated.push(`(${omittedFrames} repeated or library stack frames omitted)`)
  const whole = deduplicated.join("\n")
  if (whole.length <= max) return whole

  // Keep the most telling lines, in their original order.
  const rank = (line: string, index: number) =>
    (errorHeader.test(line) ? 4 : errorLine.test(line) ? 2 : 0) +
    (fileAndLine.test(line) ? 3 : 0) +
    (index === 0 ? 1 : 0) +
    (stackFrame.test(line) ? 0 : 1)
  const order = deduplicated
    .map((line, index) => ({ line, index, score: rank(line, index) }))
    .sort((a, b) => b.score - a.score || a.index - b.index)
  const kept = new Set<number>()
  let length = 0
  for (const { line, index } of order) {
    const cost = line.length + (kept.size > 0 ? 1 : 0)
    if (length + cost <= max) {
      kept.add(index)
      length += cost
    }
  }
  if (kept.size === 0) return truncateChars(deduplicated[order[0]?.index ?? 0] ?? whole, max)
  return truncateChars(deduplicated.filter((_, index) => kept.has(index)).join("\n"), max)
}

// ---------------------------------------------------------------------------------------------------------------
// Layer
// ---------------------------------------------------------------------------------------------------------------

/** A heuristic compactor counting tokens with `counter` (the fallback encoding by default). */
export const make = (counter: Tokenizer.TokenCounter = Tokenizer.fallback): CompactorService =>
  Compactor.of({
    compact: Effect.fn("HeuristicCompactor.compact")(function* (input: CompactionInput) {
      return yield* Effect.sync(() => compactContext(input, counter))
    }),
    compactError: Effect.fn("HeuristicCompactor.compactError")(function* (message: string, limit: number) {
      return yield* Effect.sync(() => compactError(message, limit))
    })
  })

export const layer: Layer.Layer<Compactor> = Layer.sync(Compactor, () => make())

/** The heuristic compactor counting tokens as `model` does. */
export const layerForModel = (model: string): Layer.Layer<Compactor> =>
  Layer.sync(Compactor, () => make(Tokenizer.forModel(model)))
