/**
 * The memory index's contract, run on every layer (in memory, SQLite, PostgreSQL) by its own test file: ranking by
 * the engine's full-text search (paraphrases find their neighbour), filters, what a record holds, the live projection
 * (updates arrive while a plan runs), a rebuild equals the live index (property), and forks.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, FastCheck as fc, Layer, Option, type Scope } from "effect"
import { PlanningCompleted } from "../../src/domain/Events.js"
import type { MemoryRecord, SessionMemory, TaskMemory } from "../../src/domain/Memory.js"
import { type EventStore, EventStore as EventStoreTag } from "../../src/infra/EventStore.js"
import { type Embedder, MemoryIndex } from "../../src/infra/MemoryIndex.js"
import * as MemoryProjection from "../../src/infra/MemoryProjection.js"
import * as SessionSnapshots from "../../src/infra/SessionSnapshots.js"
import { append, forked, planned, sessionEvents, type TaskScript, taskEvents, writeSession } from "./support.js"

export interface MemoryTarget {
  /** A fresh, empty store with the index on it. */
  readonly layer: (
    embedder?: Embedder
  ) => Effect.Effect<Layer.Layer<EventStore | MemoryIndex, unknown>, unknown, Scope.Scope>
  /** Runs of the rebuild property. */
  readonly propertyRuns: number
}

export const withTarget = <A, E>(
  target: MemoryTarget,
  body: Effect.Effect<A, E, EventStore | MemoryIndex | Scope.Scope>,
  embedder?: Embedder
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const layer = yield* target.layer(embedder)
      const context = yield* Layer.build(layer)
      return yield* Effect.provide(body, context)
    })
  )

const corpus: ReadonlyArray<readonly [string, string, ReadonlyArray<TaskScript>]> = [
  [
    "s-login",
    "Add authentication to the API",
    [
      { description: "Implement the login endpoint with password hashing", kind: "CodeImplementation" },
      { description: "Write unit tests for the login endpoint", kind: "UnitTest", attempts: 2, duration: 300 }
    ]
  ],
  [
    "s-deploy",
    "Deploy the website to production",
    [
      { description: "Build the static site bundle", kind: "ToolCall" },
      {
        description: "Upload the bundle to the production server",
        kind: "ToolCall",
        questions: ["Which server should receive the upload?"]
      }
    ]
  ],
  [
    "s-report",
    "Summarise the quarterly sales report",
    [
      { description: "Read the quarterly sales spreadsheet", kind: "Retrieval" },
      { description: "Summarise revenue by region", kind: "Analysis", outcome: "Failed" }
    ]
  ],
  [
    "s-refactor",
    "Refactor the payment module",
    [{ description: "Extract the invoice calculation into its own function", kind: "Refactor" }]
  ]
]

const writeCorpus = Effect.forEach(corpus, ([id, request, tasks]) => writeSession(id, request, tasks), {
  discard: true
})

const search = (text: string, options: { limit?: number; kind?: string; succeededOnly?: boolean } = {}) =>
  Effect.flatMap(MemoryIndex, (index) =>
    index.search({ text, ...(options as { limit?: number; kind?: "task"; succeededOnly?: boolean }) })
  )

const describeRecord = (record: MemoryRecord) =>
  record._tag === "Task" ? `${record.sessionId}#${record.taskId}` : `${record.sessionId}`

/** Polls (real time) until `check` holds, for at most `seconds`. */
export const eventually = <A, E, R>(check: Effect.Effect<A | undefined, E, R>, seconds = 20) =>
  Effect.gen(function* () {
    const deadline = Date.now() + seconds * 1000
    for (;;) {
      const value = yield* check
      if (value !== undefined) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`not reached within ${seconds} s`)
      yield* Effect.sleep(Duration.millis(20))
    }
  })

/** Random sessions: plans of 1-4 tasks, some tasks open, failed, retried or asking, some sessions forked. */
const sessionArb = fc.record({
  request: fc.constantFrom("build the parser", "deploy the site", "write the report", "fix the login bug"),
  tasks: fc.array(
    fc.record({
      description: fc.constantFrom("run the tests", "read the file", "summarise results", "upload the bundle"),
      kind: fc.constantFrom("Processing" as const, "ToolCall" as const, "UnitTest" as const),
      outcome: fc.constantFrom("Completed" as const, "Completed" as const, "Failed" as const, "open" as const),
      attempts: fc.integer({ min: 1, max: 3 }),
      questions: fc.array(fc.constantFrom("which file?", "are you sure?"), { maxLength: 2 }),
      duration: fc.integer({ min: 0, max: 5_000 })
    }),
    { minLength: 1, maxLength: 4 }
  ),
  /** Fork this session after this many events (0: no fork). */
  forkAt: fc.integer({ min: 0, max: 4 }),
  /** Split the log into this many appends, interleaved with other sessions'. */
  chunks: fc.integer({ min: 1, max: 3 })
})

