/**
 * PostgreSQL away for a while, behind a proxy (`freezableProxy`) so that the server the other tests share is not.
 *
 * - A stop while the store does not answer (a network partition, a server that hangs). Stopping gives back what the
 *   command holds, which is a write; with no answer the process is ended after `stopWithinMs`, and it must still say
 *   where things stand: `run` the session and the command that goes on with it, `planner worker` that its tasks were
 *   not given back. Nothing is lost: the session goes on afterwards.
 * - A store that restarts (every connection dropped, new ones refused for a few seconds): a long-lived worker rides it
 *   out and the plan finishes; `run`, which follows its session, ends with exit code 4 and the command that goes on.
 */
import { afterEach, beforeAll, describe, expect, inject, it } from "@effect/vitest"
import { type FreezableProxy, startFreezableProxy } from "../support/freezableProxy.js"
import { createDatabase, uniqueDatabaseName, withClient } from "../support/postgres.js"
import { cli, ensureBuilt, oneLine, parseJson, type ResultJson, startCli, tempFolder, writeScript } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

const proxies: Array<FreezableProxy> = []
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()))
})

/** A fresh database, and the same database through a proxy that can be frozen. */
const database = async () => {
  const url = await createDatabase(inject("postgresUrl"), uniqueDatabaseName("stop_unanswered"))
  const parsed = new URL(url)
  const proxy = await startFreezableProxy({ host: parsed.hostname, port: Number(parsed.port) })
  proxies.push(proxy)
  return { url, proxy, proxied: proxy.through(url) }
}

/**
 * The lexer takes `lexerMs`; every other step is done at once. The one stopped or cut off in the middle takes a
 * minute, so that the test, however slow the machine, acts while it runs; what goes on afterwards takes 3 s.
 */
const script = (folder: string, lexerMs = 3_000) =>
  writeScript(folder, `script-${lexerMs}.json`, {
    rules: [{ match: "lexer", delayMs: lexerMs, outcomes: [{ complete: "lexed" }] }],
    default: { complete: "done" }
  })

/** A lexer still running when the test acts, whenever that is. */
const slowLexer = 60_000

const request = "Write a parser. Write a lexer. Write docs."

/** Whether the lexer's (task 2's) attempt has started, as the log says. */
const lexerStarted = (url: string) =>
  withClient(url, (client) =>
    client.query("SELECT 1 FROM events WHERE event_type = 'TaskClaimed' AND (data->>'taskId')::int = 2")
  ).then(
    (result) => (result.rowCount ?? 0) > 0,
    // Before the run has made the tables.
    () => false
  )

