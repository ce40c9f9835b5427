/**
 * The deterministic request parser: plain text in, a chain of tasks out, with no model and no I/O. The same request
 * always gives the same plan, so a recorded `TasksPlanned` can be explained from its request alone.
 *
 * Limits. A raw request longer than `MAX_REQUEST_CHARS` (counted as `String.length`, UTF-16 code units, the measure
 * the planner's own check uses) fails with `RequestTooLarge`; a request with nothing to do in it (empty, blank, only
 * punctuation or list markers) fails with `EmptyRequest`. Neither ever becomes a task.
 *
 * Normalising. CRLF, CR, U+2028, U+2029 and U+0085 end lines; control characters become spaces; each line's
 * indentation is measured (tabs to stops of 4), then every run of whitespace in it becomes one space and it is trimmed.
 *
 * Blocks. Each line is one of:
 * - a list item: a bullet (`-`, `*`, `+`, `•` and similar) or a number (`1.`, `2)`, `(3)`, `a)`, `1.2.`, `4 -`,
 *   `5:`, `Step 6:`, `Task 7.`, case-insensitive), followed by a space; the marker and a `[ ]`/`[x]` checkbox are
 *   stripped. Nested items are tasks of their own, in reading order;
 * - a Markdown heading (`# Plan`);
 * - a continuation: a line indented deeper than the list item before it joins that item, unless the item ends in
 *   `:` (what follows an introduction is its content, not part of it);
 * - a fenced code block (three backticks or tildes): its lines join the block before it as one backtick span;
 * - otherwise a line of its own.
 * A block ending in `:` ("Here is the plan:", "Notes:") or a Markdown heading introduces or labels other blocks and is
 * not a task, unless the request has nothing else (then "Fix the following:" alone is still a task, not an error).
 *
 * Tasks. Every block is one task, except when the request is a single plain paragraph (one block, not a list item):
 * then a leading "Here is the plan:"-style introduction is dropped and the paragraph is split
 * - at an inline enumeration starting the paragraph or following a colon: `1) a 2) b`, `(1) a, (2) b`,
 *   `Step 1: a Step 2: b` (numbered 1, 2, 3... in one style); its items are not split further;
 * - otherwise at sentence ends (`.`, `!`, `?`, `...` followed by whitespace), never inside a URL, a backtick span, a
 *   double-quoted string or parentheses, and never after an abbreviation ("e.g.", "i.e.", "Dr.", "vs."; "etc.",
 *   "a.m." only before a capital or a connector; "No.", "Fig.", "v." before a number). Periods without whitespace
 *   after them (`spec.pdf`, `v1.2`, `3.14`, URLs) never split;
 * - and within a sentence, where a clause begins with a sequencing connector: "then", "and then", "next",
 *   "after that", "afterwards", "finally", "lastly", "subsequently", "firstly"/"secondly"/"thirdly", after a comma,
 *   semicolon or dash ("Add login, then write tests"); "and then", "and finally" and the like also without one; a
 *   bare "then" ("Build it then deploy") too, except after words that make it part of the clause ("only then",
 *   "was then", "will then"). After a comma, "first" splits only when a comma follows it, "second" and "third" also
 *   in a paragraph that has a "first" step ("First add login, second write tests"). A "then" that answers a
 *   condition ("If the build fails, then roll back") never splits.
 *
 * Descriptions keep their text, including URLs and paths, minus the list marker and a leading connector (and its
 * comma), whatever the shape of the request: "Then write tests" becomes "write tests" (the case is kept as written).
 * "second"/"third" are connectors at the start only before a comma, or in a paragraph that has a "first" step. A
 * connector is kept when nothing would be left without it. Dangling ", and" / "and then" at the end are dropped, and
 * so is one final sentence period (never "...", and never the period of an abbreviation such as "etc."); "?" and "!"
 * are kept. Text with no letter, digit or emoji in it is never a task.
 *
 * Kinds (`classify`), first match wins, ignoring a polite lead-in ("please", "can you", "we need to", ...):
 * 1. `Clarification`: a question (ends with `?`, also before closing brackets or quotes), or an ambiguity marker
 *    outside code and URLs: "TBD", "TBC", "to be decided", "unclear", "not clear", "not sure", "unsure", "clarify",
 *    "clarification", "confirm with", "check with the user", "ask the user", "which one", "ambiguous", "(?)", "??".
 *    It comes first because running a command or writing code under an open question is the costly mistake.
 * 2. `ToolCall`: a backtick code span, a leading tool verb (run, rerun, execute, exec, install, reinstall, uninstall,
 *    invoke, call), a `$ ` prompt, or a leading lower-case command name (`npm`, `git`, `cargo`, `docker`, ...).
 * 3. `UnitTest`: a test-writing verb (write, add, create, implement, update, extend, expand, improve, fix, cover,
 *    generate) about tests ("tests", "unit test", "a test", "test cases", "test coverage"), or a task that starts
 *    with "unit tests" / "tests for".
 * 4. `Refactor`: a leading refactor, restructure, reorganise/reorganize, or the word "refactor" anywhere.
 * 5. `Retrieval`: a leading read, fetch, retrieve, download, get, grab, pull, load, open, consult, scrape, crawl,
 *    browse, visit or "look up", with at least one attachment (link, image or file).
 * 6. `Analysis`: a leading analyse/analyze, review, investigate, inspect, evaluate, assess, audit, examine,
 *    diagnose, study, compare, research, triage.
 * 7. `CodeImplementation`: a leading implement, code or program; or a leading generic verb (add, build, create,
 *    write, develop, fix, make, update, change, ...) whose object names code (function, endpoint, login, schema,
 *    migration, bug, feature, ...) or which refers to a source file (`src/app.ts`).
 * 8. `Processing`: everything else, including whatever is ambiguous.
 *
 * Attachments (`extractAttachments`), in order of appearance, no duplicates:
 * - `Link`: `http(s)://` URLs; sentence punctuation (`.`, `,`, `;`, `:`, `!`, `?`, `*`, `…`), closing quotes and
 *   closing brackets without a matching opener inside the URL are not part of it, so "spec.pdf." gives ".../spec.pdf"
 *   and "(see https://x.org/a_(b))" keeps the balanced parenthesis.
 * - `FileRef`: paths that start with `./`, `../` or `~/`; relative paths with a `/` whose last segment is a file
 *   name with an extension (`src/main.rs`, `docs/README.md`, `.github/workflows/ci.yml`) or a well-known name
 *   (`docker/Dockerfile`); absolute paths ending in such a file name (`/abs/path.ext`) or under a system root
 *   (`/etc/hosts`). Not paths: URLs, dates (`1/2/2024`), fractions (`3/4`, `1/2.5`), `and/or`, `km/h`, and
 *   scheme-less host names (`example.com/spec.pdf`). A bare file name without a `/` (`spec.pdf`) is not attached:
 *   it cannot be told from a domain or a version.
 * - `ImageRef` instead of either, when the URL's path or the file ends in .png, .jpg, .jpeg, .gif, .webp, .svg,
 *   .bmp or .avif.
 * Each task's attachments are extracted from its own description, so every attachment is on the task that names it.
 */
