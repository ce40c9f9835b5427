/**
 * `HeldAttempts.isStalled`: when `sessions` and `show` call a running session stalled (nobody serves it), from its jobs.
 */
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Schedule } from "effect"
import { isStalled, makeStalled, stalledAfterMs } from "../../src/app/HeldAttempts.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Worker from "../../src/app/Worker.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { echo } from "../../src/infra/EchoExecutor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import type { ListedJob } from "../../src/infra/TaskQueue.js"
import { independentTasks } from "./fixtures/plans.js"
import { plannerRuntime } from "./fixtures/runtime.js"

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

describe("makeStalled", () => {
  it.live("a session whose job waits while a live worker is busy with another session's: waiting its turn", () =>
    Effect.gen(function* () {
      const service = yield* PlannerService
      // Dispatched long ago (at 1 ms): takeable for far longer than `stalledAfterMs`, and nobody took them.
      for (const sessionId of ["busy", "waiting"]) {
        yield* service.execute(
          sessionId,
          new Initialize({ request: "steps", tasks: independentTasks(1), config: defaultConfig, at: 1 })
        )
      }
      const state = yield* service.state("waiting")
      const nobodyWorks = yield* makeStalled
      expect(yield* nobodyWorks("waiting", state)).toBe(true)
      // A worker of another host takes the other session's job: it will come to this one.
      const [taken] = yield* service.queue.take({
        workerId: "elsewhere/1/w",
        limit: 1,
        leaseMs: 60_000,
        sessionId: "busy"
      })
      expect(taken?.sessionId).toBe("busy")
      const someoneWorks = yield* makeStalled
      expect(yield* someoneWorks("waiting", state)).toBe(false)
      expect(yield* someoneWorks("busy", yield* service.state("busy"))).toBe(false)
    }).pipe(Effect.provide(Layer.fresh(plannerRuntime(MemoryEventStore.layer(), echo))))
  )

  it.live("a worker announces what it serves while it runs, renews it, and withdraws when it stops", () =>
    Effect.gen(function* () {
      const service = yield* PlannerService
      const registry = service.queue.workers
      if (registry === undefined) throw new Error("the queue keeps the workers' announcements")
      const workerId = "here/1/announcing"
      const worker = yield* Effect.fork(
        Worker.run({
          workerId,
          kinds: ["ToolCall", "Analysis"],
          leaseMs: 300,
          checkAttachments: false,
          warmTokenizer: false
        })
      )
      const announced = Effect.flatMap(Clock.currentTimeMillis, (now) => registry.live(now)).pipe(
        Effect.filterOrFail(
          (workers) => workers.length > 0,
          () => "not announced yet"
        ),
        Effect.retry(Schedule.spaced("10 millis")),
        Effect.timeout("10 seconds")
      )
      expect(yield* announced).toMatchObject([{ workerId, kinds: ["ToolCall", "Analysis"] }])
      // Renewed before it runs out (a lease of 300 ms): still there a second later.
      yield* Effect.sleep("1 second")
      expect((yield* announced).map((worker) => worker.workerId)).toEqual([workerId])
      yield* Fiber.interrupt(worker)
      expect(yield* registry.live(yield* Clock.currentTimeMillis)).toEqual([])
    }).pipe(Effect.provide(Layer.fresh(plannerRuntime(MemoryEventStore.layer(), echo))))
  )

  it.live("a session whose job is of a kind no live worker serves: stalled, however busy the workers are", () =>
    Effect.gen(function* () {
      const service = yield* PlannerService
      const registry = service.queue.workers
      if (registry === undefined) throw new Error("the queue keeps the workers' announcements")
      for (const sessionId of ["busy", "waiting"]) {
        yield* service.execute(
          sessionId,
          new Initialize({ request: "steps", tasks: independentTasks(1), config: defaultConfig, at: 1 })
        )
      }
      const state = yield* service.state("waiting")
      const kind = state.tasks[0]?.kind ?? "Processing"
      const other = kind === "ToolCall" ? "Analysis" : "ToolCall"
      const workerId = "elsewhere/1/w"
      const expiresAt = Date.now() + 60_000
      yield* service.queue.take({ workerId, limit: 1, leaseMs: 60_000, sessionId: "busy" })
      const stalled = () => Effect.flatMap(makeStalled, (look) => look("waiting", state))
      // It serves the waiting task's kind: the session waits its turn.
      yield* registry.announce({ workerId, kinds: [kind], expiresAt })
      expect(yield* stalled()).toBe(false)
      // It serves other kinds only: nobody will take the task, busy as it is (before, that made it "waiting").
      yield* registry.announce({ workerId, kinds: [other], expiresAt })
      expect(yield* stalled()).toBe(true)
      // It serves the kind, but for another session only (`planner run`'s own worker).
      yield* registry.announce({ workerId, kinds: [kind], sessionId: "busy", expiresAt })
      expect(yield* stalled()).toBe(true)
      // An announcement that ran out says nothing: a worker busy anywhere is taken to serve every kind.
      yield* registry.announce({ workerId, kinds: [other], expiresAt: Date.now() - 1 })
      expect(yield* stalled()).toBe(false)
    }).pipe(Effect.provide(Layer.fresh(plannerRuntime(MemoryEventStore.layer(), echo))))
  )
})
