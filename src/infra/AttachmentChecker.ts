/**
 * Checks a task's attachments before it runs (seed section 7), so a missing file or a dead link becomes a question
 * for a person instead of a failed step:
 * - a `FileRef` must be a readable regular file, relative to the working directory (absolute paths and `file:` URLs as
 *   given);
 * - a `Link` must answer: a HEAD request, and a GET when the HEAD is answered with an error status (405 and 501 mean
 *   HEAD is not supported; presigned URLs reject HEAD with 403). Redirects are followed; 2xx and 3xx count as an
 *   answer. Each request gets `timeoutMs`. With `checkLinks: false` (offline use) links are not checked;
 * - an `ImageRef` is checked as a link when it is an http(s) URL, accepted as is when it is a `data:` URL, and
 *   checked as a file otherwise.
 *
 * The result is the first attachment (in the order given) that fails, with a question whose answer replaces it
 * (`attachmentFromText` in the domain turns the answer into the new attachment). Checking never fails.
 *
 * Paths inside a command are the command's business: in a `ToolCall` task, an attachment named only inside backticks
 * (`` `mkdir ./build` ``, `` `touch ./new.txt` ``) is not checked, since the command may well be what creates it. One
 * the description also names outside the backticks ("Run `wc -l data.csv` on data.csv") is still checked.
 */
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { FetchHttpClient, FileSystem, HttpClient, HttpClientRequest } from "@effect/platform"
// The module, not the package index: the index also loads undici and ws (1.5 MB) into every command that runs plans.
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Context, Duration, Effect, Layer, Option } from "effect"
import type { Attachment, NodeKind } from "../domain/Task.js"
import { closingRun } from "./internal/backticks.js"

export interface AttachmentProblem {
  readonly attachment: Attachment
  /** What is wrong, for logs: "no such file in /work/x", "HTTP 404", "no answer within 3 s". */
  readonly reason: string
  /** What to ask a person; the answer replaces the attachment. */
  readonly question: string
}

export interface AttachmentCheckerService {
  /** The problem with one attachment, if it has one. */
  readonly check: (attachment: Attachment, workingDirectory: string) => Effect.Effect<Option.Option<AttachmentProblem>>
  /**
   * The first attachment, in the order given, that has a problem. All are checked concurrently. With the task the
   * attachments belong to, those only its command names are left to the command (see `attachmentsToCheck`).
   */
  readonly firstProblem: (
    attachments: ReadonlyArray<Attachment>,
    workingDirectory: string,
    task?: AttachmentOwner
  ) => Effect.Effect<Option.Option<AttachmentProblem>>
}

/** What the checker needs to know of the task the attachments belong to. */
export interface AttachmentOwner {
  readonly kind: NodeKind
  readonly description: string
}

/**
 * The text of `description` with every code span and fenced block blanked out, and the text of the code alone:
 * Markdown's rules as the shell executor reads them (a run of n backticks closed by the next run of exactly n; an
 * unmatched run is literal text).
 */
const splitCode = (description: string): { readonly prose: string; readonly code: string } => {
  let prose = ""
  let code = ""
  let position = 0
  while (position < description.length) {
    const open = description.indexOf("`", position)
    if (open < 0) break
    let afterOpen = open
    while (description[afterOpen] === "`") afterOpen += 1
    const run = afterOpen - open
    const close = closingRun(description, afterOpen, run)
    if (close < 0) {
      prose += description.slice(position, afterOpen)
      position = afterOpen
      continue
    }
    prose += `${description.slice(position, open)} `
    code += ` ${description.slice(afterOpen, close)} `
    position = close + run
  }
  return { prose: prose + description.slice(position), code }
}

/** Whether `value` occurs in `text` as a whole token (not as part of a longer path or word). */
const mentions = (text: string, value: string): boolean => {
  let from = 0
  for (;;) {
    const at = text.indexOf(value, from)
    if (at < 0) return false
    const before = text.charAt(at - 1)
    const after = text.charAt(at + value.length)
    const boundary = (char: string) => char === "" || !/[\p{L}\p{N}_./~@+-]/u.test(char)
    if (boundary(before) && (boundary(after) || (after === "." && boundary(text.charAt(at + value.length + 1))))) {
      return true
    }
    from = at + 1
  }
}

