/**
 * `HeldAttempts.isStalled`: when `sessions` and `show` call a running session stalled (nobody serves it), from its jobs.
 */
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import { describe, expect, it } from "vitest"
import { isStalled, stalledAfterMs } from "../../src/app/HeldAttempts.js"
import type { ListedJob } from "../../src/infra/TaskQueue.js"

const now = 1_000_000
const job = (fields: Partial<ListedJob> = {}): ListedJob => ({
  sessionId: "s",
  taskId: 1,
  attempt: 1,
  kind: "Processing",
  runAt: now,
  payload: {},
  ...fields
})

/** A worker of this host whose process has ended. */
const deadWorker = (): string => {
  const ended = spawnSync(process.execPath, ["-e", ""])
  return `${os.hostname()}/${ended.pid}/dead`
}

describe("isStalled", () => {
  it("a job held under a live lease by a live or remote worker: served", () => {
    const lease = { leaseExpiresAt: now + 1_000 }
    expect(isStalled([job({ workerId: "elsewhere/1/w", ...lease })], now)).toBe(false)
    expect(isStalled([job({ workerId: `${os.hostname()}/${process.pid}/me`, ...lease })], now)).toBe(false)
    // One live holder is enough, whatever the other jobs.
    const old = job({ taskId: 2, runAt: now - 60_000 })
    expect(isStalled([old, job({ workerId: "elsewhere/1/w", ...lease })], now)).toBe(false)
  })

  it("a job takeable for a while and taken by nobody, or held by a process that is gone: stalled", () => {
    expect(isStalled([job({ runAt: now - stalledAfterMs })], now)).toBe(true)
    expect(isStalled([job({ workerId: deadWorker(), leaseExpiresAt: now + 60_000 })], now)).toBe(true)
    // A lease that ran out is nobody's.
    expect(isStalled([job({ workerId: "elsewhere/1/w", leaseExpiresAt: now - 1, runAt: now - 60_000 })], now)).toBe(
      true
    )
  })

  it("a job just dispatched, a retry waiting out its backoff, or no jobs at all: not stalled", () => {
    expect(isStalled([job({ runAt: now - stalledAfterMs + 1 })], now)).toBe(false)
    expect(isStalled([job({ runAt: now + 30_000 })], now)).toBe(false)
    expect(isStalled([], now)).toBe(false)
  })
})
