/**
 * PostgreSQL: outcomes reported into job rows for one writer per session (`TaskQueue.reports`). A report is stored
 * only by the job's holder, and a reported job is never handed out again; the writer is one worker at a time under a
 * lease row; reports nobody records are found; a report takes its reporter's next jobs in its own statement; the
 * writer hears of each report through NOTIFY, from another instance (another process).
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Queue, Redacted, TestClock } from "effect"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as SqlTaskQueue from "../../src/infra/SqlTaskQueue.js"
import {
  type JobKey,
  jobKeyString,
  type OutcomeReports,
  type PendingReport,
  reportsPerGroup,
  type TakenJob
} from "../../src/infra/TaskQueue.js"
import { freshPgDatabase } from "./fixtures/databases.js"
import { job, type TaskQueueTarget, untilAsleep, within, withQueue } from "./TaskQueueContract.js"

const targets: ReadonlyArray<readonly [string, TaskQueueTarget<string, never>]> = [
  [
    "statements unnamed",
    {
      freshDatabase: freshPgDatabase,
      layer: (url) => SqlTaskQueue.layer().pipe(Layer.provide(PgEventStore.layer({ url: Redacted.make(url) }))),
      wakesOtherInstances: true
    }
  ],
  [
    "statements prepared",
    {
      freshDatabase: freshPgDatabase,
      layer: (url) => PgEventStore.layer({ url: Redacted.make(url) }),
      wakesOtherInstances: true
    }
  ]
]

const key = (sessionId: string, taskId: number, attempt = 1): JobKey => ({ sessionId, taskId, attempt })
const lease = 10_000

const reportsOf = (queue: { readonly reports?: OutcomeReports | undefined }): OutcomeReports => {
  if (queue.reports === undefined) throw new Error("the PostgreSQL queue takes reports")
  return queue.reports
}

for (const [variant, target] of targets) {
  describe(`SqlTaskQueue on PostgreSQL, ${variant}: reported outcomes`, () => {
    it.effect("only the job's holder reports it; a reported job is never taken again, its lease run out or not", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const reports = reportsOf(queue)
          yield* queue.enqueue([job("s", 1), job("s", 2)])
          const [taken] = yield* queue.take({ workerId: "w1", limit: 1, leaseMs: lease })
          expect(taken?.taskId).toBe(1)

          expect(yield* reports.report(key("s", 1), "w2", ["not mine"])).toEqual({ stored: false, writer: undefined })
          expect(yield* reports.report(key("s", 1), "w1", [{ outcome: "done", n: 1 }])).toEqual({
            stored: true,
            writer: undefined
          })
          // Reported once: the same report again (its first answer lost) is told it is stored, and changes nothing.
          expect((yield* reports.report(key("s", 1), "w1", ["again"])).stored).toBe(true)
          expect((yield* reports.report(key("s", 1), "w2", ["not mine either"])).stored).toBe(false)
          const listed = yield* queue.list("s")
          expect(listed.map((listedJob) => [jobKeyString(listedJob), listedJob.reported === true])).toEqual([
            ["s/1/1", true],
            ["s/2/1", false]
          ])

          // Its holder's lease renewals no longer count it, nor its holdings: it is the writer's now.
          expect(yield* queue.extendLeases("w1", lease)).toBe(0)
          expect(yield* queue.heldBy?.("w1") ?? Effect.succeed(undefined)).toEqual([])
          expect(yield* queue.holders?.("s") ?? Effect.succeed(undefined)).toEqual([])
          // Nor can its holder end its lease: its attempt was not lost.
          const leased = (yield* queue.list("s")).find((listedJob) => listedJob.taskId === 1)?.leaseExpiresAt
          yield* queue.lapse?.(key("s", 1), "w1") ?? Effect.void
          expect((yield* queue.list("s")).find((listedJob) => listedJob.taskId === 1)?.leaseExpiresAt).toBe(leased)
          // Its lease runs out: still not takeable, and not due either (a waiter does not spin on it).
          yield* TestClock.adjust(lease * 2)
          const retaken = yield* queue.take({ workerId: "w3", limit: 10, leaseMs: lease })
          expect(retaken.map(jobKeyString)).toEqual(["s/2/1"])
          const waiting = yield* Effect.fork(queue.awaitWork())
          yield* untilAsleep()
          expect(waiting.unsafePoll()).toBeNull()
          yield* Fiber.interrupt(waiting)
          // Nor does its holder give it back: it is the writer's now.
          yield* queue.release(key("s", 1), "w1")
          expect((yield* queue.list("s")).find((listedJob) => listedJob.taskId === 1)?.reported).toBe(true)

          const pending = yield* reports.pending("s", 10)
          expect(pending).toEqual([{ key: key("s", 1), workerId: "w1", outcome: [{ outcome: "done", n: 1 }] }])
          expect(yield* reports.pending("other", 10)).toEqual([])
          // The writer's append completes the job, report and all.
          yield* queue.complete(key("s", 1))
          expect(yield* reports.pending("s", 10)).toEqual([])
        })
      )
    )

    it.effect("reports come back oldest first, at most the limit asked for", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const reports = reportsOf(queue)
          yield* queue.enqueue([1, 2, 3, 4].map((taskId) => job("s", taskId)))
          yield* queue.take({ workerId: "w", limit: 4, leaseMs: lease })
          for (const taskId of [3, 1, 4, 2]) {
            yield* reports.report(key("s", taskId), "w", { taskId })
            yield* TestClock.adjust(1)
          }
          expect((yield* reports.pending("s", 3)).map((report) => report.key.taskId)).toEqual([3, 1, 4])
        })
      )
    )

    it.effect(
      "the writer: one worker at a time, renewed, taken over once its lease runs out or when it is known dead",
      () =>
        withQueue(target, (queue) =>
          Effect.gen(function* () {
            const reports = reportsOf(queue)
            expect(yield* reports.claimWriter("s", "a", 1_000)).toBe(true)
            expect(yield* reports.claimWriter("s", "b", 1_000)).toBe(false)
            // Claiming again is renewing.
            expect(yield* reports.claimWriter("s", "a", 1_000)).toBe(true)
            yield* queue.enqueue([job("s", 1)])
            yield* queue.take({ workerId: "w", limit: 1, leaseMs: lease })
            expect(yield* reports.report(key("s", 1), "w", "x")).toEqual({ stored: true, writer: "a" })

            yield* TestClock.adjust(500)
            expect(yield* reports.extendWriter("a", ["s", "t"], 1_000)).toEqual(["s"])
            yield* TestClock.adjust(900)
            expect(yield* reports.claimWriter("s", "b", 1_000)).toBe(false)
            yield* TestClock.adjust(200)
            // Its lease ran out: another worker takes over, and the old writer's renewal finds the session gone.
            expect(yield* reports.claimWriter("s", "b", 1_000)).toBe(true)
            expect(yield* reports.extendWriter("a", ["s"], 1_000)).toEqual([])
            // A writer known dead is replaced at once, its lease live or not; only the one named.
            expect(yield* reports.claimWriter("s", "c", 1_000, "a")).toBe(false)
            expect(yield* reports.claimWriter("s", "c", 1_000, "b")).toBe(true)
            // Given up: the next worker takes over at once.
            yield* reports.releaseWriter("b", ["s"])
            expect(yield* reports.claimWriter("s", "d", 1_000)).toBe(false)
            yield* reports.releaseWriter("c", ["s"])
            expect(yield* reports.claimWriter("s", "d", 1_000)).toBe(true)
          })
        )
    )

    it.effect("reports nobody records: with no live writer, or stored before a time, with the live writer", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const reports = reportsOf(queue)
          yield* queue.enqueue([job("s", 1), job("s", 2), job("t", 1)])
          yield* queue.take({ workerId: "w", limit: 3, leaseMs: lease })
          yield* reports.report(key("s", 1), "w", "x")
          yield* reports.report(key("s", 2), "w", "y")
          const now = yield* Clock.currentTimeMillis
          expect(yield* reports.unrecorded(now)).toEqual([{ sessionId: "s", writer: undefined }])
          expect(yield* reports.claimWriter("s", "a", 1_000)).toBe(true)
          expect(yield* reports.unrecorded(now)).toEqual([])
          yield* TestClock.adjust(100)
          // Still waiting a while later, with a live writer: it is named, for the sweep to see whether it is alive.
          expect(yield* reports.unrecorded(now + 1)).toEqual([{ sessionId: "s", writer: "a" }])
          yield* TestClock.adjust(1_000)
          expect(yield* reports.unrecorded(now)).toEqual([{ sessionId: "s", writer: undefined }])
        })
      )
    )

    it.effect("a report takes its reporter's next jobs in the same statement, never the job it reports", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const reports = reportsOf(queue)
          yield* queue.enqueue([job("s", 1), job("s", 2), job("s", 3), job("s", 4, { kind: "UnitTest" })])
          yield* queue.take({ workerId: "w", limit: 1, leaseMs: lease })
          // Its own lease ran out meanwhile (nobody took the job): the take must still not hand it back to itself.
          yield* TestClock.adjust(lease + 1)
          let taken: ReadonlyArray<TakenJob> | undefined
          const now = yield* Clock.currentTimeMillis
          const found = yield* reports.report(key("s", 1), "w", "done", {
            options: { workerId: "w", kinds: ["Processing"], limit: 5, leaseMs: lease },
            now,
            taken: (jobs) => {
              taken = jobs
            }
          })
          expect(found).toEqual({ stored: true, writer: undefined })
          expect(taken?.map(jobKeyString)).toEqual(["s/2/1", "s/3/1"])
          expect(taken?.every((one) => one.workerId === "w" && one.leaseExpiresAt === now + lease)).toBe(true)

          // Refused (not the holder's): nothing stored, and the take still runs, here finding nothing left of its kind.
          let second: ReadonlyArray<TakenJob> | undefined
          const refused = yield* reports.report(key("s", 4), "w", "done", {
            options: { workerId: "w", kinds: ["Processing"], limit: 5, leaseMs: lease },
            now,
            taken: (jobs) => {
              second = jobs
            }
          })
          expect(refused.stored).toBe(false)
          expect(second).toEqual([])
        })
      )
    )

    it.live(
      "a group of reports is one statement: each found for itself, each heard by its writer, one take for all",
      () =>
        withQueue(target, (queue, { second }) =>
          Effect.gen(function* () {
            const other = yield* second
            // Two writers in the other instance, each hearing only the reports of its own session.
            const heardBy = (writer: string) =>
              Effect.gen(function* () {
                const heard = yield* Queue.unbounded<readonly [string, PendingReport | undefined]>()
                yield* yield* reportsOf(other).listen(writer, (sessionId, report) =>
                  Queue.unsafeOffer(heard, [sessionId, report])
                )
                return heard
              })
            const heard = yield* heardBy("writer-of-a")
            const heardOfB = yield* heardBy("writer-of-b")
            const reports = reportsOf(queue)
            yield* reports.claimWriter("a", "writer-of-a", lease)
            yield* queue.enqueue([job("a", 1), job("a", 2), job("a", 3), job("a", 4), job("a", 5), job("b", 1)])
            yield* queue.take({ workerId: "other", limit: 1, leaseMs: lease, sessionId: "a" })
            // The reporter's leases run out before it reports (its own take must still not hand its jobs back to it).
            yield* queue.take({ workerId: "w", limit: 3, leaseMs: 1, sessionId: "a" })
            yield* queue.take({ workerId: "w", limit: 1, leaseMs: 1, sessionId: "b" })
            yield* Effect.sleep("5 millis")
            // a/3 reported before (its answer lost): told it is stored, and its report is not replaced.
            yield* reports.report(key("a", 3), "w", "first")
            expect(yield* Queue.take(heard).pipe(within(10))).toEqual([
              "a",
              { key: key("a", 3), workerId: "w", outcome: "first" }
            ])
            yield* reports.claimWriter("b", "writer-of-b", lease)
            let taken: ReadonlyArray<TakenJob> | undefined
            const found = yield* reports.reportAll(
              [
                { key: key("a", 4), outcome: ["four"] },
                { key: key("a", 1), outcome: ["not mine"] },
                { key: key("a", 3), outcome: "again" },
                { key: key("b", 1), outcome: { two: 2 } },
                { key: key("a", 2), outcome: null }
              ],
              "w",
              {
                options: { workerId: "w", limit: 5, leaseMs: lease },
                now: yield* Clock.currentTimeMillis,
                taken: (jobs) => {
                  taken = jobs
                }
              }
            )
            expect(found).toEqual([
              { stored: true, writer: "writer-of-a" },
              { stored: false, writer: "writer-of-a" },
              { stored: true, writer: "writer-of-a" },
              { stored: true, writer: "writer-of-b" },
              { stored: true, writer: "writer-of-a" }
            ])
            // The take found what is left: a/5 (a/1 is the other worker's), none of the jobs it reported.
            expect(taken?.map(jobKeyString)).toEqual(["a/5/1"])
            const notices = [yield* Queue.take(heard).pipe(within(10)), yield* Queue.take(heard).pipe(within(10))]
            // In no particular order: one commit sends them all.
            const byKey = notices.map(
              ([sessionId, report]) => [sessionId, report?.key.taskId, report?.outcome] as const
            )
            expect([...byKey].sort((x, y) => `${x[0]}/${x[1]}`.localeCompare(`${y[0]}/${y[1]}`))).toEqual([
              ["a", 2, null],
              ["a", 4, ["four"]]
            ])
            expect(yield* Queue.take(heardOfB).pipe(within(10))).toEqual([
              "b",
              { key: key("b", 1), workerId: "w", outcome: { two: 2 } }
            ])
            // Oldest first: a/3's first report, then the group's.
            expect((yield* reports.pending("a", 10)).map((report) => [report.key.taskId, report.outcome])).toEqual([
              [3, "first"],
              [2, null],
              [4, ["four"]]
            ])
            yield* Effect.sleep("50 millis")
            expect(yield* Queue.size(heard)).toBe(0)
            expect(yield* Queue.size(heardOfB)).toBe(0)
          })
        )
    )

    it.effect("more reports than one statement stores go in several: each found for itself, in order; one take", () =>
      withQueue(target, (queue) =>
        Effect.gen(function* () {
          const count = reportsPerGroup * 2 + 3
          const ids = Array.from({ length: count }, (_, index) => index + 1)
          // Task 20, in the second statement, is another worker's (another kind, to tell the takes apart).
          yield* queue.enqueue([
            ...ids.map((taskId) => job("many", taskId, taskId === 20 ? { kind: "UnitTest" } : {})),
            job("many", count + 1)
          ])
          yield* queue.take({ workerId: "w", kinds: ["Processing"], limit: count - 1, leaseMs: lease })
          // The reporter's leases run out before it reports: the take, which goes with the last statement, must not
          // hand back a job an earlier statement of the same call reported.
          yield* TestClock.adjust(lease + 1)
          yield* queue.take({ workerId: "other", kinds: ["UnitTest"], limit: 1, leaseMs: lease })
          const takes: Array<ReadonlyArray<TakenJob>> = []
          const found = yield* reportsOf(queue).reportAll(
            ids.map((taskId) => ({ key: key("many", taskId), outcome: taskId })),
            "w",
            {
              options: { workerId: "w", kinds: ["Processing"], limit: 5, leaseMs: lease },
              now: yield* Clock.currentTimeMillis,
              taken: (jobs) => {
                takes.push(jobs)
              }
            }
          )
          expect(found.map((one) => one.stored)).toEqual(ids.map((taskId) => taskId !== 20))
          expect(takes.map((jobs) => jobs.map(jobKeyString))).toEqual([[`many/${count + 1}/1`]])
          const pending = yield* reportsOf(queue).pending("many", count + 1)
          expect(pending.map((report) => report.outcome)).toEqual(ids.filter((taskId) => taskId !== 20))
        })
      )
    )

    it.live("the writer hears of each report stored, from another instance: the report itself when it fits", () =>
      withQueue(target, (queue, { second }) =>
        Effect.gen(function* () {
          const other = yield* second
          const heard = yield* Queue.unbounded<readonly [string, PendingReport | undefined]>()
          // Not ASCII: the channel, a hash of the writer's id, is computed alike here and by PostgreSQL.
          const writer = "writer-ä/1/✓"
          const start = yield* reportsOf(other).listen(writer, (sessionId, report) =>
            Queue.unsafeOffer(heard, [sessionId, report])
          )
          yield* start
          yield* queue.enqueue([job("heard", 1), job("heard", 2), job("unwritten", 1), job("elsewhere", 1)])
          yield* queue.take({ workerId: "w", limit: 4, leaseMs: lease })
          yield* reportsOf(queue).claimWriter("heard", writer, lease)
          yield* reportsOf(queue).claimWriter("elsewhere", "another-writer", lease)
          // Reports of a session nobody writes and of one another worker writes reach other writers no more: the
          // first notification this writer hears is of its own session's report, stored after them.
          yield* reportsOf(queue).report(key("unwritten", 1), "w", "nobody's")
          yield* reportsOf(queue).report(key("elsewhere", 1), "w", "another's")
          yield* reportsOf(queue).report(key("heard", 1), "w", [{ result: "done ✓" }])
          expect(yield* Queue.take(heard).pipe(within(10))).toEqual([
            "heard",
            { key: key("heard", 1), workerId: "w", outcome: [{ result: "done ✓" }] }
          ])
          // Too large for a notification: the session alone, for the writer to read the report back.
          const large = "x".repeat(10_000)
          yield* reportsOf(queue).report(key("heard", 2), "w", [{ result: large }])
          expect(yield* Queue.take(heard).pipe(within(10))).toEqual(["heard", undefined])
          expect((yield* reportsOf(queue).pending("heard", 10)).map((report) => report.outcome)).toEqual([
            [{ result: "done ✓" }],
            [{ result: large }]
          ])
        })
      )
    )
  })
}

describe("a report's notification read back", () => {
  it("is the report it carries, or else the session it names", () => {
    const report = { key: key("s", 2, 3), workerId: "w", outcome: [{ a: 1 }] }
    expect(
      SqlTaskQueue.readNotice('{"sessionId":"s","taskId":2,"attempt":3,"workerId":"w","outcome":[{"a":1}]}')
    ).toEqual({ sessionId: "s", report })
    expect(SqlTaskQueue.readNotice("plain-session")).toEqual({ sessionId: "plain-session" })
    // A session whose id begins with a brace is a session, not a report.
    expect(SqlTaskQueue.readNotice("{odd")).toEqual({ sessionId: "{odd" })
    expect(SqlTaskQueue.readNotice('{"sessionId":"s"}')).toEqual({ sessionId: '{"sessionId":"s"}' })
  })
})