export const memoryIndexContract = (name: string, target: MemoryTarget) =>
  describe(`MemoryIndex contract: ${name}`, () => {
    it.live("a paraphrased query finds its neighbour first, ranked by the engine's own full-text search", () =>
      withTarget(
        target,
        Effect.gen(function* () {
          yield* writeCorpus
          yield* MemoryProjection.catchUp
          const tests = yield* search("testing the login endpoint", { kind: "task" })
          expect(tests.map((hit) => describeRecord(hit.record))[0]).toBe("s-login#2")
          const deploy = yield* search("deploying websites", { kind: "session" })
          expect(deploy.map((hit) => describeRecord(hit.record))[0]).toBe("s-deploy")
          const quarterly = yield* search("summaries of quarterly revenue")
          expect(["s-report", "s-report#2", "s-report#1"]).toContain(
            describeRecord(quarterly[0]?.record as MemoryRecord)
          )
          // Better first, and nothing that shares no word.
          for (let i = 1; i < quarterly.length; i++) {
            expect(quarterly[i - 1]?.score ?? 0).toBeGreaterThanOrEqual(quarterly[i]?.score ?? 0)
          }
          expect(quarterly.map((hit) => hit.record.sessionId)).not.toContain("s-refactor")
          expect(yield* search("zebra xylophone")).toEqual([])
          expect(yield* search("the and of")).toEqual([])
        })
      )
    )

    it.live("filters by kind, by tasks or sessions, and by success; limits the hits", () =>
      withTarget(
        target,
        Effect.gen(function* () {
          yield* writeCorpus
          yield* MemoryProjection.catchUp
          const sessions = yield* search("the", { kind: "session" })
          expect(sessions).toEqual([])
          const all = yield* search("login endpoint deploy website bundle quarterly sales revenue payment invoice", {
            limit: 50
          })
          expect(all.length).toBe(11)
          const onlySessions = yield* search("login website sales payment", { kind: "session", limit: 50 })
          expect(onlySessions.map((hit) => hit.record._tag)).toEqual(["Session", "Session", "Session", "Session"])
          const toolCalls = yield* search("bundle site server", { kind: "ToolCall" })
          expect(toolCalls.map((hit) => describeRecord(hit.record)).sort()).toEqual(["s-deploy#1", "s-deploy#2"])
          const succeeded = yield* search("quarterly sales revenue region", { succeededOnly: true, limit: 50 })
          expect(succeeded.map((hit) => describeRecord(hit.record)).sort()).toEqual(["s-report#1"])
          const two = yield* search("login endpoint deploy website quarterly sales", { limit: 2 })
          expect(two.length).toBe(2)
        })
      )
    )

    it.live(
      "a record holds the task's kind, result, attempts, duration and questions; a session its plan and outcome",
      () =>
        withTarget(
          target,
          Effect.gen(function* () {
            yield* writeCorpus
            yield* MemoryProjection.catchUp
            const records = yield* Effect.flatMap(MemoryIndex, (index) => index.all)
            expect(records.length).toBe(11)
            const upload = records.find(
              (record) => record._tag === "Task" && record.sessionId === "s-deploy" && record.taskId === 2
            ) as TaskMemory
            expect(upload).toMatchObject({
              kind: "ToolCall",
              status: "Completed",
              result: "done: Upload the bundle to the production server",
              attempts: 1,
              durationMs: 100,
              questions: ["Which server should receive the upload?"]
            })
            const tests = records.find(
              (record) => record._tag === "Task" && record.sessionId === "s-login" && record.taskId === 2
            ) as TaskMemory
            expect(tests).toMatchObject({ attempts: 2, durationMs: 300, questions: [] })
            const report = records.find(
              (record) => record._tag === "Session" && record.sessionId === "s-report"
            ) as SessionMemory
            expect(report.outcome).toBe("Failed")
            expect(report.request).toBe("Summarise the quarterly sales report")
            expect(report.plan.map((step) => [step.id, step.kind, step.dependsOn])).toEqual([
              [1, "Retrieval", []],
              [2, "Analysis", [1]]
            ])
          })
        )
    )

    it.live("updates arrive while a plan runs: the durable consumer indexes each task as it ends", () =>
      withTarget(
        target,
        Effect.gen(function* () {
          const index = yield* MemoryIndex
          const consumer = yield* Effect.fork(MemoryProjection.run)
          const tasks: ReadonlyArray<TaskScript> = [
            { description: "Compile the compiler" },
            { description: "Benchmark the compiler" }
          ]
          yield* append("live", [
            planned("Speed up the compiler", tasks),
            ...taskEvents(1, tasks[0] as TaskScript, 2_000)
          ])
          const first = yield* eventually(
            Effect.map(index.search({ text: "compiling compilers" }), (hits) => (hits.length > 0 ? hits : undefined))
          )
          expect(first.map((hit) => describeRecord(hit.record))).toEqual(["live#1"])
          // The session is still running: no session record yet.
          expect((yield* index.all).map(describeRecord)).toEqual(["live#1"])
          yield* append("live", [
            ...taskEvents(2, tasks[1] as TaskScript, 3_000),
            new PlanningCompleted({ outcome: "Succeeded", summary: "faster", at: 4_000 })
          ])
          const all = yield* eventually(
            Effect.map(index.all, (records) => (records.length === 3 ? records : undefined))
          )
          expect(all.map(describeRecord)).toEqual(["live", "live#1", "live#2"])
          yield* Fiber.interrupt(consumer)
          // Its position is saved: catching up afterwards has nothing left to do.
          expect(yield* MemoryProjection.catchUp).toBe(0)
        })
      )
    )

    it.live("a fork does not remember its source's work twice; what it does after the fork is its own", () =>
      withTarget(
        target,
        Effect.gen(function* () {
          const tasks: ReadonlyArray<TaskScript> = [
            { description: "Parse the logs" },
            { description: "Chart the errors" }
          ]
          const source = sessionEvents("Chart the log errors", tasks)
          yield* append("source", source)
          // The fork copies the plan and task 1's whole life, then redoes task 2.
          const copied = source.slice(0, 1 + taskEvents(1, tasks[0] as TaskScript, 0).length)
          yield* append("fork", [
            ...copied,
            forked("source", copied.length),
            ...taskEvents(2, tasks[1] as TaskScript, 9_500)
          ])
          yield* MemoryProjection.catchUp
          const live = (yield* Effect.flatMap(MemoryIndex, (index) => index.all)).map(describeRecord)
          // By key: sessions, then tasks.
          expect(live).toEqual(["source", "fork#2", "source#1", "source#2"])
          yield* MemoryProjection.rebuild
          expect((yield* Effect.flatMap(MemoryIndex, (index) => index.all)).map(describeRecord)).toEqual(live)
        })
      )
    )

    it.live(
      "prune keeps what it promises: final snapshots, memory, a source whose fork and a parent whose child still run",
      () =>
        withTarget(
          target,
          Effect.gen(function* () {
            const index = yield* MemoryIndex
            yield* writeCorpus
            const tasks: ReadonlyArray<TaskScript> = [
              { description: "Parse the logs" },
              { description: "Chart the errors" }
            ]
            // A fork of s-deploy that has not finished: s-deploy must stay.
            yield* append("s-deploy-fork", [
              ...sessionEvents("Deploy the website to production", []).slice(0, 1),
              forked("s-deploy", 1),
              ...taskEvents(1, tasks[0] as TaskScript, 9_500).slice(0, 1)
            ])
            // A sub-plan of s-refactor's task 1 that still runs: s-refactor must stay too.
            yield* append("s-refactor~1", [
              planned("Extract the invoice calculation", tasks, 9_000, {
                sessionId: "s-refactor",
                taskId: 1,
                rootSessionId: "s-refactor",
                depth: 1,
                maxDepth: 3
              })
            ])
            yield* MemoryProjection.catchUp
            const before = yield* index.all
            const result = yield* Effect.either(SessionSnapshots.prune(Number.MAX_SAFE_INTEGER))
            if (result._tag === "Left") return yield* Effect.die(result.left)
            expect(result.right.pruned.map((session) => session.sessionId).sort()).toEqual(["s-login", "s-report"])
            expect([...result.right.kept].sort((a, b) => (a.sessionId < b.sessionId ? -1 : 1))).toEqual([
              { sessionId: "s-deploy", reason: "its fork s-deploy-fork still running" },
              { sessionId: "s-refactor", reason: "its child session s-refactor~1 still running" }
            ])
            const store = yield* EventStoreTag
            for (const id of ["s-login", "s-report"]) {
              expect(yield* store.lastSequence("planner", id)).toBe(0)
              const snapshot = yield* SessionSnapshots.load(id)
              expect(Option.map(snapshot, (state) => state.status)).toEqual(
                Option.some(id === "s-report" ? "Failed" : "Succeeded")
              )
            }
            // The session list's pruned part: both, the latest finished first, a page at a time, with the total.
            const listed = yield* SessionSnapshots.prunedPage({ limit: 10, offset: 0 })
            expect(listed.total).toBe(2)
            expect(listed.sessions.map((session) => session.sessionId).sort()).toEqual(["s-login", "s-report"])
            const finished = listed.sessions.map((session) => session.finishedAt)
            expect(finished).toEqual([...finished].sort((a, b) => b - a))
            for (const session of listed.sessions) {
              expect(session.events).toBe(session.state?.version)
              expect(session.finishedAt).toBe(session.state?.finishedAt)
            }
            // All of them, for a list kept between looks: what it knew (same event count) is not read again.
            const everyOne = yield* SessionSnapshots.allPruned()
            expect(everyOne.map((session) => session.sessionId).sort()).toEqual(["s-login", "s-report"])
            const known = listed.sessions[0]
            if (known === undefined) return yield* Effect.die("no pruned session listed")
            const kept = yield* SessionSnapshots.allPruned(new Map([[known.sessionId, known]]))
            expect(kept.find((session) => session.sessionId === known.sessionId)).toBe(known)
            expect(kept.find((session) => session.sessionId !== known.sessionId)?.state?.status).toBeDefined()
            const second = yield* SessionSnapshots.prunedPage({ limit: 1, offset: 1 })
            expect(second).toMatchObject({ total: 2, sessions: [{ sessionId: listed.sessions[1]?.sessionId }] })
            expect(yield* store.lastSequence("planner", "s-deploy")).toBeGreaterThan(0)
            expect(yield* store.lastSequence("planner", "s-refactor")).toBeGreaterThan(0)
            expect(yield* index.all).toEqual(before)
            yield* MemoryProjection.rebuild
            expect(yield* index.all).toEqual(before)
          })
        )
    )

    it.live(
      "a rebuild from the log equals the live index, after random sessions written in interleaved appends",
      () =>
        Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(sessionArb, { minLength: 1, maxLength: 5 }), (sessions) =>
              Effect.runPromise(
                withTarget(
                  target,
                  Effect.gen(function* () {
                    const index = yield* MemoryIndex
                    // Each session's log in chunks; chunks of different sessions interleave, and the projection
                    // catches up between some of them, as it would while plans run.
                    const pending = sessions.map((session, n) => {
                      const events = [...sessionEvents(session.request, session.tasks)]
                      const size = Math.ceil(events.length / session.chunks)
                      const chunks = []
                      for (let i = 0; i < events.length; i += size) chunks.push(events.slice(i, i + size))
                      return { id: `p${n}`, chunks, session, events }
                    })
                    let round = 0
                    while (pending.some((entry) => entry.chunks.length > 0)) {
                      for (const entry of pending) {
                        const chunk = entry.chunks.shift()
                        if (chunk !== undefined) yield* append(entry.id, chunk)
                      }
                      if (round++ % 2 === 0) yield* MemoryProjection.catchUp
                    }
                    for (const entry of pending) {
                      if (entry.session.forkAt === 0) continue
                      const at = Math.min(entry.session.forkAt, entry.events.length)
                      yield* append(`${entry.id}-fork`, [
                        ...entry.events.slice(0, at),
                        forked(entry.id, at),
                        ...entry.events.slice(at)
                      ])
                    }
                    yield* MemoryProjection.catchUp
                    const live = yield* index.all
                    const rebuilt = yield* MemoryProjection.rebuild
                    const after = yield* index.all
                    expect(after).toEqual(live)
                    expect(rebuilt.records).toBe(live.length)
                  })
                ).pipe(Effect.orDie)
              )
            ),
            { numRuns: target.propertyRuns }
          )
        ),
      120_000
    )
  })
