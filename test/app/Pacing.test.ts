/**
 * The pace of a worker's periodic looks (`worker/Pacing`): every interval while a look finds something to watch or the
 * worker was busy, less often while neither, the wait doubling up to the quiet interval; and which processes a worker
 * watches for the dead-worker sweep (`isOtherLocalWorker`).
 */
import * as os from "node:os"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { makeActivity, paced } from "../../src/app/worker/Pacing.js"
import { isOtherLocalWorker } from "../../src/app/worker/WorkerIdentity.js"

describe("the pace of a worker's looks", () => {
  it.effect("every interval while they find something or the worker is busy; slower while neither, up to quiet", () =>
    Effect.gen(function* () {
      const looks: Array<number> = []
      let finds = true
      const activity = makeActivity()
      const busy = activity.since()
      const check = Effect.map(TestClock.currentTimeMillis, (now) => {
        looks.push(now)
        return finds
      })
      const pace = yield* Effect.fork(paced({ interval: "1 second", quiet: "8 seconds", check, busy }))
      yield* TestClock.adjust("3 seconds")
      expect(looks).toEqual([1_000, 2_000, 3_000])
      // Nothing found and idle: 2, 4, 8, then 8 seconds apart.
      finds = false
      yield* TestClock.adjust("30 seconds")
      expect(looks).toEqual([1_000, 2_000, 3_000, 4_000, 6_000, 10_000, 18_000, 26_000])
      // Busy in the meantime: the next look after that is one interval later, and the waits grow again from there.
      activity.touch()
      yield* TestClock.adjust("1 second")
      expect(looks.slice(8)).toEqual([34_000])
      yield* TestClock.adjust("3 seconds")
      expect(looks.slice(8)).toEqual([34_000, 35_000, 37_000])
      // Found something: every interval again.
      finds = true
      yield* TestClock.adjust("4 seconds")
      expect(looks.slice(11)).toEqual([41_000])
      yield* TestClock.adjust("2 seconds")
      expect(looks.slice(11)).toEqual([41_000, 42_000, 43_000])
      yield* Fiber.interrupt(pace)
    })
  )

  it("each reader of the worker's activity asks for itself", () => {
    const activity = makeActivity()
    const first = activity.since()
    const second = activity.since()
    expect(first()).toBe(false)
    activity.touch()
    expect([first(), first(), second(), second()]).toEqual([true, false, true, false])
  })

  it("the dead-worker sweep watches the other processes of this host, alive or not, and no other", () => {
    const host = os.hostname()
    expect(isOtherLocalWorker(`${host}/${process.pid}/me`)).toBe(false)
    expect(isOtherLocalWorker(`${host}/${process.pid + 1}/sibling`)).toBe(true)
    expect(isOtherLocalWorker(`${host}/999999999/gone`)).toBe(true)
    expect(isOtherLocalWorker(`elsewhere-${host}/${process.pid + 1}/remote`)).toBe(false)
    expect(isOtherLocalWorker("a worker named by hand")).toBe(false)
    expect(isOtherLocalWorker(`${host}/0/nobody`)).toBe(false)
  })
})
