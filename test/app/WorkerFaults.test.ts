/**
 * The worker when the store refuses writes for a while (an outage injected in the SQLite database by a trigger; see
 * `fixtures/outage.ts`). A claim, an outcome or a timer that could not be recorded must be tried again: dropping any
 * of them used to leave a plan stuck for good (a dispatched task nobody claims, a retry nobody dispatches) or cost a
 * task an attempt.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Context, Deferred, Duration, Effect, Fiber, Layer, Option } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { ClaimTask, CompactContext, Initialize } from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { EventStore } from "../../src/infra/EventStore.js"
import type { ExecutorService } from "../../src/infra/Executor.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { within } from "../infra/EventStoreContract.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import * as Outage from "./fixtures/outage.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const script = (json: unknown) =>
  ScriptExecutor.parse(JSON.stringify(json), "faults.json").pipe(Effect.map(ScriptExecutor.make))

const config = (overrides: Partial<PlannerConfig> = {}): PlannerConfig => ({
  ...defaultConfig,
  backoff: { initialDelayMs: 50, factor: 2, maxDelayMs: 200 },
  leaseMs: 2_000,
  ...overrides
})

const oneTask = (description: string): ReadonlyArray<TaskPlan> => [
  { id: 1, description, kind: "Processing", dependsOn: [], attachments: [] }
]

/** A SQLite store with the outage trigger installed, and the planner's services over it. */
const withFaultyStore = <A, E>(
  executor: ExecutorService,
  body: Effect.Effect<A, E, Layer.Layer.Success<ReturnType<typeof plannerRuntime>> | SqlClient.SqlClient | Database>,
  options: PlannerService.PlannerServiceOptions = {}
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const filename = yield* freshSqliteFile
      const store = yield* Layer.build(SqliteEventStore.layer({ filename }))
      yield* Outage.install.pipe(Effect.provide(store))
      const runtime = yield* Layer.build(plannerRuntime(Layer.succeedContext(store), executor, options))
      return yield* Effect.provide(body, Context.merge(store, runtime).pipe(Context.add(Database, { filename })))
    })
  )

/** Which file the store of `withFaultyStore` uses. */
class Database extends Context.Tag("test/Database")<Database, { readonly filename: string }>() {}

const start = (sessionId: string, tasks: ReadonlyArray<TaskPlan>, overrides: Partial<PlannerConfig> = {}) =>
  Effect.flatMap(PlannerService.PlannerService, (service) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) =>
      service.execute(sessionId, new Initialize({ request: "faults", tasks, config: config(overrides), at }))
    )
  )

const history = (sessionId: string) =>
  Effect.flatMap(PlannerService.PlannerService, (service) => service.stateAt(sessionId, Number.MAX_SAFE_INTEGER))

