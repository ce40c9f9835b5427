/**
 * Plans a user can read and write (issue 14): `planner plan` shows the parallel groups and the critical path, and
 * `planner run --plan FILE` (`-` for standard input) runs a plan in the format `planner plan --json` prints, refusing
 * a malformed one with exit code 2 and one line saying what is wrong.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { cli, ensureBuilt, oneLine, sessionIdIn, tempFolder } from "./cli.js"

let cwd = ""
beforeAll(() => {
  ensureBuilt()
  cwd = tempFolder("planner-planfile-")
}, 180_000)

const request = "Enroll in the course, order a pizza, and then drive to the campus."

describe("plans as files", { timeout: 300_000 }, () => {
  it("plan shows the parallel groups and the critical path of a branching plan", async () => {
    const result = await cli(["plan", request], { cwd })
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(
      [
        "  1. [Processing] Enroll in the course",
        "  2. [Processing] order a pizza",
        "  3. [Processing] drive to the campus  (after 1, 2)",
        "",
        "Parallel groups: 1, 2 | 3",
        "Critical path: 1 -> 3",
        ""
      ].join("\n")
    )
  })

  it("run --plan runs what plan --json printed, edited by hand, from a file or standard input", async () => {
    const printed = await cli(["plan", "--json", request], { cwd })
    expect(printed.code).toBe(0)
    // The user makes the drive wait only for the pizza.
    const plan = JSON.parse(printed.stdout) as { tasks: Array<{ id: number; dependsOn: Array<number> }> }
    const edited = { ...plan, tasks: plan.tasks.map((task) => (task.id === 3 ? { ...task, dependsOn: [2] } : task)) }
    const file = path.join(cwd, "plan.json")
    fs.writeFileSync(file, JSON.stringify(edited, null, 2))
    const db = path.join(cwd, "plans.db")
    const [fromFile, fromStdin] = await Promise.all([
      cli(["run", "--executor", "echo", "--plain", "--db", db, "--plan", file], { cwd }),
      cli(["run", "--executor", "echo", "--plain", "--db", db, "--plan", "-"], { cwd, input: JSON.stringify(edited) })
    ])
    for (const result of [fromFile, fromStdin]) {
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toContain("  3. [Processing] drive to the campus  (after 2)")
      expect(result.stdout).toContain("Succeeded: 3 of 3 tasks completed.")
    }
    // The session says the plan came from the file, not from the parser.
    const [shownFile, shownStdin, history] = await Promise.all([
      cli(["show", sessionIdIn(fromFile.stdout), "--db", db], { cwd }),
      cli(["show", sessionIdIn(fromStdin.stdout), "--db", db], { cwd }),
      cli(["history", sessionIdIn(fromFile.stdout), "--db", db], { cwd })
    ])
    expect(shownFile.code, shownFile.stderr).toBe(0)
    expect(shownFile.stdout).toContain(`planned from the file ${file}`)
    expect(shownStdin.stdout).toContain("planned from a plan file on standard input")
    for (const shown of [shownFile, shownStdin]) expect(shown.stdout).not.toContain("planned by the parser")
    expect(history.stdout).toContain(`3 tasks planned from the file ${file}`)
  })

  it("run --plan refuses a malformed plan, a missing file, and a request given as well, with exit code 2", async () => {
    const cyclic = path.join(cwd, "cyclic.json")
    fs.writeFileSync(
      cyclic,
      JSON.stringify({
        tasks: [
          { id: 1, description: "Book a car", dependsOn: [2] },
          { id: 2, description: "Pay the bill", dependsOn: [1] }
        ]
      })
    )
    const db = path.join(cwd, "refused.db")
    const [cycle, missing, both, notJson] = await Promise.all([
      cli(["run", "--db", db, "--plan", cyclic], { cwd }),
      cli(["run", "--db", db, "--plan", path.join(cwd, "missing.json")], { cwd }),
      cli(["run", "--db", db, "--plan", cyclic, "Book a car"], { cwd }),
      cli(["run", "--db", db, "--plan", "-"], { cwd, input: "not json" })
    ])
    expect(cycle.code).toBe(2)
    expect(oneLine(cycle.stderr)).toBe(
      `planner: ${cyclic} is not a plan planner can run: tasks 1 -> 2 -> 1 form a cycle. Fix it, or write one with \`planner plan --json "<request>" > plan.json\`.`
    )
    expect(missing.code).toBe(2)
    expect(oneLine(missing.stderr)).toMatch(
      /^planner: Cannot read the plan file .*missing\.json: there is no such file: check the path\.$/
    )
    expect(both.code).toBe(2)
    expect(oneLine(both.stderr)).toBe(
      "planner: Give either a request or --plan FILE, not both: the plan file holds its request."
    )
    expect(notJson.code).toBe(2)
    expect(oneLine(notJson.stderr)).toMatch(/^planner: standard input is not a plan planner can run: it is not JSON/)
  })
})
