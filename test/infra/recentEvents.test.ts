/**
 * The events appended last, as subscribers take them from memory (`RecentEvents`): rows may come in any order (this
 * process's appends as they return, other processes' as their notifications arrive), and a run is only served as far
 * as its positions go on without a gap.
 */
import { describe, expect, it } from "@effect/vitest"
import { makeRecentEvents, type RawEvent } from "../../src/infra/internal/eventStore.js"

const row = (position: number): RawEvent => ({
  position,
  streamId: "s",
  aggregateId: "a",
  sequence: position,
  type: "Happened",
  version: "1",
  data: JSON.stringify({ position }),
  metadata: JSON.stringify({ eventId: `event-${position}` }),
  createdAt: 1_700_000_000_000 + position
})

describe("RecentEvents", () => {
  it("serves a run by position whatever order its rows came in, and says when rows lie beyond a gap", () => {
    const recent = makeRecentEvents()
    recent.add([row(3)])
    recent.add([row(1), row(2)])
    recent.add([row(6)])
    const run = recent.after(0)
    expect(run?.events.map((event) => event.position)).toEqual([1, 2, 3])
    expect(run?.through).toBe(3)
    // Position 6 is here but 4 and 5 are not: the database has rows in the gap, so this is not the last.
    expect(run?.last).toBe(false)
    expect(recent.after(3)).toBeUndefined()
    expect(recent.after(5)).toEqual({ events: [expect.objectContaining({ position: 6 })], through: 6, last: true })
  })

  it("keeps a row that comes twice once, as it first came", () => {
    const recent = makeRecentEvents()
    recent.add([row(1)])
    recent.add([{ ...row(1), data: JSON.stringify({ again: true }) }, row(2)])
    expect(recent.after(0)?.events.map((event) => event.data)).toEqual([{ position: 1 }, { position: 2 }])
    expect(recent.has(2)).toBe(true)
    expect(recent.has(3)).toBe(false)
  })

  it("drops the oldest rows beyond its capacity, and serves what is left", () => {
    const recent = makeRecentEvents(2)
    for (let position = 1; position <= 5; position++) recent.add([row(position)])
    expect(recent.has(1)).toBe(false)
    expect(recent.after(3)?.events.map((event) => event.position)).toEqual([4, 5])
  })
})