/** Polls `condition` until it holds; a generous bound on a wait, never a measurement. */
const waitUntil = async (condition: () => Promise<boolean>, withinMs = 60_000) => {
  const deadline = Date.now() + withinMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("timed out waiting for the condition")
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Every task completed, each by one attempt that completed (the stopped one may have been charged before it). */
const expectAllCompletedOnce = (result: ResultJson) => {
  expect(result.status).toBe("Succeeded")
  expect(result.tasks.map((task) => task.status)).toEqual(["Completed", "Completed", "Completed"])
}

/** A run through the proxy (its tasks in the process), ready once it runs the lexer (a slow one). */
const runOnTheLexer = async () => {
  const cwd = tempFolder()
  const { url, proxy, proxied } = await database()
  const file = script(cwd)
  const running = startCli(
    ["run", "--plain", "--db", proxied, "--executor", `script:${script(cwd, slowLexer)}`, request],
    { cwd }
  )
  await running.waitFor(/^task 2 started: Write a lexer$/m)
  return { cwd, url, proxy, file, running }
}

/** `planner resume`, straight to the store, runs the lexer again (a 3-s one) and ends the plan, every task once. */
const finishedByResume = async (
  on: { readonly cwd: string; readonly url: string; readonly file: string },
  sessionId: string
) => {
  const resumed = await cli(["resume", sessionId, "--db", on.url, "--json", "--executor", `script:${on.file}`], {
    cwd: on.cwd
  })
  expect(resumed.code, resumed.stderr).toBe(0)
  expectAllCompletedOnce(parseJson<ResultJson>(resumed))
}

/**
 * A worker through the proxy, and a run of the plan that leaves its tasks to workers (straight to the store); ready once
 * the worker runs the lexer.
 */
const workerOnTheLexer = async (json: boolean, lexerMs: number) => {
  const cwd = tempFolder()
  const { url, proxy, proxied } = await database()
  const file = script(cwd)
  const worker = startCli(
    ["worker", ...(json ? ["--json"] : []), "--db", proxied, "--executor", `script:${script(cwd, lexerMs)}`],
    { cwd }
  )
  await worker.waitFor(json ? /"event":"ready"/ : /serving/)
  const run = startCli(["run", "--json", "--no-local-worker", "--db", url, "--executor", `script:${file}`, request], {
    cwd
  })
  await worker.waitFor(json ? /"event":"started"[^\n]*"taskId":2/ : /task 2 started: Write a lexer/)
  return { cwd, url, proxy, file, worker, run }
}

/** The plan is not lost: another worker (of this host: the first one's process is gone) finishes it. */
const finishedByAnotherWorker = async (on: Awaited<ReturnType<typeof workerOnTheLexer>>) => {
  const next = startCli(["worker", "--json", "--db", on.url, "--executor", `script:${on.file}`], { cwd: on.cwd })
  const finished = await on.run.result
  next.child.kill("SIGTERM")
  expect(finished.code, finished.stderr).toBe(0)
  expectAllCompletedOnce(parseJson<ResultJson>(finished))
  expect((await next.result).code).toBe(0)
}

describe("PostgreSQL away for a while", { timeout: 300_000 }, () => {
  it("planner run says which session goes on and how, exits 130, and resume finishes it", async () => {
    const { cwd, url, proxy, file, running } = await runOnTheLexer()
    proxy.freeze()
    running.child.kill("SIGINT")
    const stopped = await running.result
    expect(stopped.code, stopped.stderr).toBe(130)
    const sessionId = stopped.stdout.match(/Session (\S+): 3 tasks/)?.[1] ?? ""
    const said = oneLine(stopped.stderr)
    expect(said).toContain("Stopped before the store confirmed it")
    expect(said).toContain(`Session ${sessionId} goes on with: planner resume ${sessionId}`)
    // The password stays out of what it says.
    expect(said).not.toContain(new URL(url).password)
    // The partition ends: the connections the proxy still holds for the ended run close, and any transaction of it
    // with them, rather than holding a lock that the resume below would wait for.
    proxy.down()

    // The command it printed goes on (the store answering again, straight to it): the lexer runs again and the plan ends.
    await finishedByResume({ cwd, url, file }, sessionId)
  })

  it("a worker rides out a store that restarts, and the plan it was running finishes", async () => {
    // The lexer's 3 s end while the store is away, and its outcome waits for it.
    const { proxy, worker, run } = await workerOnTheLexer(false, 3_000)
    proxy.down()
    // Away past the lexer's end: its outcome, and the takes after it, fail while the store is away.
    // Four seconds at least, and until a take has failed however slow the machine (a bound on the wait, no measurement).
    await new Promise((resolve) => setTimeout(resolve, 4_000))
    await waitUntil(async () => worker.stderr().includes("could not take jobs") || worker.child.exitCode !== null)
    expect(worker.child.exitCode, worker.stderr()).toBeNull()
    proxy.up()
    const finished = await run.result
    expect(finished.code, finished.stderr).toBe(0)
    expectAllCompletedOnce(parseJson<ResultJson>(finished))
    // Its take loop, waiting out its backoff, may come back after the plan has ended.
    await waitUntil(async () => worker.stderr().includes("taking jobs again"))
    // Each warning is one line: no stack traces without --verbose. And a look that fails every second while the store
    // is away says so once a minute, not every second.
    expect(worker.stderr()).not.toMatch(/^\s+at /m)
    const warnings = worker
      .stderr()
      .split("\n")
      .filter((line) => line.startsWith("warn:"))
    expect(warnings.length).toBeGreaterThan(0)
    expect(new Set(warnings).size, warnings.join("\n")).toBe(warnings.length)
    worker.child.kill("SIGTERM")
    expect((await worker.result).code).toBe(0)
  })

  it("planner run on a store that goes away ends with exit code 4 and the command that goes on", async () => {
    const { cwd, url, proxy, file, running } = await runOnTheLexer()
    proxy.down()
    const ended = await running.result
    expect(ended.code, ended.stderr).toBe(4)
    const sessionId = ended.stdout.match(/Session (\S+): 3 tasks/)?.[1] ?? ""
    const said = ended.stderr.trim().split("\n").at(-1) ?? ""
    expect(said).toContain("Check that the store is reachable")
    expect(said).toContain(`Session ${sessionId} goes on with: planner resume ${sessionId}`)
    await finishedByResume({ cwd, url, file }, sessionId)
  })

  it("under --json --verbose, the lost store's error names the session, and the cause follows", async () => {
    const cwd = tempFolder()
    const { url, proxy, proxied } = await database()
    const running = startCli(
      ["run", "--json", "--verbose", "--db", proxied, "--executor", `script:${script(cwd, slowLexer)}`, request],
      { cwd }
    )
    // Under --json nothing is printed while it runs: wait until the lexer's attempt is under way in the store.
    await waitUntil(() => lexerStarted(url))
    proxy.down()
    const ended = await running.result
    expect(ended.code, ended.stderr).toBe(4)
    const lines = ended.stderr.split("\n")
    const at = lines.findIndex((line) => line.startsWith('{"error"'))
    const errorObject = lines[at] ?? "{}"
    const { error } = JSON.parse(errorObject) as { error: { code: number; message: string; sessionId: string } }
    expect(error.code).toBe(4)
    expect(error.sessionId).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/)
    expect(error.message).toContain(`goes on with: planner resume ${error.sessionId}`)
    // --verbose: the store's error itself, right after the line (log lines start with their level).
    expect(lines[at + 1] ?? "", ended.stderr).toMatch(/^(TaskQueueError|EventStoreError)\b/)
  })

  it("a worker stopped while the store refuses connections says what it could not give back", async () => {
    const on = await workerOnTheLexer(false, slowLexer)
    on.proxy.down()
    on.worker.child.kill("SIGTERM")
    const stopped = await on.worker.result
    expect(stopped.code, stopped.stderr).toBe(0)
    expect(stopped.stdout, stopped.stderr).toMatch(/task 2 could not be given back: the store did not take it back/)
    expect(stopped.stdout).toMatch(/stopped; 1 of the tasks it held could not be given back/)
    expect(stopped.stdout).not.toContain("the tasks it held were given back")
    await finishedByAnotherWorker(on)
  })

  it("planner worker --json says its tasks were not given back, exits 0, and another worker finishes the plan", async () => {
    const on = await workerOnTheLexer(true, slowLexer)
    on.proxy.freeze()
    on.worker.child.kill("SIGTERM")
    const stopped = await on.worker.result
    expect(stopped.code, stopped.stderr).toBe(0)
    const last = stopped.stdout.trim().split("\n").at(-1) ?? ""
    expect(JSON.parse(last)).toMatchObject({ event: "stopped", givenBack: false })
    on.proxy.down()
    await finishedByAnotherWorker(on)
  })
})
