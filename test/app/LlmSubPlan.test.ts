/**
 * A sub-plan is planned as a root is (#16): by the configured LLM, against a real HTTP server speaking chat
 * completions, over a real SQLite file. The root's plan marks a step as a sub-plan; the child's plan is the model's
 * (its source names the model), its plan call is recorded with the child's plan and counted against the tree's
 * budget; a model answer the planner cannot use leaves the child to the parser with the reason; and the tree is
 * rebuilt from its logs without a model call.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { stateText } from "../../src/app/cli/Render.js"
import * as PlannerRuntime from "../../src/app/PlannerRuntime.js"
import * as Runner from "../../src/app/Runner.js"
import * as SubPlanRun from "../../src/app/SubPlanRun.js"
import * as SubPlans from "../../src/app/SubPlans.js"
import * as Planner from "../../src/domain/Planner.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { draftStep, llmLayer, model, settingsFor } from "../llm/support/layers.js"

const step = draftStep

const rootPlan = {
  tasks: [
    step("notes", "Write the release notes", []),
    step("release", "Build the release and publish it to the registry", ["notes"], true),
    step("tell", "Tell the team", ["release"])
  ]
}

const childPlan = {
  tasks: [
    step("build", "Compile the packages", []),
    step("check", "Run the smoke tests on the build", ["build"]),
    step("publish", "Publish the packages to the registry", ["check"])
  ]
}

const executor = ScriptExecutor.make({ rules: [], default: { complete: "done: {description}" } })

const runTreeWith = (replies: ReadonlyArray<Reply>) =>
  Effect.gen(function* () {
    const filename = yield* freshSqliteFile
    const server = yield* FakeOpenAiServer.make
    server.enqueue(...replies)
    const runtime = PlannerRuntime.layer(SqliteEventStore.layer({ filename }), {
      executor,
      llm: llmLayer("chat", settingsFor(server))
    })
    return yield* Effect.gen(function* () {
      const { sessionId } = yield* Runner.start("Release version 2.", { config: { budgetTokens: 200_000 } })
      const result = yield* SubPlanRun.runTree(sessionId)
      const store = yield* PlannerStore
      const child = childSessionId(sessionId, 2)
      const childLog = yield* store.load(child)
      const spend = SubPlans.treeSpend(yield* SubPlans.tree(sessionId))
      const shown = stateText(result.state, { sessionId, ...(spend === undefined ? {} : { tree: spend }) })
      const requestsBeforeReplay = server.modelRequests().length
      // Rebuilding the tree from its logs calls nobody.
      const rebuilt = yield* SubPlans.treeAt(sessionId, result.state.version)
      expect(server.modelRequests().length).toBe(requestsBeforeReplay)
      return { sessionId, child, result, childLog, rebuilt, requests: requestsBeforeReplay, spend, shown }
    }).pipe(Effect.provide(runtime))
  })

describe("a sub-plan planned by the LLM", () => {
  it.scopedLive("the child's plan is the model's, its call counted against the tree's budget", () =>
    Effect.gen(function* () {
      const { result, childLog, rebuilt, requests, spend, shown } = yield* runTreeWith([
        Reply.json(rootPlan, { input: 1_000, output: 200 }),
        Reply.json(childPlan, { input: 800, output: 150 })
      ])
      expect(requests).toBe(2)
      expect(result.state.status).toBe("Succeeded")
      const planned = childLog.find((record) => record.event._tag === "TasksPlanned")?.event
      expect(planned).toMatchObject({ source: { _tag: "Llm", model } })
      const childState = Planner.fold(childLog.map((record) => record.event))
      expect(childState.tasks.map((task) => task.description)).toEqual(childPlan.tasks.map((task) => task.description))
      expect(childState.status).toBe("Succeeded")
      // The child's plan call is in the child's log, as a root's is in its own.
      expect(childState.budget?.spent).toMatchObject({ inputTokens: 800, outputTokens: 150, calls: 1 })
      expect(result.state.tasks[1]?.result).toBe(childState.summary)
      expect(rebuilt.children.get(2)?.state).toEqual(childState)
      // `show` of the root gives the tree's total against the root's budget: both plan calls.
      expect(spend?.subPlans).toBe(1)
      expect(spend?.budget.spent).toMatchObject({ inputTokens: 1_800, outputTokens: 350, calls: 2 })
      expect(shown).toContain(
        "Tree spend (this session and its 1 sub-plan): 2,150 tokens (1,800 in, 350 out) in 2 calls; budget 200,000 tokens"
      )
    })
  )

  it.scopedLive("an answer the planner cannot use leaves the child to the parser, which says why", () =>
    Effect.gen(function* () {
      const { result, childLog } = yield* runTreeWith([
        Reply.json(rootPlan, { input: 1_000, output: 200 }),
        Reply.text("I would rather not plan this."),
        Reply.text("Still no plan.")
      ])
      expect(result.state.status).toBe("Succeeded")
      const planned = childLog.find((record) => record.event._tag === "TasksPlanned")?.event
      expect(planned?._tag === "TasksPlanned" && planned.source._tag).toBe("Parser")
      expect(planned?._tag === "TasksPlanned" && planned.source._tag === "Parser" && planned.source.reason).toMatch(
        /^sub-plan of task 2 of session .+: /
      )
    })
  )
})
