/**
 * What a worker remembers of the attempts it started (`worker/StartedAttempts`), which the lease keeper asks about a
 * job still under the worker's name that no longer runs there: started here, it was lost here and counts as lost;
 * never started here, it was taken without the worker's knowing and is given back. An ended attempt must be remembered
 * until the keeper has looked (a lease and a beat), however many attempts the worker runs meanwhile.
 */
import { describe, expect, it } from "@effect/vitest"
import * as StartedAttempts from "../../src/app/worker/StartedAttempts.js"

const lease = 60_000

const clocked = (cap = 250_000, floor = 0) => {
  let now = 1_750_000_000_000
  const attempts = StartedAttempts.make({ keepMs: 3 * lease, floor, cap, now: () => now })
  return {
    attempts,
    advance: (ms: number) => {
      now += ms
    }
  }
}

/** `count` other attempts started and ended, one every `everyMs`. */
const runOthers = (
  { attempts, advance }: ReturnType<typeof clocked>,
  count: number,
  everyMs: number,
  prefix = "other"
) => {
  for (let index = 0; index < count; index++) {
    attempts.started(`${prefix}:${index}:1`)
    advance(everyMs)
    attempts.ended(`${prefix}:${index}:1`)
  }
}

describe("the attempts a worker started", () => {
  it("an ended attempt is still known a lease and a beat later, though 20,000 others ran meanwhile", () => {
    // Given an attempt that ended here (its report then lost)
    const clock = clocked()
    clock.attempts.started("s:1:1")
    clock.attempts.ended("s:1:1")
    // When the worker runs 20,000 more attempts in the next 100 s (200 a second; before, the last 10,000 were kept)
    runOthers(clock, 20_000, 5)
    // Then the keeper, looking now, still finds it was started here
    expect(clock.attempts.has("s:1:1")).toBe(true)
  })

  it("an ended attempt is forgotten once three leases have passed and another attempt ends", () => {
    const clock = clocked()
    clock.attempts.started("s:1:1")
    clock.attempts.ended("s:1:1")
    clock.advance(3 * lease)
    runOthers(clock, 1, 0)
    expect(clock.attempts.has("s:1:1")).toBe(true)
    clock.advance(1)
    runOthers(clock, 1, 0, "later")
    expect(clock.attempts.has("s:1:1")).toBe(false)
    expect(clock.attempts.has("later:0:1")).toBe(true)
  })

  it("the latest attempts are known however old: a clock that jumps forward, or a keeper late, loses none of them", () => {
    const clock = clocked(250_000, 100)
    clock.attempts.started("s:1:1")
    clock.attempts.ended("s:1:1")
    clock.advance(24 * 3_600_000)
    runOthers(clock, 99, 0)
    expect(clock.attempts.has("s:1:1")).toBe(true)
    // The 101st ended attempt pushes the oldest, long past keepMs, out.
    runOthers(clock, 1, 0, "more")
    expect(clock.attempts.has("s:1:1")).toBe(false)
    expect(clock.attempts.size()).toBe(100)
  })

  it("a running attempt is known however long it runs and however many others end", () => {
    const clock = clocked(100)
    clock.attempts.started("long:1:1")
    runOthers(clock, 1_000, 1_000)
    expect(clock.attempts.has("long:1:1")).toBe(true)
    // Once it ends, it is remembered from then.
    clock.attempts.ended("long:1:1")
    clock.advance(2 * lease)
    runOthers(clock, 50, 0, "after")
    expect(clock.attempts.has("long:1:1")).toBe(true)
  })

  it("an attempt never started here is not known", () => {
    const clock = clocked()
    runOthers(clock, 10, 1)
    expect(clock.attempts.has("s:7:2")).toBe(false)
  })

  it("the cap bounds what is remembered, the oldest forgotten first", () => {
    const clock = clocked(1_000)
    runOthers(clock, 5_000, 1)
    expect(clock.attempts.size()).toBe(1_000)
    expect(clock.attempts.has("other:3999:1")).toBe(false)
    expect(clock.attempts.has("other:4000:1")).toBe(true)
    expect(clock.attempts.has("other:4999:1")).toBe(true)
  })
})
