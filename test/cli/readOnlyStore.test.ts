/**
 * A SQLite database that this user may read but not write (another user's, in a folder it may not write to, or on a
 * read-only mount): the commands that read it work, opened read only, without writing a byte; a command that writes
 * fails with exit code 4 and a line saying the database is read only for this user. As root (which may write
 * anywhere), the reading commands run as the user `nobody`.
 */
import { spawnSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bin, cleanEnv, cli, ensureBuilt, oneLine, parseJson, type ResultJson, tempFolder } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

const nobody = 65_534
const asRoot = process.getuid?.() === 0

/** `planner ARGS` as a user who may not write to `folder`. */
const asReader = (args: ReadonlyArray<string>, cwd: string) => {
  const result = spawnSync(process.execPath, [bin, ...args], {
    cwd,
    env: cleanEnv(),
    encoding: "utf8",
    timeout: 120_000,
    ...(asRoot ? { uid: nobody, gid: nobody } : {})
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

const digest = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")

describe("a database this user may only read", { timeout: 300_000 }, () => {
  const folders: Array<string> = []
  afterAll(() => {
    for (const folder of folders) fs.chmodSync(folder, 0o755)
  })

  /** A store in a folder of its own, with one session run on it by its owner. */
  const storeWithOneRun = async (request: string) => {
    const cwd = tempFolder()
    const store = path.join(cwd, "store")
    fs.mkdirSync(store)
    const db = path.join(store, "planner.db")
    const made = await cli(["run", "--db", db, "--executor", "echo", "--json", request], { cwd })
    expect(made.code, made.stderr).toBe(0)
    return { cwd, store, db, sessionId: parseJson<ResultJson>(made).sessionId }
  }

  /** The database and its folder made read only for everyone but root: returns the file's digest. */
  const makeReadOnly = (cwd: string, store: string, db: string): string => {
    fs.chmodSync(db, 0o444)
    fs.chmodSync(store, 0o555)
    fs.chmodSync(cwd, 0o755)
    folders.push(store)
    return digest(db)
  }

  it("is read by the commands that read, changed by nothing, and refused to a write with one line", async () => {
    const { cwd, store, db, sessionId } = await storeWithOneRun("Write the code. Then test it.")
    // The memory index caught up while the owner could still write: stats then only reads.
    expect((await cli(["stats", "--db", db], { cwd })).code).toBe(0)
    // Closed cleanly: no -wal or -shm file beside it, and none may be made now.
    expect(fs.readdirSync(store)).toEqual(["planner.db"])
    const before = makeReadOnly(cwd, store, db)

    const listed = asReader(["sessions", "--db", db, "--json"], cwd)
    expect(listed.code, listed.stderr).toBe(0)
    expect(JSON.parse(listed.stdout).sessions).toEqual([expect.objectContaining({ sessionId, status: "Succeeded" })])
    const shown = asReader(["show", sessionId, "--db", db], cwd)
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toContain("2 of 2 tasks completed.")
    const history = asReader(["history", sessionId, "--db", db, "--json"], cwd)
    expect(history.code, history.stderr).toBe(0)
    expect(JSON.parse(history.stdout).events.at(-1).type).toBe("PlanningCompleted")
    const doctor = asReader(["doctor", "--db", db], cwd)
    expect(doctor.code, doctor.stderr).toBe(0)
    expect(doctor.stdout).toContain("The task queue matches the event log")

    const stats = asReader(["stats", "--db", db, "--json"], cwd)
    expect(stats.code, stats.stderr).toBe(0)
    expect(JSON.parse(stats.stdout).sessions.finished).toBe(1)

    const write = asReader(["run", "--db", db, "--executor", "echo", "Write the notes."], cwd)
    expect(write.code, write.stderr).toBe(4)
    // A command that writes does not open it read only: it is refused as it opens.
    expect(oneLine(write.stderr)).toMatch(
      /^planner: Cannot use the SQLite database .*planner\.db: .*readonly database\. Check the path and its permissions, or choose another with --db\.$/
    )
    const cancel = asReader(["cancel", sessionId, "--db", db], cwd)
    expect(cancel.code, cancel.stderr).toBe(4)
    expect(digest(db)).toBe(before)
    expect(fs.readdirSync(store)).toEqual(["planner.db"])
  })

  it("stats and recall answer from the log when the memory index is behind and may not be updated", async () => {
    const { cwd, store, db, sessionId } = await storeWithOneRun("Write the parser. Then test it.")
    // No stats before the store becomes read only: the index has not seen this session.
    const before = makeReadOnly(cwd, store, db)

    const stats = asReader(["stats", "--db", db, "--json"], cwd)
    expect(stats.code, stats.stderr).toBe(0)
    const figures = JSON.parse(stats.stdout)
    expect(figures.sessions.finished).toBe(1)
    expect(figures.overall.tasks).toBe(2)
    expect(oneLine(stats.stderr)).toMatch(
      /^memory: the index is behind the log and this user may not update it: answering from the log, read into memory/
    )
    const recall = asReader(["recall", "--db", db, "--json", "write the parser"], cwd)
    expect(recall.code, recall.stderr).toBe(0)
    expect(JSON.parse(recall.stdout).hits).toContainEqual(expect.objectContaining({ _tag: "Session", sessionId }))
    expect(digest(db)).toBe(before)
    expect(fs.readdirSync(store)).toEqual(["planner.db"])
  })
})
