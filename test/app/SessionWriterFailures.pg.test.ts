/**
 * PostgreSQL: a session writer whose recording of one session keeps failing (its log cannot be written or read) goes
 * on recording the other sessions it writes, and tries the failing one again after a backoff of its own rather than
 * holding the others up or spinning on it; and a writer whose LISTEN connection the server ends records what was
 * reported while it was down once it is back, without waiting for its sweep. The reports and the writer rows are the
 * real ones, over the queue's PostgreSQL layer; only what recording does is the test's, so that one session can be
 * made to fail.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, TestClock, TestServices } from "effect"
import * as SessionWriter from "../../src/app/worker/SessionWriter.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { type JobKey, jobKeyString, type PendingReport, TaskQueue } from "../../src/infra/TaskQueue.js"
import { within } from "../infra/EventStoreContract.js"
import { endListening, freshPgDatabase } from "../infra/fixtures/databases.js"
import { job } from "../infra/TaskQueueContract.js"

const key = (sessionId: string, taskId: number): JobKey => ({ sessionId, taskId, attempt: 1 })

/** Waits in real time (the test's clock stands still) until `done` holds. */
const until = (what: string, done: () => boolean) =>
  TestServices.provideLive(
    Effect.gen(function* () {
      while (!done()) yield* Effect.sleep("5 millis")
    }).pipe(within(15, what))
  )

/** A writer over a fresh database's reports whose recording of session "poison" always fails; the others' succeed. */
const writerWithPoison = Effect.gen(function* () {
  const url = yield* freshPgDatabase
  const context = yield* Layer.build(PgEventStore.layer({ url: Redacted.make(url) }))
  const queue = Context.get(context, TaskQueue)
  const reports = queue.reports
  if (reports === undefined) throw new Error("the PostgreSQL queue takes reports")
  const tries = { poison: 0 }
  const recorded: Array<string> = []
  const writer = yield* SessionWriter.make({
    reports,
    workerId: "writer",
    leaseMs: 600_000,
    sweepInterval: "1 hour",
    isOver: () => Effect.succeed(false),
    record: (sessionId, batch: ReadonlyArray<PendingReport>) => {
      if (sessionId === "poison") {
        tries.poison += 1
        return Effect.fail({ message: "the session's log holds an event that does not decode" })
      }
      return queue.complete(batch.map((report) => report.key)).pipe(
        Effect.tap(() => Effect.sync(() => recorded.push(...batch.map((report) => jobKeyString(report.key))))),
        Effect.as({ ended: false })
      )
    }
  })
  const sql = Context.get(context, SqlClient.SqlClient)
  return { queue, reports, writer, tries, recorded, sql }
})

describe("PostgreSQL: a session writer with a session it cannot record", () => {
  it.scoped("records its other sessions meanwhile, and tries the failing one again after a growing rest", () =>
    Effect.gen(function* () {
      const { queue, reports, writer, tries, recorded } = yield* writerWithPoison

      // Another worker ran four jobs, two of the failing session and two of a healthy one, and reports them.
      yield* queue.enqueue([job("poison", 1), job("poison", 2), job("healthy", 1), job("healthy", 2)])
      expect(yield* queue.take({ workerId: "runner", limit: 4, leaseMs: 600_000 })).toHaveLength(4)
      yield* reports.report(key("poison", 1), "runner", { done: true })
      yield* writer.vacant("poison")
      yield* until("the first try of the failing session", () => tries.poison === 1)

      // The clock does not move: a writer that slept on the failure before going on would record nothing more.
      yield* reports.report(key("healthy", 1), "runner", { done: true })
      yield* writer.vacant("healthy")
      yield* until("the healthy session's first report", () => recorded.length === 1)
      yield* reports.report(key("healthy", 2), "runner", { done: true })
      yield* until("the healthy session's second report", () => recorded.length === 2)
      expect(recorded).toEqual(["healthy/1/1", "healthy/2/1"])
      // Resting: another report of it, and the others' recordings, do not make it try again.
      yield* reports.report(key("poison", 2), "runner", { done: true })
      yield* TestServices.provideLive(Effect.sleep("100 millis"))
      expect(tries.poison).toBe(1)

      // Tried again when its rest ends: 1 s, then 2 s.
      yield* TestClock.adjust("1 second")
      yield* until("the second try", () => tries.poison === 2)
      yield* TestClock.adjust("1 second")
      yield* TestServices.provideLive(Effect.sleep("100 millis"))
      expect(tries.poison).toBe(2)
      yield* TestClock.adjust("1 second")
      yield* until("the third try", () => tries.poison === 3)
      // Its report is still there, for the next try or another writer.
      expect((yield* reports.pending("poison", 10)).map((report) => jobKeyString(report.key))).toEqual([
        "poison/1/1",
        "poison/2/1"
      ])
    })
  )
  it.scoped("a rest that ended with the session (given up, then claimed again) does not cut the next one short", () =>
    Effect.gen(function* () {
      const { queue, reports, writer, tries } = yield* writerWithPoison
      yield* queue.enqueue([job("poison", 1)])
      yield* queue.take({ workerId: "runner", limit: 1, leaseMs: 600_000 })
      yield* reports.report(key("poison", 1), "runner", { done: true })
      yield* writer.vacant("poison")
      yield* until("the first try", () => tries.poison === 1)
      // Half a rest later the session is given up, claimed again at once, and fails again: a rest of its own.
      yield* TestClock.adjust("500 millis")
      yield* writer.ended("poison")
      yield* writer.vacant("poison")
      yield* until("the second try", () => tries.poison === 2)
      // The first rest's timer goes off: it must not end the second rest.
      yield* TestClock.adjust("500 millis")
      yield* TestServices.provideLive(Effect.sleep("100 millis"))
      expect(tries.poison).toBe(2)
      yield* TestClock.adjust("500 millis")
      yield* until("the third try, when the second rest ends", () => tries.poison === 3)
    })
  )
})

describe("PostgreSQL: a session writer whose LISTEN connection is lost", () => {
  it.scoped("records what was reported while LISTEN was down once it is back, not at its next sweep", () =>
    Effect.gen(function* () {
      const { queue, reports, writer, recorded, sql } = yield* writerWithPoison
      yield* queue.enqueue([job("s", 1), job("s", 2), job("s", 3)])
      expect(yield* queue.take({ workerId: "runner", limit: 3, leaseMs: 600_000 })).toHaveLength(3)
      yield* reports.report(key("s", 1), "runner", { done: true })
      yield* writer.vacant("s")
      yield* until("the first report", () => recorded.length === 1)
      // The server ends every LISTEN connection; the next report comes before LISTEN is back (a second later), so its
      // notification reaches nobody. The clock stands still: the sweep (hourly) never runs.
      expect(yield* endListening(sql)).toBeGreaterThan(0)
      yield* reports.report(key("s", 2), "runner", { done: true })
      yield* until("the report made while LISTEN was down", () => recorded.length === 2)
      // Later reports come through LISTEN again.
      yield* reports.report(key("s", 3), "runner", { done: true })
      yield* until("the report made after", () => recorded.length === 3)
      expect(recorded).toEqual(["s/1/1", "s/2/1", "s/3/1"])
    })
  )
})
