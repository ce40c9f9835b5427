/**
 * One session whose log holds an event that cannot be read (a row edited by hand, a bad restore) does not stop the
 * commands that go over the whole store: `doctor` checks (and `--repair` repairs) every other session and names the
 * broken one (exit 1); the memory index leaves it out with a warning, so `stats` and `recall` answer for the rest;
 * `memory rebuild` rebuilds from everything else and says what it left out; `prune` prunes the others and keeps it.
 * Nothing is lost: the broken row is left as it was, for a restore from a backup.
 */
import * as path from "node:path"
import Sqlite from "better-sqlite3"
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { independentTasks } from "../app/fixtures/plans.js"
import { cli, ensureBuilt, parseJson, type ResultJson, tempFolder } from "./cli.js"
import { withService } from "./store.js"

beforeAll(() => ensureBuilt(), 180_000)

interface Unreadable {
  readonly sessionId: string
  readonly position: number
  readonly sequence: number
  readonly message: string
}

/** Breaks the stored data of the session's first `TaskStatusUpdated` (a memory event): returns its sequence. */
const breakEvent = (db: string, sessionId: string): number => {
  const sqlite = new Sqlite(db)
  try {
    const row = sqlite
      .prepare(
        "SELECT sequence FROM events WHERE aggregate_id = ? AND event_type = 'TaskStatusUpdated' ORDER BY sequence LIMIT 1"
      )
      .get(sessionId) as { sequence: number }
    sqlite
      .prepare("UPDATE events SET data = '{broken' WHERE aggregate_id = ? AND sequence = ?")
      .run(sessionId, row.sequence)
    return row.sequence
  } finally {
    sqlite.close()
  }
}

/** A new SQLite store in a folder of its own, and a way to run a request on it with the echo executor. */
const freshStore = () => {
  const cwd = tempFolder()
  const db = path.join(cwd, "store.db")
  const run = async (request: string) => {
    const result = await cli(["run", "--db", db, "--executor", "echo", "--json", request], { cwd })
    expect(result.code, result.stderr).toBe(0)
    return parseJson<ResultJson>(result).sessionId
  }
  return { cwd, db, run }
}