describe("the worker while the store refuses writes", () => {
  it.live("a claim the store refused is tried again, and the task runs", () =>
    Effect.gen(function* () {
      const executor = yield* script({ rules: [], default: { complete: "indexed" } })
      yield* withFaultyStore(
        executor,
        Effect.gen(function* () {
          yield* start("claim-outage", oneTask("index the repository"))
          yield* Outage.refuse("TaskClaimed", "800 millis")
          const result = yield* Runner.run("claim-outage").pipe(within(15, "the run"))
          expect(result.state.status).toBe("Succeeded")
          // The claim was retried, not the attempt: the task ran once.
          expect(result.state.tasks[0]?.attempt).toBe(1)
          expect(result.state.tasks[0]?.failures).toBe(0)
        })
      )
    })
  )

  it.live("an outcome the store refused is recorded once it can, under a queue lease kept meanwhile", () =>
    Effect.gen(function* () {
      const executor = yield* script({ rules: [], default: { complete: "built" } })
      yield* withFaultyStore(
        executor,
        Effect.gen(function* () {
          // The outage outlasts the worker's lease in the queue: without the lease keeper renewing it while the
          // outcome waits, the job would go to another taker and the finished work be done again.
          yield* start("report-outage", oneTask("build the site"))
          yield* Outage.refuse("TaskStatusUpdated", "1500 millis")
          const result = yield* Runner.run("report-outage", { leaseMs: 600 }).pipe(within(15, "the run"))
          expect(result.state.status).toBe("Succeeded")
          expect(result.state.tasks[0]?.result).toBe("built")
          expect(result.state.tasks[0]?.attempt).toBe(1)
          expect(result.state.tasks[0]?.failures).toBe(0)
          const final = yield* history("report-outage")
          expect(final).toEqual(result.state)
          const events = yield* Effect.flatMap(EventStore, (store) =>
            store.load({ streamId: "planner", aggregateId: "report-outage" })
          )
          // Leases are the queue's columns, never events; the one start of the attempt is the only claim.
          expect(events.some((event) => event.type === "TaskLeaseExtended")).toBe(false)
          expect(events.filter((event) => event.type === "TaskClaimed")).toHaveLength(1)
          expect(events.some((event) => event.type === "TaskRetryScheduled")).toBe(false)
          const service = yield* PlannerService.PlannerService
          expect(yield* service.queue.list("report-outage")).toEqual([])
        })
      )
    })
  )

  it.live("a retry whose timer the store refused is dispatched once the store takes it", () =>
    Effect.gen(function* () {
      const executor = yield* script({
        rules: [
          { match: "fetch", outcomes: [{ fail: "upstream timed out", retryable: true }, { complete: "fetched" }] }
        ],
        default: { complete: "ok" }
      })
      yield* withFaultyStore(
        executor,
        Effect.gen(function* () {
          // The first dispatch is recorded by Initialize; the outage then refuses the retry's dispatch, which only
          // the worker's timer sends. Nothing else happens in this plan that could wake the timer again.
          yield* start("timer-outage", oneTask("fetch the data"))
          yield* Outage.refuse("TaskDispatched", "700 millis")
          const result = yield* Runner.run("timer-outage").pipe(within(15, "the run"))
          expect(result.state.status).toBe("Succeeded")
          expect(result.state.tasks[0]?.attempt).toBe(2)
          expect(result.state.tasks[0]?.result).toBe("fetched")
        })
      )
    })
  )
})

