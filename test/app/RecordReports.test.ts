/**
 * The session writer's part of the attempt runner (`recordReports`): whether a batch of reports ended the session,
 * which tells the writer to stop writing it. A batch the planner refuses whole still ends it when the session is
 * over already (reports of attempts that outlived the end); one refused in a session still running does not.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as AttemptRunner from "../../src/app/worker/AttemptRunner.js"
import { HandleExecutorEvent, Initialize, TaskCompleted } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { echo } from "../../src/infra/EchoExecutor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import type { PendingReport } from "../../src/infra/TaskQueue.js"
import { independentTasks } from "./fixtures/plans.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const encode = Schema.encodeSync(AttemptRunner.ReportedCommands)

/** A worker's report that task `taskId`'s attempt `attempt` completed. */
const completion = (sessionId: string, taskId: number, attempt: number): PendingReport => ({
  key: { sessionId, taskId, attempt },
  workerId: "elsewhere",
  outcome: encode([new HandleExecutorEvent({ event: new TaskCompleted({ taskId, attempt, result: "late" }), at: 10 })])
})

const recordReports = AttemptRunner.make({
  workerId: "writer",
  workingDirectory: process.cwd(),
  checkAttachments: false,
  rootSpans: false,
  startsWithOutcomes: true
}).pipe(Effect.map((runner) => runner.recordReports))

const start = (sessionId: string, tasks: number) =>
  Effect.flatMap(PlannerService, (service) =>
    service.execute(
      sessionId,
      new Initialize({ request: "steps", tasks: independentTasks(tasks), config: defaultConfig, at: 1 })
    )
  )

const layer = Layer.fresh(plannerRuntime(MemoryEventStore.layer(), echo))

describe("recording a batch of reports", () => {
  it.scoped("refused whole because the session is over: it says the session ended", () =>
    Effect.gen(function* () {
      yield* start("over", 1)
      const finished = yield* Runner.run("over", { localWorker: true })
      expect(finished.state.status).toBe("Succeeded")
      const record = yield* recordReports
      expect(yield* record("over", [completion("over", 1, 1)])).toEqual({ ended: true })
    }).pipe(Effect.provide(layer))
  )

  it.scoped("refused in a session still running (an attempt that is not the current one): it did not end", () =>
    Effect.gen(function* () {
      yield* start("running", 2)
      const record = yield* recordReports
      expect(yield* record("running", [completion("running", 1, 7)])).toEqual({ ended: false })
    }).pipe(Effect.provide(layer))
  )
})