describe("one unreadable session in a store", { timeout: 300_000 }, () => {
  it("an event of a version this build does not know stops the memory index before it, rather than skip it", async () => {
    const cwd = tempFolder()
    const db = path.join(cwd, "store.db")
    const made = await cli(["run", "--db", db, "--executor", "echo", "--json", "Write the parser."], { cwd })
    expect(made.code, made.stderr).toBe(0)
    const sessionId = parseJson<ResultJson>(made).sessionId
    // As a newer planner would write it: not damage, so not left out for good (the index's checkpoint is shared).
    const sqlite = new Sqlite(db)
    sqlite
      .prepare("UPDATE events SET event_version = '99' WHERE aggregate_id = ? AND event_type = 'TaskStatusUpdated'")
      .run(sessionId)
    // The index projects the log again from the start.
    sqlite.prepare("DELETE FROM event_checkpoints WHERE consumer = 'memory-index'").run()
    sqlite.close()
    for (const attempt of [1, 2]) {
      const stats = await cli(["stats", "--db", db], { cwd })
      expect(stats.code, `attempt ${attempt}`).toBe(4)
      expect(stats.stderr).toContain("unknown version")
    }
  })

  it("store-wide commands report it and go on with every other session", async () => {
    const { cwd, db, run } = freshStore()
    const broken = await run("Write the parser. Then test the parser.")
    const fine = await run("Fetch the data. Then summarise the data.")
    // A session with its jobs still in the queue, one of them lost: for doctor to find and --repair to put back.
    await withService(db, (service, queue) =>
      Effect.zipRight(
        service.execute(
          "s-queued",
          new Initialize({ request: "two tasks", tasks: independentTasks(2), config: defaultConfig, at: 1 })
        ),
        queue.remove("s-queued", [2])
      )
    )
    const sequence = breakEvent(db, broken)

    // The memory index, caught up by stats, leaves the broken session out and says so.
    const stats = await cli(["stats", "--db", db, "--json"], { cwd })
    expect(stats.code, stats.stderr).toBe(0)
    expect(stats.stderr).toContain(`memory: session ${broken} is left out of the index`)
    expect(stats.stderr).toContain("planner memory rebuild")
    expect(parseJson<{ sessions: { finished: number } }>(stats).sessions.finished).toBe(1)
    const recall = await cli(["recall", "--db", db, "--json", "summarise the data"], { cwd })
    expect(recall.code, recall.stderr).toBe(0)
    expect(recall.stdout).toContain(fine)

    const doctor = await cli(["doctor", "--db", db, "--json"], { cwd })
    expect(doctor.code).toBe(1)
    const report = parseJson<{
      ok: boolean
      drifted: ReadonlyArray<{ sessionId: string }>
      unreadable: ReadonlyArray<Unreadable>
    }>(doctor)
    expect(report.ok).toBe(false)
    expect(report.unreadable).toEqual([
      expect.objectContaining({ sessionId: broken, sequence, message: expect.stringContaining("cannot be read") })
    ])
    expect(report.drifted.map((session) => session.sessionId)).toEqual(["s-queued"])
    const repaired = await cli(["doctor", "--db", db, "--repair"], { cwd })
    // Still 1: the broken session is not something a repair can mend.
    expect(repaired.code).toBe(1)
    expect(repaired.stdout).toContain("Repaired: those sessions' jobs were rebuilt from their logs, and now match.")
    expect(repaired.stdout).toContain("1 session could not be checked")
    expect(repaired.stdout).toContain(`session ${broken}: The stored event at position`)
    const after = parseJson<{ drifted: ReadonlyArray<unknown> }>(await cli(["doctor", "--db", db, "--json"], { cwd }))
    expect(after.drifted).toEqual([])

    const rebuilt = await cli(["memory", "rebuild", "--db", db, "--json"], { cwd })
    expect(rebuilt.code, rebuilt.stderr).toBe(0)
    const rebuiltReport = parseJson<{ sessions: number; unreadable: ReadonlyArray<Unreadable> }>(rebuilt)
    expect(rebuiltReport.unreadable.map((one) => one.sessionId)).toEqual([broken])
    const rebuiltText = await cli(["memory", "rebuild", "--db", db], { cwd })
    expect(rebuiltText.stderr).toContain(`Left out session ${broken}: The stored event at position`)

    const pruned = await cli(["prune", "--db", db, "--finished-before", "2999-01-01", "--json"], { cwd })
    expect(pruned.code, pruned.stderr).toBe(0)
    const pruneReport = parseJson<{
      pruned: ReadonlyArray<{ sessionId: string }>
      unreadable: ReadonlyArray<Unreadable>
    }>(pruned)
    expect(pruneReport.pruned.map((one) => one.sessionId)).toEqual([fine])
    expect(pruneReport.unreadable.map((one) => one.sessionId)).toEqual([broken])
    // Nothing of the broken session was removed: its row waits for a restore.
    const sqlite = new Sqlite(db, { readonly: true })
    try {
      const row = sqlite
        .prepare("SELECT data FROM events WHERE aggregate_id = ? AND sequence = ?")
        .get(broken, sequence)
      expect(row).toEqual({ data: "{broken" })
    } finally {
      sqlite.close()
    }

    // A pruned session's snapshot that cannot be read: listed with the problem, the others still shown.
    const writable = new Sqlite(db)
    try {
      writable.prepare("UPDATE session_snapshots SET state = '{cut', records = 'null' WHERE session_id = ?").run(fine)
    } finally {
      writable.close()
    }
    const listed = await cli(["sessions", "--db", db], { cwd })
    expect(listed.code, listed.stderr).toBe(0)
    const lines = listed.stdout.split("\n")
    expect(lines.find((line) => line.includes(fine))).toMatch(
      /its snapshot cannot be read.*\(pruned\)|\(pruned\).*its snapshot cannot be read/
    )
    expect(lines.some((line) => line.includes(broken))).toBe(true)
    const shown = await cli(["show", fine, "--db", db], { cwd })
    expect(shown.code).toBe(4)
    expect(shown.stderr).toBe(
      `planner: The final snapshot of pruned session ${fine} cannot be read (it is not JSON): its events were pruned, so it cannot be rebuilt from the log. Restore the database from a backup to see it.\n`
    )
    // Its history says it was pruned, without reading the snapshot.
    const history = await cli(["history", fine, "--db", db], { cwd })
    expect(history.code, history.stderr).toBe(0)
    expect(history.stdout).toContain(`Session ${fine}: no events; it was pruned`)
    const again = await cli(["memory", "rebuild", "--db", db], { cwd })
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr).toContain(`the snapshot of pruned session ${fine} cannot be read`)
  })
})

describe("a session whose first event cannot be read", { timeout: 300_000 }, () => {
  it("prune keeps every session begun before it: what it was forked or started from is not known", async () => {
    const { cwd, db, run } = freshStore()
    const earlier = await run("Write the parser.")
    const blind = await run("Fetch the data.")
    const later = await run("Summarise the data.")
    const sqlite = new Sqlite(db)
    try {
      sqlite.prepare("UPDATE events SET data = '{broken' WHERE aggregate_id = ? AND sequence = 1").run(blind)
    } finally {
      sqlite.close()
    }
    const pruned = await cli(["prune", "--db", db, "--finished-before", "2999-01-01", "--json"], { cwd })
    expect(pruned.code, pruned.stderr).toBe(0)
    const report = parseJson<{
      pruned: ReadonlyArray<{ sessionId: string }>
      kept: ReadonlyArray<{ sessionId: string; reason: string }>
      unreadable: ReadonlyArray<Unreadable>
    }>(pruned)
    expect(report.unreadable.map((one) => one.sessionId)).toEqual([blind])
    expect(report.kept).toEqual([
      {
        sessionId: earlier,
        reason: `the first event of session ${blind} cannot be read, so whether it needs this one is not known`
      }
    ])
    // Begun after it, so neither its source nor its parent.
    expect(report.pruned.map((one) => one.sessionId)).toEqual([later])
  })
})
