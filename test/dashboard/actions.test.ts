/**
 * Acting on a session through the dashboard's API: resume, retry a failed task, fork from an event and cancel, each
 * recorded in the log as the CLI's commands record it, against the real server and a real SQLite store.
 */
import * as os from "node:os"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Schedule } from "effect"
import * as Fork from "../../src/app/Fork.js"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { ClaimTask } from "../../src/domain/Commands.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import { fetchJson, plannerWithScript, postJson, startPlan, startServer, task } from "./fixtures.js"

const script = {
  rules: [
    { match: "expiry", outcomes: [{ ask: "How long should cookies live?" }, { complete: "set to {answer}" }] },
    { match: "flaky", outcomes: [{ fail: "the disk is full", retryable: false }] }
  ],
  default: { complete: "done: {description}" }
}

const errorOf = (body: unknown) => (body as { error: { tag: string; message: string } }).error

interface View {
  readonly id: string
  readonly lastSequence: number
  readonly appended: number
  readonly forkedFrom?: { readonly sessionId: string; readonly sequence: number }
  readonly state: {
    readonly status: string
    readonly tasks: ReadonlyArray<{ readonly status: string; readonly attempt: number; readonly failures: number }>
  }
}

describe("acting on a session through the API", () => {
  it.scopedLive(
    "fork copies the first events with their origin, as the CLI's fork does, and leaves the source alone",
    () =>
      Effect.gen(function* () {
        const sessionId = yield* startPlan("Read the notes. Set the cookie expiry.", [
          task(1, "Retrieval", "Read the notes"),
          task(2, "Analysis", "Set the cookie expiry", [1])
        ])
        const paused = yield* Runner.run(sessionId)
        const { url } = yield* startServer
        const at = paused.state.version - 1
        const response = yield* postJson(`${url}/api/sessions/${sessionId}/fork`, { at })
        expect(response.status).toBe(201)
        const forked = response.body as View
        expect(forked.forkedFrom).toEqual({ sessionId, sequence: at })
        expect(forked.id).not.toBe(sessionId)
        const store = yield* PlannerStore
        const source = yield* store.load(sessionId)
        const copy = yield* store.load(forked.id)
        expect(source).toHaveLength(paused.state.version)
        // The copied events: the same events, with the origin in their metadata and a SessionForked event after them;
        // causation ids are mapped onto the copies, so every chain stays inside the new session's log.
        expect(copy.slice(0, at).map((record) => record.event)).toEqual(
          source.slice(0, at).map((record) => record.event)
        )
        expect(copy[at]?.event).toMatchObject({ _tag: "SessionForked", fromSessionId: sessionId, atSequence: at })
        const copyOf = new Map(source.slice(0, at).map((record, index) => [record.metadata.eventId, copy[index]]))
        for (const [index, record] of copy.slice(0, at).entries()) {
          const cause = copyOf.get(source[index]?.metadata.causationId ?? "")
          expect(record.metadata.causationId).toBe(cause?.metadata.eventId ?? record.metadata.eventId)
          expect(record.metadata.correlationId).toBe(forked.id)
          expect(record.metadata.extra?.forkedFrom).toEqual({ sessionId, sequence: at })
        }
        // The library function the CLI calls gives the same copy.
        const viaLibrary = yield* Fork.fork(sessionId, at)
        const libraryCopy = yield* store.load(viaLibrary.sessionId)
        expect(libraryCopy.slice(0, at).map((record) => record.event)).toEqual(copy.slice(0, at).map((r) => r.event))

        const outOfRange = yield* postJson(`${url}/api/sessions/${sessionId}/fork`, { at: 999 })
        expect([outOfRange.status, errorOf(outOfRange.body).tag]).toEqual([400, "ForkOutOfRange"])
        const unknown = yield* postJson(`${url}/api/sessions/nope/fork`, { at: 1 })
        expect(unknown.status).toBe(404)
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "retry forks a failed task's session from before its first dispatch, so it runs afresh; only failed tasks",
    () =>
      Effect.gen(function* () {
        const sessionId = yield* startPlan(
          "Read the notes. Run the flaky step. Then report.",
          [task(1, "Retrieval", "Read the notes"), task(2, "Processing", "Run the flaky step", [1])],
          { maxAttempts: 1 }
        )
        const ended = yield* Runner.run(sessionId)
        expect(ended.state.tasks.map((t) => t.status)).toEqual(["Completed", "Failed"])
        const { url } = yield* startServer
        const notFailed = yield* postJson(`${url}/api/sessions/${sessionId}/retry`, { taskId: 1 })
        expect(notFailed.status).toBe(400)
        expect(errorOf(notFailed.body).message).toContain("only a failed task can be retried")
        const noTask = yield* postJson(`${url}/api/sessions/${sessionId}/retry`, { taskId: 9 })
        expect(noTask.status).toBe(400)

        const retried = yield* postJson(`${url}/api/sessions/${sessionId}/retry`, { taskId: 2 })
        expect(retried.status).toBe(201)
        const view = retried.body as View
        const store = yield* PlannerStore
        const source = yield* store.load(sessionId)
        const dispatched = source.find((r) => r.event._tag === "TaskDispatched" && r.event.taskId === 2)
        expect(view.forkedFrom).toEqual({ sessionId, sequence: (dispatched?.sequence ?? 0) - 1 })
        // Task 1's result is kept; task 2 is dispatched again with a clean slate.
        expect(view.state.status).toBe("Running")
        expect(view.state.tasks[0]?.status).toBe("Completed")
        expect(view.state.tasks[1]).toMatchObject({ status: "Dispatched", attempt: 1, failures: 0 })
        // The source is unchanged.
        expect((yield* store.load(sessionId)).length).toBe(source.length)
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "resume records a Continue when there is something to move on, refuses a finished session; cancel ends it",
    () =>
      Effect.gen(function* () {
        const sessionId = yield* startPlan("Read the notes. Set the cookie expiry.", [
          task(1, "Retrieval", "Read the notes"),
          task(2, "Analysis", "Set the cookie expiry", [1])
        ])
        const { url } = yield* startServer
        const resumed = yield* postJson(`${url}/api/sessions/${sessionId}/resume`, {})
        expect(resumed.status).toBe(200)
        // Task 1 was dispatched at the start already: nothing more to record.
        expect((resumed.body as View).appended).toBe(0)
        const cancelled = yield* postJson(`${url}/api/sessions/${sessionId}/cancel`, { reason: "from the page" })
        expect(cancelled.status).toBe(200)
        const store = yield* PlannerStore
        const last = (yield* store.load(sessionId)).at(-1)
        expect(last?.event).toMatchObject({ _tag: "PlanningCompleted", outcome: "Cancelled" })
        const finished = yield* postJson(`${url}/api/sessions/${sessionId}/resume`, {})
        expect(finished.status).toBe(400)
        expect(errorOf(finished.body).message).toContain("fork it")
        const extra = yield* postJson(`${url}/api/sessions/${sessionId}/resume`, { now: true })
        expect(extra.status).toBe(400)
        const state = yield* fetchJson(`${url}/api/sessions/${sessionId}`)
        expect((state.body as View).state.status).toBe("Cancelled")
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )
})

/** Who serves the session, as its own view says it and as the session list says it (the kind). */
const servedViews = (url: string, sessionId: string) => ({
  served: Effect.map(fetchJson(`${url}/api/sessions/${sessionId}`), (response) => {
    expect(response.status).toBe(200)
    return (response.body as { served: { kind: string; workers?: Array<string> } }).served
  }),
  listed: Effect.map(fetchJson(`${url}/api/sessions`), (response) => {
    const sessions = (response.body as { sessions: Array<{ id: string; served?: { kind: string } }> }).sessions
    return sessions.find((session) => session.id === sessionId)?.served?.kind
  })
})

describe("whether a live process serves a session", () => {
  it.scopedLive(
    "unserved while nobody takes its tasks; held while a worker keeps its lease; stalled once that worker is gone",
    () =>
      Effect.gen(function* () {
        const sessionId = yield* startPlan("Build it.", [task(1, "Processing", "Build it")])
        const { url } = yield* startServer
        const { served, listed } = servedViews(url, sessionId)
        expect((yield* served).kind).toBe("unserved")
        expect(yield* listed).toBe("unserved")

        // A worker takes the task, as `Worker.run` does: the job under a lease, and the claim in the log.
        const service = yield* PlannerService.PlannerService
        const workerId = "some-host/999999/gone"
        const taken = yield* service.queue.take({ workerId, limit: 1, leaseMs: 5_000, sessionId })
        expect(taken).toHaveLength(1)
        const now = yield* Clock.currentTimeMillis
        yield* service.execute(sessionId, new ClaimTask({ taskId: 1, attempt: 1, workerId, at: now }))
        expect(yield* served).toEqual({ kind: "held", workers: [workerId] })
        expect(yield* listed).toBe("held")

        // Nobody renews the lease (the process was killed): once it runs out the session is stalled, not Running.
        const stalled = yield* served.pipe(
          Effect.filterOrFail(
            (value) => value.kind === "stalled",
            (value) => new Error(`still ${value.kind}`)
          ),
          Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 100 })
        )
        expect(stalled.workers).toEqual([workerId])
        expect(yield* listed).toBe("stalled")
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "queued while a live worker that announced it takes the task's kind is busy elsewhere; unserved when the live workers take other kinds, serve another session only, or stopped",
    () =>
      Effect.gen(function* () {
        const sessionId = yield* startPlan("Build it.", [task(1, "Processing", "Build it")])
        const { url } = yield* startServer
        const { served, listed } = servedViews(url, sessionId)
        const registry = (yield* PlannerService.PlannerService).queue.workers
        if (registry === undefined) return expect.fail("the SQLite queue keeps announcements")
        const expiresAt = (yield* Clock.currentTimeMillis) + 60_000
        yield* registry.announce({ workerId: "other-host/1/reader", kinds: ["Retrieval"], expiresAt })
        yield* registry.announce({
          workerId: "other-host/2/elsewhere",
          kinds: ["Processing"],
          sessionId: "another-session",
          expiresAt
        })
        expect((yield* served).kind).toBe("unserved")
        expect(yield* listed).toBe("unserved")

        // A worker of this host whose process is gone: its announcement, not yet run out, serves nothing.
        yield* registry.announce({ workerId: `${os.hostname()}/99999999/gone`, kinds: ["Processing"], expiresAt })
        expect((yield* served).kind).toBe("unserved")

        const builder = "other-host/3/builder"
        yield* registry.announce({ workerId: builder, kinds: ["Retrieval", "Processing"], expiresAt })
        expect(yield* served).toEqual({ kind: "queued", workers: [builder] })
        expect(yield* listed).toBe("queued")

        yield* registry.withdraw(builder)
        expect((yield* served).kind).toBe("unserved")

        // Its job held, under a lease still running, by a worker of this host whose process is gone: stalled.
        const deadHere = `${os.hostname()}/99999999/held`
        yield* (yield* PlannerService.PlannerService).queue.take({ workerId: deadHere, limit: 1, leaseMs: 60_000 })
        expect(yield* served).toEqual({ kind: "stalled", workers: [deadHere] })
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "a parent whose open task runs as a sub-plan is said to wait on its sub-plans, whatever the workers announce",
    () =>
      Effect.gen(function* () {
        const sessionId = yield* startPlan("Release it", [task(1, "Processing", "Build it. Then ship it.")], {}, [1])
        const { url } = yield* startServer
        const { served } = servedViews(url, sessionId)
        const registry = (yield* PlannerService.PlannerService).queue.workers
        if (registry === undefined) return expect.fail("the SQLite queue keeps announcements")
        expect((yield* served).kind).toBe("subplans")
        // A live worker of the task's kind: the parent's task has no job for it, so it is not queued.
        const expiresAt = (yield* Clock.currentTimeMillis) + 60_000
        yield* registry.announce({ workerId: "other-host/4/anyone", kinds: ["Processing"], expiresAt })
        expect((yield* served).kind).toBe("subplans")
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )

  it.scopedLive(
    "a task whose job a worker holds shows running on that worker before its start is on record",
    () =>
      Effect.gen(function* () {
        const sessionId = yield* startPlan("Build it.", [task(1, "Processing", "Build it")])
        const { url } = yield* startServer
        const view = Effect.map(
          fetchJson(`${url}/api/sessions/${sessionId}`),
          (response) =>
            response.body as View & {
              readonly counts: Record<string, number>
              readonly served: { readonly kind: string; readonly workers?: ReadonlyArray<string> }
            }
        )
        expect((yield* view).state.tasks[0]?.status).toBe("Dispatched")
        // A worker of a session other processes write takes the job; its start is recorded with its outcome.
        const service = yield* PlannerService.PlannerService
        const workerId = "other-host/1234/worker"
        yield* service.queue.take({ workerId, limit: 1, leaseMs: 60_000, sessionId })
        const shown = yield* view
        expect(shown.state.tasks[0]).toMatchObject({ status: "Running", lease: { workerId } })
        expect(shown.counts).toMatchObject({ Running: 1, Dispatched: 0 })
        expect(shown.served).toEqual({ kind: "held", workers: [workerId] })
        // The log still has it dispatched: the view adds what the queue knows, and records nothing.
        const log = yield* (yield* PlannerStore).load(sessionId)
        expect(log.some((record) => record.event._tag === "TaskClaimed")).toBe(false)
      }).pipe(Effect.provide(plannerWithScript(script))),
    30_000
  )
})
