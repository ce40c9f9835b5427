/**
 * PostgreSQL keeps the first 63 bytes of a prepared statement's name: longer names are shortened with a hash of the
 * whole, so that statements whose names differ only past the limit are not taken for one another.
 */
import { describe, expect, it } from "@effect/vitest"
import { serverName } from "../../src/infra/internal/pgPool.js"

describe("prepared statement names", () => {
  it("are kept when PostgreSQL keeps them whole, and shortened apart when it would not", () => {
    expect(serverName("event_store_append_2_checked_standalone")).toBe("event_store_append_2_checked_standalone")
    const long = "event_store_append_2_checked_standalone_with_jobs_complete_1_take_by_kind"
    const longer = `${long}_by_session`
    for (const name of [long, longer]) {
      expect(serverName(name).length).toBeLessThanOrEqual(63)
      expect(serverName(name)).toBe(serverName(name))
    }
    expect(serverName(long)).not.toBe(serverName(longer))
    expect(serverName(long).slice(0, 63)).not.toBe(serverName(longer).slice(0, 63))
  })
})