/**
 * The attachments worth checking before `task` runs: all of them, except in a `ToolCall`, whose attachments named only
 * inside its backticks belong to the command (it may create them). Whatever else names them stays checked.
 */
export const attachmentsToCheck = (
  attachments: ReadonlyArray<Attachment>,
  task: AttachmentOwner | undefined
): ReadonlyArray<Attachment> => {
  if (task === undefined || task.kind !== "ToolCall" || !task.description.includes("`")) return attachments
  const { prose, code } = splitCode(task.description)
  return attachments.filter((attachment) => !(mentions(code, attachment.value) && !mentions(prose, attachment.value)))
}

export class AttachmentChecker extends Context.Tag("event-sourced-planner/AttachmentChecker")<
  AttachmentChecker,
  AttachmentCheckerService
>() {}

export interface AttachmentCheckerOptions {
  /** Whether to check links (and image URLs) over the network. Default true. */
  readonly checkLinks?: boolean
  /** How long each request may take. Default 3 s. */
  readonly timeoutMs?: number
}

const defaultTimeoutMs = 3000
const maxRedirects = 10
const concurrentChecks = 4

const isHttpUrl = (value: string) => /^https?:\/\//i.test(value)

const noun = (attachment: Attachment) =>
  attachment.kind === "ImageRef" ? "image" : attachment.kind === "Link" ? "link" : "file"

const fileProblem = (attachment: Attachment, reason: string): AttachmentProblem => ({
  attachment,
  reason,
  question: `The ${noun(attachment)} ${attachment.value} cannot be read (${reason}): upload it again or give another path or link.`
})

const linkProblem = (attachment: Attachment, reason: string): AttachmentProblem => ({
  attachment,
  reason,
  question: `The ${noun(attachment)} ${attachment.value} did not answer (${reason}): give another link or a file.`
})

/** The first `code` (ECONNREFUSED, ENOTFOUND, ...) in an error's chain of causes. */
const errorCode = (error: unknown): string | undefined => {
  let current: unknown = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth += 1) {
    if ("code" in current && typeof current.code === "string") return current.code
    current = "cause" in current ? current.cause : undefined
  }
  return undefined
}

const transportReason = (error: unknown): string => {
  switch (errorCode(error)) {
    case "ECONNREFUSED":
      return "connection refused"
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "unknown host"
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return "connection closed"
    case undefined:
      return error instanceof Error ? error.message : String(error)
    default:
      return `network error ${errorCode(error)}`
  }
}

const seconds = (millis: number) => `${millis / 1000} s`

