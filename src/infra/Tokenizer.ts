/**
 * Token counting for budgets. The rolling context must stay under `tokenBudget`, so counting has to be a real BPE
 * tokenizer, not a characters-divided-by-four guess. `gpt-tokenizer` knows OpenAI's encodings; for model names it
 * does not know (llama3.1, qwen2.5, mistral, ...) `cl100k_base` is used as an approximation: those vocabularies are
 * BPE vocabularies of a similar size, and a budget is a bound on context size, not an exact accounting.
 */
import { createRequire } from "node:module"
import { modelToEncodingMap } from "gpt-tokenizer/mapping"
import { recentlyUsed } from "./internal/recentlyUsed.js"

export type EncodingName = "cl100k_base" | "o200k_base"

/** The encoding used for models `gpt-tokenizer` does not know. */
export const fallbackEncoding: EncodingName = "cl100k_base"

export interface TokenCounter {
  readonly encoding: EncodingName
  /** Whether the encoding is the model's own, or the fallback approximation. */
  readonly exact: boolean
  readonly count: (text: string) => number
}

// Text is counted as text: a result that happens to contain "<|endoftext|>" must not make counting throw.
const asPlainText = { disallowedSpecial: new Set<string>() }

interface Encoding {
  readonly countTokens: (text: string, options: typeof asPlainText) => number
}

/**
 * An encoding's tables are loaded when a text is first counted, not when this module is: loading one takes most of a
 * second here, and most commands (listing sessions, answering a question) never count a token. `require` keeps
 * counting synchronous; the package ships CommonJS builds of its encodings for that.
 */
const require = createRequire(import.meta.url)
const loaded = new Map<EncodingName, Encoding>()
const encoding = (name: EncodingName): Encoding => {
  let found = loaded.get(name)
  if (found === undefined) {
    found = require(`gpt-tokenizer/encoding/${name}`) as Encoding
    loaded.set(name, found)
  }
  return found
}

const counters: Record<EncodingName, (text: string) => number> = {
  cl100k_base: (text) => (text.length === 0 ? 0 : encoding("cl100k_base").countTokens(text, asPlainText)),
  o200k_base: (text) => (text.length === 0 ? 0 : encoding("o200k_base").countTokens(text, asPlainText))
}

const o200kPrefixes = ["gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4", "codex-", "gpt-oss"]
const cl100kPrefixes = ["gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada"]

/**
 * The encoding for a model name, and whether it is the model's own. Provider prefixes ("openai/gpt-4o") and tags
 * ("gpt-oss:20b") are ignored.
 */
export const encodingFor = (
  model: string | undefined
): { readonly encoding: EncodingName; readonly exact: boolean } => {
  if (model === undefined) return { encoding: fallbackEncoding, exact: false }
  const name = (model.split("/").pop() ?? model).split(":")[0]?.toLowerCase() ?? ""
  const known: string | undefined = (modelToEncodingMap as Record<string, string>)[name]
  if (known === "o200k_base" || known === "cl100k_base") return { encoding: known, exact: true }
  if (o200kPrefixes.some((prefix) => name.startsWith(prefix))) return { encoding: "o200k_base", exact: true }
  if (cl100kPrefixes.some((prefix) => name.startsWith(prefix))) return { encoding: "cl100k_base", exact: true }
  return { encoding: fallbackEncoding, exact: false }
}

/** A token counter for a model; the fallback encoding when the model is unknown or not given. */
export const forModel = (model?: string): TokenCounter => {
  const { encoding, exact } = encodingFor(model)
  return { encoding, exact, count: counters[encoding] }
}

/** The counter used when no model is involved (the heuristic compactor). */
export const fallback: TokenCounter = forModel(undefined)

/**
 * Loads `counter`'s tables now rather than at its first count (63 ms of CPU here, more on a slow machine, with the
 * event loop blocked throughout): a long-lived worker does it once it serves, so that the first context over its
 * budget, in the middle of a run, does not stall every attempt in flight.
 */
export const warmUp = (counter: TokenCounter = fallback): void => {
  counter.count("warm up")
}

