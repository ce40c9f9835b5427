/**
 * A worker of a session that other processes write too, and a long-lived worker serving every session, record each
 * attempt's start with its outcome, in one append (`AttemptRunner`'s `startOf`): one append per attempt instead of
 * two, each racing the other writers; meanwhile a look at the session shows the attempt running on its worker. Two
 * runtimes on one SQLite file stand for two processes: the planner's, which records the plan and goes on writing, and
 * a worker's. A run of one session that only its process writes keeps recording each start before the executor runs.
 */
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Fiber, Layer, Ref } from "effect"
import * as HeldAttempts from "../../src/app/HeldAttempts.js"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Worker from "../../src/app/Worker.js"
import { sweepDeadWorkers } from "../../src/app/worker/DeadWorkerSweep.js"
import { Initialize, RecordUsage } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { echo } from "../../src/infra/EchoExecutor.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { independentTasks } from "./fixtures/plans.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const tasks = independentTasks(3)

interface Seen {
  readonly taskId: number
  /** Whether the log had the attempt running. */
  readonly running: boolean
  /** Whether `show` (`HeldAttempts.asShown`, in the reader's process) showed it running, on which worker. */
  readonly shownOn: string | undefined
}

/**
 * An executor that notes, for each task it runs, whether the log (read by `reader`) had its attempt running, and what
 * a look at the session from the reader's process showed.
 */
const noting = (
  reader: Context.Context<PlannerStore.PlannerStore | PlannerService>,
  seen: Ref.Ref<Array<Seen>>
): ExecutorService => ({
  name: "noting",
  execute: (task) =>
    Effect.gen(function* () {
      const log = yield* Effect.flatMap(PlannerStore.PlannerStore, (store) => store.load(task.sessionId))
      const state = Planner.fold(log.map((record) => record.event))
      const shown = Planner.task(yield* HeldAttempts.asShown(task.sessionId, state), task.taskId)
      yield* Ref.update(seen, (all) => [
        ...all,
        {
          taskId: task.taskId,
          running: Planner.task(state, task.taskId)?.status === "Running",
          shownOn: shown?.status === "Running" ? shown.lease?.workerId : undefined
        }
      ])
      return Outcome.Completed({ result: `done ${task.taskId}` })
    }).pipe(
      Effect.provide(reader),
      Effect.catchAll((error) => Effect.succeed(Outcome.Failed({ error: String(error), retryable: false })))
    )
})

/** Runtimes over one SQLite file: the planner's process, and a worker's whose executor notes what the log says. */
const twoProcesses = Effect.gen(function* () {
  const filename = yield* freshSqliteFile
  const seen = yield* Ref.make<Array<Seen>>([])
  const reader = yield* Layer.build(plannerRuntime(SqliteEventStore.layer({ filename }), echo))
  const executor = noting(reader, seen)
  const planner = yield* Layer.build(plannerRuntime(SqliteEventStore.layer({ filename }), echo))
  // A session found written elsewhere counts as such for a while; long enough here that a loaded machine cannot
  // outlast it between the test's look and the worker's takes.
  const worker = yield* Layer.build(
    plannerRuntime(SqliteEventStore.layer({ filename }), executor, { sharedForMs: 600_000 })
  )
  return { planner, worker, seen }
})

const start = (sessionId: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const at = yield* Clock.currentTimeMillis
    yield* service.execute(sessionId, new Initialize({ request: "three tasks", tasks, config: defaultConfig, at }))
  })

/** Runs a worker serving `sessionId` (or, `everySession`, every session, as `planner worker`) until it has ended. */
const serveUntilDone = (sessionId: string, options: { readonly everySession?: boolean } = {}) =>
  Effect.gen(function* () {
    const done = yield* Deferred.make<void>()
    const service = yield* PlannerService
    const worker = yield* Effect.fork(
      Worker.run({
        ...(options.everySession === true ? {} : { sessionId }),
        concurrency: 3,
        checkAttachments: false,
        warmTokenizer: false
      })
    )
    yield* Effect.gen(function* () {
      const state = yield* service.state(sessionId)
      if (!Planner.isFinished(state)) return yield* Effect.fail("not yet")
      yield* Deferred.succeed(done, undefined)
    }).pipe(Effect.retry({ times: 400, schedule: undefined }), Effect.delay("10 millis"), Effect.eventually)
    yield* Deferred.await(done)
    yield* Fiber.interrupt(worker)
  })

const records = (context: Context.Context<PlannerStore.PlannerStore>, sessionId: string) =>
  Effect.flatMap(PlannerStore.PlannerStore, (store) => store.load(sessionId)).pipe(Effect.provide(context))

