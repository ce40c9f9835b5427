/**
 * A worker's attempts started about together (`worker/Cohorts`): an outcome is told to wait for the attempts of its
 * session that started before it or within the window after it and have not reported yet, and for nothing else.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cohorts from "../../src/app/worker/Cohorts.js"

const job = (taskId: number, sessionId = "s") => ({ sessionId, taskId, attempt: 1 })

describe("a worker's cohorts", () => {
  it("an outcome waits while attempts started with it have not reported, and stops once they all have", () => {
    const cohorts = Cohorts.make(5)
    for (const taskId of [1, 2, 3]) cohorts.started(job(taskId), 100)
    const first = cohorts.reporting(job(1))
    expect(first()).toBe(true)
    const second = cohorts.reporting(job(2))
    expect([first(), second()]).toEqual([true, true])
    const third = cohorts.reporting(job(3))
    expect([first(), second(), third()]).toEqual([false, false, false])
  })

  it("an attempt that ends without reporting is not waited for", () => {
    const cohorts = Cohorts.make(5)
    cohorts.started(job(1), 100)
    cohorts.started(job(2), 100)
    const first = cohorts.reporting(job(1))
    cohorts.ended(job(2))
    expect(first()).toBe(false)
    // Ending after reporting changes nothing.
    cohorts.ended(job(1))
    expect(first()).toBe(false)
  })

  it("an attempt started alone, or in another session, waits for nothing", () => {
    const cohorts = Cohorts.make(5)
    cohorts.started(job(1), 100)
    cohorts.started(job(2, "other"), 100)
    expect(cohorts.reporting(job(1))()).toBe(false)
    // One never started here (handed back after a restart, say) waits for nothing either.
    expect(cohorts.reporting(job(9))()).toBe(false)
  })

  it("an outcome waits for attempts started within the window before or after it, not for those further apart", () => {
    const cohorts = Cohorts.make(5)
    cohorts.started(job(1), 40)
    cohorts.started(job(2), 95)
    cohorts.started(job(3), 100)
    cohorts.started(job(4), 105)
    cohorts.started(job(5), 106)
    const third = cohorts.reporting(job(3))
    // Waits for 2 (5 ms before) and 4 (5 ms after); not for 1 (a long task started 60 ms before) nor 5 (6 ms after).
    expect(third()).toBe(true)
    cohorts.reporting(job(2))
    expect(third()).toBe(true)
    cohorts.ended(job(4))
    expect(third()).toBe(false)
  })

  it("a window of 0 groups nothing, not even attempts started in the same millisecond", () => {
    const cohorts = Cohorts.make(0)
    for (const taskId of [1, 2, 3]) cohorts.started(job(taskId), 100)
    expect(cohorts.reporting(job(1))()).toBe(false)
    expect(cohorts.reporting(job(2))()).toBe(false)
  })
})
