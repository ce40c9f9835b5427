/**
 * The server defects of issue #18, each against the real server and a real SQLite store: a huge body is refused with
 * 413 before it is read and the server lives on; no refusal echoes the body; a NUL or a lone surrogate in an answer is
 * a 400 that says so; one corrupt row does not take the session list down.
 */
import * as http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Runner from "../../src/app/Runner.js"
import { EventStore } from "../../src/infra/EventStore.js"
import { plannerStreamId } from "../../src/infra/PlannerStore.js"
import { fetchJson, plannerWithScript, postJson, startPlan, startServer, task } from "./fixtures.js"

const script = {
  rules: [{ match: "expiry", outcomes: [{ ask: "How long should cookies live?" }, { complete: "set to {answer}" }] }],
  default: { complete: "done: {description}" }
}

const pausedSession = Effect.gen(function* () {
  const sessionId = yield* startPlan("Read the notes. Set the cookie expiry.", [
    task(1, "Retrieval", "Read the notes"),
    task(2, "Analysis", "Set the cookie expiry", [1])
  ])
  const paused = yield* Runner.run(sessionId)
  expect(paused.waiting).toBe(true)
  return { sessionId, last: paused.state.version }
})

const errorOf = (body: unknown) => (body as { error: { tag: string; message: string } }).error

/**
 * A POST that declares `declared` bytes (or none: chunked) and sends `send` bytes of `fill`, then waits for the answer
 * without ending the body when the server answers first. The answer's status and body, and how many bytes were sent.
 */
const upload = (url: string, options: { declared?: number; send: number; fill?: string }) =>
  Effect.async<{ status: number; body: string; sent: number }, Error>((resume) => {
    const headers: Record<string, string | number> = { "content-type": "application/json" }
    if (options.declared !== undefined) headers["content-length"] = options.declared
    let sent = 0
    let answered = false
    const request = http.request(url, { method: "POST", headers }, (response) => {
      answered = true
      let body = ""
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString("utf8")
      })
      response.on("end", () => {
        request.destroy()
        resume(Effect.succeed({ status: response.statusCode ?? 0, body, sent }))
      })
    })
    // The server may close the connection while this side still writes: that is not a failure if it answered.
    request.on("error", (error) => {
      if (!answered) resume(Effect.fail(error))
    })
    const chunk = Buffer.alloc(64 * 1024, options.fill ?? "x")
    const pump = () => {
      while (sent < options.send && !answered) {
        sent += chunk.length
        if (!request.write(chunk)) {
          request.once("drain", pump)
          return
        }
      }
      if (options.declared === undefined && !answered) request.end()
    }
    pump()
    return Effect.sync(() => request.destroy())
  })

