/**
 * PostgreSQL: one writer per session. Workers serving every session, each with a store of its own (as processes on
 * other machines), run one plan: one of them writes the session, the others report their outcomes into their jobs'
 * rows and append nothing; every task completes once, and the log still says which worker ran each attempt. When
 * the writer stops, the next report elects another; reports whose writer died (its lease ran out, or its process on
 * this host is gone) are recorded by the sweep.
 */

import * as os from "node:os"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Fiber, Layer, Redacted, Schedule } from "effect"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Worker from "../../src/app/Worker.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import type { NodeKind } from "../../src/domain/Task.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import { within } from "../infra/EventStoreContract.js"
import { freshPgDatabase, pgStoreRecordingPrepared } from "../infra/fixtures/databases.js"
import { independentTasks } from "./fixtures/plans.js"
import { plannerRuntime } from "./fixtures/runtime.js"

/** Completes each task after a short sleep, so that every worker gets some. */
const sleepy = (ms: number): ExecutorService => ({
  name: "sleepy",
  execute: (context) => Effect.as(Effect.sleep(ms), Outcome.Completed({ result: `task ${context.taskId} done` }))
})

/** Completes tasks 1 to `open` after `first`, and the others once `gate` is opened. */
const gatedAfter = (open: number, first: Effect.Effect<void>) =>
  Effect.map(Deferred.make<void>(), (gate) => {
    const gated: ExecutorService = {
      name: "gated",
      execute: (context) =>
        Effect.as(
          context.taskId <= open ? first : Deferred.await(gate),
          Outcome.Completed({ result: `task ${context.taskId} done` })
        )
    }
    return { gate, gated }
  })

/** The planner's process: records plans, reads the log, runs nothing. */
const plannerProcess = (url: string) =>
  Effect.map(Layer.build(plannerRuntime(PgEventStore.layer({ url: Redacted.make(url) }), sleepy(0))), (context) => ({
    service: Context.get(context, PlannerService),
    store: Context.get(context, PlannerStore),
    // The store's own client, which the runtime's type does not name.
    sql: Context.unsafeGet(context as Context.Context<unknown>, SqlClient.SqlClient)
  }))

/** A worker's process, its prepared statements (appends, reports, takes) recorded by name. */
const workerProcess = (url: string, workerId: string, executor: ExecutorService, kinds?: ReadonlyArray<NodeKind>) =>
  Effect.gen(function* () {
    const { names, layer } = yield* pgStoreRecordingPrepared(url)
    const context = yield* Layer.build(plannerRuntime(layer, executor))
    const fiber = yield* Effect.fork(
      Worker.run({
        workerId,
        concurrency: 2,
        checkAttachments: false,
        warmTokenizer: false,
        livenessCheckInterval: "100 millis",
        onAttempt: (report) => Effect.sync(() => (report._tag === "Finished" ? outcomes.push(report.outcome) : 0)),
        ...(kinds === undefined ? {} : { kinds })
      }).pipe(Effect.provide(context))
    )
    const outcomes: Array<string> = []
    const appends = () => names.filter((name) => name.startsWith("event_store_append")).length
    const reports = () => names.filter((name) => name.startsWith("planner_jobs_report")).length
    return { workerId, fiber, appends, reports, outcomes }
  })

const plan = (service: Context.Tag.Service<PlannerService>, sessionId: string, count: number) =>
  Effect.flatMap(Clock.currentTimeMillis, (at) =>
    service.execute(
      sessionId,
      new Initialize({
        request: `${count} independent steps`,
        tasks: independentTasks(count),
        config: { ...defaultConfig, maxParallel: count },
        at
      })
    )
  )

const finished = (service: Context.Tag.Service<PlannerService>, sessionId: string) =>
  Effect.gen(function* () {
    const state = yield* service.state(sessionId)
    if (!Planner.isFinished(state)) return yield* Effect.fail("not yet")
    return state
  }).pipe(Effect.retry({ times: 3_000 }), Effect.delay("10 millis"), Effect.eventually, within(60, "the plan"))

/** Waits until no session has a writer (a writer gives up a session once it has ended); fails saying who kept one. */
const writersGone = (planner: { readonly sql: SqlClient.SqlClient }) =>
  Effect.gen(function* () {
    const rows = yield* planner.sql<{ session_id: string; worker_id: string }>`
      SELECT session_id, worker_id FROM planner_session_writers`
    if (rows.length > 0) return yield* Effect.fail(rows)
  }).pipe(
    Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 1_000 }),
    Effect.mapError((rows) => new Error(`sessions still have writers: ${JSON.stringify(rows)}`)),
    within(30, "the writers to give up")
  )

