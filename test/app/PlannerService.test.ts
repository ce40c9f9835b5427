/**
 * The command handler decides on its cached state and appends at the cached sequence without reading the store. These
 * tests give it a second writer (a second `PlannerService` over the same store, as another process would be) and
 * check that a cache left behind never produces a wrong answer: a refusal decided on it is checked against the store,
 * and an append decided on it is refused by the store and decided again.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, Option, TestClock } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import { ClaimTask, ExtendLease, HandleExecutorEvent, Initialize, TaskCompleted } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { EventStore, type EventStoreService } from "../../src/infra/EventStore.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import { type AlongsideTake, type JobKey, TaskQueue } from "../../src/infra/TaskQueue.js"
import { within } from "../infra/EventStoreContract.js"
import { independentTasks } from "./fixtures/plans.js"

const sessionId = "two-writers"
const tasks = [1, 2].map((id) => ({
  id,
  description: `task ${id}`,
  kind: "Processing" as const,
  dependsOn: [],
  attachments: []
}))

/** Two handlers ("processes") over one store, and how many reads each made of it. */
const twoWriters = Effect.gen(function* () {
  const storage = yield* MemoryEventStore.makeStorage
  const handler = (reads: { count: number; gate?: Deferred.Deferred<void> | undefined }) => {
    const inner = MemoryEventStore.make(storage)
    const counted: EventStoreService = {
      ...inner,
      load: (query) =>
        Effect.suspend(() => {
          reads.count += 1
          // A read takes a turn of the scheduler, as one over a network does; with a gate, until it opens.
          const wait = reads.gate === undefined ? Effect.sleep("1 millis") : Deferred.await(reads.gate)
          return Effect.zipRight(wait, inner.load(query))
        })
    }
    return PlannerService.make().pipe(
      Effect.provideServiceEffect(
        PlannerStore.PlannerStore,
        Effect.provideService(PlannerStore.make, EventStore, counted)
      ),
      Effect.provideService(EventStore, counted)
    )
  }
  const readsA: { count: number; gate?: Deferred.Deferred<void> | undefined } = { count: 0 }
  const readsB: { count: number; gate?: Deferred.Deferred<void> | undefined } = { count: 0 }
  return { a: yield* handler(readsA), b: yield* handler(readsB), readsA, readsB, store: MemoryEventStore.make(storage) }
})

/** Waits (briefly, a millisecond at a time) until `done` holds; fails naming `what` after 10 s. */
const until = (what: string, done: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    while (!(yield* done)) yield* Effect.sleep("1 millis")
  }).pipe(within(10, what))

/** Whether every one of `fibers` is suspended (waiting). */
const suspended = (...fibers: ReadonlyArray<Fiber.RuntimeFiber<unknown, unknown>>) =>
  Effect.map(
    Effect.forEach(fibers, (fiber) => Fiber.status(fiber)),
    (statuses) => statuses.every((status) => status._tag === "Suspended")
  )

const claim = (taskId: number, workerId: string, at: number) => new ClaimTask({ taskId, attempt: 1, workerId, at })

