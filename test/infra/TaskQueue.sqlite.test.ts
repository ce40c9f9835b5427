import type { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer } from "effect"
import { EventStore } from "../../src/infra/EventStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import * as SqlTaskQueue from "../../src/infra/SqlTaskQueue.js"
import { newEvent } from "./EventStoreContract.js"
import { freshSqliteFile } from "./fixtures/databases.js"
import {
  job,
  sqlTaskQueueContract,
  type TaskQueueTarget,
  taskQueueContract,
  untilAsleep,
  within,
  withQueue
} from "./TaskQueueContract.js"

const sqliteTarget: TaskQueueTarget<string, SqlClient.SqlClient | EventStore> = {
  freshDatabase: freshSqliteFile,
  // The event store's layer runs the migrations, the jobs table's among them.
  layer: (filename) => SqlTaskQueue.layer().pipe(Layer.provideMerge(SqliteEventStore.layer({ filename }))),
  // Another process's enqueue reaches a SQLite waiter only through its poll.
  wakesOtherInstances: false
}

taskQueueContract("SqlTaskQueue on SQLite", sqliteTarget)
sqlTaskQueueContract("SqlTaskQueue on SQLite", sqliteTarget)

describe("SqlTaskQueue on SQLite", () => {
  it.effect("a waiter is woken by a job enqueued alongside an event store append (the writer's dispatch)", () =>
    withQueue(sqliteTarget, (queue, { context }) =>
      Effect.gen(function* () {
        const store = Context.get(context, EventStore)
        yield* queue.enqueue([job("later", 1, { runAt: 3_600_000 })])
        const waiting = yield* Effect.fork(
          Effect.zipRight(
            queue.awaitWork(["Processing"], "s1"),
            queue.take({ workerId: "w", limit: 10, leaseMs: 1_000 })
          )
        )
        yield* untilAsleep()
        yield* store.append("planner", "s1", [newEvent("TaskDispatched", { taskId: 1 })], 0, () =>
          Effect.orDie(queue.enqueue([job("s1", 1)]))
        )
        const taken = yield* Fiber.join(waiting).pipe(within(10))
        expect(taken.map((taken) => taken.taskId)).toEqual([1])
      })
    )
  )
})

describe("SqlTaskQueue on SQLite, two queues on one client", () => {
  it.effect("share their wake-ups: an enqueue through one wakes the other's waiter at once", () =>
    withQueue(sqliteTarget, (queue, { context }) =>
      Effect.gen(function* () {
        const other = yield* SqlTaskQueue.make().pipe(Effect.provide(context))
        yield* queue.enqueue([job("later", 1, { runAt: 3_600_000 })])
        const waiting = yield* Effect.fork(other.awaitWork())
        yield* untilAsleep()
        yield* queue.enqueue([job("s1", 1)])
        yield* Fiber.join(waiting).pipe(within(10))
      })
    )
  )
})
