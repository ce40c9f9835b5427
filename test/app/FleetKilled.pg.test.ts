/**
 * PostgreSQL: every worker process serving the sessions is killed (SIGKILL) while outcomes they reported wait in
 * their jobs' rows for a writer that records nothing, and `resume` in this process finishes the plan: the outcomes
 * that were reported are recorded (not run again), the attempts the dead workers held are taken back, and every task
 * completes exactly once. Before `worker/LeftReports`, a run of one session never recorded such reports, and the
 * resumed plan waited for those tasks for ever.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Duration, Effect, Layer, Schedule } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import { within } from "../infra/EventStoreContract.js"
import { freshPgDatabase } from "../infra/fixtures/databases.js"
import { independentTasks } from "./fixtures/plans.js"
import { plannerRuntime, storeLayer } from "./fixtures/runtime.js"
import { spawnWorkerProcess } from "./fixtures/spawnWorkerProcess.js"

const taskCount = 60

/** The resumed run's own executor: completes whatever the dead workers left. */
const here: ExecutorService = {
  name: "here",
  execute: (context) => Effect.succeed(Outcome.Completed({ result: `task ${context.taskId} resumed` }))
}

describe("PostgreSQL: the whole fleet of workers killed mid-plan", () => {
  it.live(
    "resume records what they reported, takes back what they held, and finishes the plan, each task once",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          // Built here first, so the schema is migrated before the workers connect.
          const context = yield* Layer.build(plannerRuntime(storeLayer(url), here))
          const service = Context.get(context, PlannerService.PlannerService)
          const sql = Context.unsafeGet(context as Context.Context<unknown>, SqlClient.SqlClient)

          const workers = yield* Effect.all([spawnWorkerProcess(url), spawnWorkerProcess(url)], {
            concurrency: "unbounded"
          })

          // The session's writer is a worker on another machine that records nothing, under a long lease: the workers
          // report their outcomes to it, and the reports wait, however long a loaded machine takes to make them.
          const sessionId = "fleet-killed"
          const now = yield* Clock.currentTimeMillis
          yield* sql`
            INSERT INTO planner_session_writers (session_id, worker_id, lease_expires_at)
            VALUES (${sessionId}, 'elsewhere/1/cafe', ${now + 600_000})`
          yield* service.execute(
            sessionId,
            new Initialize({
              request: `${taskCount} independent steps`,
              tasks: independentTasks(taskCount),
              config: { ...defaultConfig, maxParallel: taskCount, leaseMs: 60_000 },
              at: yield* Clock.currentTimeMillis
            })
          )
          // Once a few outcomes wait as reports, every worker is killed.
          const reported = yield* Effect.map(service.queue.list(sessionId), (jobs) =>
            jobs.filter((job) => job.reported === true)
          ).pipe(
            Effect.filterOrFail(
              (jobs) => jobs.length >= 8,
              () => "not yet"
            ),
            Effect.retry({ schedule: Schedule.spaced(Duration.millis(20)), times: 1_000 }),
            within(30, "reports to wait")
          )
          for (const { child } of workers) yield* child.kill("SIGKILL")
          for (const { child } of workers) yield* child.exited.pipe(within(10, "a worker's exit"))
          // That machine's lease runs out too: nobody is left to record the reports.
          yield* sql`UPDATE planner_session_writers SET lease_expires_at = 0 WHERE session_id = ${sessionId}`

          const result = yield* Runner.run(sessionId).pipe(Effect.provide(context), within(60, "the resumed run"))
          expect(result.state.status).toBe("Succeeded")

          const events = (yield* Context.get(context, PlannerStore).load(sessionId)).map(({ event }) => event)
          const completed = events.flatMap((event) =>
            event._tag === "TaskStatusUpdated" && event.status === "Completed" ? [event] : []
          )
          expect(completed.map((event) => event.taskId).toSorted((a, b) => a - b)).toEqual(
            independentTasks(taskCount).map((task) => task.id)
          )
          // What was reported before the kill was recorded as reported, by the dead workers' attempts.
          for (const job of reported) {
            const completion = completed.find((event) => event.taskId === job.taskId)
            expect(completion?.attempt).toBe(job.attempt)
          }
          expect(yield* service.queue.list(sessionId)).toEqual([])
        })
      ),
    180_000
  )
})
