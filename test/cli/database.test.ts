/**
 * How the `planner` command treats the store it is given (#18): a path where no folder can be made ends with exit
 * code 4 (it used to spin at full CPU under /proc); an empty value or an unknown URL scheme (`mysql://`,
 * `postgress://`) is exit code 2 with the password masked (it used to become a SQLite file under `./mysql:/`), from
 * `--db` and from `PLANNER_DATABASE_URL` alike; and a PostgreSQL server that accepts connections but never answers ends
 * the command with exit code 4 (connect and statement timeouts), while a signal ends it at once.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import { Option } from "effect"
import { resolveStore } from "../../src/app/cli/Store.js"
import { cli, ensureBuilt, oneLine, startCli, tempFolder } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

/** What a command left in its working folder: nothing, for a store it refused. */
const leftIn = (cwd: string) => fs.readdirSync(cwd)

describe.concurrent("planner --db and PLANNER_DATABASE_URL", { timeout: 120_000 }, () => {
  it.skipIf(!fs.existsSync("/proc/self"))(
    "a SQLite path whose folder cannot be made is exit code 4, at once",
    async () => {
      const cwd = tempFolder()
      const result = await cli(["run", "--executor", "echo", "--db", "/proc/nope/x.db", "Write the code."], {
        cwd,
        timeoutMs: 60_000
      })
      expect(result.code).toBe(4)
      expect(oneLine(result.stderr)).toMatch(/^planner: Cannot create the folder for the database \/proc\/nope\/x\.db/)
    }
  )

  it("a file where the folder should be is exit code 4", async () => {
    const cwd = tempFolder()
    fs.writeFileSync(path.join(cwd, "a-file"), "")
    const result = await cli(
      ["run", "--executor", "echo", "--db", path.join(cwd, "a-file", "deeper", "planner.db"), "Write the code."],
      { cwd }
    )
    expect(result.code).toBe(4)
    expect(oneLine(result.stderr)).toContain("a file is in the way")
  })

  it("another application's database with a table of one of ours is exit code 4 saying which, and is left as it was", async () => {
    const cwd = tempFolder()
    const theirs = path.join(cwd, "theirs.db")
    const db = new Sqlite(theirs)
    db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT); INSERT INTO events (what) VALUES ('their row')")
    db.close()
    const result = await cli(["sessions", "--db", theirs], { cwd })
    // The migration that creates the table is refused: a failure with the database's reason, not a defect (exit 1,
    // "Migration failed" and nothing else, which it was).
    expect(result.code, result.stderr).toBe(4)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.stderr).toMatch(
      /Cannot use the SQLite database .*theirs\.db: Migration "1_create_events" failed: .*table events already exists/
    )
    const after = new Sqlite(theirs, { readonly: true })
    expect(after.prepare("SELECT what FROM events").all()).toEqual([{ what: "their row" }])
    expect(after.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all()).toEqual([
      { name: "events" }
    ])
    after.close()
  })

  it("a command that reads sessions, or works on one, creates no database where there is none", async () => {
    const cwd = tempFolder()
    const missing = path.join(cwd, "typo", "planner.db")
    const expectations: ReadonlyArray<readonly [ReadonlyArray<string>, number, RegExp]> = [
      [["sessions"], 0, /^No sessions in .*typo\/planner\.db yet \(no such file\)/],
      [["show", "s1"], 2, /There is no session s1 in .*typo\/planner\.db/],
      [["history", "s1"], 2, /There is no session s1/],
      [["replay", "s1", "--at", "1"], 2, /There is no session s1/],
      [["diff", "s1", "s2"], 2, /There is no session s1/],
      [["resume", "s1"], 2, /There is no session s1/],
      [["answer", "s1", "1", "yes"], 2, /There is no session s1/],
      [["fork", "s1", "--at", "1"], 2, /There is no session s1/],
      [["rerun", "s1", "--task", "1"], 2, /There is no session s1/],
      [["edit", "s1", "--add", "More"], 2, /There is no session s1/],
      [["expand", "s1", "1"], 2, /There is no session s1/],
      [["cancel", "s1"], 2, /There is no session s1/],
      [["stats"], 0, /No finished work in memory yet/],
      [["recall", "login"], 0, /Nothing similar to "login" in memory yet/],
      [["prune", "--finished-before", "2020-01-01"], 0, /No finished session before 2020-01-01/],
      // A check or a rebuild of a store that is not there is no all-clear.
      [["doctor"], 2, /There is no database at .*typo\/planner\.db: check the path/],
      [["memory", "rebuild"], 2, /There is no database at .*typo\/planner\.db/]
    ]
    for (const [args, code, said] of expectations) {
      const result = await cli([...args, "--db", missing], { cwd })
      expect(result.code, args.join(" ")).toBe(code)
      expect(oneLine(result.stdout + result.stderr), args.join(" ")).toMatch(said)
    }
    // The default store, ./.planner/planner.db, alike.
    const listed = await cli(["sessions"], { cwd })
    expect(listed.code).toBe(0)
    expect(leftIn(cwd)).toEqual([])
    // `run` creates it, folders and all, and then the same commands read it.
    const ran = await cli(["run", "--executor", "echo", "--db", missing, "Write the code."], { cwd })
    expect(ran.code).toBe(0)
    expect(fs.existsSync(missing)).toBe(true)
    const after = await cli(["sessions", "--db", missing], { cwd })
    expect(after.stdout).toContain("Write the code.")
  })

  it("a --db that is a link to nothing is opened and refused (exit code 4), not read as a missing file", async () => {
    const cwd = tempFolder()
    fs.symlinkSync(path.join(cwd, "unmounted", "planner.db"), path.join(cwd, "link.db"))
    const result = await cli(["sessions", "--db", path.join(cwd, "link.db")], { cwd })
    expect(result.code).toBe(4)
    expect(oneLine(result.stderr)).toMatch(/^planner: Cannot use the SQLite database .*link\.db/)
  })

  for (const [scheme, url, hint] of [
    ["mysql", "mysql://root:hunter2secret@db.example/app", undefined],
    ["postgress", "postgress://planner:hunter2secret@localhost:5432/planner", "did you mean postgres://?"],
    ["sqlite", "sqlite://me:hunter2secret@x/planner.db", undefined]
  ] as const) {
    it(`--db ${scheme}://... is exit code 2 with the password masked, and creates nothing`, async () => {
      const cwd = tempFolder()
      const result = await cli(["run", "--executor", "echo", "--db", url, "Write the code."], { cwd })
      expect(result.code).toBe(2)
      const line = oneLine(result.stderr)
      expect(line).toContain(`unknown URL scheme ${scheme}://`)
      if (hint !== undefined) expect(line).toContain(hint)
      expect(line).toContain("***")
      expect(result.stderr + result.stdout).not.toContain("hunter2secret")
      expect(leftIn(cwd)).toEqual([])
    })
  }

  it("PLANNER_DATABASE_URL with an unknown scheme is exit code 2 the same way", async () => {
    const cwd = tempFolder()
    const env = { PLANNER_DATABASE_URL: "mysql://root:hunter2secret@db.example/app" }
    const result = await cli(["sessions"], { cwd, env })
    expect(result.code).toBe(2)
    expect(oneLine(result.stderr)).toMatch(/^planner: PLANNER_DATABASE_URL mysql:\/\/root:\*\*\*@db\.example\/app has/)
    expect(result.stderr).not.toContain("hunter2secret")
    expect(leftIn(cwd)).toEqual([])
  })

  it("PLANNER_SQLITE_SYNCHRONOUS is full or normal; anything else is exit code 2 and creates nothing", async () => {
    expect(resolveStore(Option.none(), { PLANNER_SQLITE_SYNCHRONOUS: " FULL " })).toMatchObject({
      _tag: "Sqlite",
      synchronous: "full"
    })
    expect(resolveStore(Option.none(), { PLANNER_SQLITE_SYNCHRONOUS: "normal" })).toMatchObject({
      synchronous: "normal"
    })
    expect(resolveStore(Option.none(), {})).not.toHaveProperty("synchronous")
    const cwd = tempFolder()
    const refused = await cli(["run", "--executor", "echo", "Write the code."], {
      cwd,
      env: { PLANNER_SQLITE_SYNCHRONOUS: "sometimes" }
    })
    expect(refused.code).toBe(2)
    expect(oneLine(refused.stderr)).toBe(
      'planner: PLANNER_SQLITE_SYNCHRONOUS is "sometimes": set it to full (sync every commit to disk) or normal (the default), or unset it.'
    )
    expect(leftIn(cwd)).toEqual([])
    const full = await cli(["run", "--executor", "echo", "Write the code."], {
      cwd,
      env: { PLANNER_SQLITE_SYNCHRONOUS: "full" }
    })
    expect(full.code, full.stderr).toBe(0)
    expect(fs.existsSync(path.join(cwd, ".planner", "planner.db"))).toBe(true)
  })

  it('--db "" and a blank PLANNER_DATABASE_URL are exit code 2, not a throw-away store', async () => {
    const cwd = tempFolder()
    const [flag, blank] = await Promise.all([
      cli(["run", "--executor", "echo", "--db", "", "Write the code."], { cwd }),
      cli(["run", "--executor", "echo", "Write the code."], { cwd, env: { PLANNER_DATABASE_URL: "  " } })
    ])
    expect(flag.code).toBe(2)
    expect(oneLine(flag.stderr)).toMatch(/^planner: --db is empty: give a SQLite file path/)
    expect(flag.stdout).toBe("")
    expect(blank.code).toBe(2)
    expect(oneLine(blank.stderr)).toMatch(/^planner: PLANNER_DATABASE_URL is empty/)
    expect(leftIn(cwd)).toEqual([])
  })
})

