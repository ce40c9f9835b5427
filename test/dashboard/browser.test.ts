/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core), against the real server, store,
 * worker and script executor: a plan runs, pauses for a question, is answered in the page and completes, all seen
 * live without reloading; then the timeline shows earlier boards and returns to live.
 *
 * Screenshots: `test-output/dashboard-session.png` on every run; `docs/dashboard.png` (the README's) when it is
 * missing or `PLANNER_UPDATE_SCREENSHOTS=1`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { expect, layer } from "@effect/vitest"
import { Effect, Fiber, Option, Schedule } from "effect"
import type { Page } from "playwright-core"
import * as Runner from "../../src/app/Runner.js"
import { Browser, BrowserLive, openPage, repoRoot, run, showView, waitFor } from "./browserSupport.js"
import { fetchJson, plannerWithScript, startPlan, startServer, task } from "./fixtures.js"

const cardStatus = (page: Page, taskId: number) =>
  run(() => page.getAttribute(`#board [data-task-id="${taskId}"]`, "data-status"))

const boardStatuses = (page: Page) =>
  run(() =>
    page.$$eval("#board .card", (cards) =>
      cards
        .map((card) => [Number(card.getAttribute("data-task-id")), card.getAttribute("data-status")] as const)
        .sort((a, b) => a[0] - b[0])
        .map(([, status]) => status)
    )
  )

/** The board shows `expected` (task statuses in id order) within a few seconds. */
const eventuallyStatuses = (page: Page, expected: ReadonlyArray<string>) =>
  boardStatuses(page).pipe(
    Effect.filterOrFail(
      (statuses) => JSON.stringify(statuses) === JSON.stringify(expected),
      (statuses) => new Error(`the board shows ${JSON.stringify(statuses)}, not ${JSON.stringify(expected)}`)
    ),
    Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100 })
  )

/**
 * Runs in the page: records every status each card shows, in order, as the DOM changes, and sets a flag that a
 * reload would lose. In-page code is a string because the tests are type-checked without the DOM library.
 */
const recordStatuses = `(() => {
  const seen = {}
  const record = () => {
    for (const card of document.querySelectorAll("#board .card")) {
      const id = card.getAttribute("data-task-id")
      const list = seen[id] ?? (seen[id] = [])
      const status = card.getAttribute("data-status")
      if (list.at(-1) !== status) list.push(status)
    }
  }
  record()
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true })
  window.__seen = seen
  window.__sameDocument = true
})()`

/** Task statuses according to the API's state-at endpoint. */
const statusesAt = (url: string, sessionId: string, sequence: number) =>
  Effect.map(fetchJson(`${url}/api/sessions/${sessionId}/state?at=${sequence}`), ({ body }) =>
    (body as { state: { tasks: ReadonlyArray<{ status: string }> } }).state.tasks.map((t) => t.status)
  )

const script = {
  rules: [
    {
      match: "open issues",
      delayMs: 400,
      outcomes: [
        {
          complete:
            "Found 3 reports: #12 login loops after an hour, #19 idle logout too early, #23 remember-me ignored."
        }
      ]
    },
    {
      match: "cookies should live",
      outcomes: [
        { ask: "How long should login cookies live?" },
        { complete: "Cookie lifetime: {answer}, renewed on activity." }
      ]
    },
    {
      match: "Implement",
      delayMs: 700,
      outcomes: [{ complete: "The session middleware sets Max-Age from the config; 4 files changed." }]
    },
    { match: "unit tests", delayMs: 300, outcomes: [{ complete: "12 tests added, all passing." }] },
    { match: "Tidy", delayMs: 200, outcomes: [{ complete: "Imports sorted; 2 unused ones removed." }] }
  ],
  default: { complete: "No issues found." }
}

const plan = [
  task(1, "Retrieval", "Collect the open issues about session expiry"),
  task(2, "Analysis", "Decide how long login cookies should live", [1]),
  task(3, "CodeImplementation", "Implement the cookie expiry in the session middleware", [2]),
  task(4, "UnitTest", "Write unit tests for the expiry edge cases", [3]),
  task(5, "Refactor", "Tidy the auth module's imports"),
  task(6, "ToolCall", "Run the linter on the auth module", [3, 5])
]

