/**
 * The core flows of the `planner` command against PostgreSQL (the server the test run starts): a run that waits for
 * an answer, the answer, time travel, listing through PLANNER_DATABASE_URL, a worker in another process; and an
 * unreachable server. The database password never appears in anything printed.
 */
import { beforeAll, describe, expect, inject, it } from "@effect/vitest"
import { createDatabase, uniqueDatabaseName, withClient } from "../support/postgres.js"
import {
  cli,
  demoScript,
  ensureBuilt,
  oneLine,
  parseJson,
  type ResultJson,
  sessionIdIn,
  startCli,
  tempFolder
} from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

/** A database of its own for each test: a worker serves every session of its store. */
const freshDatabase = () => createDatabase(inject("postgresUrl"), uniqueDatabaseName("cli"))

const masked = (url: string) => {
  const shown = new URL(url)
  shown.password = "***"
  return shown.toString().replace(/%2A/g, "*")
}

/** `text` as a regular expression that matches it literally. */
const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

const expectNoPassword = (url: string, ...texts: ReadonlyArray<string>) => {
  const password = decodeURIComponent(new URL(url).password)
  expect(password.length).toBeGreaterThan(3)
  for (const text of texts) expect(text).not.toContain(password)
}

describe.concurrent("planner on PostgreSQL", { timeout: 300_000 }, () => {
  it("a run waits for an answer, is answered, and replays, with the password never shown", async () => {
    const cwd = tempFolder()
    const url = await freshDatabase()
    const run = await cli(
      ["run", "--db", url, "--executor", `script:${demoScript}`, "Add a login page. Then deploy it."],
      { cwd }
    )
    expect(run.code, run.stderr).toBe(3)
    const sessionId = sessionIdIn(run.stdout)
    // The printed command names the store, with the password masked.
    expect(run.stdout).toContain(`planner answer ${sessionId} 2 "<text>" --db '${masked(url)}'`)

    const answered = await cli(["answer", sessionId, "2", "staging", "--db", url, "--json"], { cwd })
    expect(answered.code, answered.stderr).toBe(0)
    expect(parseJson<ResultJson>(answered).tasks[1]?.result).toBe("Deployed to staging")

    // PLANNER_DATABASE_URL instead of --db.
    const env = { PLANNER_DATABASE_URL: url }
    const [sessions, replay, history] = await Promise.all([
      cli(["sessions"], { cwd, env }),
      cli(["replay", sessionId, "--at", "7", "--json"], { cwd, env }),
      cli(["history", sessionId], { cwd, env })
    ])
    expect(sessions.stdout).toMatch(
      new RegExp(`^${sessionId} +\\S+ \\S+ +Succeeded +2/2 done +Add a login page\\. Then deploy it\\.$`, "m")
    )
    const past = parseJson<ResultJson & { version: number }>(replay)
    expect(past.version).toBe(7)
    expect(past.tasks.map((task) => task.status)).toEqual(["Completed", "NeedsClarification"])
    expect(history.stdout).toMatch(/^SEQ +TIME +TYPE +WHAT$/m)
    expect(history.stdout).toMatch(
      /^ +8 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +ClarificationReceived +task 2 answered: staging$/m
    )
    expectNoPassword(
      url,
      run.stdout,
      run.stderr,
      answered.stdout,
      answered.stderr,
      sessions.stdout,
      replay.stdout,
      history.stdout,
      history.stderr
    )
  })

  it("a worker process serves a run from another process through the database", async () => {
    const cwd = tempFolder()
    const url = await freshDatabase()
    const env = { PLANNER_DATABASE_URL: url }
    const worker = startCli(["worker", "--executor", "echo", "--json"], { cwd, env })
    // --json: one object per line, first when it is ready, then one for each task it starts and finishes.
    const readyLine = await worker.waitFor(/^\{.*"event":"ready".*\}$/m)
    const ready = JSON.parse(readyLine[0]) as Record<string, unknown>
    expect(ready).toMatchObject({ event: "ready", executor: "echo", concurrency: 4, store: masked(url) })
    const run = await cli(["run", "--no-local-worker", "--json", "Write the code. Then test it."], { cwd, env })
    expect(run.code, run.stderr).toBe(0)
    const json = parseJson<ResultJson>(run)
    expect(json.status).toBe("Succeeded")
    await worker.waitFor(new RegExp(`"event":"completed","sessionId":"${json.sessionId}","taskId":2`))
    worker.child.kill("SIGTERM")
    const stopped = await worker.result
    expect(stopped.code).toBe(0)
    const lines = stopped.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(lines.map((line) => [line.event, line.taskId])).toEqual([
      ["ready", undefined],
      ["started", 1],
      ["completed", 1],
      ["started", 2],
      ["completed", 2],
      ["stopped", undefined]
    ])
    expect(new Set(lines.map((line) => line.workerId))).toEqual(new Set([ready.workerId]))
    expectNoPassword(url, stopped.stdout, stopped.stderr, run.stdout, run.stderr)
  })

  it("a server that answers but refuses says what to fix: the login, a missing database, a user without rights", async () => {
    const cwd = tempFolder()
    const url = await freshDatabase()
    // The test server's administrator creates the planner's tables.
    const created = await cli(["sessions", "--db", url], { cwd })
    expect(created.code, created.stderr).toBe(0)
    const wrongPassword = new URL(url)
    wrongPassword.password = "not-the-password-4711"
    const missing = new URL(url)
    missing.pathname = "/planner_no_such_database"
    // A user that may log in and nothing more.
    const role = uniqueDatabaseName("reader")
    const limited = new URL(url)
    limited.username = role
    limited.password = "reader-secret-0815"
    await withClient(url, (client) => client.query(`CREATE ROLE ${role} LOGIN PASSWORD '${limited.password}'`))
    try {
      const [login, absent, denied] = await Promise.all(
        [wrongPassword, missing, limited].map((target) => cli(["sessions", "--db", target.toString()], { cwd }))
      )
      const shown = (target: URL) => `postgres://${target.username}:***@${target.host}${target.pathname}`
      expect(login?.code).toBe(4)
      expect(oneLine(login?.stderr ?? "")).toMatch(
        new RegExp(
          `^planner: PostgreSQL at ${escaped(shown(wrongPassword))} refused the login: .*password authentication failed for user .*\\. Check the user name and password in the URL \\(--db or PLANNER_DATABASE_URL\\)\\.$`
        )
      )
      expect(absent?.code).toBe(4)
      expect(oneLine(absent?.stderr ?? "")).toBe(
        `planner: The database planner_no_such_database does not exist on the PostgreSQL server at ${shown(missing)}. Create it (createdb planner_no_such_database) or fix the URL (--db or PLANNER_DATABASE_URL).`
      )
      expect(denied?.code).toBe(4)
      expect(oneLine(denied?.stderr ?? "")).toMatch(
        new RegExp(
          `^planner: The user in the URL may not use the planner's tables at ${escaped(shown(limited))}: .*permission denied for .*\\. Connect as the user that created them`
        )
      )
      for (const result of [login, absent, denied]) {
        for (const secret of [
          "not-the-password-4711",
          "reader-secret-0815",
          decodeURIComponent(new URL(url).password)
        ]) {
          expect(`${result?.stdout}${result?.stderr}`).not.toContain(secret)
        }
      }
    } finally {
      await withClient(url, (client) => client.query(`DROP ROLE IF EXISTS ${role}`))
    }
  })

  it("an unreachable server exits with 4 and one line, password masked even with --verbose", async () => {
    const cwd = tempFolder()
    const unreachable = "postgres://planner:hunter2-secret@127.0.0.1:1/planner"
    const [plain, verbose] = await Promise.all([
      cli(["sessions", "--db", unreachable], { cwd }),
      cli(["run", "--verbose", "Do it"], { cwd, env: { PLANNER_DATABASE_URL: unreachable } })
    ])
    expect(plain.code).toBe(4)
    expect(oneLine(plain.stderr)).toBe(
      "planner: Cannot reach PostgreSQL at postgres://planner:***@127.0.0.1:1/planner: could not connect: connect ECONNREFUSED 127.0.0.1:1. Check that the server is running and the URL (--db or PLANNER_DATABASE_URL)."
    )
    expect(verbose.code).toBe(4)
    for (const text of [plain.stdout, plain.stderr, verbose.stdout, verbose.stderr]) {
      expect(text).not.toContain("hunter2-secret")
    }
  })
})