/** Every task completed exactly once, by the attempts the log has claimed. */
const completedOnce = (events: ReadonlyArray<{ readonly _tag: string }>, count: number) => {
  const completions = new Map<number, number>()
  for (const event of events) {
    if (event._tag === "TaskStatusUpdated" && "status" in event && event.status === "Completed" && "taskId" in event) {
      const taskId = Number(event.taskId)
      completions.set(taskId, (completions.get(taskId) ?? 0) + 1)
    }
  }
  expect(completions.size).toBe(count)
  expect([...completions.values()].every((times) => times === 1)).toBe(true)
}

describe("PostgreSQL: one writer per session", () => {
  it.live("three workers on one plan: one writes the session, the others only report; every task completes once", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const planner = yield* plannerProcess(url)
        const workers = yield* Effect.all(
          ["worker-a", "worker-b", "worker-c"].map((id) => workerProcess(url, id, sleepy(5)))
        )
        yield* plan(planner.service, "shared", 60)
        const state = yield* finished(planner.service, "shared")
        // The session ended: its writer gives it up while it runs on, whoever recorded the end.
        yield* writersGone(planner)
        for (const worker of workers) yield* Fiber.interrupt(worker.fiber)

        expect(state.status).toBe("Succeeded")
        const events = (yield* planner.store.load("shared")).map((record) => record.event)
        completedOnce(events, 60)
        // The log says which worker ran each attempt: every attempt claimed once, by the worker that reported it.
        const claimedBy = events.flatMap((event) => (event._tag === "TaskClaimed" ? [event.workerId] : []))
        expect(claimedBy).toHaveLength(60)
        const ran = new Set(claimedBy)
        expect(ran.size).toBeGreaterThanOrEqual(2)

        // One writer appended; every other worker that ran tasks reported them and appended nothing.
        const writers = workers.filter((worker) => worker.appends() > 0)
        expect(writers).toHaveLength(1)
        for (const worker of workers) {
          if (worker === writers[0] || !ran.has(worker.workerId)) continue
          expect(worker.reports()).toBeGreaterThan(0)
        }
        // The queue holds nothing.
        expect(yield* planner.service.queue.list("shared")).toEqual([])
      })
    )
  )

  it.live("a writer that records the session's end with its own outcome gives the session up while it runs on", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const planner = yield* plannerProcess(url)
        // One worker. Task 1 completes at once: its report finds no writer and makes the worker the writer. The others
        // wait until it is, so their outcomes, the last among them, go straight to the log.
        const { gate, gated } = yield* gatedAfter(1, Effect.void)
        const worker = yield* workerProcess(url, "worker-a", gated)
        yield* plan(planner.service, "alone", 8)
        yield* Effect.gen(function* () {
          const rows = yield* planner.sql<{ worker_id: string }>`SELECT worker_id FROM planner_session_writers`
          const state = yield* planner.service.state("alone")
          if (rows.length === 0 || Planner.task(state, 1)?.status !== "Completed") return yield* Effect.fail("not yet")
        }).pipe(Effect.retry({ times: 3_000 }), Effect.delay("5 millis"), Effect.eventually, within(30, "a writer"))
        const reportsBefore = worker.reports()
        yield* Deferred.succeed(gate, undefined)
        const state = yield* finished(planner.service, "alone")
        expect(state.status).toBe("Succeeded")
        // Nothing more was reported: the writer recorded the rest, the session's end among it, itself.
        expect(worker.reports()).toBe(reportsBefore)
        yield* writersGone(planner)
        yield* Fiber.interrupt(worker.fiber)
      })
    )
  )

  it.live("the writer stops mid-plan: the next report elects another, and the plan finishes", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const planner = yield* plannerProcess(url)
        // The first ten tasks complete at once; the others wait until the writer has been stopped.
        const { gate, gated } = yield* gatedAfter(10, Effect.sleep(5))
        const workers = yield* Effect.all(["worker-a", "worker-b"].map((id) => workerProcess(url, id, gated)))
        yield* plan(planner.service, "handover", 40)
        // Wait until the first ten are recorded, by a writer elected among the workers, then stop that writer's worker.
        const writer = yield* Effect.gen(function* () {
          const rows = yield* planner.sql<{ worker_id: string }>`SELECT worker_id FROM planner_session_writers`
          const state = yield* planner.service.state("handover")
          const done = state.tasks.filter((task) => task.status === "Completed").length
          if (rows.length === 0 || done < 10) return yield* Effect.fail("not yet")
          return rows[0]?.worker_id
        }).pipe(Effect.retry({ times: 3_000 }), Effect.delay("5 millis"), Effect.eventually, within(30, "a writer"))
        const [stopped, going] = workers[0]?.workerId === writer ? [workers[0], workers[1]] : [workers[1], workers[0]]
        if (stopped === undefined || going === undefined) throw new Error("two workers")
        yield* Fiber.interrupt(stopped.fiber)
        const appendsBefore = going.appends()
        yield* Deferred.succeed(gate, undefined)

        const state = yield* finished(planner.service, "handover")
        yield* Fiber.interrupt(going.fiber)
        expect(state.status).toBe("Succeeded")
        completedOnce(
          (yield* planner.store.load("handover")).map((record) => record.event),
          40
        )
        // The worker left became the writer and recorded the rest.
        expect(going.appends()).toBeGreaterThan(appendsBefore)
      })
    )
  )

  it.live("reports whose writer died are recorded: after its lease runs out, or at once when its process is gone", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const planner = yield* plannerProcess(url)
        const now = yield* Clock.currentTimeMillis
        // Writers nobody runs: one on another machine whose lease runs out soon, one a process of this host that is
        // gone (no process has the largest pid) under a lease of an hour.
        const gone = `${os.hostname()}/4194303/deadbeef`
        yield* planner.sql`
          INSERT INTO planner_session_writers (session_id, worker_id, lease_expires_at)
          VALUES ('lapsed', 'elsewhere/1/cafe', ${now + 400}), ('gone', ${gone}, ${now + 3_600_000})`
        const worker = yield* workerProcess(url, "worker-a", sleepy(5))
        yield* plan(planner.service, "lapsed", 6)
        yield* plan(planner.service, "gone", 6)
        for (const sessionId of ["lapsed", "gone"]) {
          const state = yield* finished(planner.service, sessionId)
          expect(state.status).toBe("Succeeded")
          completedOnce(
            (yield* planner.store.load(sessionId)).map((record) => record.event),
            6
          )
        }
        yield* Fiber.interrupt(worker.fiber)
        expect(worker.reports()).toBeGreaterThan(0)
        expect(worker.appends()).toBeGreaterThan(0)
      })
    )
  )

  it.live("a failure reported to the writer that asks for a revised plan is settled by the writer", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const planner = yield* plannerProcess(url)
        const now = yield* Clock.currentTimeMillis
        // worker-a writes the session (its row is there before it starts; its sweep finds it its own); worker-b serves
        // only the step that fails, so its failure reaches the log through worker-a.
        yield* planner.sql`
          INSERT INTO planner_session_writers (session_id, worker_id, lease_expires_at)
          VALUES ('replan', 'worker-a', ${now + 60_000})`
        const failing: ExecutorService = {
          name: "failing",
          execute: (context) =>
            Effect.succeed(
              context.attempt === 1
                ? Outcome.Failed({ error: "the service is busy", retryable: true })
                : Outcome.Failed({ error: "the step cannot work this way", retryable: false })
            )
        }
        const writer = yield* workerProcess(url, "worker-a", sleepy(5), ["Processing"])
        const reporter = yield* workerProcess(url, "worker-b", failing, ["UnitTest"])
        yield* Effect.flatMap(Clock.currentTimeMillis, (at) =>
          planner.service.execute(
            "replan",
            new Initialize({
              request: "one step that works, one that fails",
              tasks: [
                { id: 1, description: "build it", kind: "Processing", dependsOn: [], attachments: [] },
                { id: 2, description: "test it", kind: "UnitTest", dependsOn: [], attachments: [] }
              ],
              config: {
                ...defaultConfig,
                maxParallel: 2,
                onFailure: "replan",
                backoff: { initialDelayMs: 10, factor: 2, maxDelayMs: 50 }
              },
              at
            })
          )
        )
        yield* finished(planner.service, "replan")
        yield* Fiber.interrupt(writer.fiber)
        yield* Fiber.interrupt(reporter.fiber)
        const types = (yield* planner.store.load("replan")).map((record) => record.event._tag)
        expect(types).toContain("TaskRetryScheduled")
        expect(types).toContain("ReplanRequested")
        // The reporter says what it knows: the first failure is retryable, the writer decides; the second is final.
        expect(reporter.outcomes).toEqual(["retry-pending", "failed"])
        expect(types.some((type) => type === "ReplanSkipped" || type === "TaskReplanned")).toBe(true)
        expect(reporter.reports()).toBeGreaterThan(0)
        expect(reporter.appends()).toBe(0)
      })
    )
  )

  it.live("outcomes too large for a notification are read back by the writer, whole", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const planner = yield* plannerProcess(url)
        const large: ExecutorService = {
          name: "large",
          execute: (context) =>
            Effect.as(Effect.sleep(5), Outcome.Completed({ result: `${context.taskId}:${"é".repeat(5_000)}` }))
        }
        const workers = yield* Effect.all(["worker-a", "worker-b"].map((id) => workerProcess(url, id, large)))
        yield* plan(planner.service, "large", 12)
        const state = yield* finished(planner.service, "large")
        for (const worker of workers) yield* Fiber.interrupt(worker.fiber)
        expect(state.status).toBe("Succeeded")
        expect(state.tasks.map((task) => task.result)).toEqual(
          state.tasks.map((task) => `${task.id}:${"é".repeat(5_000)}`)
        )
        expect(workers.reduce((sum, worker) => sum + worker.reports(), 0)).toBeGreaterThan(0)
      })
    )
  )
})
