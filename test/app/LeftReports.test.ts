/**
 * A run of one session records its session's reports that nobody records (`worker/LeftReports`): those with no live
 * writer, or whose writer is a process of this host that is gone, batch by batch; a live writer's are left to it, and
 * so are other sessions'. The queue here is a stand-in that serves what the test sets: the PostgreSQL statements are
 * tested in test/infra/OutcomeReports.pg.test.ts, and the whole path (workers that reported and stopped, then a run of
 * the session) in test/app/WorkerStop.test.ts.
 */
import * as os from "node:os"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { recordLeft } from "../../src/app/worker/LeftReports.js"
import { type OutcomeReports, type PendingReport, TaskQueueError } from "../../src/infra/TaskQueue.js"

const report = (taskId: number): PendingReport => ({
  key: { sessionId: "s", taskId, attempt: 1 },
  workerId: "reporter",
  outcome: null
})

/** Reports of session "s" (`stored`) behind writer `writer`; `record` takes what it is given out of `stored`. */
const stand = (options: {
  readonly writer: string | undefined
  readonly stored: Array<PendingReport>
  readonly sessions?: ReadonlyArray<string>
  readonly keep?: boolean
}) => {
  const recorded: Array<ReadonlyArray<number>> = []
  const reports = {
    unrecorded: () =>
      Effect.succeed(
        options.stored.length === 0
          ? []
          : (options.sessions ?? ["s"]).map((sessionId) => ({ sessionId, writer: options.writer }))
      ),
    pending: (_sessionId: string, limit: number) => Effect.succeed(options.stored.slice(0, limit))
  } as unknown as OutcomeReports
  const look = recordLeft({
    reports,
    sessionId: "s",
    interval: "1 second",
    record: (_sessionId, batch) =>
      Effect.sync(() => {
        recorded.push(batch.map((pending) => pending.key.taskId))
        if (options.keep !== true) options.stored.splice(0, batch.length)
        return { ended: false }
      })
  })
  return { look, recorded }
}

const reports = (count: number) => Array.from({ length: count }, (_, index) => report(index + 1))

describe("a run of one session records its reports that nobody records", () => {
  it.effect("no live writer: every report, sixteen to an append", () =>
    Effect.gen(function* () {
      const stored = reports(20)
      const { look, recorded } = stand({ writer: undefined, stored })
      expect(yield* look).toBe(true)
      expect(recorded.map((batch) => batch.length)).toEqual([16, 4])
      expect(stored).toEqual([])
    })
  )

  it.effect("a writer that is a process of this host that is gone: recorded as if there were none", () =>
    Effect.gen(function* () {
      const stored = reports(3)
      const { look, recorded } = stand({ writer: `${os.hostname()}/4194303/deadbeef`, stored })
      expect(yield* look).toBe(true)
      expect(recorded).toEqual([[1, 2, 3]])
    })
  )

  it.effect("a live writer's reports, and other sessions', are left alone", () =>
    Effect.gen(function* () {
      const live = stand({ writer: "elsewhere/1/cafe", stored: reports(3) })
      expect(yield* live.look).toBe(false)
      expect(live.recorded).toEqual([])
      const other = stand({ writer: undefined, stored: reports(3), sessions: ["t"] })
      expect(yield* other.look).toBe(false)
      expect(other.recorded).toEqual([])
    })
  )

  it.effect("reports still there after they were recorded: tried once, not again at once", () =>
    Effect.gen(function* () {
      const { look, recorded } = stand({ writer: undefined, stored: reports(16), keep: true })
      expect(yield* look).toBe(true)
      expect(recorded).toHaveLength(1)
    })
  )

  it.effect("a look that fails says so and counts as found, so the next comes soon", () =>
    Effect.gen(function* () {
      const reports = {
        unrecorded: () => Effect.fail(new TaskQueueError({ operation: "look", reason: "the database is down" }))
      } as unknown as OutcomeReports
      const look = recordLeft({ reports, sessionId: "s", interval: "1 second", record: () => Effect.die("no") })
      expect(yield* look).toBe(true)
    })
  )
})
