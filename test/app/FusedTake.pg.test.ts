/**
 * PostgreSQL: the writer recording a worker's outcome takes that worker's next jobs in the outcome's own statement
 * (`TaskQueue.completeAlongside` with a take), and so does a worker's report of an outcome to the session's writer,
 * so that a worker busy with a session another process dispatched takes little on its own: one statement per attempt
 * instead of two.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Effect, Fiber, Layer, Redacted } from "effect"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Worker from "../../src/app/Worker.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { echo } from "../../src/infra/EchoExecutor.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { within } from "../infra/EventStoreContract.js"
import { freshPgDatabase, pgStoreRecordingPrepared } from "../infra/fixtures/databases.js"
import { independentTasks } from "./fixtures/plans.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const tasks = independentTasks(12)

describe("PostgreSQL: a worker's next jobs come with its outcomes", () => {
  it.live("a worker serving a session another process dispatched takes its next jobs in its outcomes' statements", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        // The planner's process records the plan: every task dispatched, its job waiting in the queue.
        const planner = yield* Layer.build(plannerRuntime(PgEventStore.layer({ url: Redacted.make(url) }), echo))
        const plannerService = Context.get(planner, PlannerService)
        yield* plannerService.execute(
          "fused",
          new Initialize({
            request: "twelve tasks",
            tasks,
            config: { ...defaultConfig, maxParallel: tasks.length },
            at: yield* Clock.currentTimeMillis
          })
        )
        // A worker's process, its statements recorded by name.
        const { names, layer } = yield* pgStoreRecordingPrepared(url)
        const worker = yield* Layer.build(plannerRuntime(layer, echo))
        const serving = yield* Effect.fork(
          Worker.run({ concurrency: 2, checkAttachments: false, warmTokenizer: false }).pipe(Effect.provide(worker))
        )
        yield* Effect.gen(function* () {
          const state = yield* plannerService.state("fused")
          if (!Planner.isFinished(state)) return yield* Effect.fail("not yet")
        }).pipe(Effect.retry({ times: 1_000 }), Effect.delay("10 millis"), Effect.eventually, within(60, "the plan"))
        yield* Fiber.interrupt(serving)

        const state = yield* plannerService.state("fused")
        expect(state.status).toBe("Succeeded")
        expect(state.tasks.every((task) => task.status === "Completed" && task.attempt === 1)).toBe(true)
        // Twelve attempts, two at a time: a take of its own for the first two, then most outcomes took the next job.
        // An outcome is an append of the worker's own once it writes the session; its first ones, until it became the
        // session's writer, were reports, whose statement takes the same way. How many outcomes come before that
        // depends on the machine's load; without the outcome's take, every job would be taken on its own (12 takes).
        const takes = names.filter((name) => name.startsWith("planner_jobs_take"))
        // Outcome statements that took: reports (those made together go in one, which takes for all of them) and
        // appends of the writer's own (outcomes of attempts started together go in one, which takes for all of them).
        // How many there are depends on the machine's timing: a statement whose worker's slots were already filled
        // again (the jobs taken with earlier outcomes start while those outcomes' attempts finish) takes nothing.
        const outcomesTaking = names.filter(
          (name) => /^planner_jobs_report_\d+_take/.test(name) || /^event_store_append_\d+_.*_take/.test(name)
        )
        expect(takes.length).toBeLessThanOrEqual(tasks.length / 2)
        expect(outcomesTaking.length).toBeGreaterThanOrEqual(1)
        // Fewer statements took jobs than there were jobs: most took several, or came with an outcome.
        expect(takes.length + outcomesTaking.length).toBeLessThan(tasks.length)
      })
    )
  )
})
