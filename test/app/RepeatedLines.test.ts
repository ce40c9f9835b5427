/**
 * `RepeatedLines`: a warning repeated word for word is printed once a window, and the next time it is printed it says
 * how many times it was held back; different lines never hold each other back.
 */
import { describe, expect, it } from "@effect/vitest"
import * as RepeatedLines from "../../src/app/cli/RepeatedLines.js"

const clock = () => {
  let now = 0
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms
    }
  }
}

describe("RepeatedLines", () => {
  it("holds back the same line within the window and counts it when it is printed again", () => {
    const time = clock()
    const lines = RepeatedLines.make(60_000, time.now)
    expect(lines.admit("warn: the store is away")).toBe("warn: the store is away")
    for (let second = 1; second < 60; second++) {
      time.advance(1_000)
      expect(lines.admit("warn: the store is away")).toBeUndefined()
    }
    time.advance(1_000)
    expect(lines.admit("warn: the store is away")).toBe(
      "warn: the store is away (59 more times since it was last printed)"
    )
    time.advance(60_000)
    // Nothing held back since: the line as it is.
    expect(lines.admit("warn: the store is away")).toBe("warn: the store is away")
    time.advance(1_000)
    expect(lines.admit("warn: the store is away")).toBeUndefined()
    time.advance(60_000)
    expect(lines.admit("warn: the store is away")).toBe(
      "warn: the store is away (1 more time since it was last printed)"
    )
  })

  it("tells at the end how many times each line was held back since it was last printed, once", () => {
    const time = clock()
    const lines = RepeatedLines.make(60_000, time.now)
    for (const line of ["a", "b", "a", "a", "c", "b"]) lines.admit(line)
    expect(lines.heldBack()).toEqual([
      "a (2 more times since it was last printed)",
      "b (1 more time since it was last printed)"
    ])
    expect(lines.heldBack()).toEqual([])
  })

  it("never holds back a line that differs, even by a session id or an attempt", () => {
    const time = clock()
    const lines = RepeatedLines.make(60_000, time.now)
    const said = ["a#1 failed", "a#2 failed", "b#1 failed", "a#1 failed", "A#1 failed"].map(lines.admit)
    expect(said).toEqual(["a#1 failed", "a#2 failed", "b#1 failed", undefined, "A#1 failed"])
  })

  it("keeps memory bounded: past a thousand lines, the one printed longest ago is forgotten", () => {
    const time = clock()
    const lines = RepeatedLines.make(60_000, time.now)
    // All within one window: nothing is past it, and still no more than the bound is kept.
    for (let index = 0; index < 5_000; index++) {
      expect(lines.admit(`line ${index}`)).toBe(`line ${index}`)
      time.advance(1)
    }
    expect(lines.size()).toBe(RepeatedLines.remembered)
    // The oldest were forgotten (printed again); the newest are still held back.
    expect(lines.admit("line 0")).toBe("line 0")
    expect(lines.admit("line 4999")).toBeUndefined()
  })
})