import { Either } from "effect"
import { EmptyRequest, type RequestError, RequestTooLarge } from "./Errors.js"
import type { Attachment, AttachmentKind, NodeKind, TaskPlan } from "./Task.js"

/** The longest request the parser accepts, in `String.length` units of the raw, unnormalised text. */
export const MAX_REQUEST_CHARS = 100_000

// --- Characters -------------------------------------------------------------------------------------------------

/** Whether text says anything: a letter, a digit or an emoji. Punctuation and markers alone never make a task. */
const hasContent = (text: string): boolean => /[\p{L}\p{N}\p{Extended_Pictographic}]/u.test(text)

const collapse = (text: string): string => text.replace(/\s+/g, " ").trim()

/** `text` without the characters matching `char` at its end; a loop, as `/[...]+$/` is quadratic on long runs. */
const trimEndWhere = (text: string, char: RegExp): string => {
  let end = text.length
  while (end > 0 && char.test(text.charAt(end - 1))) end -= 1
  return text.slice(0, end)
}

/** Words after which a period does not end a sentence. */
const neverTerminal: ReadonlySet<string> = new Set([
  "e.g",
  "i.e",
  "eg",
  "ie",
  "vs",
  "cf",
  "viz",
  "mr",
  "mrs",
  "ms",
  "dr",
  "prof",
  "sr",
  "jr",
  "st",
  "approx",
  "incl",
  "excl",
  "esp",
  "resp",
  "ca",
  "dept",
  "gen",
  "lt",
  "col",
  "sgt"
])
/** Abbreviations that end a sentence only when a capital letter or a connector follows ("... etc. Then test"). */
const maybeTerminal: ReadonlySet<string> = new Set(["etc", "inc", "ltd", "co", "corp", "al", "misc"])
/** Abbreviations that do not end a sentence before a number ("No. 5", "Fig. 3", "v. 2"). */
const beforeNumber: ReadonlySet<string> = new Set([
  "no",
  "nos",
  "nr",
  "vol",
  "ch",
  "sec",
  "pp",
  "p",
  "pg",
  "art",
  "fig",
  "figs",
  "eq",
  "ver",
  "v",
  "rev",
  "op",
  "jan",
  "feb",
  "mar",
  "apr",
  "jun",
  "jul",
  "aug",
  "sep",
  "sept",
  "oct",
  "nov",
  "dec"
])
const isDottedAbbreviation = (word: string): boolean => /^(?:\p{L}\.)+\p{L}$/u.test(word)
const isAbbreviation = (word: string): boolean =>
  neverTerminal.has(word) || maybeTerminal.has(word) || isDottedAbbreviation(word)

/** The word before `index` (exclusive), lower case, without leading brackets or quotes. */
const wordBefore = (text: string, index: number): string => {
  let start = index
  while (start > 0 && !/\s/.test(text.charAt(start - 1))) start -= 1
  return text
    .slice(start, index)
    .replace(/^[^\p{L}\p{N}]+/u, "")
    .toLowerCase()
}

// --- Attachments --------------------------------------------------------------------------------------------------

interface Span {
  readonly start: number
  readonly end: number
  readonly kind: AttachmentKind
  readonly value: string
}

const imageExtension = /\.(?:png|jpe?g|gif|webp|svg|bmp|avif)$/i

const bracketOpeners: Readonly<Record<string, string>> = { ")": "(", "]": "[", "}": "{" }
const trailingUrlPunctuation = new Set([".", ",", ";", ":", "!", "?", "*", "…", "’", "”", "»", "›"])