describe("runs and the command handler", () => {
  it.live("a run whose log can no longer be read fails with the reason instead of waiting forever", () =>
    Effect.gen(function* () {
      const executor = yield* script({
        rules: [{ match: "slow", delayMs: 30_000, outcomes: [{ complete: "too late" }] }],
        default: { complete: "ok" }
      })
      yield* withFaultyStore(
        executor,
        Effect.gen(function* () {
          const service = yield* PlannerService.PlannerService
          yield* start("corrupted", oneTask("slow migration"))
          const running = yield* Effect.fork(Runner.run("corrupted"))
          yield* Effect.gen(function* () {
            const state = yield* service.state("corrupted")
            if (state.tasks[0]?.status !== "Running") return yield* Effect.fail("not running yet")
          }).pipe(Effect.retry({ times: 400 }), Effect.delay("5 millis"), Effect.eventually)
          // Somebody writes an event this build cannot read into the session.
          const store = yield* EventStore
          yield* store.append(
            "planner",
            "corrupted",
            [{ type: "TaskDispatched", version: 1, data: { unexpected: true }, metadata: { eventId: "bad" } }],
            "any"
          )
          const exit = yield* Fiber.await(running).pipe(within(10, "the run to fail"))
          expect(exit._tag).toBe("Failure")
          const error = exit._tag === "Failure" ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
          expect(error?._tag).toBe("CorruptEvent")
        })
      )
    })
  )

  it.live("commands on one session from one process never conflict with each other", () =>
    Effect.gen(function* () {
      const executor = yield* script({ rules: [], default: { complete: "ok" } })
      yield* withFaultyStore(
        executor,
        Effect.gen(function* () {
          const service = yield* PlannerService.PlannerService
          const count = 30
          const tasks = Array.from({ length: count }, (_, index) => ({
            id: index + 1,
            description: `step ${index + 1}`,
            kind: "Processing" as const,
            dependsOn: [],
            attachments: []
          }))
          yield* start("in-process", tasks, { maxParallel: count })
          // No conflict retries at all: any two of these racing each other would fail one of them.
          const at = yield* Clock.currentTimeMillis
          const claims = yield* Effect.forEach(
            tasks,
            (task) =>
              service.execute("in-process", new ClaimTask({ taskId: task.id, attempt: 1, workerId: "w/1/a", at })),
            { concurrency: "unbounded" }
          )
          expect(claims.every((handled) => handled.events.length === 1)).toBe(true)
          const state = yield* service.state("in-process")
          expect(Planner.countByStatus(state).Running).toBe(count)
        }),
        { maxConflictRetries: 0 }
      )
    })
  )

  it.live("commands handled together keep their own outcomes, refusals and causation ids", () =>
    Effect.gen(function* () {
      const executor = yield* script({ rules: [], default: { complete: "ok" } })
      yield* withFaultyStore(
        executor,
        Effect.gen(function* () {
          const service = yield* PlannerService.PlannerService
          const tasks = [1, 2, 3, 4].map((id) => ({
            id,
            description: `step ${id}`,
            kind: "Processing" as const,
            dependsOn: [],
            attachments: []
          }))
          yield* start("together", tasks, { maxParallel: 4 })
          const at = yield* Clock.currentTimeMillis
          // Sent at once: a claim of each task, a claim of an attempt of task 1 never dispatched, and a claim of a
          // task that does not exist. The refusals are each caller's own; the others are recorded as if sent one by
          // one.
          const commands = [
            ...tasks.map((task) => ({ taskId: task.id, attempt: 1, workerId: "w/1/a" })),
            { taskId: 1, attempt: 2, workerId: "w/2/b" },
            { taskId: 9, attempt: 1, workerId: "w/1/a" }
          ]
          const outcomes = yield* Effect.forEach(
            commands,
            ({ taskId, attempt, workerId }, index) =>
              service
                .execute("together", new ClaimTask({ taskId, attempt, workerId, at }), {
                  causationId: `cause-${index}`
                })
                .pipe(Effect.either),
            { concurrency: "unbounded" }
          )
          expect(outcomes.map((outcome) => (outcome._tag === "Right" ? "claimed" : outcome.left._tag))).toEqual([
            "claimed",
            "claimed",
            "claimed",
            "claimed",
            "InvalidTransition",
            "UnknownTask"
          ])
          const events = yield* Effect.flatMap(EventStore, (store) =>
            store.load({ streamId: "planner", aggregateId: "together", eventTypes: ["TaskClaimed"] })
          )
          expect(
            events.map((event) => [(event.data as { taskId: number }).taskId, event.metadata.causationId])
          ).toEqual(tasks.map((task) => [task.id, `cause-${task.id - 1}`]))
          // Each caller sees the session right after its own command.
          for (const [index, outcome] of outcomes.slice(0, 4).entries()) {
            const handled = outcome._tag === "Right" ? outcome.right : undefined
            expect(handled?.state.tasks[index]?.status).toBe("Running")
            expect(handled?.state.version).toBe(events[index]?.sequence)
          }
        })
      )
    })
  )
})

