/**
 * A worker's reports go out in groups (`worker/ReportGroups`): a lone report at once; the reports made while a
 * statement is out, together in the next, with one take for the slots they free; an interrupted report is left out of
 * its group, and one interrupted while its group is out waits for its answer and knows whether it was stored; a failed
 * statement fails every report in it; a statement out when the worker stops is not cut off. The
 * statements here are a stand-in that records what it is given: what one statement stores is the PostgreSQL queue's
 * to test (test/infra/OutcomeReports.pg.test.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Exit, Fiber, Queue, Scope, TestClock } from "effect"
import * as ReportGroups from "../../src/app/worker/ReportGroups.js"
import {
  type AlongsideTake,
  type JobKey,
  type OutcomeReports,
  type ReportedOutcome,
  reportsPerGroup,
  TaskQueueError
} from "../../src/infra/TaskQueue.js"

const key = (taskId: number): JobKey => ({ sessionId: "s", taskId, attempt: 1 })

interface Sent {
  readonly tasks: ReadonlyArray<number>
  readonly take: AlongsideTake | undefined
  /** Opened by the test to let the statement answer (with `fail`: fail it). */
  readonly answer: Deferred.Deferred<void, TaskQueueError>
}

/** Reports that record every statement and answer when the test says. */
const recording = Effect.gen(function* () {
  const sent = yield* Queue.unbounded<Sent>()
  const reports = {
    reportAll: (outcomes: ReadonlyArray<ReportedOutcome>, _workerId: string, take?: AlongsideTake) =>
      Effect.gen(function* () {
        const answer = yield* Deferred.make<void, TaskQueueError>()
        yield* Queue.offer(sent, { tasks: outcomes.map((outcome) => outcome.key.taskId), take, answer })
        yield* Deferred.await(answer)
        return outcomes.map((outcome) => ({ stored: true, writer: `writer of ${outcome.key.taskId}` }))
      })
  } as unknown as OutcomeReports
  const freeing: Array<number> = []
  const groups = yield* ReportGroups.make({
    reports,
    workerId: "w",
    takeNext: (count) => {
      freeing.push(count)
      return { options: { workerId: "w", limit: count, leaseMs: 1_000 }, now: 0, taken: () => undefined }
    }
  })
  /** Report 1 goes out alone; `answer` answers it (stored) once the test has made what it makes meanwhile. */
  const oneOut = Effect.gen(function* () {
    const first = yield* Effect.fork(groups.report(key(1), "one"))
    const lone = yield* Queue.take(sent)
    expect(lone.tasks).toEqual([1])
    const answer = Effect.gen(function* () {
      // Whatever was made meanwhile has reached the group's queue before the answer lets the next group go.
      yield* Effect.yieldNow({ priority: 1_000 })
      yield* Deferred.succeed(lone.answer, undefined)
      expect(yield* Fiber.join(first)).toEqual({ stored: true, writer: "writer of 1" })
    })
    return { answer }
  })
  return { sent, groups, freeing, oneOut }
})