export const make = (
  options: AttachmentCheckerOptions = {}
): Effect.Effect<AttachmentCheckerService, never, HttpClient.HttpClient | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const client = (yield* HttpClient.HttpClient).pipe(HttpClient.followRedirects(maxRedirects), HttpClient.withScope)
    const checkLinks = options.checkLinks ?? true
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs

    const checkFile = (attachment: Attachment, workingDirectory: string) =>
      Effect.gen(function* () {
        const given = attachment.value
        const path = /^file:\/\//i.test(given) ? fileURLToPath(given) : NodePath.resolve(workingDirectory, given)
        const where = NodePath.isAbsolute(given) || given.startsWith("file:") ? "" : ` in ${workingDirectory}`
        const info = yield* Effect.either(fs.stat(path))
        if (info._tag === "Left") {
          const error = info.left
          if (error._tag === "SystemError" && error.reason === "NotFound") {
            const isLink = yield* Effect.isSuccess(fs.readLink(path))
            return Option.some(
              fileProblem(attachment, isLink ? "it is a symbolic link to a missing file" : `no such file${where}`)
            )
          }
          if (error._tag === "SystemError" && error.reason === "PermissionDenied") {
            return Option.some(fileProblem(attachment, "permission denied"))
          }
          return Option.some(fileProblem(attachment, error.message))
        }
        if (info.right.type === "Directory") return Option.some(fileProblem(attachment, "it is a directory"))
        if (info.right.type !== "File") return Option.some(fileProblem(attachment, "it is not a regular file"))
        // Opening is the real test of readability: permission bits, ACLs and mounts all have their say.
        const opened = yield* Effect.either(Effect.scoped(fs.open(path, { flag: "r" })))
        if (opened._tag === "Right") return Option.none()
        const error = opened.left
        return Option.some(
          fileProblem(
            attachment,
            error._tag === "SystemError" && error.reason === "PermissionDenied" ? "permission denied" : error.message
          )
        )
      })

    /** The status of one request, or why there was none. */
    const request = (method: "HEAD" | "GET", url: string) =>
      client.execute(HttpClientRequest.make(method)(url)).pipe(
        // The scope aborts the request, so a GET's body is never downloaded.
        Effect.map((response) => response.status),
        Effect.scoped,
        Effect.timeoutFail({
          duration: Duration.millis(timeoutMs),
          onTimeout: () => `no answer within ${seconds(timeoutMs)}`
        }),
        Effect.catchAll((error) =>
          Effect.fail(typeof error === "string" ? error : transportReason(error.cause ?? error))
        )
      )

    const answers = (status: number) => status >= 200 && status < 400

    const checkLink = (attachment: Attachment) =>
      Effect.gen(function* () {
        if (!checkLinks) return Option.none()
        const url = attachment.value
        const head = yield* Effect.either(request("HEAD", url))
        if (head._tag === "Left") return Option.some(linkProblem(attachment, head.left))
        if (answers(head.right)) return Option.none()
        const get = yield* Effect.either(request("GET", url))
        if (get._tag === "Left") return Option.some(linkProblem(attachment, get.left))
        return answers(get.right) ? Option.none() : Option.some(linkProblem(attachment, `HTTP ${get.right}`))
      })

    const check = Effect.fn("AttachmentChecker.check")(
      function* (attachment: Attachment, workingDirectory: string) {
        yield* Effect.annotateCurrentSpan({ kind: attachment.kind, value: attachment.value })
        switch (attachment.kind) {
          case "Link":
            return isHttpUrl(attachment.value)
              ? yield* checkLink(attachment)
              : Option.some(linkProblem(attachment, "it is not an http or https link"))
          case "ImageRef":
            if (isHttpUrl(attachment.value)) return yield* checkLink(attachment)
            if (/^data:/i.test(attachment.value)) return Option.none()
            return yield* checkFile(attachment, workingDirectory)
          case "FileRef":
            return yield* checkFile(attachment, workingDirectory)
        }
      },
      (effect, attachment) =>
        Effect.catchAllDefect(effect, (defect) =>
          Effect.succeed(Option.some(fileProblem(attachment, `it could not be checked: ${String(defect)}`)))
        )
    )

    const firstProblem = (
      attachments: ReadonlyArray<Attachment>,
      workingDirectory: string,
      task?: AttachmentOwner
    ): Effect.Effect<Option.Option<AttachmentProblem>> => {
      const checked = attachmentsToCheck(attachments, task)
      // Most tasks have no attachments: they cost nothing, not even a span.
      return checked.length === 0
        ? Effect.succeedNone
        : Effect.forEach(checked, (attachment) => check(attachment, workingDirectory), {
            concurrency: concurrentChecks
          }).pipe(Effect.map(Option.firstSomeOf), Effect.withSpan("AttachmentChecker.firstProblem"))
    }

    return { check, firstProblem } satisfies AttachmentCheckerService
  })

/** The checker, over the `HttpClient` and `FileSystem` the application provides. */
export const layer = (
  options: AttachmentCheckerOptions = {}
): Layer.Layer<AttachmentChecker, never, HttpClient.HttpClient | FileSystem.FileSystem> =>
  Layer.effect(AttachmentChecker, make(options))

/** The checker over `fetch` and Node's file system. */
export const layerNode = (options: AttachmentCheckerOptions = {}): Layer.Layer<AttachmentChecker> =>
  layer(options).pipe(Layer.provide(Layer.merge(FetchHttpClient.layer, NodeFileSystem.layer)))
