/**
 * The writer's hand-off (`PlannerService.handOffTo`): a task dispatched while a worker of this process has a free slot
 * is claimed for that worker in the dispatch's own append, and its job goes into the queue already taken by it. The
 * log still says who ran the attempt and when (`TaskClaimed`, caused by the dispatch), and the queue stays what the
 * log implies.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import { HandleExecutorEvent, Initialize, TaskCompleted } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { EventStore, type EventStoreService } from "../../src/infra/EventStore.js"
import * as Jobs from "../../src/infra/Jobs.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import type { TakenJob } from "../../src/infra/TaskQueue.js"
import { independentTasks } from "./fixtures/plans.js"

const sessionId = "hand-off"
const tasks = independentTasks(3)

const writer = (store: EventStoreService) =>
  PlannerService.make().pipe(
    Effect.provideServiceEffect(PlannerStore.PlannerStore, Effect.provideService(PlannerStore.make, EventStore, store)),
    Effect.provideService(EventStore, store)
  )

/** A stand-in for a worker of this process: `slots` free, recording what it is handed. */
const localWorker = (slots: { free: number }, accepting = true) => {
  const handed: Array<{ readonly job: TakenJob; readonly state: Planner.PlannerState }> = []
  const worker: PlannerService.LocalWorker = {
    workerId: "local",
    kinds: ["Processing"],
    sessionId: undefined,
    leaseMs: 60_000,
    free: () => slots.free,
    accept: (job, state) => {
      if (!accepting) return false
      slots.free -= 1
      handed.push({ job, state })
      return true
    }
  }
  return { worker, handed }
}

describe("the writer's hand-off to a worker of its process", () => {
  it.scoped("dispatched tasks are claimed for the idle worker in the dispatch's append, as many as it has slots", () =>
    Effect.gen(function* () {
      const store = MemoryEventStore.make(yield* MemoryEventStore.makeStorage)
      const service = yield* writer(store)
      const { worker, handed } = localWorker({ free: 2 })
      yield* service.handOffTo(worker)
      const started = yield* service.execute(
        sessionId,
        new Initialize({ request: "three tasks", tasks, config: { ...defaultConfig, maxParallel: 3 }, at: 1 })
      )
      // The caller sees its own command's outcome; the claims came in the same append.
      expect(started.events.map((event) => event._tag)).not.toContain("TaskClaimed")
      const records = yield* store.load({ streamId: PlannerStore.plannerStreamId, aggregateId: sessionId })
      const types = records.map((record) => record.type)
      expect(types.filter((type) => type === "TaskDispatched")).toHaveLength(3)
      expect(types.filter((type) => type === "TaskClaimed")).toHaveLength(2)
      // One append: every event of it is caused by the command's first event or, for a claim, by its dispatch.
      const byId = new Map(records.map((record) => [record.metadata.eventId, record]))
      for (const record of records.filter((r) => r.type === "TaskClaimed")) {
        const cause = byId.get(record.metadata.causationId ?? "")
        expect(cause?.type).toBe("TaskDispatched")
        expect(cause?.data).toMatchObject({ taskId: (record.data as { taskId: number }).taskId })
      }
      // The worker got two jobs, taken by it, with the state that has them running under its name.
      expect(handed.map(({ job }) => job.taskId)).toEqual([1, 2])
      for (const { job, state } of handed) {
        expect(job).toMatchObject({ sessionId, attempt: 1, workerId: "local", takes: 1 })
        expect(Planner.task(state, job.taskId)).toMatchObject({ status: "Running", lease: { workerId: "local" } })
      }
      // The queue: the two handed jobs held by the worker, the third open to anybody; and that is what the log implies.
      const queued = yield* service.queue.list(sessionId)
      expect(queued.map((job) => [job.taskId, job.workerId])).toEqual([
        [1, "local"],
        [2, "local"],
        [3, undefined]
      ])
      const state = yield* service.state(sessionId)
      expect(Jobs.drift(sessionId, Jobs.jobsFromState(sessionId, state), queued)).toEqual({
        sessionId,
        missing: [],
        stray: []
      })
      // The log, folded, gives the state the worker was handed.
      expect(yield* service.stateAt(sessionId, state.version)).toEqual(handed[1]?.state)
    })
  )

  it.scoped(
    "an outcome hands the task it dispatches to the worker; without a free slot the job waits in the queue",
    () =>
      Effect.gen(function* () {
        const store = MemoryEventStore.make(yield* MemoryEventStore.makeStorage)
        const service = yield* writer(store)
        const slots = { free: 1 }
        const { worker, handed } = localWorker(slots)
        yield* service.handOffTo(worker)
        const chain = tasks.map((task) => ({ ...task, dependsOn: task.id === 1 ? [] : [task.id - 1] }))
        yield* service.execute(sessionId, new Initialize({ request: "a chain", tasks: chain, at: 1 }))
        expect(handed.map(({ job }) => job.taskId)).toEqual([1])
        // The worker finishes task 1 and frees its slot as it reports: task 2 comes to it in the outcome's append.
        slots.free = 1
        const done = (taskId: number, at: number) =>
          new HandleExecutorEvent({ event: new TaskCompleted({ taskId, attempt: 1, result: `done ${taskId}` }), at })
        const after1 = yield* service.execute(sessionId, done(1, 2))
        expect(after1.events.map((event) => event._tag)).toEqual(["TaskStatusUpdated", "TaskDispatched"])
        expect(handed.map(({ job }) => job.taskId)).toEqual([1, 2])
        expect(Planner.task(yield* service.state(sessionId), 2)).toMatchObject({ status: "Running" })
        // No free slot: task 3 is dispatched to the queue, open to any worker, and nobody claims it.
        yield* service.execute(sessionId, done(2, 3))
        expect(handed.map(({ job }) => job.taskId)).toEqual([1, 2])
        expect(Planner.task(yield* service.state(sessionId), 3)).toMatchObject({ status: "Dispatched" })
        expect((yield* service.queue.list(sessionId)).map((job) => [job.taskId, job.workerId])).toEqual([
          [3, undefined]
        ])
      })
  )

  it.scoped("a worker that can no longer start a handed job gives it back to the queue, where another takes it", () =>
    Effect.gen(function* () {
      const store = MemoryEventStore.make(yield* MemoryEventStore.makeStorage)
      const service = yield* writer(store)
      yield* service.handOffTo(localWorker({ free: 1 }, false).worker)
      yield* service.execute(sessionId, new Initialize({ request: "one task", tasks: tasks.slice(0, 1), at: 1 }))
      // Claimed for the worker in the log, but free in the queue: the next taker's claim is accepted.
      expect((yield* service.queue.list(sessionId)).map((job) => [job.taskId, job.workerId])).toEqual([[1, undefined]])
      const [taken] = yield* service.queue.take({ workerId: "other", limit: 1, leaseMs: 1_000 })
      expect(taken).toMatchObject({ taskId: 1, workerId: "other" })
    })
  )

  it.scoped("once the worker's registration ends, nothing more is handed to it", () =>
    Effect.gen(function* () {
      const store = MemoryEventStore.make(yield* MemoryEventStore.makeStorage)
      const service = yield* writer(store)
      const { worker, handed } = localWorker({ free: 3 })
      yield* Effect.scoped(service.handOffTo(worker))
      yield* service.execute(sessionId, new Initialize({ request: "three tasks", tasks, at: 1 }))
      expect(handed).toEqual([])
      expect((yield* service.queue.list(sessionId)).every((job) => job.workerId === undefined)).toBe(true)
    })
  )
})
