/**
 * A program that embeds the planner keeps its event loop (#18): `Runner.run` of a 2,000-task plan whose executor
 * completes every task at once, on a SQLite file, lets Node's timers fire while the run goes on. It used to be one
 * chain of microtasks, so a timer (or a signal handler) of the embedding program got its turn only after the run. The
 * CLI had the fix (`withEventLoopTurns`) around its own runs; library callers did not.
 *
 * No durations are asserted: the test counts the timer's turns that came while some but not all tasks were done.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import * as Runner from "../../src/app/Runner.js"
import * as Planner from "../../src/domain/Planner.js"
import * as EchoExecutor from "../../src/infra/EchoExecutor.js"

const taskCount = 2_000

describe("Runner.run lets the event loop turn", { timeout: 300_000 }, () => {
  it("a timer of the embedding program fires while a 2,000-task instant run goes on", async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), "planner-event-loop-"))
    try {
      let completed = 0
      let turnsMidRun = 0
      const request = Array.from({ length: taskCount }, (_, index) => `- Write part ${index + 1}`).join("\n")
      const program = Effect.gen(function* () {
        const { sessionId } = yield* Runner.start(request)
        // Started once the plan is stored, so planning (one synchronous parse) is not what is measured.
        const timer = setInterval(() => {
          if (completed > 0 && completed < taskCount) turnsMidRun += 1
        }, 1)
        return yield* Runner.run(sessionId, {
          onProgress: (progress) =>
            Effect.sync(() => {
              completed = Planner.countByStatus(progress.state).Completed ?? 0
            })
        }).pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
      })
      const exit = await Effect.runPromiseExit(
        program.pipe(
          Effect.provide(PlannerRuntime.sqlite(path.join(folder, "planner.db"), { executor: EchoExecutor.echo }))
        )
      )
      expect(Exit.isSuccess(exit), String(exit)).toBe(true)
      if (Exit.isSuccess(exit)) expect(exit.value.state.status).toBe("Succeeded")
      expect(completed).toBe(taskCount)
      // Without the scheduler the timer fired only once the run was over: 0.
      expect(turnsMidRun).toBeGreaterThan(1)
    } finally {
      fs.rmSync(folder, { recursive: true, force: true })
    }
  })
})
