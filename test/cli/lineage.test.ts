/**
 * Forks that re-run only what changed, plans edited while they run, lineage and diff (#15), end to end through the
 * built `planner` command on SQLite and on PostgreSQL. Which tasks ran is read from the script executor's record file
 * (one line per execution, written by the executor, not taken from the planner's log), so "reused" and "re-run" are
 * checked against what actually executed.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, inject, it } from "@effect/vitest"
import { createDatabase, uniqueDatabaseName } from "../support/postgres.js"
import {
  cli,
  ensureBuilt,
  oneLine,
  parseJson,
  type ResultJson,
  sessionIdIn,
  startCli,
  tempFolder,
  writeScript
} from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

/** Build and docs are independent; the environment question waits for the build; the deploy waits for the answer. */
const plan = {
  tasks: [
    { id: 1, description: "Build the app", kind: "Processing", dependsOn: [] },
    { id: 2, description: "Write the docs", kind: "Processing", dependsOn: [] },
    { id: 3, description: "Which environment should we deploy to?", kind: "Clarification", dependsOn: [1] },
    { id: 4, description: "Deploy the app", kind: "Processing", dependsOn: [3] }
  ]
}

interface Execution {
  readonly taskId: number
  readonly attempt: number
  readonly description: string
}

interface Setup {
  readonly cwd: string
  readonly db: ReadonlyArray<string>
  readonly planFile: string
  readonly script: string
  /** Every execution so far, in order. */
  readonly executions: () => ReadonlyArray<Execution>
}

const setUp = (db: string, rules: ReadonlyArray<unknown> = []): Setup => {
  const cwd = tempFolder("planner-lineage-")
  const record = path.join(cwd, "ran.jsonl")
  const script = writeScript(cwd, "script.json", {
    record,
    rules,
    default: { complete: "done: {description}" }
  })
  const planFile = path.join(cwd, "plan.json")
  fs.writeFileSync(planFile, JSON.stringify(plan))
  return {
    cwd,
    db: ["--db", db === "sqlite" ? path.join(cwd, "lineage.db") : db],
    planFile,
    script,
    executions: () =>
      fs.existsSync(record)
        ? fs
            .readFileSync(record, "utf8")
            .split("\n")
            .filter((line) => line.length > 0)
            .map((line) => JSON.parse(line) as Execution)
        : []
  }
}

interface DiffJson {
  readonly a: { readonly sessionId: string }
  readonly b: { readonly sessionId: string }
  readonly identical: boolean
  readonly lineage?: string
  readonly divergence: {
    readonly sequence: number
    readonly a: { type: string } | null
    readonly b: { type: string } | null
  } | null
  readonly tasks: ReadonlyArray<{
    readonly id: number
    readonly change: string
    readonly changes: ReadonlyArray<{ readonly field: string; readonly a: unknown; readonly b: unknown }>
  }>
}

interface TreeJson {
  readonly sessions: ReadonlyArray<{
    readonly sessionId: string
    readonly forkedFrom?: { readonly sessionId: string; readonly sequence: number }
    readonly forks: ReadonlyArray<{ readonly sessionId: string; readonly forkedFrom?: { readonly sequence: number } }>
  }>
}

const stores = [
  { name: "SQLite", db: async () => "sqlite" },
  { name: "PostgreSQL", db: () => createDatabase(inject("postgresUrl"), uniqueDatabaseName("lineage")) }
]

