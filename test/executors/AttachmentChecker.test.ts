/**
 * The attachment checker against a real HTTP server on 127.0.0.1 and real files in a temp dir.
 */
import * as Fs from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Option, TestClock } from "effect"
import type { Attachment } from "../../src/domain/Task.js"
import * as AttachmentChecker from "../../src/infra/AttachmentChecker.js"
import { eventually } from "../support/clock.js"

let directory = ""
let server: Http.Server | undefined
let base = ""
/** Paths whose GET response was closed by the client before its body ended. */
const abortedGets: Array<string> = []
const seen: Array<string> = []

beforeAll(async () => {
  directory = Fs.realpathSync(Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "attachment-checker-")))
  server = Http.createServer((request, response) => {
    const path = request.url ?? "/"
    seen.push(`${request.method} ${path}`)
    switch (path) {
      case "/ok":
        response.writeHead(200, { "content-type": "text/plain" }).end(request.method === "HEAD" ? undefined : "fine")
        return
      case "/missing":
        response.writeHead(404).end()
        return
      case "/no-head":
        if (request.method === "HEAD") {
          response.writeHead(405).end()
          return
        }
        // A body that never ends: the check must not wait for it, and must drop the connection.
        response.writeHead(200, { "content-type": "application/octet-stream" })
        response.write(Buffer.alloc(64 * 1024))
        response.on("close", () => {
          if (!response.writableFinished) abortedGets.push(path)
        })
        return
      case "/head-forbidden":
        response.writeHead(request.method === "HEAD" ? 403 : 200).end()
        return
      case "/redirect":
        response.writeHead(302, { location: "/ok" }).end()
        return
      case "/redirect-missing":
        response.writeHead(301, { location: `${base}/missing` }).end()
        return
      case "/hang":
        // Never answers.
        return
      default:
        response.writeHead(500).end()
    }
  })
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server?.closeAllConnections()
  await new Promise<void>((resolve) => server?.close(() => resolve()))
  Fs.rmSync(directory, { recursive: true, force: true })
})

/**
 * A timeout no answer from the local server comes near, however loaded the machine (0.3 s was not enough). The test
 * that times out drives its short timeout with the TestClock.
 */
const generousTimeout: AttachmentChecker.AttachmentCheckerOptions = { timeoutMs: 20_000 }

const check = (attachment: Attachment, options: AttachmentChecker.AttachmentCheckerOptions = generousTimeout) =>
  Effect.gen(function* () {
    const checker = yield* AttachmentChecker.AttachmentChecker
    return yield* checker.check(attachment, directory)
  }).pipe(Effect.provide(AttachmentChecker.layerNode(options)))

const problem = (attachment: Attachment, options?: AttachmentChecker.AttachmentCheckerOptions) =>
  Effect.map(
    check(attachment, options),
    Option.getOrThrowWith(() => new Error(`expected a problem with ${attachment.value}`))
  )

const link = (path: string): Attachment => ({ kind: "Link", value: `${base}${path}` })
const file = (value: string): Attachment => ({ kind: "FileRef", value })

describe("AttachmentChecker links", () => {
  it.live("a link that answers 200 is fine", () =>
    Effect.gen(function* () {
      expect(yield* check(link("/ok"))).toEqual(Option.none())
    })
  )

  it.live("a link answering 404 asks for another link", () =>
    Effect.gen(function* () {
      const found = yield* problem(link("/missing"))
      expect(found.reason).toBe("HTTP 404")
      expect(found.question).toBe(`The link ${base}/missing did not answer (HTTP 404): give another link or a file.`)
      expect(found.attachment).toEqual(link("/missing"))
    })
  )

  it.live("a server that refuses HEAD is asked with a GET, whose body is not downloaded", () =>
    Effect.gen(function* () {
      expect(yield* check(link("/no-head"))).toEqual(Option.none())
      expect(yield* check(link("/head-forbidden"))).toEqual(Option.none())
      expect(seen).toContain("GET /no-head")
      // The server sees the endless body's connection dropped.
      // A bounded wait for real I/O, generous for a loaded machine (it was 1 s).
      for (let waited = 0; waited < 1_000 && !abortedGets.includes("/no-head"); waited += 1)
        yield* Effect.sleep("10 millis")
      expect(abortedGets).toContain("/no-head")
    })
  )

  it.live("redirects are followed and judged by where they lead", () =>
    Effect.gen(function* () {
      expect(yield* check(link("/redirect"))).toEqual(Option.none())
      expect((yield* problem(link("/redirect-missing"))).reason).toBe("HTTP 404")
    })
  )

  it.effect("a server that never answers times out", () =>
    Effect.gen(function* () {
      const checking = yield* Effect.fork(problem(link("/hang"), { timeoutMs: 300 }))
      yield* eventually(
        "the server has the request",
        Effect.sync(() => seen.some((request) => request.endsWith(" /hang")))
      )
      yield* TestClock.adjust(Duration.millis(299))
      expect(Option.isNone(yield* Fiber.poll(checking))).toBe(true)
      yield* TestClock.adjust(Duration.millis(1))
      const found = yield* Fiber.join(checking)
      expect(found.question).toBe(
        `The link ${base}/hang did not answer (no answer within 0.3 s): give another link or a file.`
      )
    })
  )

  it.live("a closed port is a refused connection; a non-http link is rejected without a request", () =>
    Effect.gen(function* () {
      const closed = Http.createServer()
      yield* Effect.promise(() => new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve)))
      const port = (closed.address() as AddressInfo).port
      yield* Effect.promise(() => new Promise<void>((resolve) => closed.close(() => resolve())))
      expect((yield* problem({ kind: "Link", value: `http://127.0.0.1:${port}/x` })).reason).toBe("connection refused")
      expect((yield* problem({ kind: "Link", value: "ftp://example.org/file" })).reason).toBe(
        "it is not an http or https link"
      )
    })
  )

  it.live("link checking can be switched off", () =>
    Effect.gen(function* () {
      expect(yield* check(link("/missing"), { checkLinks: false })).toEqual(Option.none())
      expect(yield* check({ kind: "ImageRef", value: `${base}/hang` }, { checkLinks: false })).toEqual(Option.none())
      // Files are still checked.
      expect(Option.isSome(yield* check(file("nowhere.md"), { checkLinks: false }))).toBe(true)
    })
  )
})

