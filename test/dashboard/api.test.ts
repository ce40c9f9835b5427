/**
 * The dashboard's JSON API over plain HTTP: its answers and errors, paging, time travel, commands, the event stream
 * and the request checks, against the real server and a real SQLite store.
 */
import * as http from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option } from "effect"
import * as Runner from "../../src/app/Runner.js"
import { fetchJson, plannerWithScript, postJson, startPlan, startServer, task } from "./fixtures.js"

const script = {
  rules: [
    { match: "expiry", outcomes: [{ ask: "How long should cookies live?" }, { complete: "expiry set to {answer}" }] }
  ],
  default: { complete: "done: {description}" }
}

/** A session paused on a question: task 1 done, task 2 asking, task 3 waiting for it. */
const pausedSession = Effect.gen(function* () {
  const sessionId = yield* startPlan("Read the notes. Set the cookie expiry. Then write tests.", [
    task(1, "Retrieval", "Read the notes"),
    task(2, "Analysis", "Set the cookie expiry", [1]),
    task(3, "UnitTest", "Write tests", [2])
  ])
  const paused = yield* Runner.run(sessionId)
  expect(paused.waiting).toBe(true)
  return { sessionId, last: paused.state.version }
})

/** A raw request, to send headers `fetch` would not (`Host`, `Origin`). */
const rawRequest = (url: string, options: { method?: string; headers?: Record<string, string>; body?: string }) =>
  Effect.async<{ status: number; body: string }>((resume) => {
    const request = http.request(url, { method: options.method ?? "GET", headers: options.headers }, (response) => {
      let body = ""
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString("utf8")
      })
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, body })))
    })
    request.on("error", (error) => resume(Effect.die(error)))
    request.end(options.body)
  })

interface SseMessage {
  readonly id: string | undefined
  readonly event: string | undefined
  readonly data: string | undefined
}

/** Reads server-sent events until `count` messages with data arrived (comments and `retry:` lines are skipped). */
const readSse = (url: string, count: number, headers: Record<string, string> = {}, opened?: Deferred.Deferred<void>) =>
  Effect.async<ReadonlyArray<SseMessage>, Error>((resume) => {
    const messages: Array<SseMessage> = []
    let buffer = ""
    const request = http.get(url, { headers: { accept: "text/event-stream", ...headers } }, (response) => {
      if (response.statusCode !== 200) {
        resume(Effect.fail(new Error(`status ${response.statusCode}`)))
        response.resume()
        return
      }
      if (opened !== undefined) Deferred.unsafeDone(opened, Exit.void)
      response.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8")
        let end = buffer.indexOf("\n\n")
        while (end >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          end = buffer.indexOf("\n\n")
          const field = (name: string) =>
            block
              .split("\n")
              .find((line) => line.startsWith(`${name}: `))
              ?.slice(name.length + 2)
          const data = field("data")
          if (data === undefined) continue
          messages.push({ id: field("id"), event: field("event"), data })
          if (messages.length === count) {
            request.destroy()
            resume(Effect.succeed(messages))
          }
        }
      })
    })
    request.on("error", (error) => {
      if (messages.length < count) resume(Effect.fail(error))
    })
    return Effect.sync(() => request.destroy())
  })

const errorOf = (body: unknown) => (body as { error: { tag: string; message: string } }).error