describe("the dashboard server's defences", () => {
  it.scopedLive(
    "a body declared larger than 1 MiB gets 413 before it is read, and the server goes on",
    () =>
      Effect.gen(function* () {
        const { sessionId } = yield* pausedSession
        const { url } = yield* startServer
        // 600 MB declared, 256 KiB sent: the answer comes without waiting for the rest.
        const huge = yield* upload(`${url}/api/sessions/${sessionId}/answer`, {
          declared: 600 * 1024 * 1024,
          send: 256 * 1024,
          fill: "Z"
        })
        expect(huge.status).toBe(413)
        expect(errorOf(JSON.parse(huge.body)).tag).toBe("PayloadTooLarge")
        expect(huge.body.length).toBeLessThan(500)
        expect(huge.body).not.toContain("ZZZ")
        // Three at once, then a normal request: all refused, and the server still serves.
        const three = yield* Effect.all(
          [1, 2, 3].map(() =>
            upload(`${url}/api/sessions/${sessionId}/answer`, { declared: 50 * 1024 * 1024, send: 128 * 1024 })
          ),
          { concurrency: "unbounded" }
        )
        expect(three.map((answer) => answer.status)).toEqual([413, 413, 413])
        const list = yield* fetchJson(`${url}/api/sessions`)
        expect(list.status).toBe(200)
        const state = yield* fetchJson(`${url}/api/sessions/${sessionId}`)
        expect((state.body as { state: { tasks: Array<{ status: string }> } }).state.tasks[1]?.status).toBe(
          "NeedsClarification"
        )
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "a chunked body that grows past 1 MiB is cut off with 413, and nothing of it comes back",
    () =>
      Effect.gen(function* () {
        const { sessionId } = yield* pausedSession
        const { url } = yield* startServer
        const chunked = yield* upload(`${url}/api/sessions/${sessionId}/answer`, { send: 4 * 1024 * 1024, fill: "Q" })
        expect(chunked.status).toBe(413)
        expect(chunked.body).not.toContain("QQQ")
        expect((yield* fetchJson(`${url}/api/sessions`)).status).toBe(200)
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "a refused body is never echoed: a too-long answer and a bad field get a short message naming the field",
    () =>
      Effect.gen(function* () {
        const { sessionId } = yield* pausedSession
        const { url } = yield* startServer
        const long = `SECRET-${"y".repeat(900_000)}`
        const tooLong = yield* postJson(`${url}/api/sessions/${sessionId}/answer`, { taskId: 2, answer: long })
        expect(tooLong.status).toBe(400)
        const message = errorOf(tooLong.body).message
        expect(message).toContain("answer")
        expect(message).not.toContain("SECRET")
        expect(message.length).toBeLessThan(300)
        const wrongField = yield* postJson(`${url}/api/sessions/${sessionId}/answer`, {
          taskId: "SECRET-two",
          answer: "1 day"
        })
        expect(wrongField.status).toBe(400)
        expect(errorOf(wrongField.body).message).toContain("taskId")
        expect(errorOf(wrongField.body).message).not.toContain("SECRET")
        const notJson = yield* fetchJson(`${url}/api/sessions/${sessionId}/answer`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: `{"SECRET": ${"[".repeat(100)}`
        })
        expect(notJson.status).toBe(400)
        expect(errorOf(notJson.body).message).not.toContain("SECRET")
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "an answer holding a NUL or a lone surrogate is a 400 that says why, and nothing is recorded",
    () =>
      Effect.gen(function* () {
        const { sessionId, last } = yield* pausedSession
        const { url } = yield* startServer
        for (const answer of ["30\u0000days", "30 days \ud800", "\udc00 30 days"]) {
          const refused = yield* postJson(`${url}/api/sessions/${sessionId}/answer`, { taskId: 2, answer })
          expect(refused.status, JSON.stringify(answer)).toBe(400)
          expect(errorOf(refused.body).message).toMatch(
            /^The text at answer holds (a NUL character|a lone UTF-16 surrogate) .*cannot be stored/
          )
        }
        const cancelled = yield* postJson(`${url}/api/sessions/${sessionId}/cancel`, { reason: "no\u0000" })
        expect(cancelled.status).toBe(400)
        const state = yield* fetchJson(`${url}/api/sessions/${sessionId}`)
        expect((state.body as { lastSequence: number }).lastSequence).toBe(last)
        // A proper pair of surrogates (an emoji) is fine.
        const answered = yield* postJson(`${url}/api/sessions/${sessionId}/answer`, { taskId: 2, answer: "30 days 🍪" })
        expect(answered.status).toBe(200)
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "one corrupt row lists its session as unreadable; the others are listed as usual",
    () =>
      Effect.gen(function* () {
        const good = yield* startPlan("A good session", [task(1, "Processing", "Do it")])
        const broken = yield* startPlan("A session with a broken row", [task(1, "Processing", "Do it")])
        const events = yield* EventStore
        yield* events.append(
          plannerStreamId,
          broken,
          [{ type: "Mystery", version: 1, data: {}, metadata: { eventId: "bad-row" } }],
          "any"
        )
        const { url } = yield* startServer
        const list = yield* fetchJson(`${url}/api/sessions`)
        expect(list.status).toBe(200)
        const sessions = (list.body as { sessions: Array<{ id: string; status: string; problem?: string }> }).sessions
        expect(sessions.find((session) => session.id === good)?.status).toBe("Running")
        const unreadable = sessions.find((session) => session.id === broken)
        expect(unreadable?.status).toBe("Unreadable")
        expect(unreadable?.problem).toMatch(/^event \d+ cannot be read/)
        const filtered = yield* fetchJson(`${url}/api/sessions?status=Unreadable`)
        expect((filtered.body as { sessions: Array<{ id: string }>; total: number }).total).toBe(1)
        // The session itself still says what is wrong (500 with the store's message, not a crash).
        const one = yield* fetchJson(`${url}/api/sessions/${broken}`)
        expect(errorOf(one.body).tag).toBe("CorruptEvent")
        // Before the broken row, time travel and a fork read only the events they need: both work.
        const last = (yield* events.lastSequence(plannerStreamId, broken)) - 1
        const before = yield* fetchJson(`${url}/api/sessions/${broken}/state?at=${last}`)
        expect(before.status).toBe(200)
        expect(before.body).toMatchObject({ at: last, latest: last + 1 })
        const forked = yield* postJson(`${url}/api/sessions/${broken}/fork`, { at: last })
        expect(forked.status).toBe(201)
        expect(forked.body).toMatchObject({ forkedFrom: { sessionId: broken, sequence: last } })
        const atBroken = yield* fetchJson(`${url}/api/sessions/${broken}/state?at=${last + 1}`)
        expect(errorOf(atBroken.body).tag).toBe("CorruptEvent")
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )
})
