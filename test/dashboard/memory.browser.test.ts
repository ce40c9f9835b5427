/**
 * The memory of past work in a real browser (#17): the session list's search box finds past tasks and sessions from a
 * paraphrase, with their results, questions and outcomes (the same search as `planner recall`); a planned session
 * whose task is like past tasks that asked a question shows the clarification flag, and a finished one does not.
 * Real server, real SQLite store, plans really run by the script executor.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Runner from "../../src/app/Runner.js"
import { Browser, BrowserLive, openPage, run, screenshot, waitFor } from "./browserSupport.js"
import { fetchJson, plannerWithScript, startPlan, startServer, task } from "./fixtures.js"

const script = {
  rules: [{ match: "Deploy", outcomes: [{ ask: "Staging or production?" }, { complete: "Deployed to {answer}" }] }],
  default: { complete: "done: {description}" }
}

/** A plan whose last task asks a question: run, answered, run to the end. */
const deployed = (request: string, tasks: Parameters<typeof startPlan>[1]) =>
  Effect.gen(function* () {
    const sessionId = yield* startPlan(request, tasks)
    const first = yield* Runner.run(sessionId)
    expect(first.state.status).toBe("Running")
    yield* Runner.answer(sessionId, tasks.length, "staging")
    expect((yield* Runner.run(sessionId)).state.status).toBe("Succeeded")
    return sessionId
  })

interface Hit {
  readonly _tag: "Task" | "Session"
  readonly sessionId: string
  readonly taskId?: number
}

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("memory of past work in a browser", (it) => {
  it.scoped(
    "the search box recalls past tasks and sessions; a planned task like past ones that asked is flagged",
    () =>
      Effect.gen(function* () {
        const marketing = yield* deployed("Ship the marketing website", [
          task(1, "ToolCall", "Build the marketing website bundle"),
          task(2, "Processing", "Deploy the marketing website bundle to staging", [1])
        ])
        const docs = yield* deployed("Ship the docs website", [
          task(1, "Processing", "Deploy the docs website bundle to staging")
        ])
        const report = yield* startPlan("Write the quarterly report", [
          task(1, "Analysis", "Summarise quarterly sales")
        ])
        expect((yield* Runner.run(report)).state.status).toBe("Succeeded")
        // Planned, not run: its task is like the two deploys, which both asked.
        const blog = yield* startPlan("Ship the blog website", [
          task(1, "Processing", "Deploy the blog website bundle to staging")
        ])

        const { url } = yield* startServer
        const context = yield* Browser

        // The API: the same search as `planner recall --json`, and its refusals.
        const api = yield* fetchJson(`${url}/api/memory?q=${encodeURIComponent("deploying website bundles")}&kind=task`)
        expect(api.status).toBe(200)
        const apiHits = (api.body as { hits: Array<Hit> }).hits
        expect(apiHits.slice(0, 2).map((hit) => `${hit.sessionId}#${hit.taskId}`)).toEqual(
          expect.arrayContaining([`${marketing}#2`, `${docs}#1`])
        )
        expect(apiHits.every((hit) => hit._tag === "Task")).toBe(true)
        expect((yield* fetchJson(`${url}/api/memory?q=x&kind=Nonsense`)).status).toBe(400)
        expect((yield* fetchJson(`${url}/api/memory?q=x&limit=0`)).status).toBe(400)
        expect((yield* fetchJson(`${url}/api/sessions/no-such-session/memory`)).status).toBe(404)
        const flagsApi = yield* fetchJson(`${url}/api/sessions/${blog}/memory`)
        expect(flagsApi.body).toEqual({ flags: [{ taskId: 1, asked: 2, of: 2 }] })

        // The search box on the session list.
        const { page, errors } = yield* openPage(context, `${url}/`)
        yield* waitFor(page, "#memory-search")
        yield* run(() => page.fill("#memory-search", "deploying website bundles"))
        yield* waitFor(page, "#memory-summary[data-count]")
        const first = page.locator("#memory-results .memory-hit").first()
        const firstKey = yield* run(async () => ({
          session: await first.getAttribute("data-session-id"),
          kind: await first.getAttribute("data-kind")
        }))
        expect([marketing, docs]).toContain(firstKey.session)
        const deployHit = page.locator(`#memory-results .memory-hit[data-session-id="${marketing}"][data-task-id="2"]`)
        const deployText = yield* run(() => deployHit.textContent())
        expect(deployText).toContain("Deploy the marketing website bundle to staging")
        expect(deployText).toContain("Result: Deployed to staging")
        expect(deployText).toContain("Asked: Staging or production?")
        // A session link goes to the session's page.
        expect(yield* run(() => deployHit.locator(`a[href="/sessions/${marketing}"]`).count())).toBe(1)
        yield* screenshot(page, "dashboard-memory.png", { fullPage: true })

        // Sessions only: the two that shipped websites come first, with their outcome.
        yield* run(() => page.selectOption("#memory-kind", "session"))
        // The list before held sessions among the tasks too: wait for the new answer, sessions alone.
        yield* waitFor(page, '#memory-results:not(:has(.memory-hit:not([data-kind="session"]))) .memory-hit')
        const sessions = yield* run(() =>
          page.$$eval("#memory-results .memory-hit", (items) =>
            items.map((item) => [item.getAttribute("data-kind"), item.getAttribute("data-session-id")])
          )
        )
        expect(sessions.every(([kind]) => kind === "session")).toBe(true)
        expect(sessions.slice(0, 2).map(([, id]) => id)).toEqual(expect.arrayContaining([marketing, docs]))
        expect(yield* run(() => page.textContent("#memory-results .memory-hit"))).toContain("Succeeded")

        // Nothing like it.
        yield* run(() => page.fill("#memory-search", "zebra xylophone"))
        yield* waitFor(page, '#memory-summary[data-count="0"]')
        expect(yield* run(() => page.textContent("#memory-summary"))).toContain("Nothing similar")

        // The flag on the planned session's page, and none on a finished one.
        const planned = yield* openPage(context, `${url}/sessions/${blog}`)
        yield* waitFor(planned.page, '#memory-flags:not([hidden]) li[data-task-id="1"]')
        expect(yield* run(() => planned.page.textContent("#memory-flags"))).toContain(
          "Task #1: similar tasks asked for clarification 2 times in 2"
        )
        const finished = yield* openPage(context, `${url}/sessions/${report}`)
        yield* waitFor(finished.page, ".status-slot .pill")
        // The flags' request has been answered (empty) once the page shows the session; the box stays hidden.
        yield* run(() => finished.page.waitForLoadState("networkidle"))
        expect(yield* run(() => finished.page.isHidden("#memory-flags"))).toBe(true)

        expect(errors).toEqual([])
        expect(planned.errors).toEqual([])
        expect(finished.errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript(script))),
    180_000
  )
})