describe("leases", () => {
  it.live("an attempt whose job is no longer the worker's is stopped by its lease keeper, and gives nothing back", () =>
    Effect.gen(function* () {
      const interrupted = yield* Deferred.make<number>()
      const hangs: ExecutorService = {
        name: "hangs",
        execute: (context) =>
          Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, context.attempt)))
      }
      yield* withFaultyStore(
        hangs,
        Effect.gen(function* () {
          const service = yield* PlannerService.PlannerService
          yield* start("lease-lost", oneTask("long analysis"))
          // Leases of 600 ms, renewed every 200 ms.
          const running = yield* Effect.fork(Runner.run("lease-lost", { leaseMs: 600 }))
          yield* Effect.gen(function* () {
            const state = yield* service.state("lease-lost")
            if (state.tasks[0]?.status !== "Running") return yield* Effect.fail("not running yet")
          }).pipe(Effect.retry({ times: 400 }), Effect.delay("5 millis"), Effect.eventually)
          // The job is no longer held by this worker (here: completed, as when its attempt ended elsewhere): the
          // next renewal renews nothing, and the keeper stops the attempt.
          yield* service.queue.complete({ sessionId: "lease-lost", taskId: 1, attempt: 1 })
          expect(yield* Deferred.await(interrupted).pipe(within(5, "the stale attempt to stop"))).toBe(1)
          yield* Fiber.interrupt(running)
          // Dropped, not given back: no release was recorded.
          const events = yield* Effect.flatMap(EventStore, (store) =>
            store.load({ streamId: "planner", aggregateId: "lease-lost" })
          )
          expect(events.some((event) => event.type === "TaskReleased")).toBe(false)
        })
      )
    })
  )
  it.live("a claim that had to wait for its turn still gets a whole lease", () =>
    Effect.gen(function* () {
      const executor = yield* script({
        rules: [{ match: "analysis", delayMs: 400, outcomes: [{ complete: "analysed" }] }],
        default: { complete: "ok" }
      })
      yield* withFaultyStore(
        executor,
        Effect.scoped(
          Effect.gen(function* () {
            const service = yield* PlannerService.PlannerService
            const { filename } = yield* Database
            yield* start("late-claim", oneTask("long analysis"), { leaseMs: 600 })
            // Another connection holds the database's write lock for a while. A command of this process is stuck in
            // its append meanwhile, and the worker's claim, asked for now, waits behind it for its turn.
            const other = yield* Layer.build(SqliteEventStore.clientLayer({ filename }))
            const blocker = Context.get(other, SqlClient.SqlClient)
            yield* blocker.unsafe("BEGIN IMMEDIATE")
            const at = yield* Clock.currentTimeMillis
            const stuck = yield* Effect.fork(
              service.execute(
                "late-claim",
                new CompactContext({ maxTokens: 100, summary: "notes from earlier work", removedTaskIds: [], at })
              )
            )
            const running = yield* Effect.fork(Runner.run("late-claim"))
            yield* Effect.sleep("1200 millis")
            yield* blocker.unsafe("COMMIT")
            yield* Fiber.join(stuck)
            const result = yield* Fiber.join(running).pipe(within(15, "the run"))
            // The lease ran from when the claim was decided: no lease ran out, the task ran once.
            expect(result.state.status).toBe("Succeeded")
            expect(result.state.tasks[0]?.attempt).toBe(1)
            expect(result.state.tasks[0]?.failures).toBe(0)
          })
        )
      )
    })
  )
})

describe("the worker's timers", () => {
  it.live("a timer that goes off a moment early by the clock is set again, not lost", () =>
    Effect.scoped(
      Effect.gen(function* () {
        // A clock whose timers go off 5 ms before they are due by its own reading (real timers can, by a
        // millisecond or so).
        const real = Clock.make()
        const early: Clock.Clock = {
          [Clock.ClockTypeId]: Clock.ClockTypeId,
          unsafeCurrentTimeMillis: () => real.unsafeCurrentTimeMillis(),
          currentTimeMillis: real.currentTimeMillis,
          unsafeCurrentTimeNanos: () => real.unsafeCurrentTimeNanos(),
          currentTimeNanos: real.currentTimeNanos,
          sleep: (duration) =>
            real.sleep(Duration.subtract(duration, Duration.millis(Math.min(5, Duration.toMillis(duration)))))
        }
        const executor = yield* script({
          rules: [{ match: "flaky", outcomes: [{ fail: "try again", retryable: true }, { complete: "done" }] }],
          default: { complete: "done" }
        })
        const filename = yield* freshSqliteFile
        const result = yield* Effect.gen(function* () {
          yield* start("early-timer", oneTask("flaky step"), {
            backoff: { initialDelayMs: 100, factor: 2, maxDelayMs: 200 }
          })
          return yield* Runner.run("early-timer")
        }).pipe(
          Effect.provide(plannerRuntime(SqliteEventStore.layer({ filename }), executor)),
          Effect.withClock(early),
          within(15, "the run")
        )
        expect(result.state.status).toBe("Succeeded")
        expect(result.state.tasks[0]?.attempt).toBe(2)
      })
    )
  )
})