describe("AttachmentChecker files", () => {
  it.live("a readable file, relative or absolute, is fine", () =>
    Effect.gen(function* () {
      Fs.mkdirSync(NodePath.join(directory, "docs"), { recursive: true })
      Fs.writeFileSync(NodePath.join(directory, "docs", "api.md"), "# API\n")
      expect(yield* check(file("docs/api.md"))).toEqual(Option.none())
      expect(yield* check(file(NodePath.join(directory, "docs", "api.md")))).toEqual(Option.none())
      expect(yield* check(file(`file://${NodePath.join(directory, "docs", "api.md")}`))).toEqual(Option.none())
    })
  )

  it.live("a missing file asks for a re-upload, naming where it was looked for", () =>
    Effect.gen(function* () {
      const relative = yield* problem(file("docs/missing.md"))
      expect(relative.question).toBe(
        `The file docs/missing.md cannot be read (no such file in ${directory}): upload it again or give another path or link.`
      )
      const absolute = yield* problem(file("/nonexistent/spec.pdf"))
      expect(absolute.reason).toBe("no such file")
    })
  )

  it.live("a directory, a broken symbolic link and a file without read permission cannot be read", () =>
    Effect.gen(function* () {
      Fs.mkdirSync(NodePath.join(directory, "folder"), { recursive: true })
      expect((yield* problem(file("folder"))).reason).toBe("it is a directory")
      Fs.symlinkSync(NodePath.join(directory, "no-target"), NodePath.join(directory, "dangling"))
      expect((yield* problem(file("dangling"))).reason).toBe("it is a symbolic link to a missing file")
      const locked = NodePath.join(directory, "locked.txt")
      Fs.writeFileSync(locked, "secret")
      Fs.chmodSync(locked, 0o000)
      // Root reads files whatever their mode, so there the check (rightly) finds nothing wrong.
      const readable = (() => {
        try {
          Fs.closeSync(Fs.openSync(locked, "r"))
          return true
        } catch {
          return false
        }
      })()
      const found = yield* check(file("locked.txt"))
      if (readable) expect(found).toEqual(Option.none())
      else expect(Option.map(found, (p) => p.reason)).toEqual(Option.some("permission denied"))
    })
  )

  it.live("an image is checked as a link when it is a URL and as a file otherwise", () =>
    Effect.gen(function* () {
      const remote = yield* problem({ kind: "ImageRef", value: `${base}/missing` })
      expect(remote.question).toBe(`The image ${base}/missing did not answer (HTTP 404): give another link or a file.`)
      const local = yield* problem({ kind: "ImageRef", value: "shots/screen.png" })
      expect(local.question).toBe(
        `The image shots/screen.png cannot be read (no such file in ${directory}): upload it again or give another path or link.`
      )
      expect(yield* check({ kind: "ImageRef", value: `${base}/ok` })).toEqual(Option.none())
    })
  )

  it.live("firstProblem returns the first failing attachment in the order given", () =>
    Effect.gen(function* () {
      Fs.writeFileSync(NodePath.join(directory, "present.txt"), "here")
      const checker = AttachmentChecker.AttachmentChecker
      const first = yield* Effect.flatMap(checker, (service) =>
        service.firstProblem([file("present.txt"), link("/hang"), link("/missing"), file("absent.txt")], directory)
      ).pipe(Effect.provide(AttachmentChecker.layerNode({ timeoutMs: 300 })))
      expect(Option.map(first, (found) => found.attachment)).toEqual(Option.some(link("/hang")))
      const none = yield* Effect.flatMap(checker, (service) =>
        service.firstProblem([file("present.txt"), link("/ok")], directory)
      ).pipe(Effect.provide(AttachmentChecker.layerNode(generousTimeout)))
      expect(none).toEqual(Option.none())
    })
  )
})
