/**
 * Several `planner` processes at once against one SQLite file, and processes that stop abruptly: a run killed with
 * SIGKILL and resumed, a run stopped with SIGINT, a `cancel` from another terminal, long-lived workers serving a run
 * started with --no-local-worker and stopped with SIGINT/SIGTERM.
 */
import * as fs from "node:fs"
import { beforeAll, describe, expect, it } from "@effect/vitest"
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
import { defaultDb, readSession, sessionIds } from "./store.js"

beforeAll(() => ensureBuilt(), 180_000)

const script = {
  rules: [
    { match: "slow", delayMs: 3000, outcomes: [{ complete: "slow step done" }] },
    { match: "long job", delayMs: 600_000, outcomes: [{ complete: "long job done" }] }
  ],
  default: { complete: "done: {description}" }
}

/** The session of the first run in a store, once its first attempt is claimed (a `--json` run prints nothing before). */
const waitForClaim = async (db: string): Promise<string> => {
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    // Not opened before the run has created and migrated it.
    if (!fs.existsSync(db)) continue
    const [sessionId] = await sessionIds(db).catch(() => [])
    if (sessionId !== undefined && (await readSession(db, sessionId)).types.includes("TaskClaimed")) return sessionId
  }
  throw new Error(`no attempt was claimed in ${db}`)
}

const setUp = () => {
  const cwd = tempFolder()
  return { cwd, executor: `script:${writeScript(cwd, "script.json", script)}` }
}

