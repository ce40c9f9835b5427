/**
 * Retention through the built CLI on a real SQLite file: `planner prune --finished-before DATE` removes the events of
 * finished sessions, keeps what it promises (show, recall, stats, memory rebuild still know them), refuses a session
 * with a fork still running, and says what it removed.
 */
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { cli, ensureBuilt, parseJson, sessionIdIn, tempFolder, writeScript } from "../cli/cli.js"

let cwd = ""
let db = ""
let executor = ""
beforeAll(() => {
  ensureBuilt()
  cwd = tempFolder("planner-memory-prune-")
  db = path.join(cwd, "prune.db")
  executor = `script:${writeScript(cwd, "script.json", {
    rules: [{ match: "deploy", outcomes: [{ ask: "Staging or production?" }, { complete: "Deployed to {answer}" }] }],
    default: { complete: "done: {description}" }
  })}`
}, 180_000)

interface Shown {
  readonly status: string
  readonly request: string
  readonly tasks: ReadonlyArray<{ readonly status: string; readonly result?: string }>
}

describe("planner prune", { timeout: 300_000 }, () => {
  it("removes old finished sessions' events, keeps their snapshots and memory, and keeps a session whose fork runs", async () => {
    const run = async (args: ReadonlyArray<string>, code = 0) => {
      const result = await cli(args, { cwd })
      expect(result.code, result.stderr).toBe(code)
      return result
    }
    const plain = await run([
      "run",
      "--executor",
      executor,
      "--plain",
      "--db",
      db,
      "Compile the report. Then print it."
    ])
    const plainId = sessionIdIn(plain.stdout + plain.stderr)
    const deploy = await run([
      "run",
      "--executor",
      executor,
      "--plain",
      "--db",
      db,
      "--answer",
      "1=staging",
      "Deploy the website to staging"
    ])
    const deployId = sessionIdIn(deploy.stdout + deploy.stderr)
    // A fork of the deploy session before its task ran asks again and waits: the fork is still running.
    const fork = await run(["fork", deployId, "--at", "1", "--non-interactive", "--plain", "--db", db], 3)
    const forkId = sessionIdIn(fork.stdout + fork.stderr)
    const shownBefore = parseJson<Shown>(await run(["show", "--json", "--db", db, plainId]))
    const statsBefore = parseJson(await run(["stats", "--json", "--db", db]))
    const recallBefore = parseJson(await run(["recall", "--json", "--db", db, "compile the report"]))

    const nothing = await run(["prune", "--finished-before", "2000-01-01", "--db", db])
    expect(nothing.stdout.trim()).toBe("No finished session before 2000-01-01 to prune.")

    // A dry run says the same and removes nothing.
    const dry = await run(["prune", "--finished-before", "2999-01-01", "--dry-run", "--db", db])
    expect(dry.stdout).toContain("Would prune the events of 1 finished session (")
    expect(dry.stdout).toContain(`  ${plainId}  finished `)
    expect(dry.stdout).toContain(`Kept ${deployId}: its fork ${forkId} still running.`)
    expect(dry.stdout.trim().endsWith("Dry run: nothing was removed.")).toBe(true)
    const dryJson = parseJson<{ dryRun: boolean; pruned: ReadonlyArray<{ sessionId: string }> }>(
      await run(["prune", "--finished-before", "2999-01-01", "--dry-run", "--json", "--db", db])
    )
    expect(dryJson).toMatchObject({ dryRun: true, pruned: [{ sessionId: plainId }] })
    expect(
      parseJson<{ events: ReadonlyArray<unknown> }>(await run(["history", "--json", "--db", db, plainId])).events.length
    ).toBeGreaterThan(0)

    const pruned = await run(["prune", "--finished-before", "2999-01-01", "--db", db])
    expect(pruned.stdout).toContain("Pruned the events of 1 finished session (")
    expect(pruned.stdout).toContain(`  ${plainId}  finished `)
    expect(pruned.stdout).toContain(`Kept ${deployId}: its fork ${forkId} still running.`)
    expect(pruned.stdout).not.toContain(`  ${forkId}`)

    // The events are gone: the log has nothing for it.
    const history = parseJson<{ events?: ReadonlyArray<unknown>; pruned?: boolean }>(
      await cli(["history", "--json", "--db", db, plainId], { cwd })
    )
    expect(history).toMatchObject({ events: [], pruned: true })
    const historyText = await cli(["history", "--db", db, plainId], { cwd })
    expect(historyText.stdout).toContain(`Session ${plainId}: no events; it was pruned`)
    // Time travel and forks need the events: refused with exit code 2, saying why.
    const replayed = await cli(["replay", plainId, "--at", "1", "--db", db], { cwd })
    expect(replayed.code).toBe(2)
    expect(replayed.stderr).toContain(`Session ${plainId} was pruned`)
    // A diff compares its kept final state, not its log.
    const diffed = parseJson<{ a: { status: string }; logsCompared: boolean; tasks: ReadonlyArray<unknown> }>(
      await run(["diff", "--json", "--db", db, plainId, deployId])
    )
    expect(diffed).toMatchObject({ a: { status: "Succeeded" }, logsCompared: false })
    expect(diffed.tasks.length).toBeGreaterThan(0)
    // ...but show, stats and recall still know it.
    const shownAfter = parseJson<Shown>(await run(["show", "--json", "--db", db, plainId]))
    expect(shownAfter.status).toBe("Succeeded")
    expect(shownAfter.request).toBe(shownBefore.request)
    expect(shownAfter.tasks).toEqual(shownBefore.tasks)
    expect(shownAfter).toMatchObject({ pruned: true })
    const shownText = await run(["show", "--db", db, plainId])
    expect(shownText.stdout).toMatch(/; its \d+ events pruned \(only the final state is kept\)/)
    // The list still has it, after the sessions that keep their events, marked pruned; the pages count it.
    const listed = parseJson<{ total: number; sessions: ReadonlyArray<{ sessionId: string; pruned?: true }> }>(
      await run(["sessions", "--json", "--db", db])
    )
    expect(listed.total).toBe(3)
    expect(listed.sessions.at(-1)).toMatchObject({ sessionId: plainId, status: "Succeeded", pruned: true })
    expect(listed.sessions.filter((session) => session.pruned === true)).toHaveLength(1)
    const lastPage = parseJson<{ sessions: ReadonlyArray<{ sessionId: string }> }>(
      await run(["sessions", "--json", "--db", db, "--offset", "2", "--limit", "1"])
    )
    expect(lastPage.sessions.map((session) => session.sessionId)).toEqual([plainId])
    expect((await run(["sessions", "--db", db])).stdout).toMatch(new RegExp(`${plainId} .* Succeeded \\(pruned\\) `))
    expect(parseJson(await run(["stats", "--json", "--db", db]))).toEqual(statsBefore)
    expect(parseJson(await run(["recall", "--json", "--db", db, "compile the report"]))).toEqual(recallBefore)
    // A rebuild from the log reads the pruned session's records from its snapshot.
    await run(["memory", "rebuild", "--db", db])
    expect(parseJson(await run(["stats", "--json", "--db", db]))).toEqual(statsBefore)
    expect(parseJson(await run(["recall", "--json", "--db", db, "compile the report"]))).toEqual(recallBefore)

    // Once the fork is answered and finishes, its source can go too.
    await run(["answer", forkId, "1", "production", "--plain", "--db", db])
    const second = parseJson<{ pruned: ReadonlyArray<{ sessionId: string }>; kept: ReadonlyArray<unknown> }>(
      await run(["prune", "--finished-before", "2999-01-01", "--json", "--db", db])
    )
    expect(second.pruned.map((session) => session.sessionId).sort()).toEqual([deployId, forkId].sort())
    expect(second.kept).toEqual([])
  })

  it("refuses a date it cannot read with exit code 2", async () => {
    const result = await cli(["prune", "--finished-before", "last tuesday", "--db", db], { cwd })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("--finished-before last tuesday is not a date: give YYYY-MM-DD")
  })
})