const request =
  "Fix session expiry: collect the open issues, decide how long login cookies should live, implement it in the " +
  "session middleware, add unit tests, tidy the imports and run the linter."

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("the dashboard in a browser", (it) => {
  it.scoped(
    "follows a plan live, takes an answer in the page, and travels back in time",
    () =>
      Effect.gen(function* () {
        const context = yield* Browser
        const sessionId = yield* startPlan(request, plan, { maxParallel: 2 })
        const { url } = yield* startServer
        const { page, errors } = yield* openPage(context, `${url}/sessions/${encodeURIComponent(sessionId)}`)
        yield* showView(page, "board")
        yield* waitFor(page, '#board [data-task-id="6"]')
        // Every status each card shows, as it shows it; and a flag a reload would lose.
        yield* run(() => page.evaluate(recordStatuses))
        expect(yield* boardStatuses(page)).toEqual([
          "Dispatched",
          "Planned",
          "Planned",
          "Planned",
          "Dispatched",
          "Planned"
        ])

        // The run goes on in this process; nobody here answers, the page will.
        const running = yield* Effect.fork(Runner.run(sessionId, { onClarification: () => Effect.never }))

        yield* waitFor(page, '#board [data-task-id="2"][data-status="NeedsClarification"]')
        yield* waitFor(page, '#board [data-task-id="5"][data-status="Completed"]')
        yield* waitFor(page, '.status-slot .pill[data-status="Waiting"]')
        expect(yield* boardStatuses(page)).toEqual([
          "Completed",
          "NeedsClarification",
          "Planned",
          "Planned",
          "Completed",
          "Planned"
        ])
        const question = yield* run(() => page.textContent('#board [data-task-id="2"] .question'))
        expect(question).toBe("How long should login cookies live?")

        const docsScreenshot = path.join(repoRoot, "docs", "dashboard.png")
        if (!fs.existsSync(docsScreenshot) || process.env.PLANNER_UPDATE_SCREENSHOTS === "1") {
          yield* run(() => page.fill('#board [data-task-id="2"] textarea[name="answer"]', "30 days"))
          yield* run(() => page.screenshot({ path: docsScreenshot, fullPage: true }))
        }

        // Answer in the page.
        yield* run(() => page.fill('#board [data-task-id="2"] textarea[name="answer"]', "30 days"))
        yield* run(() => page.click('#board [data-task-id="2"] button[type="submit"]'))
        yield* waitFor(page, '.status-slot .pill[data-status="Succeeded"]', 30_000)
        const result = yield* Fiber.join(running)
        expect(result.state.status).toBe("Succeeded")
        expect(result.state.tasks[1]?.result).toBe("Cookie lifetime: 30 days, renewed on activity.")
        expect(yield* boardStatuses(page)).toEqual(Array(6).fill("Completed"))
        expect(yield* run(() => page.textContent('#board [data-task-id="2"] .result .block-text'))).toBe(
          "Cookie lifetime: 30 days, renewed on activity."
        )
        expect(yield* run(() => page.textContent('#board [data-task-id="2"] .answer'))).toBe("30 days")
        // The timeline has every event of the log.
        const lastSequence = result.state.version
        yield* waitFor(page, `#event-list [data-sequence="${lastSequence}"]`)
        expect(yield* run(() => page.$$eval("#event-list li", (items) => items.length))).toBe(lastSequence)
        fs.mkdirSync(path.join(repoRoot, "test-output"), { recursive: true })
        yield* run(() =>
          page.screenshot({ path: path.join(repoRoot, "test-output", "dashboard-session.png"), fullPage: true })
        )

        // Tasks changed state in place, as the events came: nobody reloaded the page.
        const seen = (yield* run(() => page.evaluate("window.__seen"))) as Record<string, ReadonlyArray<string>>
        expect(seen["1"]).toEqual(["Dispatched", "Running", "Completed"])
        expect(seen["2"]).toEqual(expect.arrayContaining(["Planned", "NeedsClarification", "Completed"]))
        expect(seen["3"]).toEqual(expect.arrayContaining(["Planned", "Running", "Completed"]))
        expect(yield* run(() => page.evaluate("'__sameDocument' in window"))).toBe(true)

        // Time travel: the board as it was when task 2 asked its question.
        const events = yield* fetchJson(`${url}/api/sessions/${sessionId}/events?limit=1000`)
        const asked = (events.body as { events: Array<{ sequence: number; type: string }> }).events.find(
          (event) => event.type === "ClarificationRequested"
        )
        expect(asked).toBeDefined()
        const askedAt = asked?.sequence ?? 0
        yield* run(() => page.fill("#timeline-slider", String(askedAt)))
        yield* waitFor(page, '#board.past [data-task-id="2"][data-status="NeedsClarification"]')
        expect(yield* boardStatuses(page)).toEqual(yield* statusesAt(url, sessionId, askedAt))
        expect(yield* run(() => page.isVisible("#time-travel-banner"))).toBe(true)
        expect(yield* run(() => page.textContent("#timeline-position"))).toContain(
          `Event ${askedAt} of ${lastSequence}`
        )
        // The past cannot be answered.
        expect(yield* run(() => page.$$("#board form"))).toHaveLength(0)

        // One step further back.
        yield* run(() => page.click("#step-back"))
        yield* waitFor(page, `#timeline-position:has-text("Event ${askedAt - 1} of")`)
        const before = yield* statusesAt(url, sessionId, askedAt - 1)
        expect(before[1]).not.toBe("NeedsClarification")
        yield* eventuallyStatuses(page, before)

        // And back to live.
        yield* run(() => page.click("#go-live"))
        yield* waitFor(page, "#board:not(.past)")
        expect(yield* run(() => page.isVisible("#time-travel-banner"))).toBe(false)
        expect(yield* boardStatuses(page)).toEqual(Array(6).fill("Completed"))
        expect(yield* run(() => page.textContent("#timeline-position"))).toContain(`Live · event ${lastSequence}`)
        expect(yield* cardStatus(page, 2)).toBe("Completed")
        expect(errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript(script))),
    90_000
  )

  it.scoped(
    "shows markup in task text as text, and runs none of it",
    () =>
      Effect.gen(function* () {
        const hostile = '<script>window.__pwned = true</script><img src="x" onerror="window.__pwned = true">'
        const sessionId = yield* startPlan(`Check ${hostile}`, [
          task(1, "Processing", `Render ${hostile} safely`),
          task(2, "Clarification", "Is <b>this</b> bold?", [1])
        ])
        const result = yield* Runner.run(sessionId, {
          onClarification: (_task, question) => Effect.succeed(Option.some(`No, ${question} stays <i>plain</i>`))
        })
        expect(result.state.status).toBe("Succeeded")
        const { url } = yield* startServer
        const context = yield* Browser

        const { page, errors } = yield* openPage(context, `${url}/sessions/${sessionId}`)
        yield* showView(page, "board")
        yield* waitFor(page, '#board [data-task-id="2"][data-status="Completed"]')
        expect(yield* run(() => page.textContent('#board [data-task-id="1"] .description'))).toBe(
          `Render ${hostile} safely`
        )
        expect(yield* run(() => page.textContent('#board [data-task-id="1"] .result .block-text'))).toBe(
          `<b>done</b> Render ${hostile} safely`
        )
        expect(yield* run(() => page.textContent('#board [data-task-id="2"] .answer'))).toBe(
          "No, Is <b>this</b> bold? stays <i>plain</i>"
        )
        expect(yield* run(() => page.textContent(".session-title"))).toBe(`Check ${hostile}`)
        // None of it became elements, and nothing ran.
        expect(yield* run(() => page.$$("main script, main img, main b, main i"))).toHaveLength(0)
        expect(yield* run(() => page.evaluate("'__pwned' in window"))).toBe(false)

        const list = yield* openPage(context, `${url}/`)
        yield* waitFor(list.page, `tr[data-session-id="${sessionId}"]`)
        expect(yield* run(() => list.page.textContent(`tr[data-session-id="${sessionId}"] .request-link`))).toContain(
          "<script>window.__pwned = true</script>"
        )
        expect(yield* run(() => list.page.$$("main script, main img"))).toHaveLength(0)
        expect(yield* run(() => list.page.evaluate("'__pwned' in window"))).toBe(false)
        expect([...errors, ...list.errors]).toEqual([])
      }).pipe(Effect.provide(plannerWithScript({ rules: [], default: { complete: "<b>done</b> {description}" } }))),
    60_000
  )
})