/**
 * What `texts.join("\n")` costs, counted text by text so that a caller with a memoized counter recounts only the texts
 * that changed. BPE counts do not add up: a newline joins a run of punctuation before it into one piece, and that
 * piece can cost more than its parts (`':{'` is 1 token and `!` is 1, but `':{'\n!` is 4), so "each text plus a
 * token per newline" is not a bound. What does hold: no piece of the split continues past a newline into a character
 * that is not whitespace, and nothing in the split looks behind. So each text is counted with the newline after it,
 * and a text that is empty or starts with whitespace is counted together with the one before it; the total is exactly
 * the count of the joined text.
 */
export const countJoinedLines = (counter: TokenCounter, texts: ReadonlyArray<string>): number => {
  let total = 0
  let group: string | undefined
  for (const text of texts) {
    if (group === undefined) group = text
    else if (text.length === 0 || /^\s/u.test(text)) group = `${group}\n${text}`
    else {
      total += counter.count(`${group}\n`)
      group = text
    }
  }
  return group === undefined ? 0 : total + counter.count(group)
}

/** Slots of text whose join by newlines is counted as they change: see `joinedLines`. */
export interface JoinedLines {
  /** Puts `text` in slot `index` ("" leaves the slot out of the join). */
  readonly set: (index: number, text: string) => void
  /** What the non-empty slots joined by "\n", in slot order, cost: exactly `counter.count` of that text. */
  readonly total: () => number
}

/**
 * The cost of joining `size` slots of text by newlines, kept up to date as slots change one at a time (the compactor
 * trying a block in and out of the summary). By `countJoinedLines`'s reasoning, a text that does not start with
 * whitespace costs the same wherever it stands: counted with its newline, or without one when it is last. So a change
 * counts one text, once, and the total is a sum. While some slot starts with whitespace, the total is counted the slow
 * way, by `countJoinedLines`.
 */
export const joinedLines = (counter: TokenCounter, size: number): JoinedLines => {
  const texts: Array<string> = new Array(size).fill("")
  /** By slot: the counts of each text it has held, with its newline and bare (counted when first needed). */
  const counts: Array<Map<string, { readonly line: number; bare: number | undefined }>> = Array.from(
    { length: size },
    () => new Map()
  )
  const countsOf = (index: number, text: string) => {
    const known = counts[index] as Map<string, { readonly line: number; bare: number | undefined }>
    let found = known.get(text)
    if (found === undefined) {
      found = { line: counter.count(`${text}\n`), bare: undefined }
      known.set(text, found)
    }
    return found
  }
  let lines = 0
  let startingWithSpace = 0
  const startsWithSpace = (text: string) => /^\s/u.test(text)
  return {
    set: (index, text) => {
      const before = texts[index] ?? ""
      if (before === text) return
      if (before.length > 0) {
        lines -= countsOf(index, before).line
        if (startsWithSpace(before)) startingWithSpace -= 1
      }
      texts[index] = text
      if (text.length > 0) {
        lines += countsOf(index, text).line
        if (startsWithSpace(text)) startingWithSpace += 1
      }
    },
    total: () => {
      if (startingWithSpace > 0) {
        return countJoinedLines(
          counter,
          texts.filter((text) => text.length > 0)
        )
      }
      for (let index = size - 1; index >= 0; index--) {
        const text = texts[index] ?? ""
        if (text.length === 0) continue
        const last = countsOf(index, text)
        if (last.bare === undefined) last.bare = counter.count(text)
        return lines - last.line + last.bare
      }
      return 0
    }
  }
}

/**
 * `counter` with the counts of the last `capacity` texts remembered. A worker checks the rolling context against its
 * budget after every completion, and the context is mostly the same entries each time: counting them all again cost
 * more than the rest of handling the completion.
 */
export const memoized = (counter: TokenCounter, capacity = 4_096): TokenCounter => {
  const counts = recentlyUsed(capacity, counter.count)
  return { encoding: counter.encoding, exact: counter.exact, count: counts.get }
}
