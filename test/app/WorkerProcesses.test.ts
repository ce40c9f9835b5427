/**
 * Workers in several processes on one SQLite file: a worker process that dies while holding a task is noticed by a
 * worker of the same host that already follows the session, which takes the task back at once instead of waiting for
 * its lease (which here would last ten minutes).
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Fiber, Layer, Logger, LogLevel } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import { within } from "../infra/EventStoreContract.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { plannerRuntime, storeLayer } from "./fixtures/runtime.js"
import { spawnWorkerProcess } from "./fixtures/spawnWorkerProcess.js"

const completes: ExecutorService = {
  name: "completes",
  execute: (context) => Effect.succeed(Outcome.Completed({ result: `indexed on attempt ${context.attempt}` }))
}

describe("worker processes on one SQLite file", () => {
  it.live(
    "a sibling worker process that dies holding a task is noticed without waiting for its lease",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const filename = yield* freshSqliteFile
          const context = yield* Layer.build(plannerRuntime(storeLayer(filename), completes))
          const service = Context.get(context, PlannerService.PlannerService)
          const sessionId = "sibling-dies"
          yield* service.execute(
            sessionId,
            new Initialize({
              request: "index the repository",
              tasks: [
                { id: 1, description: "index the repository", kind: "Processing", dependsOn: [], attachments: [] }
              ],
              config: { ...defaultConfig, leaseMs: 600_000 },
              at: yield* Clock.currentTimeMillis
            })
          )

          // Another process claims the task and hangs on it.
          const { child: victim, workerId: victimId } = yield* spawnWorkerProcess(filename, {
            mode: "victim",
            concurrency: 1
          })
          yield* victim.waitFor((line) => line === "stuck 1 1").pipe(within(30, "the victim's claim"))

          // A worker here starts following the session while the victim is alive, so it finds nothing to take back.
          const following = yield* Deferred.make<void>()
          const watcher = Logger.make(({ message }) => {
            if (String(message).includes(" serving ")) Deferred.unsafeDone(following, Effect.void)
          })
          // (The worker says it is serving in a debug line.)
          const run = yield* Runner.run(sessionId).pipe(
            Logger.withMinimumLogLevel(LogLevel.Debug),
            Effect.provide(Logger.replace(Logger.defaultLogger, watcher)),
            Effect.provide(context),
            Effect.fork
          )
          yield* Deferred.await(following).pipe(within(10, "the local worker"))

          yield* victim.kill("SIGKILL")
          yield* victim.exited.pipe(within(10, "the victim's exit"))
          const result = yield* Fiber.join(run).pipe(within(15, "the task to be taken back"))

          expect(result.state.status).toBe("Succeeded")
          expect(result.state.tasks[0]?.result).toBe("indexed on attempt 2")
          const records = yield* Context.get(context, PlannerStore).load(sessionId)
          const takenBack = records.find((record) => record.event._tag === "TaskRetryScheduled")
          expect(takenBack?.event._tag === "TaskRetryScheduled" && takenBack.event.error).toBe(
            `worker ${victimId} died while running attempt 1 (its process is gone)`
          )
        })
      ),
    60_000
  )
})
