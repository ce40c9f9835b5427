/**
 * A two-level plan through the `planner` command: `run --plan FILE --expand` runs task 2 (itself three steps) as a
 * sub-plan; the sub-plan's second step asks a question, so the run stops waiting (exit 3) and names the question and
 * the command that answers it; `planner answer ROOT 2 ...` (the root's id: no knowledge of the tree needed) records the
 * answer in the sub-plan and runs the tree to its end; `show` prints the child's tasks under task 2. Run over SQLite
 * and PostgreSQL by the two test files beside this one.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { expect } from "@effect/vitest"
import { cli, parseJson, type ResultJson, sessionIdIn, type TaskJson, tempFolder } from "./cli.js"

const plan = {
  request: "Release it",
  tasks: [
    { id: 1, description: "Write the notes", kind: "Processing", dependsOn: [], attachments: [] },
    {
      id: 2,
      description: "Build the release. Then ask the date. Then publish it.",
      kind: "Processing",
      dependsOn: [1],
      attachments: []
    },
    { id: 3, description: "Tell the team", kind: "Processing", dependsOn: [2], attachments: [] }
  ]
}

const script = {
  rules: [{ match: "ask the date", outcomes: [{ ask: "Which date?" }, { complete: "date is {answer}" }] }],
  default: { complete: "done" }
}

export const twoLevelPlan = async (db: () => Promise<ReadonlyArray<string>>) => {
  const cwd = tempFolder()
  const store = await db()
  fs.writeFileSync(path.join(cwd, "plan.json"), JSON.stringify(plan))
  fs.writeFileSync(path.join(cwd, "script.json"), JSON.stringify(script))
  const executor = ["--executor", "script:script.json"]
  const run = await cli(["run", ...store, "--non-interactive", ...executor, "--expand", "--plan", "plan.json"], { cwd })
  expect(run.code, run.stderr).toBe(3)
  const root = sessionIdIn(run.stdout)
  const child = `${root}~2`
  expect(run.stdout).toContain(`Task 2 of sub-plan ${child} asks: Which date?`)
  expect(run.stdout).toContain(`answer ${root} 2 "<text>"`)

  const answered = await cli(["answer", root, "2", "Friday", ...store, ...executor, "--json"], { cwd })
  expect(answered.code, answered.stderr).toBe(0)
  const done = parseJson<ResultJson>(answered)
  expect(done.status).toBe("Succeeded")
  const childShown = parseJson<ResultJson>(await cli(["show", child, ...store, "--json"], { cwd }))
  expect(childShown.status).toBe("Succeeded")
  expect(childShown.tasks.map((task) => task.result)).toEqual(["done", "date is Friday", "done"])
  expect(done.tasks[1]?.result).toBe(childShown.summary)

  const shown = await cli(["show", root, ...store], { cwd })
  expect(shown.code, shown.stderr).toBe(0)
  // The child's tasks are printed under task 2, indented, with the sub-plan's id.
  expect(shown.stdout).toMatch(new RegExp(`sub-plan ${child.replace(/[~-]/g, "\\$&")}`))
  expect(shown.stdout).toMatch(/\n {4,}.*date is Friday/)
  // `show --json`: the child under task 2 as `subPlan`, its tasks written as the CLI writes any task.
  const tree = parseJson<{
    tasks: ReadonlyArray<{
      id: number
      subPlan?: { sessionId: string; status: string; tasks: ReadonlyArray<TaskJson> }
    }>
  }>(await cli(["show", root, ...store, "--json"], { cwd }))
  expect(tree.tasks.map((task) => task.subPlan?.sessionId)).toEqual([undefined, child, undefined])
  expect(tree.tasks[1]?.subPlan?.status).toBe("Succeeded")
  expect(tree.tasks[1]?.subPlan?.tasks.map((task) => [task.result, task.attempts])).toEqual([
    ["done", 1],
    ["date is Friday", 2],
    ["done", 1]
  ])
}

/** `planner expand` refuses a task that has started and a depth past the bound, each with exit code 2 and why. */
export const expandRefusals = async (db: () => Promise<ReadonlyArray<string>>) => {
  const cwd = tempFolder()
  const store = await db()
  fs.writeFileSync(path.join(cwd, "plan.json"), JSON.stringify(plan))
  fs.writeFileSync(
    path.join(cwd, "script.json"),
    JSON.stringify({ rules: [{ match: "notes", outcomes: [{ ask: "Which notes?" }] }], default: { complete: "ok" } })
  )
  const run = await cli(
    ["run", ...store, "--non-interactive", "--executor", "script:script.json", "--plan", "plan.json"],
    {
      cwd
    }
  )
  expect(run.code, run.stderr).toBe(3)
  const root = sessionIdIn(run.stdout)
  const started = await cli(["expand", root, "1", ...store], { cwd })
  expect(started.code).toBe(2)
  expect(started.stderr).toContain("only a planned task can be")
  const expanded = await cli(["expand", root, "2", ...store], { cwd })
  expect(expanded.code, expanded.stderr).toBe(0)
  expect(expanded.stdout).toContain(`will run as sub-plan ${root}~2 once it is ready`)
}