describe("PlannerService with another writer", () => {
  it.live("a command refused on a cache left behind is decided again on the store's state", () =>
    Effect.gen(function* () {
      const { a, b } = yield* twoWriters
      // One task at a time: task 2 is dispatched only when task 1 is done.
      yield* a.execute(
        sessionId,
        new Initialize({ request: "two tasks", tasks, config: { ...defaultConfig, maxParallel: 1 }, at: 1 })
      )
      // The other writer runs task 1, which dispatches task 2; this handler's cache still shows task 2 planned.
      yield* b.execute(sessionId, claim(1, "b", 2))
      yield* b.execute(
        sessionId,
        new HandleExecutorEvent({ event: new TaskCompleted({ taskId: 1, attempt: 1, result: "done" }), at: 3 })
      )
      const claimed = yield* a.execute(sessionId, claim(2, "a", 4))
      expect(Planner.task(claimed.state, 2)).toMatchObject({ status: "Running", lease: { workerId: "a" } })
      // Planned and dispatched, claimed, completed and the next dispatched, claimed.
      expect(claimed.state.version).toBe(6)
    })
  )

  it.live("an append decided on a cache left behind is refused by the store and decided again", () =>
    Effect.gen(function* () {
      const { a, b, store } = yield* twoWriters
      yield* a.execute(sessionId, new Initialize({ request: "two tasks", tasks, at: 1 }))
      const outcome = (result: string, at: number) =>
        new HandleExecutorEvent({ event: new TaskCompleted({ taskId: 1, attempt: 1, result }), at })
      yield* b.execute(sessionId, outcome("done by b", 2))
      // On its cache task 1 is still dispatched, so this handler would record its result; the store says the attempt
      // ended with another one.
      const refused = yield* Effect.either(a.execute(sessionId, outcome("done by a", 3)))
      expect(Either.isLeft(refused) && refused.left._tag).toBe("InvalidTransition")
      const completions = (yield* store.load({
        streamId: PlannerStore.plannerStreamId,
        aggregateId: sessionId
      })).filter((event) => event.type === "TaskStatusUpdated")
      expect(completions.map((event) => (event.data as { result: string }).result)).toEqual(["done by b"])
    })
  )

  it.live("the only writer of a session does not read the store for each command", () =>
    Effect.gen(function* () {
      const { a, readsA } = yield* twoWriters
      yield* a.execute(sessionId, new Initialize({ request: "two tasks", tasks, at: 1 }))
      const claimed = yield* a.execute(sessionId, claim(1, "a", 2))
      const before = readsA.count
      for (let at = 3; at < 13; at++) {
        yield* a.execute(sessionId, new ExtendLease({ taskId: 1, attempt: 1, workerId: "a", at }))
      }
      expect(readsA.count).toBe(before)
      expect((yield* a.state(sessionId)).version).toBe(claimed.state.version + 10)
    })
  )

  it.live("attempts starting at once in a session new to this process share one read of its log", () =>
    Effect.gen(function* () {
      const { a, b, readsB } = yield* twoWriters
      yield* a.execute(sessionId, new Initialize({ request: "two tasks", tasks, at: 1 }))
      const knowsBoth = (state: Planner.PlannerState) =>
        tasks.every((task) => Planner.task(state, task.id)?.status === "Dispatched")
      const states = yield* Effect.all(
        Array.from({ length: 6 }, () => b.stateKnowing(sessionId, knowsBoth)),
        { concurrency: "unbounded" }
      )
      expect(states.every(knowsBoth)).toBe(true)
      expect(readsB.count).toBe(1)
      // A caller the shared read does not satisfy reads for itself.
      yield* a.execute(sessionId, claim(1, "a", 2))
      const running = yield* b.stateKnowing(sessionId, (state) => Planner.task(state, 1)?.status === "Running")
      expect(Planner.task(running, 1)?.status).toBe("Running")
      expect(readsB.count).toBe(2)
    })
  )
  it.live("a turn interrupted before its batch is recorded gives the others' commands back, and drops its own", () =>
    Effect.gen(function* () {
      const { a, b, readsB, store } = yield* twoWriters
      yield* b.execute(
        sessionId,
        new Initialize({
          request: "four tasks",
          tasks: independentTasks(4),
          config: { ...defaultConfig, maxParallel: 4 },
          at: 1
        })
      )
      // The other writer moves the session on: every append of `b` decided on its cache is refused, and it reads
      // the store again, which waits at the gate.
      yield* a.execute(sessionId, claim(4, "a", 2))
      const gate = yield* Deferred.make<void>()
      readsB.gate = gate
      const readsBefore = readsB.count
      const x = yield* Effect.fork(b.execute(sessionId, claim(1, "x", 3)))
      // X holds the turn, reading at the gate; Y and W wait for it.
      yield* until(
        "X at the gate",
        Effect.sync(() => readsB.count === readsBefore + 1)
      )
      const y = yield* Effect.fork(b.execute(sessionId, claim(2, "y", 3)))
      const w = yield* Effect.fork(b.execute(sessionId, claim(3, "w", 3)))
      yield* until("Y and W waiting", suspended(y, w))
      yield* Fiber.interrupt(x)
      // Y took the turn with both waiting commands in its batch, and reads at the gate in turn.
      yield* until(
        "Y at the gate",
        Effect.sync(() => readsB.count === readsBefore + 2)
      )
      yield* Fiber.interrupt(y)
      readsB.gate = undefined
      yield* Deferred.succeed(gate, undefined)
      const handled = yield* Fiber.join(w).pipe(within(10, "the third caller's command"))
      expect(Planner.task(handled.state, 3)).toMatchObject({ status: "Running", lease: { workerId: "w" } })
      const claims = (yield* store.load({ streamId: PlannerStore.plannerStreamId, aggregateId: sessionId }))
        .filter((event) => event.type === "TaskClaimed")
        .map((event) => (event.data as { workerId: string }).workerId)
      // X's and Y's own commands went with them; W's, taken in Y's batch, was given back and recorded.
      expect(claims).toEqual(["a", "w"])
    })
  )
})

