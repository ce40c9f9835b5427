/**
 * The CLI defects of #18 that touch the store, on PostgreSQL (the server the test run starts): the session list in
 * pages with its total, and a session with a hole in its log reported as corrupt by every command that reads it.
 */
import { beforeAll, describe, expect, inject, it } from "@effect/vitest"
import pg from "pg"
import { createDatabase, uniqueDatabaseName } from "../support/postgres.js"
import { cli, ensureBuilt, oneLine, parseJson, type ResultJson, tempFolder } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

const freshDatabase = () => createDatabase(inject("postgresUrl"), uniqueDatabaseName("cli_defects"))

type Page = { total: number; offset: number; limit: number; sessions: ReadonlyArray<{ sessionId: string }> }

describe("planner on PostgreSQL: paging and corrupt logs", { timeout: 300_000 }, () => {
  it("pages the session list, and reports a gap in a session's log with exit code 4", async () => {
    const cwd = tempFolder()
    const url = await freshDatabase()
    const env = { PLANNER_DATABASE_URL: url }
    const ids: Array<string> = []
    for (const request of ["First. Then second.", "Third.", "Fourth."]) {
      const run = await cli(["run", "--executor", "echo", "--json", request], { cwd, env })
      expect(run.code, run.stderr).toBe(0)
      ids.unshift(parseJson<ResultJson>(run).sessionId)
    }
    const [first, second] = await Promise.all([
      cli(["sessions", "--json", "--limit", "2"], { cwd, env }),
      cli(["sessions", "--json", "--limit", "2", "--offset", "2"], { cwd, env })
    ])
    expect(parseJson<Page>(first)).toMatchObject({ total: 3, offset: 0, limit: 2 })
    expect(parseJson<Page>(first).sessions.map((session) => session.sessionId)).toEqual(ids.slice(0, 2))
    expect(parseJson<Page>(second).sessions.map((session) => session.sessionId)).toEqual(ids.slice(2))

    // The oldest session (two tasks) loses its third event.
    const damaged = ids[2] ?? ""
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      const deleted = await client.query("DELETE FROM events WHERE aggregate_id = $1 AND sequence = 3", [damaged])
      expect(deleted.rowCount).toBe(1)
    } finally {
      await client.end()
    }
    const [history, show, listed] = await Promise.all([
      cli(["history", damaged], { cwd, env }),
      cli(["show", damaged, "--json"], { cwd, env }),
      cli(["sessions", "--json"], { cwd, env })
    ])
    expect(history.code).toBe(4)
    expect(oneLine(history.stderr)).toContain("the session's log has a gap: event 3 is missing before it")
    expect(show.code).toBe(4)
    expect(JSON.parse(oneLine(show.stderr))).toMatchObject({ error: { code: 4 } })
    const rows = parseJson<{ sessions: ReadonlyArray<{ sessionId: string; status: string }> }>(listed).sessions
    expect(rows.find((row) => row.sessionId === damaged)?.status).toBe("Unreadable")
    expect(rows.filter((row) => row.status !== "Unreadable")).toHaveLength(2)
  })
})