describe.concurrent("planner processes", { timeout: 300_000 }, () => {
  it("a run killed with SIGKILL is resumed: the task its worker held runs again", async () => {
    const { cwd, executor } = setUp()
    const running = startCli(
      ["run", "--executor", executor, "Prepare the data. Then run the slow step. Then report."],
      {
        cwd
      }
    )
    await running.waitFor(/^task 2 started/m)
    running.child.kill("SIGKILL")
    expect((await running.result).code).toBe(137)
    const sessionId = sessionIdIn(running.stdout())

    const resumed = await cli(["resume", sessionId, "--json"], { cwd })
    expect(resumed.code, resumed.stderr).toBe(0)
    const json = parseJson<ResultJson>(resumed)
    expect(json.tasks.map((task) => [task.status, task.attempts])).toEqual([
      ["Completed", 1],
      ["Completed", 2],
      ["Completed", 1]
    ])
    const { records } = await readSession(defaultDb(cwd), sessionId)
    const retry = records.find((record) => record.event._tag === "TaskRetryScheduled")?.event
    // Retried because the killed worker's process is gone (seen at resume) or, on a slow machine where resume starts
    // late, because its lease ran out first: either way as a failed attempt of that worker.
    expect(retry?._tag === "TaskRetryScheduled" && retry.error).toMatch(
      /^worker .* (died while running attempt 1 \(its process is gone\)|stopped answering: its lease on attempt 1 expired)$/
    )
  })

  it("SIGINT stops a run with exit code 130 and gives its task back; resume finishes it", async () => {
    const { cwd, executor } = setUp()
    const running = startCli(["run", "--executor", executor, "Run the slow step. Then report."], { cwd })
    await running.waitFor(/^task 1 started/m)
    running.child.kill("SIGINT")
    const stopped = await running.result
    expect(stopped.code).toBe(130)
    const sessionId = sessionIdIn(stopped.stdout)
    expect(oneLine(stopped.stderr)).toBe(`Stopped. Session ${sessionId} goes on with: planner resume ${sessionId}`)
    const resumed = await cli(["resume", sessionId], { cwd })
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.stdout).toContain("task 1 completed: slow step done")
    expect((await readSession(defaultDb(cwd), sessionId)).types).toContain("TaskReleased")
  })

  it("SIGINT during a shell command gives the task back: the attempt is not lost, even with one attempt allowed", async () => {
    const { cwd } = setUp()
    // A shell command takes a moment to stop: the task must still go back through a store that is still open.
    const running = startCli(["run", "--allow-shell", "--max-attempts", "1", "Run `sleep 60`."], { cwd })
    await running.waitFor(/^task 1 started/m)
    running.child.kill("SIGINT")
    const stopped = await running.result
    expect(stopped.code).toBe(130)
    const sessionId = sessionIdIn(stopped.stdout)
    const { types } = await readSession(defaultDb(cwd), sessionId)
    expect(types.slice(-3)).toEqual(["TaskClaimed", "TaskReleased", "TaskDispatched"])
    expect(types).not.toContain("TaskRetryScheduled")
    expect(types).not.toContain("TaskFailed")
    // Nothing runs it now: the listing and show say so, and how to go on.
    const [listed, shown] = await Promise.all([cli(["sessions", "--json"], { cwd }), cli(["show", sessionId], { cwd })])
    expect(parseJson<{ sessions: Array<{ sessionId: string; stalled?: boolean }> }>(listed).sessions).toContainEqual(
      expect.objectContaining({ sessionId, status: "Running", stalled: true })
    )
    expect(shown.stdout.split("\n")[0]).toBe(`Session ${sessionId}: Stalled`)
    expect(shown.stdout).toContain(`Go on with: planner resume ${sessionId}`)
  })

  it("SIGINT stops a run --json with one JSON error that names the session to resume", async () => {
    const { cwd, executor } = setUp()
    const running = startCli(["run", "--json", "--executor", executor, "Run the long job. Then report."], { cwd })
    // Nothing is printed under --json until the end: wait for the attempt's claim in the store instead.
    const sessionId = await waitForClaim(defaultDb(cwd))
    running.child.kill("SIGINT")
    const stopped = await running.result
    expect(stopped.code).toBe(130)
    expect(stopped.stdout).toBe("")
    expect(JSON.parse(stopped.stderr)).toEqual({
      error: {
        code: 130,
        message: `Stopped. Session ${sessionId} goes on with: planner resume ${sessionId}`,
        sessionId
      }
    })
  })

  it("two terminals: sessions, show, another run and a cancel while a run is in progress", async () => {
    const { cwd, executor } = setUp()
    const first = startCli(["run", "--executor", executor, "Run the long job. Then report."], { cwd })
    await first.waitFor(/^task 1 started/m)
    const sessionId = sessionIdIn(first.stdout())

    const [listed, shown, second] = await Promise.all([
      cli(["sessions", "--json"], { cwd }),
      cli(["show", sessionId, "--json"], { cwd }),
      cli(["run", "--executor", "echo", "--json", "Write the notes. Then file them."], { cwd })
    ])
    const listedRun = parseJson<{ sessions: Array<{ sessionId: string; status: string }> }>(listed).sessions.find(
      (session) => session.sessionId === sessionId
    )
    // Its run is alive: running, not stalled.
    expect(listedRun).toMatchObject({ status: "Running" })
    expect(listedRun).not.toHaveProperty("stalled")
    expect(parseJson<ResultJson>(shown).tasks[0]?.status).toBe("Running")
    expect(second.code, second.stderr).toBe(0)
    expect(parseJson<ResultJson>(second).status).toBe("Succeeded")

    const cancelled = await cli(["cancel", sessionId], { cwd })
    expect(cancelled.code, cancelled.stderr).toBe(0)
    expect(cancelled.stdout).toBe(
      `Cancelled session ${sessionId}: 0 of 2 tasks completed; 2 cancelled. Cancelled by the user.\n`
    )
    const ended = await first.result
    expect(ended.code).toBe(1)
    expect(ended.stdout).toContain("task 1 cancelled")
    expect(ended.stdout).toContain("Cancelled: 0 of 2 tasks completed; 2 cancelled. Cancelled by the user.")
  })

  it("run --no-local-worker says its tasks wait for workers, and how to start one", async () => {
    const { cwd, executor } = setUp()
    const run = startCli(["run", "--no-local-worker", "--executor", executor, "--allow-shell", "Report."], { cwd })
    await run.waitFor(/^Session \S+: 1 task$/m)
    for (const deadline = Date.now() + 60_000; !run.stderr().includes("\n") && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(run.stderr()).toBe(
      // With the run's executor: a worker runs tasks with its own.
      `No worker runs in this process (--no-local-worker): the tasks wait for \`planner worker\` processes on this store. Start one if none runs: planner worker --executor ${executor} --allow-shell\n`
    )
    run.child.kill("SIGINT")
    expect((await run.result).code).toBe(130)
  })

  it("workers run a session started with --no-local-worker; SIGINT gives a task back, SIGTERM stops cleanly", async () => {
    const { cwd, executor } = setUp()
    const first = startCli(["worker", "--executor", executor, "--concurrency", "2"], { cwd })
    const ready = await first.waitFor(
      /^Worker (\S+) serving (.+) \(script:.*, up to 2 at once\) on \.\/\.planner\/planner\.db\./m
    )
    const firstId = ready[1] ?? ""
    expect(ready[2]).toContain("Processing")

    const run = startCli(["run", "--no-local-worker", "--json", "Run the long job. Then report."], { cwd })
    await first.waitFor(/ task 1 started: Run the long job$/m)
    first.child.kill("SIGINT")
    const stoppedFirst = await first.result
    expect(stoppedFirst.code).toBe(0)
    expect(stoppedFirst.stdout).toContain(`Worker ${firstId} stopped; the tasks it held were given back.`)

    // Another worker, with another executor and only some kinds, takes the task given back.
    const second = startCli(["worker", "--executor", "echo", "--kinds", "toolcall,Processing"], { cwd })
    const secondReady = await second.waitFor(/^Worker (\S+) serving ToolCall, Processing \(echo/m)
    const finished = await run.result
    expect(finished.code, finished.stderr).toBe(0)
    const json = parseJson<ResultJson>(finished)
    expect(json.tasks.map((task) => [task.result, task.attempts])).toEqual([
      ["Run the long job", 2],
      ["report", 1]
    ])
    await second.waitFor(/ task 2 completed: report$/m)
    second.child.kill("SIGTERM")
    expect((await second.result).code).toBe(0)

    const { records, types } = await readSession(defaultDb(cwd), json.sessionId)
    const claims = records.flatMap((record) => (record.event._tag === "TaskClaimed" ? [record.event.workerId] : []))
    expect(claims).toEqual([firstId, secondReady[1], secondReady[1]])
    expect(types).toContain("TaskReleased")

    const badKinds = await cli(["worker", "--kinds", "Cooking"], { cwd })
    expect(badKinds.code).toBe(2)
    expect(oneLine(badKinds.stderr)).toContain('Unknown task kind "Cooking" in --kinds')
  })

  it("serve shows the store's sessions until SIGTERM; a port in use exits with 4", async () => {
    const { cwd } = setUp()
    const run = await cli(["run", "--executor", "echo", "--json", "Write the code."], { cwd })
    const { sessionId } = parseJson<ResultJson>(run)
    const server = startCli(["serve", "--port", "0"], { cwd })
    const [, url, port] = await server.waitFor(/^Dashboard: (http:\/\/127\.0\.0\.1:(\d+))\/$/m)
    const response = await fetch(`${url}/api/sessions`)
    expect(response.status).toBe(200)
    expect(JSON.stringify(await response.json())).toContain(sessionId)
    const taken = await cli(["serve", "--port", String(port)], { cwd })
    expect(taken.code).toBe(4)
    expect(oneLine(taken.stderr)).toMatch(
      new RegExp(
        `^planner: Cannot serve the dashboard on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*: another program listens there\\. Choose another port with --port \\(0 takes any free one\\)\\.$`
      )
    )
    server.child.kill("SIGTERM")
    expect((await server.result).code).toBe(0)
  })
})
