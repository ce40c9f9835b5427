/**
 * `planner serve --worker` as a real process (the built CLI) over a SQLite file, driven from a real browser: its own
 * worker runs the plan, the question is answered in the page, and the plan runs to completion with nobody at a
 * terminal. Without a worker, the page says that no worker serves the session.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Server from "../../src/app/Server.js"
import * as EchoExecutor from "../../src/infra/EchoExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { plannerRuntime } from "../app/fixtures/runtime.js"
import { ensureBuilt, startCli, tempFolder } from "../cli/cli.js"
import { Browser, BrowserLive, openPage, run, screenshot, showView, waitFor } from "./browserSupport.js"
import { fetchJson, startPlan, task } from "./fixtures.js"

const script = {
  rules: [
    { match: "Build", delayMs: 200, outcomes: [{ complete: "Built in 4 s." }] },
    { match: "Deploy", outcomes: [{ ask: "Deploy to staging or production?" }, { complete: "Deployed to {answer}" }] }
  ],
  default: { complete: "done: {description}" }
}

const plan = [
  task(1, "ToolCall", "Build the site"),
  task(2, "Processing", "Deploy the site", [1]),
  task(3, "Processing", "Announce the release", [2])
]

/** The planner's services in this process over `filename`, with no worker here (the server process runs tasks). */
const storeAt = (filename: string) => plannerRuntime(SqliteEventStore.layer({ filename }), EchoExecutor.echo)

/** `planner serve ARGS` in its own process, until the scope closes; its URL. */
const serveProcess = (args: ReadonlyArray<string>, cwd: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const running = startCli(["serve", "--port", "0", ...args], { cwd, timeoutMs: 120_000 })
      const match = await running.waitFor(/Dashboard: (http:\/\/\S+?)\/?\n/, 60_000)
      return { running, url: match[1] ?? "" }
    }),
    ({ running }) =>
      Effect.promise(async () => {
        running.child.kill("SIGTERM")
        await running.result
      })
  )

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("planner serve --worker in a browser", (it) => {
  it.scoped(
    "its own worker runs a plan that is answered in the page, to completion; without one the page says so",
    () =>
      Effect.gen(function* () {
        ensureBuilt()
        const folder = tempFolder("planner-serve-worker-")
        const db = path.join(folder, "planner.db")
        const scriptFile = path.join(folder, "script.json")
        fs.writeFileSync(scriptFile, JSON.stringify(script))
        // Built in the test's scope: the in-process server below lives as long as the test.
        const services = yield* Layer.build(storeAt(db))
        const sessionId = yield* startPlan("Build the site, deploy it, announce it.", plan).pipe(
          Effect.provide(services)
        )
        const context = yield* Browser

        // Without a worker: the session waits, and the page says nobody serves it.
        {
          const { url } = yield* Server.start({ host: "127.0.0.1", port: 0 }).pipe(Effect.provide(services))
          const { page } = yield* openPage(context, `${url}/sessions/${sessionId}`)
          yield* waitFor(page, '#served[data-served="unserved"]')
          expect(yield* run(() => page.textContent("#served"))).toContain("No worker is serving this session")
          expect(yield* run(() => page.getAttribute(".status-slot .pill", "data-status"))).toBe("Idle")
          const list = yield* fetchJson(`${url}/api/sessions`)
          const listed = (list.body as { sessions: Array<{ id: string; served?: { kind: string } }> }).sessions
          expect(listed.find((session) => session.id === sessionId)?.served?.kind).toBe("unserved")
        }

        // With `serve --worker`: the server process runs the tasks.
        const { url, running } = yield* serveProcess(
          ["--worker", "--db", db, "--executor", `script:${scriptFile}`, "--no-check-links"],
          folder
        )
        expect(running.stdout()).toMatch(/Worker \S+ runs tasks in this process/)
        const { page, errors } = yield* openPage(context, `${url}/sessions/${sessionId}`)
        yield* showView(page, "graph")
        yield* waitFor(page, '#graph [data-node="2"][data-status="NeedsClarification"]', 60_000)
        yield* waitFor(page, '.status-slot .pill[data-status="Waiting"]')
        yield* run(() => page.click('#graph [data-node="2"]'))
        yield* waitFor(page, '#graph-task [data-task-id="2"] textarea[name="answer"]')
        yield* run(() => page.fill('#graph-task [data-task-id="2"] textarea[name="answer"]', "production"))
        yield* run(() => page.click('#graph-task [data-task-id="2"] button[type="submit"]'))
        yield* waitFor(page, '.status-slot .pill[data-status="Succeeded"]', 60_000)
        const done = yield* fetchJson(`${url}/api/sessions/${sessionId}`)
        const state = (done.body as { state: { status: string; tasks: Array<{ result?: string }> } }).state
        expect(state.status).toBe("Succeeded")
        expect(state.tasks.map((t) => t.result)).toEqual([
          "Built in 4 s.",
          "Deployed to production",
          "done: Announce the release"
        ])
        expect(errors).toEqual([])

        // A new session is served by the server's worker from the start, as the list shows.
        const second = yield* startPlan("Deploy the site again.", [task(1, "Processing", "Deploy the site")]).pipe(
          Effect.provide(services)
        )
        const list = yield* openPage(context, `${url}/`)
        yield* waitFor(list.page, `tr[data-session-id="${second}"] .pill[data-status="Waiting"]`, 60_000)
        yield* waitFor(list.page, `tr[data-session-id="${sessionId}"] .pill[data-status="Succeeded"]`)
        yield* screenshot(list.page, "dashboard-sessions-served.png", { fullPage: false })
      }),
    180_000
  )
})