/**
 * One handler over a store that counts its appends (`gatherMs` as given), with three tasks claimed: by `claimants`, one
 * worker id per task (all "w" when not given). Its task queue is the memory one, with the statement hook a PostgreSQL
 * queue has: each append that ends attempts shows it the jobs it ends and the take it asks for, in `alongside`, and then
 * goes the usual way.
 */
const threeClaimed = (gatherMs?: number, claimants: ReadonlyArray<string> = ["w", "w", "w"]) =>
  Effect.gen(function* () {
    const alongside: Array<{ readonly ended: ReadonlyArray<JobKey>; readonly take: AlongsideTake | undefined }> = []
    const queue = yield* MemoryTaskQueue.makeFresh
    const inner = MemoryEventStore.make(yield* MemoryEventStore.makeStorage)
    const appends = { count: 0 }
    const counted: EventStoreService = {
      ...inner,
      append: (...args) =>
        Effect.zipRight(
          Effect.sync(() => (appends.count += 1)),
          inner.append(...args)
        )
    }
    const service = yield* PlannerService.make(gatherMs === undefined ? {} : { gatherMs }).pipe(
      Effect.provideServiceEffect(
        PlannerStore.PlannerStore,
        Effect.provideService(PlannerStore.make, EventStore, counted)
      ),
      Effect.provideService(EventStore, counted),
      Effect.provideService(TaskQueue, {
        ...queue,
        completeAlongside: (ended, take) => {
          alongside.push({ ended, take })
          return undefined
        }
      })
    )
    yield* service.execute(
      sessionId,
      new Initialize({
        request: "three tasks",
        tasks: independentTasks(3),
        config: { ...defaultConfig, maxParallel: 3 },
        at: 1
      })
    )
    yield* service.executeAll(
      sessionId,
      [1, 2, 3].map((taskId) => claim(taskId, claimants[taskId - 1] ?? "w", 2))
    )
    const complete = (taskId: number, awaiting: () => boolean, take?: AlongsideTake) =>
      Effect.fork(
        service.execute(
          sessionId,
          new HandleExecutorEvent({ event: new TaskCompleted({ taskId, attempt: 1, result: `${taskId}` }), at: 3 }),
          { awaiting, ...(take === undefined ? {} : { take }) }
        )
      )
    return { service, appends, complete, alongside }
  })

