/** Attachments: the links, images and files a text refers to (see the rules in ../Parser.ts). */
import type { Attachment, AttachmentKind } from "../Task.js"

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

export const linkSpans = (text: string): ReadonlyArray<Span> => {
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