describe("the dashboard API", () => {
  it.scopedLive(
    "answers 404 with a JSON error for an unknown session, on every session route",
    () =>
      Effect.gen(function* () {
        const { url } = yield* startServer
        for (const path of ["", "/state?at=1", "/events", "/stream"]) {
          const response = yield* fetchJson(`${url}/api/sessions/no-such-session${path}`)
          expect(response.status, path).toBe(404)
          expect(response.headers.get("content-type")).toContain("application/json")
          expect(errorOf(response.body).tag).toBe("UnknownSession")
          expect(errorOf(response.body).message).toContain("no-such-session")
        }
        const answer = yield* postJson(`${url}/api/sessions/no-such-session/answer`, { taskId: 1, answer: "yes" })
        expect([answer.status, errorOf(answer.body).tag]).toEqual([404, "UnknownSession"])
        const cancel = yield* postJson(`${url}/api/sessions/no-such-session/cancel`, {})
        expect([cancel.status, errorOf(cancel.body).tag]).toEqual([404, "UnknownSession"])
        const route = yield* fetchJson(`${url}/api/nothing-here`)
        expect([route.status, errorOf(route.body).tag]).toEqual([404, "NotFound"])
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "lists sessions and shows one as it is now and as it was at any sequence; bad sequences are 400",
    () =>
      Effect.gen(function* () {
        const { sessionId, last } = yield* pausedSession
        const { url } = yield* startServer

        const list = yield* fetchJson(`${url}/api/sessions`)
        expect(list.status).toBe(200)
        const sessions = (list.body as { sessions: Array<Record<string, unknown>> }).sessions
        expect(sessions).toHaveLength(1)
        expect(sessions[0]).toMatchObject({
          id: sessionId,
          status: "Running",
          waiting: true,
          lastSequence: last,
          taskCount: 3,
          request: "Read the notes. Set the cookie expiry. Then write tests.",
          counts: { Completed: 1, NeedsClarification: 1, Planned: 1 }
        })

        const current = yield* fetchJson(`${url}/api/sessions/${sessionId}`)
        expect(current.body).toMatchObject({ id: sessionId, lastSequence: last, waiting: true })

        // After event 1 (TasksPlanned, with task 1 dispatched in the same decision) nothing has run yet.
        const early = yield* fetchJson(`${url}/api/sessions/${sessionId}/state?at=1`)
        expect(early.status).toBe(200)
        const earlyState = (early.body as { state: { version: number; tasks: Array<{ status: string }> } }).state
        expect(earlyState.version).toBe(1)
        expect(earlyState.tasks.map((t) => t.status)).toEqual(["Planned", "Planned", "Planned"])
        expect(early.body).toMatchObject({ at: 1, latest: last })

        for (const bad of ["0", String(last + 1), "-1", "abc", "1.5", ""]) {
          const response = yield* fetchJson(`${url}/api/sessions/${sessionId}/state?at=${encodeURIComponent(bad)}`)
          expect(response.status, `at=${bad}`).toBe(400)
          expect(errorOf(response.body).tag).toBe("BadRequest")
          expect(errorOf(response.body).message).toContain("at must be a whole number")
        }
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "pages through a session's events in order",
    () =>
      Effect.gen(function* () {
        const { sessionId, last } = yield* pausedSession
        const { url } = yield* startServer
        const sequences: Array<number> = []
        let after = 0
        for (;;) {
          const page = yield* fetchJson(`${url}/api/sessions/${sessionId}/events?after=${after}&limit=2`)
          expect(page.status).toBe(200)
          const body = page.body as { events: Array<{ sequence: number; type: string }>; next: number | null }
          expect(body.events.length).toBeLessThanOrEqual(2)
          sequences.push(...body.events.map((event) => event.sequence))
          if (body.next === null) break
          after = body.next
        }
        expect(sequences).toEqual(Array.from({ length: last }, (_, index) => index + 1))
        const first = yield* fetchJson(`${url}/api/sessions/${sessionId}/events?limit=1`)
        expect(first.body).toMatchObject({
          events: [{ sequence: 1, type: "TasksPlanned", version: 2 }],
          lastSequence: last,
          next: 1
        })
        const bad = yield* fetchJson(`${url}/api/sessions/${sessionId}/events?limit=0`)
        expect([bad.status, errorOf(bad.body).tag]).toEqual([400, "BadRequest"])
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "answers a question, refuses an answer nobody asked for, cancels, and checks its input",
    () =>
      Effect.gen(function* () {
        const { sessionId } = yield* pausedSession
        const { url } = yield* startServer
        const base = `${url}/api/sessions/${sessionId}`

        const notJson = yield* fetchJson(`${base}/answer`, {
          method: "POST",
          headers: { "content-type": "text/plain" },
          body: JSON.stringify({ taskId: 2, answer: "1 day" })
        })
        expect([notJson.status, errorOf(notJson.body).tag]).toEqual([415, "UnsupportedMediaType"])
        const malformed = yield* fetchJson(`${base}/answer`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{not json"
        })
        expect(malformed.status).toBe(400)
        const wrongShape = yield* postJson(`${base}/answer`, { taskId: "two", answer: "1 day" })
        expect(wrongShape.status).toBe(400)
        expect(errorOf(wrongShape.body).message).toContain("taskId")
        const empty = yield* postJson(`${base}/answer`, { taskId: 2, answer: "   " })
        expect(empty.status).toBe(400)

        // Task 3 has no question: the planner refuses, with its own message.
        const refused = yield* postJson(`${base}/answer`, { taskId: 3, answer: "anything" })
        expect(refused.status).toBe(409)
        expect(errorOf(refused.body)).toEqual({
          tag: "InvalidTransition",
          message: "Task 3 is Planned, so it cannot take an answer: it has no question pending."
        })

        const answered = yield* postJson(`${base}/answer`, { taskId: 2, answer: "  1 day " })
        expect(answered.status).toBe(200)
        const state = (answered.body as { state: { tasks: Array<{ status: string; clarifications: unknown }> } }).state
        expect(state.tasks[1]?.clarifications).toEqual([{ question: "How long should cookies live?", answer: "1 day" }])
        expect(state.tasks[1]?.status).toBe("Dispatched")

        const cancelled = yield* postJson(`${base}/cancel`, { reason: "changed my mind" })
        expect(cancelled.status).toBe(200)
        expect(cancelled.body).toMatchObject({ state: { status: "Cancelled" }, waiting: false })
        const late = yield* postJson(`${base}/answer`, { taskId: 2, answer: "2 days" })
        expect([late.status, errorOf(late.body).tag]).toEqual([409, "SessionFinished"])
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "streams new events as server-sent events, resumable from Last-Event-ID",
    () =>
      Effect.gen(function* () {
        const { sessionId, last } = yield* pausedSession
        const { url } = yield* startServer
        const stream = `${url}/api/sessions/${sessionId}/stream`

        // Resuming after event 2 replays from 3 on, each with its sequence as the id.
        const resumed = yield* readSse(stream, last - 2, { "last-event-id": "2" })
        expect(resumed.map((message) => Number(message.id))).toEqual(
          Array.from({ length: last - 2 }, (_, index) => index + 3)
        )
        expect(resumed.every((message) => message.event === "planner-event")).toBe(true)
        const firstData = JSON.parse(resumed[0]?.data ?? "{}") as { sequence: number; type: string }
        expect(firstData.sequence).toBe(3)

        // Without a position, only what happens from now on; the answer's events arrive live.
        const opened = yield* Deferred.make<void>()
        const live = yield* Effect.fork(readSse(stream, 1, {}, opened))
        yield* Deferred.await(opened)
        yield* Runner.answer(sessionId, 2, "1 day")
        const [next] = yield* Fiber.join(live).pipe(Effect.timeout("10 seconds"))
        expect(next?.id).toBe(String(last + 1))
        expect(JSON.parse(next?.data ?? "{}")).toMatchObject({
          type: "ClarificationReceived",
          data: { taskId: 2, answer: "1 day" }
        })

        const badPosition = yield* fetchJson(`${stream}?after=x`)
        expect(badPosition.status).toBe(400)
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "refuses other host names and cross-origin commands, and sends no CORS headers",
    () =>
      Effect.gen(function* () {
        const { sessionId } = yield* pausedSession
        const { url } = yield* startServer
        const rebinding = yield* rawRequest(`${url}/api/sessions`, { headers: { host: "attacker.example:80" } })
        expect(rebinding.status).toBe(403)
        expect(JSON.parse(rebinding.body)).toMatchObject({ error: { tag: "Forbidden" } })

        const crossOrigin = yield* rawRequest(`${url}/api/sessions/${sessionId}/cancel`, {
          method: "POST",
          headers: { "content-type": "application/json", origin: "http://attacker.example" },
          body: "{}"
        })
        expect(crossOrigin.status).toBe(403)
        const nullOrigin = yield* rawRequest(`${url}/api/sessions/${sessionId}/cancel`, {
          method: "POST",
          headers: { "content-type": "application/json", origin: "null" },
          body: "{}"
        })
        expect(nullOrigin.status).toBe(403)
        const still = yield* fetchJson(`${url}/api/sessions/${sessionId}`)
        expect(still.body).toMatchObject({ state: { status: "Running" } })

        const preflight = yield* Effect.promise(() =>
          fetch(`${url}/api/sessions/${sessionId}/cancel`, {
            method: "OPTIONS",
            headers: { origin: "http://attacker.example", "access-control-request-method": "POST" }
          })
        )
        expect(preflight.headers.get("access-control-allow-origin")).toBeNull()

        const page = yield* Effect.promise(() => fetch(`${url}/sessions/${sessionId}`))
        expect(page.status).toBe(200)
        expect(page.headers.get("content-security-policy")).toContain("script-src 'self'")
        expect(Option.fromNullable(page.headers.get("access-control-allow-origin"))).toEqual(Option.none())
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )
})