describe.concurrent.each(stores)("forks, edits, lineage and diff on $name", { timeout: 300_000 }, ({ db }) => {
  it("a fork with an edited answer re-runs only the answered task and what depends on it; diff and --tree show it", async () => {
    const setup = setUp(await db())
    const { cwd } = setup
    const exec = ["--executor", `script:${setup.script}`, "--non-interactive", ...setup.db]
    const run = await cli(["run", "--plan", setup.planFile, "--answer", "3=staging", "--json", ...exec], { cwd })
    expect(run.code, run.stderr).toBe(0)
    const source = parseJson<ResultJson>(run)
    expect(source.tasks.map((task) => task.status)).toEqual(["Completed", "Completed", "Completed", "Completed"])
    expect(source.tasks[2]?.result).toBe("staging")
    // The question is the person's to answer: the executor ran 1, 2 and 4.
    expect(
      setup
        .executions()
        .map((e) => e.taskId)
        .sort()
    ).toEqual([1, 2, 4])
    const events = (await cli(["history", source.sessionId, "--json", ...setup.db], { cwd })).stdout
    const last = (JSON.parse(events) as { events: ReadonlyArray<unknown> }).events.length

    // The dry run says what would happen and records nothing.
    const dry = await cli(
      ["fork", source.sessionId, "--at", String(last), "--set-answer", "3=production", "--dry-run", "--json", ...exec],
      { cwd }
    )
    expect(dry.code, dry.stderr).toBe(0)
    expect(parseJson<{ reused: Array<number>; rerun: Array<number>; run: Array<number> }>(dry)).toMatchObject({
      dryRun: true,
      reused: [1, 2],
      rerun: [3, 4]
    })
    const dryText = await cli(
      ["fork", source.sessionId, "--at", String(last), "--set-answer", "3=production", "--dry-run", ...exec],
      { cwd }
    )
    expect(dryText.stdout).toMatch(/^ +1\. reuse +Build the app$/m)
    expect(dryText.stdout).toMatch(/^ +4\. re-run +Deploy the app$/m)
    expect(dryText.stdout).toContain("Dry run: nothing was recorded.")
    const listed = parseJson<{ total: number }>(await cli(["sessions", "--json", ...setup.db], { cwd }))
    expect(listed.total).toBe(1)

    // The fork itself: the preview first, then only task 4 executes (3 takes the new answer as its result).
    const before = setup.executions().length
    const forked = await cli(
      ["fork", source.sessionId, "--at", String(last), "--set-answer", "3=production", "--plain", ...exec],
      { cwd }
    )
    expect(forked.code, forked.stderr).toBe(0)
    expect(forked.stdout.indexOf("reuses 1, 2; re-runs 3, 4")).toBeGreaterThanOrEqual(0)
    expect(forked.stdout.indexOf("reuses 1, 2")).toBeLessThan(forked.stdout.indexOf("Succeeded"))
    expect(
      setup
        .executions()
        .slice(before)
        .map((e) => e.taskId)
    ).toEqual([4])
    const forkId = sessionIdIn(forked.stdout.slice(forked.stdout.lastIndexOf("Session ")))
    const shown = parseJson<ResultJson>(await cli(["show", forkId, "--json", ...setup.db], { cwd }))
    expect(shown.tasks.map((task) => task.result)).toEqual([
      source.tasks[0]?.result,
      source.tasks[1]?.result,
      "production",
      source.tasks[3]?.result
    ])

    // rerun: task 2 again (nothing depends on it), everything else kept.
    const beforeRerun = setup.executions().length
    const rerun = await cli(["rerun", source.sessionId, "--task", "2", "--plain", ...exec], { cwd })
    expect(rerun.code, rerun.stderr).toBe(0)
    expect(rerun.stdout).toContain("reuses 1, 3, 4; re-runs 2")
    expect(
      setup
        .executions()
        .slice(beforeRerun)
        .map((e) => e.taskId)
    ).toEqual([2])
    const rerunId = sessionIdIn(rerun.stdout.slice(rerun.stdout.lastIndexOf("Session ")))

    // diff: the answer and the result of task 3 differ; the others do not.
    const diff = parseJson<DiffJson>(await cli(["diff", source.sessionId, forkId, "--json", ...setup.db], { cwd }))
    expect(diff.identical).toBe(false)
    expect(diff.lineage).toBe(`${forkId} was forked from ${source.sessionId} at event ${last}.`)
    expect(diff.tasks.map((task) => task.change)).toEqual(["same", "same", "changed", "same"])
    expect(diff.tasks[2]?.changes).toEqual([
      { field: "result", a: "staging", b: "production" },
      { field: "answers", a: ["staging"], b: ["production"] }
    ])
    expect(diff.divergence?.sequence).toBeGreaterThan(1)
    const diffText = await cli(["diff", source.sessionId, forkId, ...setup.db], { cwd })
    expect(diffText.code, diffText.stderr).toBe(0)
    expect(diffText.stdout).toMatch(/^ +answers +"staging" -> "production"$/m)
    expect(diffText.stdout).toContain(`First difference at event ${diff.divergence?.sequence}:`)

    // Both forks hang under their origin.
    const tree = parseJson<TreeJson>(await cli(["sessions", "--tree", "--json", ...setup.db], { cwd }))
    expect(tree.sessions.map((session) => session.sessionId)).toEqual([source.sessionId])
    expect(tree.sessions[0]?.forks.map((child) => child.sessionId).sort()).toEqual([forkId, rerunId].sort())
    const treeText = await cli(["sessions", "--tree", ...setup.db], { cwd })
    expect(treeText.stdout).toMatch(new RegExp(`^└─ ${forkId} \\(at ${last}\\) `, "m"))
  })

  it("edits a plan while it waits and while a run of it goes on; refusals exit 2 with one line", async () => {
    // The build waits for a file the test writes once the edit is recorded, so the edit lands while the run goes on
    // however slow the machine is.
    const buildMayEnd = path.join(tempFolder("planner-lineage-gate-"), "go")
    const setup = setUp(await db(), [{ match: "^Build", untilFile: buildMayEnd, outcomes: [{ complete: "built" }] }])
    const { cwd } = setup
    const exec = ["--executor", `script:${setup.script}`, "--non-interactive", ...setup.db]
    // A run that is still building when the edit lands: it must run the task the edit adds.
    const running = startCli(["run", "--plan", setup.planFile, "--plain", ...exec], { cwd })
    const started = await running.waitFor(/Session (\d{8}-\d{6}-[0-9a-f]{6})/)
    const sessionId = started[1] ?? ""
    const edited = await cli(
      [
        "edit",
        sessionId,
        "--add",
        "Announce the release",
        "--after",
        "2",
        "--add-kind",
        "analysis",
        "--set",
        "4=Deploy the app to production",
        ...setup.db
      ],
      { cwd }
    )
    fs.writeFileSync(buildMayEnd, "")
    expect(edited.code, edited.stderr).toBe(0)
    expect(edited.stdout).toMatch(/^ +5\. \S+ +\[Analysis\] Announce the release +\(after 2\)$/m)
    // The run stops waiting for the answer to task 3 (exit 3) having run the added task 5.
    const result = await running.result
    expect(result.code, result.stderr).toBe(3)
    expect(
      setup
        .executions()
        .map((e) => e.taskId)
        .sort()
    ).toEqual([1, 2, 5])

    // Refusals: a finished task, an unknown one, a cycle; each one line, exit 2, nothing recorded.
    const [finished, unknown, cycle, malformed, noKind] = await Promise.all([
      cli(["edit", sessionId, "--set", "1=Build it again", ...setup.db], { cwd }),
      cli(["edit", sessionId, "--remove", "9", ...setup.db], { cwd }),
      cli(["edit", sessionId, "--add", "Check the deploy", "--after", "4", "--depends", "4=6", ...setup.db], { cwd }),
      cli(["edit", sessionId, "--depends", "4", ...setup.db], { cwd }),
      cli(["edit", sessionId, "--add", "Check the deploy", "--add-kind", "Deployment", ...setup.db], { cwd })
    ])
    for (const refused of [finished, unknown, cycle, malformed, noKind]) {
      expect(refused.code, refused.stdout).toBe(2)
      oneLine(refused.stderr)
    }
    expect(finished.stderr).toMatch(/task 1/i)
    expect(cycle.stderr).toMatch(/wait for each other/)
    expect(noKind.stderr).toMatch(/--add-kind: "Deployment" is not a kind; use one of /)

    // The edited deploy runs with its new description once the question is answered.
    const answered = await cli(["answer", sessionId, "3", "production", "--json", ...exec], { cwd })
    expect(answered.code, answered.stderr).toBe(0)
    expect(parseJson<ResultJson>(answered).status).toBe("Succeeded")
    const deploys = setup.executions().filter((e) => e.taskId === 4)
    expect(deploys.map((e) => e.description)).toEqual(["Deploy the app to production"])
  })
})