const countOf = (text: string, char: string): number => {
  let count = 0
  for (const c of text) if (c === char) count += 1
  return count
}

/** Drops what a URL match picked up from the sentence around it: final punctuation and unbalanced closers. */
const trimUrl = (url: string): string => {
  // Counts are kept as characters are dropped, so a URL followed by a long run of brackets stays linear.
  const counts = new Map<string, number>()
  const countFor = (char: string): number => {
    const known = counts.get(char)
    if (known !== undefined) return known
    const counted = countOf(url, char)
    counts.set(char, counted)
    return counted
  }
  let end = url.length
  while (end > 0) {
    const last = url.charAt(end - 1)
    const opener = bracketOpeners[last]
    const drop =
      trailingUrlPunctuation.has(last) ||
      (last === "'" && countFor("'") % 2 === 1) ||
      (opener !== undefined && countFor(opener) < countFor(last))
    if (!drop) break
    counts.set(last, countFor(last) - 1)
    end -= 1
  }
  return url.slice(0, end)
}

const linkSpans = (text: string): ReadonlyArray<Span> => {
  const spans: Array<Span> = []
  for (const match of text.matchAll(/\bhttps?:\/\/[^\s<>"`]+/giu)) {
    const raw = match[0]
    // `[https://a.org](https://a.org)`: a Markdown link's text ends at `](`.
    const markdownEnd = raw.indexOf("](")
    const value = trimUrl(markdownEnd >= 0 ? raw.slice(0, markdownEnd) : raw)
    if (!/^https?:\/\/[^/?#]*[\p{L}\p{N}]/iu.test(value)) continue
    const path = value.split(/[?#]/)[0] ?? value
    spans.push({
      start: match.index,
      end: match.index + value.length,
      kind: imageExtension.test(path) ? "ImageRef" : "Link",
      value
    })
  }
  return spans
}

/** Extension-less file names common enough to recognise as the last segment of a path. */
const knownFileNames: ReadonlySet<string> = new Set([
  "Dockerfile",
  "Containerfile",
  "Makefile",
  "GNUmakefile",
  "Justfile",
  "Procfile",
  "Gemfile",
  "Rakefile",
  "Jenkinsfile",
  "Vagrantfile",
  "Brewfile",
  "README",
  "LICENSE",
  "CHANGELOG",
  "CODEOWNERS"
])
/** First segments of absolute paths that name files even without an extension (`/etc/hosts`). */
const systemRoots: ReadonlySet<string> = new Set([
  "etc",
  "usr",
  "var",
  "home",
  "tmp",
  "opt",
  "srv",
  "root",
  "mnt",
  "bin",
  "sbin",
  "lib",
  "dev",
  "proc",
  "Users",
  "Applications",
  "Library",
  "Volumes"
])

const pathSegment = /^\.?[\p{L}\p{N}_@+~-][\p{L}\p{N}_.@+~-]*$/u
const isSegment = (segment: string): boolean =>
  segment === ".." || (pathSegment.test(segment) && !segment.endsWith("."))
const isFileName = (segment: string): boolean =>
  knownFileNames.has(segment) ||
  (isSegment(segment) && /^\.?[^.]+(?:\.[^.]+)*\.[A-Za-z][A-Za-z0-9]{0,9}$/u.test(segment)) ||
  /^\.[A-Za-z][\w-]*$/u.test(segment)
/** `example.com/spec.pdf` is a URL without its scheme, not a relative path. */
const looksLikeHost = (segment: string): boolean => /^[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.[A-Za-z]{2,}$/u.test(segment)

/** The path a token names, if it is one (see the module comment), without a final sentence period. */
const asPath = (token: string): string | undefined => {
  const path = token.endsWith(".") && !token.endsWith("..") ? token.slice(0, -1) : token
  const explicit = /^(?:(?:\.\.?\/)+|~\/)/.exec(path)
  if (explicit !== null) {
    const segments = path.slice(explicit[0].length).split("/")
    const named = segments.filter((segment) => segment !== "")
    const emptyOnlyLast = segments.slice(0, -1).every((segment) => segment !== "")
    return named.length > 0 && emptyOnlyLast && named.every(isSegment) ? path : undefined
  }
  if (path.startsWith("/")) {
    const segments = path.slice(1).split("/")
    const last = segments[segments.length - 1] ?? ""
    if (!segments.every(isSegment) || last === "..") return undefined
    const first = segments[0] ?? ""
    return isFileName(last) || (segments.length >= 2 && systemRoots.has(first)) ? path : undefined
  }
  const segments = path.split("/")
  const first = segments[0] ?? ""
  const last = segments[segments.length - 1] ?? ""
  return segments.length >= 2 && segments.every(isSegment) && isFileName(last) && !looksLikeHost(first)
    ? path
    : undefined
}

const fileSpans = (text: string, links: ReadonlyArray<Span>): ReadonlyArray<Span> => {
  // URLs are blanked out first, so the paths inside them are never read as files.
  let masked = text
  for (const link of links) {
    masked = masked.slice(0, link.start) + " ".repeat(link.end - link.start) + masked.slice(link.end)
  }
  const spans: Array<Span> = []
  for (const match of masked.matchAll(/[^\s`'"()<>[\]{},;|*!?:#“”‘’«»]+/gu)) {
    if (!match[0].includes("/")) continue
    const value = asPath(match[0])
    if (value === undefined) continue
    spans.push({
      start: match.index,
      end: match.index + value.length,
      kind: imageExtension.test(value) ? "ImageRef" : "FileRef",
      value
    })
  }
  return spans
}

/** The links, images and files a text refers to, in order of appearance, each once. */
export const extractAttachments = (text: string): ReadonlyArray<Attachment> => {
  const links = linkSpans(text)
  const spans = [...links, ...fileSpans(text, links)].sort((a, b) => a.start - b.start)
  const seen = new Set<string>()
  const attachments: Array<Attachment> = []
  for (const span of spans) {
    const key = `${span.kind} ${span.value}`
    if (seen.has(key)) continue
    seen.add(key)
    attachments.push({ kind: span.kind, value: span.value })
  }
  return attachments
}

// --- Protected text -----------------------------------------------------------------------------------------------

/**
 * Marks the characters no split may happen inside: URLs, backtick spans, double-quoted strings and parentheses
 * (the last two only when balanced and short, so a stray quote or bracket cannot swallow the rest of a request).
 */
const protectedMask = (text: string, parentheses = true): Uint8Array => {
  const mask = new Uint8Array(text.length)
  for (const link of linkSpans(text)) mask.fill(1, link.start, link.end)
  for (const match of text.matchAll(/`[^`]*`|"[^"]{0,300}"|“[^”]{0,300}”/g)) {
    mask.fill(1, match.index, match.index + match[0].length)
  }
  const opens: Array<number> = []
  for (let index = 0; parentheses && index < text.length; index++) {
    if (mask[index] === 1) continue
    const char = text.charAt(index)
    if (char === "(") opens.push(index)
    else if (char === ")") {
      const open = opens.pop()
      if (open !== undefined && index - open <= 500) mask.fill(1, open, index + 1)
    }
  }
  return mask
}

// --- Connectors ---------------------------------------------------------------------------------------------------

const connectorWords =
  "then|next|after\\s+that|afterwards?|finally|lastly|subsequently|firstly|secondly|thirdly|first|second|third"

/** Words after "next" that make it an adjective ("next to", "next week"), not a connector. */
const notNextStep: ReadonlySet<string> = new Set([
  "to",
  "week",
  "weeks",
  "month",
  "year",
  "day",
  "days",
  "time",
  "sprint",
  "release",
  "version",
  "quarter",
  "morning",
  "afternoon",
  "evening",
  "weekend",
  "monday",
  "tuesday",
  "wednesday",
  "thursday",
  "friday",
  "saturday",
  "sunday",
  "step",
  "steps",
  "page",
  "line",
  "item",
  "one",
  "few",
  "level",
  "generation",
  "gen",
  "major",
  "minor"
])
/** Words after "first"/"second"/"third" that make it an adjective ("first time", "second opinion"). */
const notOrdinalStep: ReadonlySet<string> = new Set([
  "time",
  "times",
  "step",
  "steps",
  "thing",
  "things",
  "part",
  "version",
  "draft",
  "one",
  "of",
  "and",
  "class",
  "hand",
  "half",
  "impression",
  "impressions",
  "opinion",
  "page",
  "line",
  "item",
  "place",
  "round",
  "pass",
  "person",
  "party"
])
/** Words before a bare "then" that make it part of the clause ("only then", "was then", "will then"). */
const notThenStep: ReadonlySet<string> = new Set([
  "since",
  "by",
  "until",
  "till",
  "back",
  "only",
  "even",
  "just",
  "right",
  "from",
  "than",
  "now",
  "what",
  "but",
  "and",
  "or",
  "is",
  "are",
  "was",
  "were",
  "be",
  "been",
  "will",
  "would",
  "can",
  "could",
  "should",
  "shall",
  "must",
  "may",
  "might",
  "we",
  "i",
  "you",
  "they"
])

const firstWordOf = (text: string): string => (/^[\s,]*([\p{L}-]+)/u.exec(text)?.[1] ?? "").toLowerCase()

const leadingConnector = new RegExp(`^(?:and\\s+)?(${connectorWords})(?=[\\s,:]|$)[\\s,:]*`, "iu")

/** Whether a connector word at the start of `rest` (what follows it) is used as a connector there. */
const isConnectorUse = (connector: string, rest: string, ordinals: boolean): boolean => {
  const word = connector.toLowerCase().replace(/\s+/g, " ")
  const nextWord = firstWordOf(rest)
  const commaFollows = /^\s*,/.test(rest)
  switch (word) {
    case "next":
      return !notNextStep.has(nextWord)
    case "first":
      return commaFollows || !notOrdinalStep.has(nextWord)
    case "second":
    case "third":
      return commaFollows || (ordinals && !notOrdinalStep.has(nextWord))
    default:
      return true
  }
}

/** `text` without its leading connectors ("Then", "And then finally,"). */
const withoutLeadingConnectors = (text: string, ordinals: boolean): string => {
  let rest = text.trimStart()
  for (let round = 0; round < 4; round++) {
    const match = leadingConnector.exec(rest)
    if (match === null || match[1] === undefined) break
    const after = rest.slice(match[1].length + match[0].indexOf(match[1]))
    if (!isConnectorUse(match[1], after, ordinals)) break
    rest = rest.slice(match[0].length)
  }
  return rest
}

/** Whether a piece of text is nothing but connectors ("Then.", "and then,"). */
const isOnlyConnectors = (text: string): boolean =>
  hasContent(text) && !hasContent(withoutLeadingConnectors(trimEndWhere(text, /[\p{P}\s]/u), true))

/** Whether a paragraph counts its steps ("First, ... Second, ..."), so "second" and "third" are connectors in it. */
const hasFirstStep = (text: string): boolean => /(?:^|[.!?;:,]\s*)first(?:ly)?[\s,]/iu.test(text)

/**
 * A clause that states a condition ("If the build fails, then roll back"; "Run tests and if they pass, then deploy"),
 * whose "then" answers it instead of starting a new step: a condition word at its start, or after and/or/but/so.
 */
const conditionWords =
  "if|when|whenever|once|unless|in case|as soon as|after|before|until|till|while|provided|assuming|should|in the event"
const conditionAtStart = new RegExp(`^(?:${conditionWords})\\b`, "iu")
const conditionInside = new RegExp(`\\b(?:and|or|but|so)\\s+(?:${conditionWords})\\b`, "giu")

// --- Splitting a paragraph ----------------------------------------------------------------------------------------

/** "Here is the plan:", "Please do the following:" at the start of a paragraph. */
const paragraphIntro = /^[^.!?:\n]{0,80}?\b(?:plan|steps|following|tasks|to-?dos?|to do|checklist|below)\s*:\s+/iu

const numberWords = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
const inlineMarker = new RegExp(
  `(?<=^|[\\s:;,])(?:\\((\\d{1,2})\\)|(\\d{1,2})([.)])|(step)\\s+(\\d{1,2}|${numberWords.join("|")})\\s*[:.)])(?=\\s)`,
  "giu"
)
const markerNumber = (digitsOrWord: string): number => {
  const word = numberWords.indexOf(digitsOrWord.toLowerCase())
  return word >= 0 ? word + 1 : Number(digitsOrWord)
}

interface Marker {
  readonly index: number
  readonly end: number
  readonly number: number
  readonly style: string
}

/** An inline enumeration (`1) a 2) b`) starting the paragraph or following a colon, split into its items. */
const splitEnumeration = (text: string): ReadonlyArray<string> | undefined => {
  // Parentheses are not protected here: `(1)` is itself a marker.
  const mask = protectedMask(text, false)
  const markers: Array<Marker> = []
  for (const match of text.matchAll(inlineMarker)) {
    if (mask[match.index] === 1) continue
    const number = markerNumber(match[1] ?? match[2] ?? match[5] ?? "")
    const style = match[1] !== undefined ? "()" : match[2] !== undefined ? (match[3] ?? "") : "step"
    markers.push({ index: match.index, end: match.index + match[0].length, number, style })
  }
  const startsAt = markers.findIndex(
    (marker) => marker.number === 1 && (marker.index === 0 || text.slice(0, marker.index).trimEnd().endsWith(":"))
  )
  const first = markers[startsAt]
  if (first === undefined) return undefined
  const chain: Array<Marker> = [first]
  for (const marker of markers.slice(startsAt + 1)) {
    const last = chain[chain.length - 1] ?? first
    if (marker.style === last.style && marker.number === last.number + 1) chain.push(marker)
  }
  if (chain.length < 2) return undefined
  return chain.map((marker, position) => text.slice(marker.end, chain[position + 1]?.index ?? text.length))
}

/** Whether the text from `index` on starts a new sentence: a capital, a digit, an opening quote, or a connector. */
const startsSentence = (text: string, index: number): boolean => {
  const rest = text.slice(index, index + 40).trimStart()
  return /^[\p{Lu}\p{N}"'“‘([`]/u.test(rest) || new RegExp(`^(?:and\\s+)?(?:${connectorWords})\\b`, "iu").test(rest)
}

const sentences = (text: string): ReadonlyArray<string> => {
  const mask = protectedMask(text)
  const pieces: Array<string> = []
  let start = 0
  for (const match of text.matchAll(/(?<![.!?…])([.!?…]+)[)\]"'”’»]*(?=\s)/gu)) {
    if (mask[match.index] === 1) continue
    const punctuation = match[1] ?? ""
    const after = match.index + match[0].length
    const word = wordBefore(text, match.index)
    const nextWord = text.slice(after, after + 40).trimStart()
    let ends: boolean
    if (/[!?]/.test(punctuation)) ends = true
    else if (punctuation !== ".") ends = startsSentence(text, after)
    else if (neverTerminal.has(word)) ends = false
    else if (beforeNumber.has(word) && /^\d/.test(nextWord)) ends = false
    else if (maybeTerminal.has(word) || isDottedAbbreviation(word)) ends = startsSentence(text, after)
    else ends = true
    if (!ends) continue
    pieces.push(text.slice(start, after))
    start = after
  }
  pieces.push(text.slice(start))
  return pieces
}

const clauseBreak = new RegExp(`(\\s*[,;]\\s*|\\s+[-–—]\\s+|\\s+)(and\\s+)?(${connectorWords})(?=[\\s,:]|$)`, "giu")

const clauses = (sentence: string, ordinals: boolean): ReadonlyArray<string> => {
  const mask = protectedMask(sentence)
  const pieces: Array<string> = []
  let start = 0
  // Where the current clause's first inner condition is, searched once per clause so long sentences stay linear.
  let conditionSearchedFrom = -1
  let conditionAt = -1
  const isConditional = (clauseStart: number, end: number, opening: string): boolean => {
    if (conditionAtStart.test(opening)) return true
    if (conditionSearchedFrom !== clauseStart) {
      conditionSearchedFrom = clauseStart
      conditionInside.lastIndex = clauseStart
      conditionAt = conditionInside.exec(sentence)?.index ?? -1
    }
    return conditionAt >= 0 && conditionAt < end
  }
  for (const match of sentence.matchAll(clauseBreak)) {
    const lead = match[1] ?? ""
    const connector = (match[3] ?? "").toLowerCase().replace(/\s+/g, " ")
    const at = match.index + lead.length
    if (match.index === 0 || mask[at] === 1) continue
    const rest = sentence.slice(match.index + match[0].length, match.index + match[0].length + 80)
    if (!hasContent(sentence.slice(match.index + match[0].length))) continue
    const punctuated = /[,;–—-]/.test(lead)
    const joined = match[2] !== undefined
    // Connectors are short: the clause's first 120 characters tell how it opens.
    const opening = withoutLeadingConnectors(sentence.slice(start, Math.min(match.index, start + 120)), ordinals)
    let splits: boolean
    switch (connector) {
      case "then":
        splits =
          (punctuated || joined || !notThenStep.has(wordBefore(sentence, match.index))) &&
          !isConditional(start, match.index, opening)
        break
      case "first":
        splits = punctuated && !joined && /^\s*,/.test(rest)
        break
      case "second":
      case "third":
        splits = punctuated && !joined && isConnectorUse(connector, rest, ordinals)
        break
      case "firstly":
      case "secondly":
      case "thirdly":
        splits = punctuated
        break
      default:
        splits = (punctuated || joined) && isConnectorUse(connector, rest, ordinals)
    }
    // "; then, afterwards, deploy": the connectors before the last one belong to its clause.
    if (!splits || !hasContent(opening)) continue
    pieces.push(sentence.slice(start, match.index))
    start = at
  }
  pieces.push(sentence.slice(start))
  return pieces
}

const splitParagraph = (paragraph: string): ReadonlyArray<string> => {
  const intro = paragraphIntro.exec(paragraph)
  const body =
    intro !== null && hasContent(paragraph.slice(intro[0].length)) ? paragraph.slice(intro[0].length) : paragraph
  const enumerated = splitEnumeration(body)
  if (enumerated !== undefined) return enumerated
  const ordinals = hasFirstStep(body)
  return sentences(body).flatMap((sentence) => clauses(sentence, ordinals))
}

// --- Blocks -------------------------------------------------------------------------------------------------------

interface Line {
  readonly indent: number
  readonly content: string
}

const indentWidth = (line: string): number => {
  let width = 0
  for (const char of line) {
    if (char === "\t") width += 4 - (width % 4)
    else if (/\s/.test(char)) width += 1
    else break
  }
  return width
}

const toLines = (text: string): ReadonlyArray<Line> =>
  text
    .split(/\r\n?|[\n\u2028\u2029\u0085]/)
    .map((line) => ({ indent: indentWidth(line), content: collapse(line.replace(/[\p{Cc}\u200b\u2060]/gu, " ")) }))

const checkbox = "(?:\\[[ xX]\\](?:\\s+|$))?"
const bulletMarker = new RegExp(`^[-*+•‣◦▪▫●○■□·–—](?:\\s+|$)${checkbox}`, "u")
const numberedMarker = new RegExp(
  "^(?:\\d{1,3}(?:\\.\\d{1,3})*[.)]|\\(\\d{1,3}\\)|\\(?[a-z]\\)|\\d{1,3}(?:\\s+[-–—]|:)" +
    "|(?:step|task|phase|stage|part)\\s+(?:\\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten)\\s*[:.)\\-–—])" +
    `(?:\\s+|$)${checkbox}`,
  "iu"
)
const markdownHeading = /^#{1,6}(?:\s+|$)/u
const fenceOpening = /^(`{3,}|~{3,})/

type BlockKind = "item" | "line" | "heading"

interface Block {
  readonly kind: BlockKind
  readonly indent: number
  /** The line that started the block, list marker included. */
  readonly first: string
  readonly parts: Array<string>
}

const blockText = (block: Block): string => collapse(block.parts.join(" "))

const toBlocks = (lines: ReadonlyArray<Line>): ReadonlyArray<Block> => {
  const blocks: Array<Block> = []
  let fence: { readonly marker: string; readonly code: Array<string>; readonly owner: Block | undefined } | undefined
  const closeFence = (indent: number) => {
    if (fence === undefined) return
    // Lines of code become the statements of one span: `npm ci; npm test`.
    const lines = fence.code
    const separator = (previous: string | undefined) =>
      previous === undefined ? "" : /[;{}(,[]$/.test(previous) ? " " : "; "
    const statements = lines.map((line, index) => separator(lines[index - 1]) + line).join("")
    const code = collapse(statements.replaceAll("`", "'"))
    if (hasContent(code)) {
      if (fence.owner !== undefined) fence.owner.parts.push(`\`${code}\``)
      else blocks.push({ kind: "line", indent, first: code, parts: [`\`${code}\``] })
    }
    fence = undefined
  }
  for (const line of lines) {
    const { content, indent } = line
    if (fence !== undefined) {
      if (content.startsWith(fence.marker)) closeFence(indent)
      else if (content !== "") fence.code.push(content)
      continue
    }
    if (content === "") continue
    const current = blocks[blocks.length - 1]
    const opening = fenceOpening.exec(content)
    if (opening !== null) {
      fence = { marker: opening[1] ?? "```", code: [], owner: current?.kind === "heading" ? undefined : current }
      continue
    }
    const heading = markdownHeading.exec(content)
    const marker = heading === null ? (bulletMarker.exec(content) ?? numberedMarker.exec(content)) : null
    if (heading !== null)
      blocks.push({ kind: "heading", indent, first: content, parts: [content.slice(heading[0].length)] })
    else if (marker !== null)
      blocks.push({ kind: "item", indent, first: content, parts: [content.slice(marker[0].length)] })
    else if (
      current !== undefined &&
      current.kind === "item" &&
      indent > current.indent &&
      !(current.parts[current.parts.length - 1] ?? "").endsWith(":")
    ) {
      current.parts.push(content)
    } else blocks.push({ kind: "line", indent, first: content, parts: [content] })
  }
  closeFence(0)
  return blocks
}

// --- Descriptions -------------------------------------------------------------------------------------------------

/** Drops one final sentence period, but never an ellipsis or the period of an abbreviation. */
const dropSentencePeriod = (text: string): string => {
  if (!text.endsWith(".") || text.endsWith("..")) return text
  return isAbbreviation(wordBefore(text, text.length - 1)) ? text : text.slice(0, -1).trimEnd()
}

/** A piece of the request as a task description, or `undefined` when it says nothing. */
const describe = (piece: string, ordinals: boolean): string | undefined => {
  const collapsed = collapse(piece)
  const stripped = withoutLeadingConnectors(collapsed, ordinals)
  let text = hasContent(stripped) ? stripped : collapsed
  for (;;) {
    const trimmed = trimEndWhere(text, /[\s,;]/u).replace(/\s(?:and then|and|then)$/iu, "")
    if (trimmed === text || !hasContent(trimmed)) break
    text = trimmed
  }
  const description = dropSentencePeriod(text).trim()
  return hasContent(description) ? description : undefined
}

const descriptionsOf = (text: string): ReadonlyArray<string> => {
  const blocks = toBlocks(toLines(text)).filter((block) => hasContent(blockText(block)))
  // An introduction ("Here is the plan:", "# Backend") is not a task, unless the request is nothing but those.
  const isIntro = (block: Block) => block.kind === "heading" || blockText(block).endsWith(":")
  const tasks = blocks.filter((block) => !isIntro(block))
  const kept = tasks.length > 0 ? tasks : blocks
  const only = kept.length === 1 ? kept[0] : undefined
  const pieces =
    only?.kind === "line"
      ? splitParagraph(blockText(only))
      : only?.kind === "item"
        ? // "1. Add login. 2. Write tests." on one line is an inline enumeration, not one item.
          (splitEnumeration(collapse([only.first, ...only.parts.slice(1)].join(" "))) ?? [blockText(only)])
        : kept.map(blockText)
  const ordinals = only?.kind === "line" && hasFirstStep(blockText(only))
  // A piece that is only a connector ("Add login. Then.") is dropped, unless it is all the request says.
  const meaningful = pieces.filter((piece) => !isOnlyConnectors(piece))
  return (meaningful.length > 0 ? meaningful : pieces).flatMap((piece) => describe(piece, ordinals) ?? [])
}

// --- Kinds --------------------------------------------------------------------------------------------------------

const politeLeadIn =
  /^(?:(?:please|pls|plz|kindly|also|now|just|so|ok|okay|and)\b[\s,!]+|(?:can|could|would|will) you (?:please )?|(?:i|we) (?:need|want|would like) (?:you )?to |(?:you|we) (?:should|must|need to|have to) |(?:let'?s|let us|go ahead and|make sure to|try to) )+/iu

const ambiguityMarker =
  /\b(?:tbd|tbc|to be (?:decided|determined|confirmed|clarified)|unclear|not clear|not sure|unsure|clarify|clarification|confirm with|check with (?:the )?(?:user|client|customer|team)|ask (?:the )?(?:user|client|customer|team)|which one|ambiguous)\b|\(\?\)|\?{2,}/iu

const toolVerbs: ReadonlySet<string> = new Set([
  "run",
  "rerun",
  "re-run",
  "execute",
  "exec",
  "install",
  "reinstall",
  "uninstall",
  "invoke",
  "call"
])
const commandLine =
  /^(?:\$\s+\S|(?:npm|npx|pnpm|yarn|bun|deno|git|cargo|rustc|rustup|docker|kubectl|helm|pip|pip3|pipx|poetry|uv|python|python3|node|tsc|vitest|jest|pytest|mvn|gradle|curl|wget|ssh|scp|rsync|psql|sqlite3|terraform|ansible|brew|apt|apt-get|sudo|bash|sh|zsh)(?:\s|$))/u

const testWritingVerbs: ReadonlySet<string> = new Set([
  "write",
  "add",
  "create",
  "implement",
  "update",
  "extend",
  "expand",
  "improve",
  "fix",
  "cover",
  "generate"
])
const aboutTests =
  /\b(?:unit[- ]?tests?|tests|test[- ](?:cases?|suites?|coverage|harness)|tests?\s+(?:for|of|that|to)\b)|\btest\b[.!]?$/iu
const refactorVerbs: ReadonlySet<string> = new Set(["refactor", "restructure", "reorganise", "reorganize"])
const retrievalVerbs: ReadonlySet<string> = new Set([
  "read",
  "fetch",
  "retrieve",
  "download",
  "get",
  "grab",
  "pull",
  "load",
  "open",
  "consult",
  "scrape",
  "crawl",
  "browse",
  "visit"
])
const analysisVerbs: ReadonlySet<string> = new Set([
  "analyse",
  "analyze",
  "review",
  "investigate",
  "inspect",
  "evaluate",
  "assess",
  "audit",
  "examine",
  "diagnose",
  "study",
  "compare",
  "research",
  "triage"
])
const implementationVerbs: ReadonlySet<string> = new Set(["implement", "code", "program"])
const genericBuildVerbs: ReadonlySet<string> = new Set([
  "add",
  "build",
  "create",
  "write",
  "develop",
  "fix",
  "make",
  "wire",
  "integrate",
  "introduce",
  "support",
  "port",
  "update",
  "change",
  "modify",
  "edit",
  "extend",
  "rewrite",
  "set",
  "hook",
  "expose",
  "handle",
  "enable"
])
const codeNouns =
  /\b(?:functions?|methods?|class(?:es)?|interfaces?|enums?|structs?|traits?|modules?|components?|endpoints?|apis?|routes?|routers?|handlers?|controllers?|middlewares?|services?|servers?|backend|frontend|ui|buttons?|screens?|widgets?|login|logout|sign[- ]?up|sign[- ]?in|auth|authentication|authori[sz]ation|oauth|cookies?|databases?|db|schemas?|migrations?|quer(?:y|ies)|cli|commands?|flags?|parsers?|scripts?|librar(?:y|ies)|plugins?|hooks?|features?|bugs?|bugfix|cach(?:e|es|ing)|validation|validators?|logging|loggers?|pipelines?|webhooks?|integrations?|code|algorithms?|regex(?:es)?|sdk|graphql|crud|websockets?|jwt|pagination|seriali[sz](?:er|ation)|encryption|hashing|error handling|retries|retry)\b/iu
const sourceFile =
  /\.(?:ts|tsx|js|jsx|mjs|cjs|rs|py|go|java|kt|rb|php|c|h|cc|cpp|hpp|cs|swift|scala|sql|sh|vue|svelte)$/i

/** `text` with backtick spans and URLs blanked, so markers inside code or links are not read as prose. */
const prose = (text: string): string => {
  let blanked = text.replace(/`[^`]*`/g, (code) => " ".repeat(code.length))
  for (const link of linkSpans(blanked)) {
    blanked = blanked.slice(0, link.start) + " ".repeat(link.end - link.start) + blanked.slice(link.end)
  }
  return blanked
}

/** The kind of task a description is, by the rules in the module comment. */
export const classify = (description: string): NodeKind => {
  const text = collapse(description)
  const plain = prose(text)
  if (/\?[\s)\]"'”’»]*$/u.test(plain) || ambiguityMarker.test(plain)) return "Clarification"
  const lead = text.replace(politeLeadIn, "")
  const lower = lead.toLowerCase()
  const verb = /^\p{L}[\p{L}-]*/u.exec(lower)?.[0] ?? ""
  const rest = lower.slice(verb.length)
  if (/`[^`]*[^`\s][^`]*`/.test(text) || toolVerbs.has(verb) || commandLine.test(lead)) return "ToolCall"
  if ((testWritingVerbs.has(verb) && aboutTests.test(rest)) || /^(?:unit[- ]?tests?|tests for)\b/.test(lower)) {
    return "UnitTest"
  }
  if (refactorVerbs.has(verb) || /\brefactor(?:s|ed|ing)?\b/.test(lower)) return "Refactor"
  const attachments = extractAttachments(text)
  if ((retrievalVerbs.has(verb) || lower.startsWith("look up")) && attachments.length > 0) return "Retrieval"
  if (analysisVerbs.has(verb)) return "Analysis"
  const refersToSource = attachments.some(
    (attachment) => attachment.kind === "FileRef" && sourceFile.test(attachment.value)
  )
  if (implementationVerbs.has(verb) || (genericBuildVerbs.has(verb) && (codeNouns.test(rest) || refersToSource))) {
    return "CodeImplementation"
  }
  return "Processing"
}

// --- Parsing ------------------------------------------------------------------------------------------------------

/**
 * Plans a request: one task per step, ids 1..n in order, each depending on the one before it. Fails with
 * `RequestTooLarge` over `MAX_REQUEST_CHARS` and with `EmptyRequest` when there is nothing to do.
 */
export const parse = (text: string): Either.Either<ReadonlyArray<TaskPlan>, RequestError> => {
  if (text.length > MAX_REQUEST_CHARS) {
    return Either.left(new RequestTooLarge({ size: text.length, limit: MAX_REQUEST_CHARS }))
  }
  const descriptions = descriptionsOf(text)
  if (descriptions.length === 0) return Either.left(new EmptyRequest())
  return Either.right(
    descriptions.map((description, index) => ({
      id: index + 1,
      description,
      kind: classify(description),
      dependsOn: index === 0 ? [] : [index],
      attachments: extractAttachments(description)
    }))
  )
}
