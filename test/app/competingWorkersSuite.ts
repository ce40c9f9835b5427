/**
 * Competing workers across processes: three worker processes against one database (PostgreSQL or a SQLite file) run a
 * 200-task plan
 * whose tasks may all run at once; one of them is killed with SIGKILL while it holds tasks. The others take its
 * tasks back once their leases run out (or at once, when they notice its process is gone) and finish the plan.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Effect, Layer, type Scope, Stream } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import { type PlannerEventRecord, PlannerStore } from "../../src/infra/PlannerStore.js"
import { within } from "../infra/EventStoreContract.js"
import { plannerRuntime, storeLayer } from "./fixtures/runtime.js"
import { spawnWorkerProcess } from "./fixtures/spawnWorkerProcess.js"

const taskCount = 200

const tasks: ReadonlyArray<TaskPlan> = Array.from({ length: taskCount }, (_, index) => ({
  id: index + 1,
  description: `independent step ${index + 1}`,
  kind: "Processing",
  dependsOn: [],
  attachments: []
}))

/** This process only starts the plan and watches; it never executes anything. */
const neverHere: ExecutorService = {
  name: "never",
  execute: () => Effect.succeed(Outcome.Failed({ error: "the test process does not execute tasks", retryable: true }))
}

/**
 * The suite over the database `fresh` gives (a PostgreSQL URL or a SQLite file path). `victimWrites` (PostgreSQL): the
 * victim is made the session's writer before the plan starts, so the others report their outcomes to it until it is
 * killed, and then elect another writer.
 */
