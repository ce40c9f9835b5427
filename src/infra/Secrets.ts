/**
 * Secrets in text: finding and replacing a secret, and the fragments of it that servers echo back, in anything that
 * came from outside before it reaches an error, a log line or a span.
 *
 * A provider that rejects a key often says which key it got: OpenAI answers `Incorrect API key provided:
 * sk-proj-****...****abcd`, proxies write `sk-...abcd`, a careless server echoes the whole `Authorization` header. So
 * besides the whole value, `scrub` replaces
 * - a masked form: a token holding a run of `*`, `•`, `…` or dots whose visible end is the secret's last four or more
 *   characters, or whose visible start is the secret's first four or more;
 * - any run of `fragmentLength` or more consecutive characters of the secret.
 *
 * Secrets are known to `scrub` by being registered (`register`): the LLM layers register their API key when they are
 * built, so the tracer `Tracing.scrubbingTracer` can scrub spans whatever produced them. Registration is process-wide
 * (a secret never becomes less secret) and only adds.
 */
import { Redacted } from "effect"
import { globalValue } from "effect/GlobalValue"

/** What a secret or a fragment of one becomes. */
export const redactedText = "<redacted>"

/** Shorter secrets are not looked for: too many innocent words would match. */
const minimumSecretLength = 4
/** Masked forms are only looked for of secrets at least this long: a short one's start or end is too common. */
const minimumMaskedLength = 8
/** A run of this many characters of a secret, anywhere, is taken for a piece of it. */
export const fragmentLength = 10
/** A visible end (or start) of a masked token this long must match the secret's own end (or start). */
const visibleLength = 4

interface Known {
  readonly value: string
  /** Every substring of `fragmentLength` characters. */
  readonly pieces: ReadonlyArray<string>
}

const known = globalValue("event-sourced-planner/Secrets/known", () => new Map<string, Known>())

const describe = (value: string): Known => {
  const pieces = new Set<string>()
  for (let start = 0; start + fragmentLength <= value.length; start += 1) {
    pieces.add(value.slice(start, start + fragmentLength))
  }
  return { value, pieces: [...pieces] }
}

/** Adds secrets to those `scrub` replaces everywhere in this process. Short or empty values are ignored. */
export const register = (...secrets: ReadonlyArray<Redacted.Redacted | string>): void => {
  for (const secret of secrets) {
    const value = typeof secret === "string" ? secret : Redacted.value(secret)
    if (value.length >= minimumSecretLength && !known.has(value)) known.set(value, describe(value))
  }
}

/** Whether any secret is registered (scrubbing is skipped entirely otherwise). */
export const anyRegistered = (): boolean => known.size > 0

/** A word, as far as masked secrets go: anything between blanks, quotes, brackets and separators. */
const word = /[^\s"'`,;:()<>[\]{}=]+/g
/** A masking run inside a word: `****`, `•••`, `…`, `...`. */
const mask = /[*•…]|\.\./

/** `token` (a word holding a mask), or `<redacted>` when its visible start or end is the secret's. */
const judgeMasked = (token: string, secret: string): string => {
  // A sentence's final period is not part of the token.
  const period = token.endsWith(".") && !token.endsWith("..") ? "." : ""
  const core = period === "" ? token : token.slice(0, -1)
  const head = /^[\w-]*/.exec(core)?.[0] ?? ""
  const tail = /[\w-]*$/.exec(core)?.[0] ?? ""
  const endsLikeSecret = tail.length >= visibleLength && secret.endsWith(tail)
  const startsLikeSecret = head.length >= visibleLength && secret.startsWith(head)
  return endsLikeSecret || startsLikeSecret ? `${redactedText}${period}` : token
}

const scrubOne = (text: string, secret: Known): string => {
  let scrubbed = text.includes(secret.value) ? text.split(secret.value).join(redactedText) : text
  // Runs of the secret's characters: mark every position covered by one of its pieces, then replace each marked run.
  let marks: Uint8Array | undefined
  for (const piece of secret.pieces) {
    let at = scrubbed.indexOf(piece)
    while (at >= 0) {
      marks ??= new Uint8Array(scrubbed.length)
      marks.fill(1, at, at + piece.length)
      at = scrubbed.indexOf(piece, at + 1)
    }
  }
  if (marks !== undefined) {
    let rebuilt = ""
    let index = 0
    while (index < scrubbed.length) {
      if (marks[index] === 1) {
        while (index < scrubbed.length && marks[index] === 1) index += 1
        rebuilt += redactedText
      } else {
        rebuilt += scrubbed.charAt(index)
        index += 1
      }
    }
    scrubbed = rebuilt
  }
  if (secret.value.length < minimumMaskedLength || !mask.test(scrubbed)) return scrubbed
  return scrubbed.replace(word, (token) => (mask.test(token) ? judgeMasked(token, secret.value) : token))
}

/** `text` with every given secret, and every fragment of one, replaced by `<redacted>`. */
export const scrubWith =
  (secrets: ReadonlyArray<Redacted.Redacted | string>) =>
  (text: string): string => {
    let scrubbed = text
    for (const secret of secrets) {
      const value = typeof secret === "string" ? secret : Redacted.value(secret)
      if (value.length >= minimumSecretLength) scrubbed = scrubOne(scrubbed, known.get(value) ?? describe(value))
    }
    return scrubbed
  }

/** `text` with every registered secret, and every fragment of one, replaced by `<redacted>`. */
export const scrub = (text: string): string => {
  if (known.size === 0 || text.length === 0) return text
  let scrubbed = text
  for (const secret of known.values()) scrubbed = scrubOne(scrubbed, secret)
  return scrubbed
}