/**
 * A TCP server on 127.0.0.1 that accepts connections and never answers; with `answerStartup` it completes the
 * PostgreSQL start-up (authentication ok, ready for query) and then ignores every query.
 */
const silentServer = async (answerStartup: boolean) => {
  const sockets = new Set<net.Socket>()
  let accepted = 0
  const waiters: Array<() => void> = []
  const server = net.createServer((socket) => {
    sockets.add(socket)
    accepted += 1
    for (const wake of waiters.splice(0)) wake()
    socket.on("error", () => undefined)
    socket.on("close", () => sockets.delete(socket))
    if (answerStartup) {
      socket.once("data", () => {
        const authenticationOk = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])
        const readyForQuery = Buffer.from([0x5a, 0, 0, 0, 5, 0x49])
        socket.write(Buffer.concat([authenticationOk, readyForQuery]))
      })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    url: `postgres://planner:hunter2secret@127.0.0.1:${port}/planner`,
    /** Resolves once a client has connected. */
    connected: () =>
      new Promise<void>((resolve) => {
        if (accepted > 0) resolve()
        else waiters.push(resolve)
      }),
    close: () => {
      for (const socket of sockets) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

describe("planner against a PostgreSQL server that never answers", { timeout: 180_000 }, () => {
  const servers: Array<{ readonly close: () => Promise<void> }> = []
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.close()))
  })

  it("a connection that is accepted but never answered times out: exit code 4, one line, no password", async () => {
    const server = await silentServer(false)
    servers.push(server)
    const cwd = tempFolder()
    const result = await cli(["sessions", "--db", server.url], { cwd, timeoutMs: 120_000 })
    expect(result.code).toBe(4)
    const line = oneLine(result.stderr)
    expect(line).toMatch(/^planner: Cannot reach PostgreSQL at postgres:\/\/planner:\*\*\*@127\.0\.0\.1:\d+\/planner/)
    // Our own timeout or pg's connection timeout, whichever fires first: both say so.
    expect(line).toMatch(/timed out|connection timeout/)
    expect(result.stderr).not.toContain("hunter2secret")
  })

  it("a server that connects but never answers a statement: the statement times out, exit code 4, one line", async () => {
    const server = await silentServer(true)
    servers.push(server)
    const cwd = tempFolder()
    // query_timeout in the URL (milliseconds) overrides the default statement timeout, to keep the test short.
    const result = await cli(["history", "20250101-120000-abc123", "--db", `${server.url}?query_timeout=1000`], {
      cwd,
      timeoutMs: 120_000
    })
    expect(result.code).toBe(4)
    expect(oneLine(result.stderr)).toContain("timeout")
    expect(result.stderr).not.toContain("hunter2secret")
  })

  it("SIGTERM ends a command waiting on such a server at once, with exit code 130", async () => {
    const server = await silentServer(true)
    servers.push(server)
    const cwd = tempFolder()
    const running = startCli(["sessions", "--db", server.url], { cwd, timeoutMs: 120_000 })
    await server.connected()
    running.child.kill("SIGTERM")
    const result = await running.result
    expect(result.code).toBe(130)
    expect(result.stderr).not.toContain("hunter2secret")
  })
})