describe("a worker's reports, in groups", () => {
  it.scoped("a lone report goes at once; those made while it is out go together next, with one take for all", () =>
    Effect.gen(function* () {
      const { sent, groups, freeing, oneOut } = yield* recording
      const { answer } = yield* oneOut
      const more = yield* Effect.fork(
        Effect.all(
          [2, 3, 4].map((taskId) => groups.report(key(taskId), taskId)),
          { concurrency: "unbounded" }
        )
      )
      // Made while the first is out: they wait for it.
      yield* Effect.yieldNow({ priority: 1_000 })
      expect(yield* Queue.size(sent)).toBe(0)
      yield* answer
      const group = yield* Queue.take(sent)
      expect(group.tasks).toEqual([2, 3, 4])
      expect(freeing).toEqual([1, 3])
      expect(group.take?.options.limit).toBe(3)
      yield* Deferred.succeed(group.answer, undefined)
      // Each told what was found for its own report.
      expect((yield* Fiber.join(more)).map((found) => found.writer)).toEqual([
        "writer of 2",
        "writer of 3",
        "writer of 4"
      ])
    })
  )

  it.scoped("a report interrupted before its group goes out is left out of it", () =>
    Effect.gen(function* () {
      const { sent, groups, freeing, oneOut } = yield* recording
      const { answer } = yield* oneOut
      const dropped = yield* Effect.fork(groups.report(key(2), "two"))
      const kept = yield* Effect.fork(groups.report(key(3), "three"))
      yield* Effect.yieldNow({ priority: 1_000 })
      yield* Fiber.interrupt(dropped)
      yield* answer
      const group = yield* Queue.take(sent)
      expect(group.tasks).toEqual([3])
      expect(freeing).toEqual([1, 1])
      yield* Deferred.succeed(group.answer, undefined)
      expect((yield* Fiber.join(kept)).stored).toBe(true)
    })
  )

  it.scoped("an attempt interrupted while its report is out waits for the answer, and knows its report is stored", () =>
    Effect.gen(function* () {
      const { sent, groups } = yield* recording
      const out = yield* Effect.fork(groups.report(key(1), "one"))
      const statement = yield* Queue.take(sent)
      const queued = yield* Effect.fork(groups.report(key(2), "two"))
      yield* Effect.yieldNow({ priority: 1_000 })
      // Interrupted as the statement is out: the interruption waits for its answer (the report is stored whatever the
      // attempt does); the report still waiting is left out.
      const interrupting = yield* Effect.fork(Fiber.interrupt(out))
      yield* Fiber.interrupt(queued)
      yield* Effect.yieldNow({ priority: 1_000 })
      expect(interrupting.unsafePoll()).toBeNull()
      yield* Deferred.succeed(statement.answer, undefined)
      expect(Exit.isInterrupted(yield* Fiber.join(interrupting))).toBe(true)
      // Asked once, by the interrupted attempt, which then has nothing to give back.
      expect(groups.storedAsInterrupted(key(1))).toBe(true)
      expect(groups.storedAsInterrupted(key(1))).toBe(false)
      expect(groups.storedAsInterrupted(key(2))).toBe(false)
      // Nothing more went out: the waiting report was withdrawn.
      yield* Effect.yieldNow({ priority: 1_000 })
      expect(yield* Queue.size(sent)).toBe(0)
    })
  )

  it.scoped("a statement that fails fails every report in it, and the next group goes on", () =>
    Effect.gen(function* () {
      const { sent, groups, oneOut } = yield* recording
      const { answer } = yield* oneOut
      const both = yield* Effect.fork(
        Effect.all([groups.report(key(2), "two"), groups.report(key(3), "three")].map(Effect.either), {
          concurrency: "unbounded"
        })
      )
      yield* answer
      const group = yield* Queue.take(sent)
      const error = new TaskQueueError({ operation: "report an outcome", reason: "the database went away" })
      yield* Deferred.fail(group.answer, error)
      const results = yield* Fiber.join(both)
      expect(results.map((result) => Either.isLeft(result) && result.left === error)).toEqual([true, true])
      // The next report goes out as ever.
      const later = yield* Effect.fork(groups.report(key(4), "four"))
      const next = yield* Queue.take(sent)
      expect(next.tasks).toEqual([4])
      yield* Deferred.succeed(next.answer, undefined)
      expect((yield* Fiber.join(later)).stored).toBe(true)
    })
  )

  it.scoped("a group holds at most what one statement stores; the rest go in the next", () =>
    Effect.gen(function* () {
      const { sent, groups, oneOut } = yield* recording
      const { answer } = yield* oneOut
      const count = reportsPerGroup + 4
      const more = yield* Effect.fork(
        Effect.all(
          Array.from({ length: count }, (_, index) => groups.report(key(index + 2), index)),
          { concurrency: "unbounded" }
        )
      )
      yield* answer
      const full = yield* Queue.take(sent)
      expect(full.tasks).toHaveLength(reportsPerGroup)
      yield* Deferred.succeed(full.answer, undefined)
      const rest = yield* Queue.take(sent)
      expect(rest.tasks).toHaveLength(4)
      yield* Deferred.succeed(rest.answer, undefined)
      expect(yield* Fiber.join(more)).toHaveLength(count)
    })
  )

  it.effect("the worker stops: a report out is answered, one waiting is interrupted, one made after is not kept", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const { sent, groups } = yield* Scope.extend(recording, scope)
      const out = yield* Effect.fork(groups.report(key(1), "one"))
      const statement = yield* Queue.take(sent)
      const queued = yield* Effect.fork(groups.report(key(2), "two"))
      yield* Effect.yieldNow({ priority: 1_000 })
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.yieldNow({ priority: 1_000 })
      // The statement out is not cut off (what it took would be lost): the stop waits for its answer.
      expect(closing.unsafePoll()).toBeNull()
      yield* Deferred.succeed(statement.answer, undefined)
      yield* Fiber.join(closing)
      expect(yield* Fiber.join(out)).toEqual({ stored: true, writer: "writer of 1" })
      expect(Exit.isInterrupted(yield* Fiber.await(queued))).toBe(true)
      expect(Exit.isInterrupted(yield* Effect.exit(groups.report(key(3), "three")))).toBe(true)
      // Nothing more went out.
      expect(yield* Queue.size(sent)).toBe(0)
    })
  )

  it.scoped("a group whose reports say more are on their way waits for them, and goes out with them all", () =>
    Effect.gen(function* () {
      const { sent, groups, freeing } = yield* recording
      let toCome = 3
      const awaiting = () => toCome > 0
      const reportOne = (taskId: number) =>
        Effect.gen(function* () {
          toCome -= 1
          const fiber = yield* Effect.fork(groups.report(key(taskId), taskId, awaiting))
          yield* Effect.yieldNow({ priority: 1_000 })
          return fiber
        })
      const reported = [yield* reportOne(1), yield* reportOne(2)]
      // Two of three made, on the test's clock, which does not move: nothing has gone out.
      expect(yield* Queue.size(sent)).toBe(0)
      reported.push(yield* reportOne(3))
      const group = yield* Queue.take(sent)
      expect(group.tasks).toEqual([1, 2, 3])
      expect(freeing).toEqual([3])
      yield* Deferred.succeed(group.answer, undefined)
      for (const fiber of reported) expect((yield* Fiber.join(fiber)).stored).toBe(true)
    })
  )

  it.scoped("a group waits no longer than gatherMs for reports that do not come", () =>
    Effect.gen(function* () {
      const { sent, groups } = yield* recording
      const lone = yield* Effect.fork(groups.report(key(1), "one", () => true))
      yield* Effect.yieldNow({ priority: 1_000 })
      yield* TestClock.adjust("4 millis")
      expect(yield* Queue.size(sent)).toBe(0)
      yield* TestClock.adjust("1 millis")
      const group = yield* Queue.take(sent)
      expect(group.tasks).toEqual([1])
      yield* Deferred.succeed(group.answer, undefined)
      expect((yield* Fiber.join(lone)).stored).toBe(true)
    })
  )
})
