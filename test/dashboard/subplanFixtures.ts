/** A root session whose task 2 is expanded into a child session (#16), for the dashboard's tree tests. */
import { Clock, Effect } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import { fast } from "../app/runnerSuite.js"
import { task } from "./fixtures.js"

export const script = { rules: [], default: { complete: "done: {description}" } }

export const plan = [
  task(1, "Processing", "Write the notes"),
  task(2, "Processing", "Build the release. Then test it. Then publish it.", [1]),
  task(3, "Processing", "Tell the team", [2])
]

/** A root with task 2 expanded into a child session (not started until task 2 is dispatched). */
export const startTree = Effect.gen(function* () {
  const service = yield* PlannerService.PlannerService
  const at = yield* Clock.currentTimeMillis
  const sessionId = Runner.newSessionId(at)
  yield* service.execute(
    sessionId,
    new Initialize({
      request: "Release it",
      tasks: plan,
      config: { ...defaultConfig, ...fast },
      expand: [{ taskId: 2, childSessionId: childSessionId(sessionId, 2) }],
      at
    }),
    { correlationId: sessionId }
  )
  return sessionId
})
