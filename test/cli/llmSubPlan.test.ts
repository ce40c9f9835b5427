/**
 * #16: an LLM plan that marks a step as a sub-plan (`subPlan: true`) runs that step as a child session, without
 * `--expand`: `planner run` with a model configured (a real HTTP server on 127.0.0.1 speaking chat completions) records
 * `TaskExpanded` for the marked step, the child's plan is asked of the same model (its source names it), the child's
 * tasks run with the script executor, and the child's summary becomes the step's result. The unmarked step stays a plain task even though its text has several steps (that takes
 * `--expand`).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { Reply } from "../llm/support/FakeOpenAiServer.js"
import { apiKey, draftStep, model } from "../llm/support/layers.js"
import { cli, ensureBuilt, parseJson, type ResultJson, sessionIdIn, tempFolder } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

const step = draftStep

const childPlan = {
  tasks: [step("build", "Build the release", [], false), step("publish", "Publish it", ["build"], false)]
}

const plan = {
  tasks: [
    step("notes", "Write the notes. Then file them.", [], false),
    step("release", "Build the release. Then publish it.", ["notes"], true),
    step("tell", "Tell the team", ["release"], false)
  ]
}

interface HistoryJson {
  readonly events: ReadonlyArray<{ readonly type: string; readonly data: Record<string, unknown> }>
}

describe("an LLM plan with a sub-plan step", { timeout: 300_000 }, () => {
  it("the marked step runs as a child session whose tasks run; its summary is the step's result", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cwd = tempFolder()
          const server = yield* FakeOpenAiServer.make
          server.enqueue(Reply.json(plan), Reply.json(childPlan))
          fs.writeFileSync(
            path.join(cwd, "script.json"),
            JSON.stringify({ rules: [], default: { complete: "did {taskId}" } })
          )
          const env = {
            PLANNER_LLM_BASE_URL: server.url,
            PLANNER_LLM_MODEL: model,
            PLANNER_LLM_API: "chat",
            PLANNER_LLM_API_KEY: apiKey
          }
          const run = yield* Effect.promise(() =>
            cli(
              [
                "run",
                "--non-interactive",
                "--executor",
                "script:script.json",
                "Write and file the notes, then build and publish the release, then tell the team."
              ],
              { cwd, env }
            )
          )
          expect(run.code, run.stderr).toBe(0)
          const root = sessionIdIn(run.stdout)
          const child = `${root}~2`
          // The root's plan and the child's were asked of the model; the steps were done by the script.
          expect(server.modelRequests()).toHaveLength(2)
          expect(server.pending()).toBe(0)

          const history = parseJson<HistoryJson>(yield* Effect.promise(() => cli(["history", root, "--json"], { cwd })))
          const expanded = history.events.filter((event) => event.type === "TaskExpanded")
          expect(expanded.map((event) => [event.data.taskId, event.data.childSessionId])).toEqual([[2, child]])

          const childHistory = parseJson<HistoryJson>(
            yield* Effect.promise(() => cli(["history", child, "--json"], { cwd }))
          )
          const childPlanned = childHistory.events.find((event) => event.type === "TasksPlanned")
          expect(childPlanned?.data.source).toMatchObject({ _tag: "Llm", model })
          const childShown = parseJson<ResultJson>(yield* Effect.promise(() => cli(["show", child, "--json"], { cwd })))
          expect(childShown.status).toBe("Succeeded")
          expect(childShown.tasks.map((task) => task.description)).toEqual(["Build the release", "Publish it"])
          expect(childShown.tasks.map((task) => [task.status, task.result])).toEqual([
            ["Completed", "did 1"],
            ["Completed", "did 2"]
          ])
          const rootShown = parseJson<ResultJson>(yield* Effect.promise(() => cli(["show", root, "--json"], { cwd })))
          expect(rootShown.status).toBe("Succeeded")
          expect(rootShown.tasks.map((task) => task.status)).toEqual(["Completed", "Completed", "Completed"])
          expect(rootShown.tasks[1]?.result).toBe(childShown.summary)
          expect(rootShown.tasks[0]?.result).toBe("did 1")
        })
      )
    ))
})