describe("PlannerService gathers the outcomes a batch says are on their way", () => {
  it.effect("outcomes of attempts started together are recorded in one append once the last is in", () =>
    Effect.gen(function* () {
      const { appends, complete } = yield* threeClaimed()
      const before = appends.count
      // As a worker's cohort says: the outcomes of its other attempts are still to come while any of them runs.
      let toCome = 3
      const awaiting = () => toCome > 0
      const reportOne = (taskId: number) =>
        Effect.gen(function* () {
          toCome -= 1
          const fiber = yield* complete(taskId, awaiting)
          yield* Effect.yieldNow({ priority: 1_000 })
          return fiber
        })
      const first = yield* reportOne(1)
      const second = yield* reportOne(2)
      // Two of three in, on the test's clock, which does not move: the turn waits for the third.
      expect(appends.count).toBe(before)
      const third = yield* reportOne(3)
      const handled = yield* Fiber.join(third)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      expect(appends.count).toBe(before + 1)
      expect(handled.state.status).toBe("Succeeded")
    })
  )

  it.effect("an outcome waits no longer than gatherMs for outcomes that do not come", () =>
    Effect.gen(function* () {
      const { service, appends, complete } = yield* threeClaimed(5)
      const before = appends.count
      const lone = yield* complete(1, () => true)
      yield* TestClock.adjust("4 millis")
      for (let turn = 0; turn < 100; turn++) yield* Effect.yieldNow()
      expect(appends.count).toBe(before)
      expect(Option.isNone(yield* Fiber.poll(lone))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const handled = yield* Fiber.join(lone)
      expect(appends.count).toBe(before + 1)
      expect(Planner.task(handled.state, 1)?.status).toBe("Completed")
      // Without anything said to be on its way, an outcome waits for nothing.
      yield* Fiber.join(yield* complete(2, () => false))
      expect(appends.count).toBe(before + 2)
      expect(Planner.task(yield* service.state(sessionId), 2)?.status).toBe("Completed")
    })
  )

  it.effect("a command that may not wait ends the wait when it comes, and goes in the same append", () =>
    Effect.gen(function* () {
      const { service, appends, complete } = yield* threeClaimed(5)
      const before = appends.count
      const waiting = yield* complete(1, () => true)
      yield* Effect.yieldNow({ priority: 1_000 })
      expect(appends.count).toBe(before)
      // What an awaited attempt may need recorded before its outcome (here another task's lease), on a clock that
      // does not move: it is recorded at once, with the outcome that was waiting.
      const extended = yield* service.execute(
        sessionId,
        new ExtendLease({ taskId: 2, attempt: 1, workerId: "w", at: 3 })
      )
      expect(appends.count).toBe(before + 1)
      expect(Planner.task(extended.state, 1)?.status).toBe("Completed")
      yield* Fiber.join(waiting)
    })
  )

  it.effect("the append of a gathered batch asks the first outcome's worker for a slot for each of its outcomes", () =>
    Effect.gen(function* () {
      // Tasks 1 and 3 are worker w's, task 2 worker v's: one batch holds two outcomes of w's and one of v's.
      const { appends, complete, alongside } = yield* threeClaimed(undefined, ["w", "v", "w"])
      const before = appends.count
      const asked: Array<{ readonly worker: string; readonly count: number }> = []
      const takeOf = (workerId: string): AlongsideTake => ({
        options: { workerId, limit: 1, leaseMs: 60_000 },
        now: 3,
        taken: () => {},
        forOutcomes: (count) => {
          asked.push({ worker: workerId, count })
          return { options: { workerId, limit: count, leaseMs: 60_000 }, now: 3, taken: () => {} }
        }
      })
      let toCome = 3
      const awaiting = () => toCome > 0
      const fibers: Array<Fiber.RuntimeFiber<PlannerService.Handled, PlannerService.HandleError>> = []
      for (const [taskId, workerId] of [
        [1, "w"],
        [2, "v"],
        [3, "w"]
      ] as const) {
        toCome -= 1
        fibers.push(yield* complete(taskId, awaiting, takeOf(workerId)))
        yield* Effect.yieldNow({ priority: 1_000 })
      }
      for (const fiber of fibers) yield* Fiber.join(fiber)
      expect(appends.count).toBe(before + 1)
      // Asked once, as the append was made, of the worker whose outcome came first: one slot for each of its two.
      expect(asked).toEqual([{ worker: "w", count: 2 }])
      expect(alongside).toHaveLength(1)
      expect(alongside[0]?.take?.options).toMatchObject({ workerId: "w", limit: 2 })
      expect(alongside[0]?.ended.map((job) => job.taskId).sort()).toEqual([1, 2, 3])
    })
  )

  it.effect("a caller interrupted while its turn waits leaves without its command; the others' are recorded", () =>
    Effect.gen(function* () {
      const { service, appends, complete } = yield* threeClaimed(5)
      const before = appends.count
      const first = yield* complete(1, () => true)
      yield* Effect.yieldNow({ priority: 1_000 })
      const second = yield* complete(2, () => true)
      yield* Effect.yieldNow({ priority: 1_000 })
      // Both wait, on a clock that does not move: the first caller holds the turn, gathering.
      expect(appends.count).toBe(before)
      yield* Fiber.interrupt(first)
      // The second's outcome is recorded once its own wait is over, without the first's.
      yield* TestClock.adjust("5 millis")
      const handled = yield* Fiber.join(second)
      expect(appends.count).toBe(before + 1)
      expect(Planner.task(handled.state, 2)?.status).toBe("Completed")
      expect(Planner.task(handled.state, 1)?.status).toBe("Running")
      expect(Planner.task(yield* service.state(sessionId), 1)?.status).toBe("Running")
    })
  )

  it.effect("with gatherMs 0, nothing waits", () =>
    Effect.gen(function* () {
      const { appends, complete } = yield* threeClaimed(0)
      const before = appends.count
      yield* Fiber.join(yield* complete(1, () => true))
      expect(appends.count).toBe(before + 1)
    })
  )
})