export const competingWorkersSuite = (
  name: string,
  fresh: Effect.Effect<string, unknown, Scope.Scope>,
  options: { readonly victimWrites?: boolean } = {}
) =>
  describe(`competing worker processes on ${name}`, () => {
    it.live(
      `three workers run a 200-task plan; one killed mid-task${options.victimWrites === true ? ", the session's writer" : ""}; every task completes exactly once`,
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const url = yield* fresh
            // Built here first, so the schema is migrated before the workers connect.
            const context = yield* Layer.build(plannerRuntime(storeLayer(url), neverHere))
            const service = Context.get(context, PlannerService.PlannerService)
            const store = Context.get(context, PlannerStore)

            const [first, second, victim] = yield* Effect.all(
              [
                spawnWorkerProcess(url),
                spawnWorkerProcess(url),
                spawnWorkerProcess(url, { mode: "victim", stuckAfter: 5 })
              ],
              {
                concurrency: "unbounded"
              }
            )

            const sessionId = "competing-workers"
            const sql = Context.unsafeGet(context as Context.Context<unknown>, SqlClient.SqlClient)
            if (options.victimWrites === true) {
              // Its own sweep finds the row its own and takes it up; the others' reports find it the writer.
              const until = (yield* Clock.currentTimeMillis) + 600_000
              yield* sql`
                INSERT INTO planner_session_writers (session_id, worker_id, lease_expires_at)
                VALUES (${sessionId}, ${victim.workerId}, ${until})`
            }
            yield* service.execute(
              sessionId,
              new Initialize({
                request: "two hundred independent steps",
                tasks,
                config: {
                  ...defaultConfig,
                  maxParallel: taskCount,
                  maxAttempts: 5,
                  leaseMs: 1_500,
                  backoff: { initialDelayMs: 20, factor: 2, maxDelayMs: 200 }
                },
                at: yield* Clock.currentTimeMillis
              })
            )

            // The victim hangs on its sixth task (after five normal ones); kill it then, holding at least that one.
            const stuck = yield* victim.child
              .waitFor((line) => line.startsWith("stuck "))
              .pipe(within(30, "the victim"))
            const [, stuckTask, stuckAttempt] = stuck.split(" ").map(Number)
            if (options.victimWrites === true) {
              const writers = yield* sql<{ worker_id: string }>`
                SELECT worker_id FROM planner_session_writers WHERE session_id = ${sessionId}`
              expect(writers.map((row) => row.worker_id)).toEqual([victim.workerId])
            }
            yield* victim.child.kill("SIGKILL")
            yield* victim.child.exited.pipe(within(10, "the victim's exit"))

            const finished = yield* Runner.observe(sessionId).pipe(
              Stream.runLast,
              Effect.provideService(PlannerStore, store),
              within(240, "the plan")
            )
            for (const worker of [first, second]) yield* worker.child.send("stop")
            yield* Effect.all([first.child.success, second.child.success], { concurrency: "unbounded" }).pipe(
              within(20, "the workers' exit")
            )

            const records = yield* store.load(sessionId)
            const events = records.map((record) => record.event)
            const final = Planner.fold(events)
            expect(final.status).toBe("Succeeded")
            expect(finished._tag === "Some" && finished.value.state).toEqual(final)
            expect(yield* service.state(sessionId)).toEqual(final)
            expect(records.map((record) => record.sequence)).toEqual(records.map((_, index) => index + 1))

            // Every task completed exactly once, and no attempt was claimed twice.
            const completions = new Map<number, number>()
            const claims = new Map<string, string>()
            const doubleClaims: Array<string> = []
            for (const event of events) {
              if (event._tag === "TaskStatusUpdated" && event.status === "Completed") {
                completions.set(event.taskId, (completions.get(event.taskId) ?? 0) + 1)
              }
              if (event._tag === "TaskClaimed") {
                const key = `${event.taskId}/${event.attempt}`
                if (claims.has(key)) doubleClaims.push(key)
                claims.set(key, event.workerId)
              }
            }
            expect([...completions.keys()].sort((a, b) => a - b)).toEqual(tasks.map((task) => task.id))
            expect([...completions.values()].every((count) => count === 1)).toBe(true)
            expect(doubleClaims).toEqual([])

            // The victim's unfinished attempts were taken back (lease expiry, or its process found gone) and completed
            // by the others; the one it hung on is among them.
            const completedAttempts = new Set(
              events.flatMap((event) =>
                event._tag === "TaskStatusUpdated" && event.status === "Completed"
                  ? [`${event.taskId}/${event.attempt}`]
                  : []
              )
            )
            const orphaned = [...claims].filter(
              ([key, workerId]) => workerId === victim.workerId && !completedAttempts.has(key)
            )
            expect(orphaned.map(([key]) => key)).toContain(`${stuckTask}/${stuckAttempt}`)
            for (const [key] of orphaned) {
              const [taskId = 0, attempt = 0] = key.split("/").map(Number)
              const takenBack = events.find(
                (event) => event._tag === "TaskRetryScheduled" && event.taskId === taskId && event.attempt === attempt
              )
              expect(takenBack?._tag === "TaskRetryScheduled" && takenBack.error).toContain(victim.workerId)
              const task = Planner.task(final, taskId)
              expect(task?.status).toBe("Completed")
              expect(task?.attempt).toBeGreaterThan(attempt)
              expect(claims.get(`${taskId}/${task?.attempt}`)).not.toBe(victim.workerId)
            }
            // All three took part.
            const completedBy = new Set(
              events.flatMap((event) =>
                event._tag === "TaskStatusUpdated" && event.status === "Completed"
                  ? [claims.get(`${event.taskId}/${event.attempt}`)]
                  : []
              )
            )
            expect(completedBy).toEqual(new Set([first.workerId, second.workerId, victim.workerId]))
            yield* Effect.logInfo(summarise(records))
          })
        ),
      360_000
    )
  })

/** A line for the test log: how many events of each type the run took. */
const summarise = (records: ReadonlyArray<PlannerEventRecord>) => {
  const counts = new Map<string, number>()
  for (const record of records) counts.set(record.event._tag, (counts.get(record.event._tag) ?? 0) + 1)
  return [...counts].map(([type, count]) => `${type}: ${count}`).join(", ")
}
