/**
 * Memory end to end through the built CLI on a real SQLite file: two sessions with related requests, then `recall`
 * finds the first from the second's words; `stats`; `memory rebuild`; bad options refused with exit code 2.
 */
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import { cli, ensureBuilt, parseJson, sessionIdIn, tempFolder } from "../cli/cli.js"

let cwd = ""
let db = ""
beforeAll(() => {
  ensureBuilt()
  cwd = tempFolder("planner-memory-")
  db = path.join(cwd, "memory.db")
}, 180_000)

interface Hit {
  readonly _tag: "Task" | "Session"
  readonly sessionId: string
  readonly score: number
  readonly request?: string
  readonly outcome?: string
  readonly description?: string
  readonly result?: string
}

const first = "Write unit tests for the login endpoint. Then deploy the website to staging."
const second = "Add integration tests for the signup endpoint"

describe("memory through the CLI", { timeout: 300_000 }, () => {
  let firstId = ""
  let secondId = ""

  it("recall finds the first session from the second's words, with results and outcomes", async () => {
    const one = await cli(["run", "--executor", "echo", "--plain", "--db", db, first], { cwd })
    expect(one.code, one.stderr).toBe(0)
    firstId = sessionIdIn(one.stdout + one.stderr)
    const two = await cli(["run", "--executor", "echo", "--plain", "--db", db, second], { cwd })
    expect(two.code, two.stderr).toBe(0)
    secondId = sessionIdIn(two.stdout + two.stderr)
    expect(secondId).not.toBe(firstId)

    const sessions = await cli(["recall", "--db", db, "--kind", "session", "--json", second], { cwd })
    expect(sessions.code, sessions.stderr).toBe(0)
    const found = parseJson<{ hits: ReadonlyArray<Hit> }>(sessions).hits
    expect(found.map((hit) => hit.sessionId).sort()).toEqual([firstId, secondId].sort())
    expect(found.find((hit) => hit.sessionId === firstId)).toMatchObject({
      _tag: "Session",
      request: first,
      outcome: "Succeeded"
    })

    const tasks = await cli(
      ["recall", "--db", db, "--kind", "task", "--limit", "1", "--json", "testing a login endpoint"],
      {
        cwd
      }
    )
    expect(tasks.code, tasks.stderr).toBe(0)
    const [task] = parseJson<{ hits: ReadonlyArray<Hit> }>(tasks).hits
    expect(task).toMatchObject({
      _tag: "Task",
      sessionId: firstId,
      description: "Write unit tests for the login endpoint"
    })

    const text = await cli(["recall", "--db", db, "deploying the website"], { cwd })
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(`session ${firstId}  Succeeded`)
    expect(text.stdout).toContain("deploy the website to staging")
    expect(text.stdout).toMatch(/result: /)
  })

  it("stats counts the tasks per kind and the sessions; memory rebuild gives the same index back", async () => {
    const stats = await cli(["stats", "--db", db, "--json"], { cwd })
    expect(stats.code, stats.stderr).toBe(0)
    const figures = parseJson<{
      overall: { tasks: number; successRate: number; meanAttempts: number; clarificationRate: number }
      sessions: { finished: number; succeeded: number }
    }>(stats)
    expect(figures.overall).toMatchObject({ tasks: 3, successRate: 1, meanAttempts: 1, clarificationRate: 0 })
    expect(figures.sessions).toEqual({ finished: 2, succeeded: 2, successRate: 1 })
    const table = await cli(["stats", "--db", db], { cwd })
    expect(table.stdout).toMatch(/all tasks\s+3\s+100%\s+1\.00/)
    expect(table.stdout).toContain("sessions: 2 finished, 2 succeeded (100%)")

    const before = await cli(["recall", "--db", db, "--json", "--limit", "50", "tests endpoint website"], { cwd })
    const rebuilt = await cli(["memory", "rebuild", "--db", db], { cwd })
    expect(rebuilt.code, rebuilt.stderr).toBe(0)
    expect(rebuilt.stdout).toContain("Memory rebuilt from the log: 5 records from 2 sessions.")
    const after = await cli(["recall", "--db", db, "--json", "--limit", "50", "tests endpoint website"], { cwd })
    expect(parseJson(after)).toEqual(parseJson(before))
  })

  it("refuses an unknown --kind and a bad --limit with exit code 2 and one line", async () => {
    const kind = await cli(["recall", "--db", db, "--kind", "Pizza", "tests"], { cwd })
    expect(kind.code).toBe(2)
    expect(kind.stderr).toContain("--kind Pizza is not known: use one of task, session, Clarification")
    const limit = await cli(["recall", "--db", db, "--limit", "0", "tests"], { cwd })
    expect(limit.code).toBe(2)
    expect(limit.stderr).toContain("--limit must be a whole number from 1 to 1000")
  })

  it("a damaged stored record: recall says which and how to mend it in one line, a run goes on, rebuild mends it", async () => {
    const damage = (record: string) => {
      const damaged = new Sqlite(db)
      const changed = damaged
        .prepare("UPDATE memory_docs SET record = ? WHERE doc_key = ?")
        .run(record, `session:${firstId}`)
      damaged.close()
      expect(changed.changes).toBe(1)
    }
    const refused = async () => {
      const recall = await cli(["recall", "--db", db, "--kind", "session", second], { cwd })
      expect(recall.code).toBe(4)
      expect(recall.stderr.trim().split("\n")).toHaveLength(1)
      expect(recall.stderr).toContain(`the stored record of session:${firstId} cannot be read`)
      expect(recall.stderr).toContain("planner memory rebuild")
    }
    // Cut short, and whole JSON without the fields its readers read.
    damage('{"_tag":"Session","sessionId":"')
    await refused()
    damage(`{"_tag":"Session","sessionId":"${firstId}"}`)
    await refused()

    // Memory is advice to a run: it plans the request as usual.
    const run = await cli(["run", "--executor", "echo", "--plain", "--from-memory", "--db", db, first], { cwd })
    expect(run.code, run.stderr).toBe(0)

    const rebuilt = await cli(["memory", "rebuild", "--db", db], { cwd })
    expect(rebuilt.code, rebuilt.stderr).toBe(0)
    const mended = await cli(["recall", "--db", db, "--kind", "session", "--json", second], { cwd })
    expect(mended.code, mended.stderr).toBe(0)
    expect(parseJson<{ hits: ReadonlyArray<Hit> }>(mended).hits.map((hit) => hit.sessionId)).toContain(firstId)
  })
})