/** Each task's start is on record once, just before its outcome: consecutive, stored together, caused by the start. */
const expectStartsWithOutcomes = (log: ReadonlyArray<PlannerStore.PlannerEventRecord>) => {
  for (const task of tasks) {
    const claimedAt = log.findIndex((record) => record.event._tag === "TaskClaimed" && record.event.taskId === task.id)
    const claim = log[claimedAt]
    const outcome = log[claimedAt + 1]
    // The start, then at once its outcome: consecutive in the session, stored together, caused by the start.
    expect(claim?.event._tag).toBe("TaskClaimed")
    expect(outcome?.event).toMatchObject({ _tag: "TaskStatusUpdated", taskId: task.id, status: "Completed" })
    expect(outcome?.metadata.causationId).toBe(claim?.metadata.eventId)
    expect(outcome?.createdAt).toBe(claim?.createdAt)
    if (claim?.event._tag === "TaskClaimed" && outcome?.event._tag === "TaskStatusUpdated") {
      expect(claim.event.workerId).toMatch(/\//)
      expect(claim.event.at).toBeLessThanOrEqual(outcome.event.at)
    }
    expect(log.filter((r) => r.event._tag === "TaskClaimed" && r.event.taskId === task.id)).toHaveLength(1)
  }
}

describe("a worker of a session other processes write too", () => {
  it.scopedLive("records each attempt's start with its outcome, in one append, caused by the start", () =>
    Effect.gen(function* () {
      const { planner, worker, seen } = yield* twoProcesses
      const sessionId = "shared-session"
      yield* start(sessionId).pipe(Effect.provide(planner))
      // The worker's process has read the session, then finds another process wrote it since.
      yield* Effect.flatMap(PlannerService, (service) => service.state(sessionId)).pipe(Effect.provide(worker))
      yield* Effect.flatMap(PlannerService, (service) =>
        service.execute(
          sessionId,
          new RecordUsage({
            usage: [{ model: "m", purpose: "planning", inputTokens: 1, outputTokens: 1, counted: "api" }],
            at: 3
          })
        )
      ).pipe(Effect.provide(planner))
      yield* Effect.flatMap(PlannerService, (service) => service.state(sessionId)).pipe(Effect.provide(worker))
      expect(
        yield* Effect.map(PlannerService, (service) => service.writtenElsewhere(sessionId)).pipe(Effect.provide(worker))
      ).toBe(true)

      yield* serveUntilDone(sessionId).pipe(Effect.provide(worker))

      const log = yield* records(planner, sessionId)
      const state = Planner.fold(log.map((record) => record.event))
      expect(state.status).toBe("Succeeded")
      // The executor ran each task before its start was on record.
      const looks = yield* Ref.get(seen)
      expect(looks.map(({ running }) => running)).toEqual([false, false, false])
      // Meanwhile a look at the session showed each running, on the worker that held its job in the queue.
      for (const look of looks) {
        const claim = log.find((record) => record.event._tag === "TaskClaimed" && record.event.taskId === look.taskId)
        expect(look.shownOn).toBeDefined()
        expect(look.shownOn).toBe(claim?.event._tag === "TaskClaimed" ? claim.event.workerId : "no claim")
      }
      expectStartsWithOutcomes(log)
    })
  )

  it.scopedLive(
    "a worker serving every session records each start with its outcome, though no other process writes",
    () =>
      Effect.gen(function* () {
        const { worker, seen } = yield* twoProcesses
        const sessionId = "long-lived-worker"
        yield* start(sessionId).pipe(Effect.provide(worker))
        yield* serveUntilDone(sessionId, { everySession: true }).pipe(Effect.provide(worker))
        const looks = yield* Ref.get(seen)
        expect(looks.map(({ running }) => running)).toEqual([false, false, false])
        expect(looks.every(({ shownOn }) => shownOn !== undefined)).toBe(true)
        expectStartsWithOutcomes(yield* records(worker, sessionId))
      })
  )

  it.scopedLive("a run of one session, its only writer, has each start on record before the executor runs", () =>
    Effect.gen(function* () {
      const { worker, seen } = yield* twoProcesses
      const sessionId = "own-session"
      yield* start(sessionId).pipe(Effect.provide(worker))
      yield* serveUntilDone(sessionId).pipe(Effect.provide(worker))
      expect((yield* Ref.get(seen)).map(({ running }) => running)).toEqual([true, true, true])
    })
  )

  it.scopedLive("a worker that died before its start was on record: the sweep records the start and the failure", () =>
    Effect.gen(function* () {
      const { planner } = yield* twoProcesses
      const sessionId = "died-unrecorded"
      yield* start(sessionId).pipe(Effect.provide(planner))
      // A process of this host that has ended by now took task 1's job and ran it, its start not yet on record.
      const ended = spawnSync(process.execPath, ["-e", "process.pid"])
      const deadId = `${os.hostname()}/${ended.pid}/gone`
      const service = Context.get(planner, PlannerService)
      const taken = yield* service.queue.take({ workerId: deadId, limit: 1, leaseMs: 600_000 })
      expect(taken.map((job) => job.taskId)).toEqual([1])

      expect((yield* sweepDeadWorkers(sessionId).pipe(Effect.provide(planner))).taken).toBe(1)

      const log = yield* records(planner, sessionId)
      const claimed = log.findIndex((record) => record.event._tag === "TaskClaimed")
      expect(log[claimed]?.event).toMatchObject({ _tag: "TaskClaimed", taskId: 1, attempt: 1, workerId: deadId })
      expect(log[claimed + 1]?.event).toMatchObject({
        _tag: "TaskRetryScheduled",
        taskId: 1,
        error: `worker ${deadId} died while running attempt 1 (its process is gone)`
      })
      const state = Planner.fold(log.map((record) => record.event))
      // It counts as a failed attempt, retried as any other: a task that kills its worker does not loop unseen.
      expect(Planner.task(state, 1)).toMatchObject({ status: "Dispatched", attempt: 2 })
      expect((yield* service.queue.list(sessionId)).find((job) => job.taskId === 1)).toMatchObject({ attempt: 2 })
    })
  )
})
