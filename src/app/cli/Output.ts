/**
 * Writing to the terminal: which kind of output to produce (a live view on a terminal, plain lines otherwise, or one
 * JSON object), the small text helpers every command shares, and how to show secrets (never).
 */
import { Effect } from "effect"
import type { CorruptEvent } from "../../infra/EventStore.js"
import * as Secrets from "../../infra/Secrets.js"

/** How a command reports: a redrawn task board, one line per event, or one JSON object at the end. */
export type OutputMode = "live" | "plain" | "json"

export interface DisplayFlags {
  readonly json: boolean
  readonly plain: boolean
}

/** `NO_COLOR` (any non-empty value, see no-color.org) and `TERM=dumb` ask for plain output. */
export const colourDisabled = (env: NodeJS.ProcessEnv = process.env): boolean =>
  (env.NO_COLOR !== undefined && env.NO_COLOR !== "") || env.TERM === "dumb"

export const outputMode = (flags: DisplayFlags): OutputMode => {
  if (flags.json) return "json"
  if (flags.plain || colourDisabled() || process.stdout.isTTY !== true) return "plain"
  return "live"
}

/** Writes synchronously-ordered text to standard output. */
export const out = (text: string) =>
  Effect.sync(() => void process.stdout.write(text.endsWith("\n") ? text : `${text}\n`))

/** Writes a line to standard error. */
export const err = (text: string) =>
  Effect.sync(() => void process.stderr.write(text.endsWith("\n") ? text : `${text}\n`))

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escape sequences is the point
const ansiPattern = /\u001b\[[0-9;?]*[A-Za-z]/g

export const stripAnsi = (text: string): string => text.replace(ansiPattern, "")

/** A session a store-wide command left alone because an event of its log cannot be read, for `--json`. */
export const unreadableJson = (corrupt: CorruptEvent) => ({
  sessionId: corrupt.aggregateId,
  position: corrupt.position,
  sequence: corrupt.sequence,
  message: corrupt.message
})

/** "1 session", "2 sessions". */
export const plural = (count: number, noun: string): string => `${count} ${noun}${count === 1 ? "" : "s"}`

/** The first line of `text`, at most `max` characters. */
export const firstLine = (text: string, max = 160): string => {
  const line = (text.split("\n", 1)[0] ?? "").trim()
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

/** `text` cut to `max` characters on one line. */
export const clip = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, Math.max(0, max - 1))}…` : flat
}

/** The first `count` words of `text`, with an ellipsis when there were more. */
export const firstWords = (text: string, count = 8): string => {
  const words = text
    .trim()
    .split(/\s+/)
    .filter((word) => word.length > 0)
  return words.length > count ? `${words.slice(0, count).join(" ")}…` : words.join(" ")
}

const pad2 = (value: number) => String(value).padStart(2, "0")

/** `2025-05-04 12:00:01`, in local time. */
export const dateTime = (millis: number): string => {
  const date = new Date(millis)
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ${clock(millis)}`
}

/** `12:00:01`, in local time. */
export const clock = (millis: number): string => {
  const date = new Date(millis)
  return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`
}

export const isoTime = (millis: number): string => new Date(millis).toISOString()

/** `1.2 s`, `3 min 5 s`. */
export const duration = (millis: number): string => {
  if (millis < 60_000) return `${(millis / 1000).toFixed(1)} s`
  const minutes = Math.floor(millis / 60_000)
  return `${minutes} min ${Math.round((millis % 60_000) / 1000)} s`
}

/** Quotes a shell word when it needs it, so printed commands can be pasted. */
export const shellQuote = (word: string): string =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`

const postgresUrl = /^postgres(?:ql)?:\/\//i

export const isPostgresUrl = (value: string): boolean => postgresUrl.test(value)

/**
 * A database URL with its password (and any `password` query parameter) replaced by `***`, for messages. Text that
 * is not a URL is returned unchanged.
 */
export const maskUrl = (value: string): string => {
  try {
    const url = new URL(value)
    if (url.password !== "") url.password = "***"
    for (const key of [...url.searchParams.keys()]) {
      if (/pass|secret|token|key/i.test(key)) url.searchParams.set(key, "***")
    }
    return url.toString().replace(/%2A%2A%2A/g, "***")
  } catch {
    return withoutRawPassword(value)
  }
}

/** `value` with its `rawPassword` replaced by `***`; the password is remembered as a secret (see `registerSecret`). */
export const withoutRawPassword = (value: string): string => {
  const password = rawPassword(value)
  if (password === undefined) return value
  registerPassword(password)
  return value.replace(`:${password}@`, ":***@")
}

/**
 * The password of a URL that `URL` cannot parse (`postgres://user:pa ss@host/db`, `postgres://u:p@ss@host/db`,
 * `postgres:u:pw@host/db`): everything between the user name's colon and the last `@`, spaces and `@`s included.
 * Masking more than the password is safe; masking less is not.
 */
export const rawPassword = (value: string): string | undefined => {
  const password = /^[A-Za-z][A-Za-z0-9+.-]*:\/*[^:/@]*:(.*)@/s.exec(value)?.[1]
  return password === undefined || password === "" ? undefined : password
}

/** A password as typed and as percent-decoded (a malformed escape leaves it as typed). */
const registerPassword = (password: string): void => {
  registerSecret(password)
  try {
    registerSecret(decodeURIComponent(password))
  } catch {
    // Not percent-encoded as a whole: the typed form is the one that can be printed.
  }
}

/** Secrets that must never reach the terminal, collected as they become known. */
const secrets = new Set<string>()

/**
 * Remembers a secret so `scrub` removes it from anything printed, and registers it process-wide (`Secrets`), so the
 * tracer scrubs it from exported spans too (a database password in a failed connection's error, for example).
 */
export const registerSecret = (secret: string | undefined): void => {
  if (secret !== undefined && secret.length >= 4) {
    secrets.add(secret)
    Secrets.register(secret)
  }
}

/** Registers the password of a database URL and the LLM keys in the environment. */
export const registerEnvironmentSecrets = (env: NodeJS.ProcessEnv = process.env): void => {
  registerSecret(env.PLANNER_LLM_API_KEY)
  registerSecret(env.OPENAI_API_KEY)
  const url = env.PLANNER_DATABASE_URL
  if (url !== undefined) registerUrlSecret(url)
}

export const registerUrlSecret = (value: string): void => {
  try {
    const url = new URL(value)
    registerSecret(decodeURIComponent(url.password))
    registerSecret(url.password)
    for (const [key, param] of url.searchParams) if (/pass|secret|token|key/i.test(key)) registerSecret(param)
  } catch {
    // Not a URL: its password, if it has the shape of one, is remembered all the same.
    withoutRawPassword(value)
  }
}

/** `text` with every known secret replaced by `***`. */
export const scrub = (text: string): string => {
  let result = text
  for (const secret of secrets) result = result.split(secret).join("***")
  return result
}
