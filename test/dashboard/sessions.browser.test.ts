/**
 * The session list in a real browser: more than 100 sessions, paged with a correct count, filtered by status, searched
 * and sorted, against the real server and a real SQLite store; pruned sessions in the list, on their page and in a
 * fork's lineage.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fork from "../../src/app/Fork.js"
import * as Runner from "../../src/app/Runner.js"
import * as SessionSnapshots from "../../src/infra/SessionSnapshots.js"
import { Browser, BrowserLive, openPage, run, screenshot, showView, waitFor } from "./browserSupport.js"
import { plannerWithScript, startPlan, startServer, task } from "./fixtures.js"

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("the session list in a browser", (it) => {
  it.scoped(
    "pages past 100 sessions with a correct count, filters by status and searches the requests",
    () =>
      Effect.gen(function* () {
        const ids: Array<string> = []
        for (let index = 0; index < 105; index++) {
          const topic = index % 20 === 0 ? "the billing export" : `chore ${index}`
          ids.push(yield* startPlan(`Look into ${topic}`, [task(1, "Processing", `Handle ${topic}`)]))
        }
        for (const id of ids.slice(0, 3)) expect((yield* Runner.run(id)).state.status).toBe("Succeeded")
        const { url } = yield* startServer
        const context = yield* Browser
        const { page, errors } = yield* openPage(context, `${url}/`)
        const summary = () => run(() => page.textContent("#sessions-summary"))
        const rows = () => run(() => page.$$eval("table.sessions tbody tr", (items) => items.length))
        const summaryIs = (text: string) => waitFor(page, `#sessions-summary:has-text("${text}")`)

        yield* summaryIs("Showing 1–50 of 105 sessions")
        expect(yield* rows()).toBe(50)
        yield* run(() => page.click("#page-next"))
        yield* summaryIs("Showing 51–100 of 105")
        yield* run(() => page.click("#page-next"))
        yield* summaryIs("Showing 101–105 of 105")
        expect(yield* rows()).toBe(5)
        expect(yield* run(() => page.textContent("#page-label"))).toBe("Page 3 of 3")
        expect(yield* run(() => page.isDisabled("#page-next"))).toBe(true)
        // Every session was on exactly one page: the last page holds the oldest five.
        const lastPage = yield* run(() =>
          page.$$eval("table.sessions tbody tr", (items) => items.map((item) => item.getAttribute("data-session-id")))
        )
        expect(new Set(lastPage)).toEqual(new Set(ids.slice(0, 5)))
        expect(page.url()).toContain("page=3")

        // Filter: the three that finished.
        yield* run(() => page.selectOption("#filter-status", "Succeeded"))
        yield* summaryIs("Showing 3 of 3 sessions that match (105 in the store)")
        expect(yield* rows()).toBe(3)
        expect(page.url()).toContain("status=Succeeded")

        // Search, with every status.
        yield* run(() => page.selectOption("#filter-status", ""))
        yield* run(() => page.fill("#search-requests", "billing EXPORT"))
        yield* summaryIs("Showing 6 of 6 sessions that match")
        const found = yield* run(() =>
          page.$$eval("table.sessions tbody .request-link", (links) => links.map((link) => link.textContent))
        )
        expect(found.every((text) => text?.includes("the billing export"))).toBe(true)
        yield* run(() => page.fill("#search-requests", "nothing like this"))
        yield* waitFor(page, '.empty:has-text("No session matches.")')

        // Oldest first, and a reload keeps the choices.
        yield* run(() => page.fill("#search-requests", ""))
        yield* run(() => page.selectOption("#sort-order", "oldest"))
        yield* summaryIs("Showing 1–50 of 105 sessions")
        expect(yield* run(() => page.getAttribute("table.sessions tbody tr", "data-session-id"))).toBe(ids[0])
        yield* run(() => page.reload())
        yield* summaryIs("Showing 1–50 of 105 sessions")
        expect(yield* run(() => page.inputValue("#sort-order"))).toBe("oldest")
        yield* run(() => page.selectOption("#sort-order", "newest"))
        yield* summaryIs("Showing 1–50 of 105")
        expect(yield* summary()).toContain("of 105")
        yield* screenshot(page, "dashboard-sessions.png", { fullPage: false })
        expect(errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript({ rules: [], default: { complete: "done" } }))),
    120_000
  )

  it.scoped(
    "lists a pruned session marked as such, and opens it from its final state without its events",
    () =>
      Effect.gen(function* () {
        const pruned = yield* startPlan("Archive the old invoices", [task(1, "Processing", "Archive the invoices")])
        expect((yield* Runner.run(pruned)).state.status).toBe("Succeeded")
        const kept = yield* startPlan("Look into the billing export", [task(1, "Processing", "Handle the export")])
        yield* SessionSnapshots.prune(Number.MAX_SAFE_INTEGER)
        const { url } = yield* startServer
        const context = yield* Browser
        const { page, errors } = yield* openPage(context, `${url}/`)
        yield* waitFor(page, '#sessions-summary:has-text("Showing 2 of 2 sessions")')
        const row = `table.sessions tbody tr[data-session-id="${pruned}"]`
        expect(yield* run(() => page.textContent(`${row} .pruned-mark`))).toBe("pruned")
        expect(yield* run(() => page.$(`tr[data-session-id="${kept}"] .pruned-mark`))).toBeNull()

        yield* run(() => page.click(`${row} .request-link`))
        yield* waitFor(page, "#pruned-note")
        expect(yield* run(() => page.textContent("#pruned-note"))).toContain("Its events were pruned")
        yield* showView(page, "board")
        yield* waitFor(page, '#board [data-task-id="1"][data-status="Completed"]')
        expect(yield* run(() => page.isHidden("#fork-plan"))).toBe(true)
        expect(errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript({ rules: [], default: { complete: "done" } }))),
    60_000
  )

  it.scoped(
    "names a fork's pruned origin in its lineage, marked, with nothing to compare it with",
    () =>
      Effect.gen(function* () {
        const origin = yield* startPlan("Archive the old invoices", [task(1, "Processing", "Archive the invoices")])
        expect((yield* Runner.run(origin)).state.status).toBe("Succeeded")
        yield* Effect.sleep("5 millis")
        const fork = yield* Fork.fork(origin, 1)
        yield* Effect.sleep("5 millis")
        const forkEnd = (yield* Runner.run(fork.sessionId)).state
        const pruned = yield* SessionSnapshots.prune(forkEnd.finishedAt ?? 0)
        expect(pruned.pruned.map((one) => one.sessionId)).toEqual([origin])
        const { url } = yield* startServer
        const context = yield* Browser
        const { page, errors } = yield* openPage(context, `${url}/sessions/${fork.sessionId}`)
        yield* waitFor(page, "#lineage:not([hidden]) #lineage-origin")
        const text = yield* run(() => page.textContent("#lineage-origin"))
        expect(text).toContain(`Forked from ${origin}`)
        expect(yield* run(() => page.textContent("#lineage-origin .pruned-mark"))).toBe("pruned")
        expect(text).not.toContain("Unknown")
        expect(yield* run(() => page.$("#lineage-origin [data-compare]"))).toBeNull()
        expect(errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript({ rules: [], default: { complete: "done" } }))),
    60_000
  )

  it.scoped(
    "shows a pruned session read-only: no retry of its failed task, no time travel from the keyboard",
    () =>
      Effect.gen(function* () {
        const failed = yield* startPlan("Clear the flaky cache", [task(1, "Processing", "Clear the flaky cache")])
        expect((yield* Runner.run(failed)).state.status).toBe("Failed")
        yield* SessionSnapshots.prune(Number.MAX_SAFE_INTEGER)
        const { url } = yield* startServer
        const context = yield* Browser
        const { page, errors } = yield* openPage(context, `${url}/sessions/${failed}`)
        const stateRequests: Array<string> = []
        page.on("request", (request) => {
          if (new URL(request.url()).pathname.endsWith("/state")) stateRequests.push(request.url())
        })
        yield* waitFor(page, "#pruned-note")
        yield* showView(page, "board")
        yield* waitFor(page, '#board [data-task-id="1"][data-status="Failed"]')
        expect(yield* run(() => page.$("#board .retry-task"))).toBeNull()
        // The arrow keys step through a log's events (away from the view tabs, which take them to switch views): a
        // pruned session has none left to step through.
        yield* run(() => page.click("#pruned-note"))
        yield* run(() => page.keyboard.press("ArrowLeft"))
        yield* Effect.sleep("300 millis")
        expect(stateRequests).toEqual([])
        expect(yield* run(() => page.$("#board.past"))).toBeNull()
        expect(errors).toEqual([])
      }).pipe(
        Effect.provide(
          plannerWithScript({
            rules: [{ match: "flaky", outcomes: [{ fail: "the disk is full", retryable: false }] }],
            default: { complete: "done" }
          })
        )
      ),
    60_000
  )
})
