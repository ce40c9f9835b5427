/**
 * The session page's views in a real browser (Debian's Chromium through playwright-core), against the real server,
 * store, worker and script executor: the plan as a graph that follows the run live, the event detail, and the
 * timeline of attempts. Screenshots of each view go to `test-output/`, and to `docs/` (the README's) when they are
 * missing or `PLANNER_UPDATE_SCREENSHOTS=1`.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import type { Page } from "playwright-core"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import { Browser, BrowserLive, openPage, run, screenshot, showView, waitFor } from "./browserSupport.js"
import { plannerWithScript, startPlan, startServer, task } from "./fixtures.js"

const nodeStatuses = (page: Page) =>
  run(() =>
    page.$$eval("#graph [data-node]", (nodes) =>
      nodes
        .map((node) => [Number(node.getAttribute("data-node")), node.getAttribute("data-status")] as const)
        .sort((a, b) => a[0] - b[0])
        .map(([, status]) => status)
    )
  )

/** Records, in the page, every status each graph node shows as the DOM changes (nodes are redrawn, not kept). */
const recordNodes = `(() => {
  const seen = {}
  const record = () => {
    for (const node of document.querySelectorAll("#graph [data-node]")) {
      const id = node.getAttribute("data-node")
      const list = seen[id] ?? (seen[id] = [])
      const status = node.getAttribute("data-status")
      if (list.at(-1) !== status) list.push(status)
    }
  }
  record()
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true })
  window.__nodes = seen
  window.__sameDocument = true
})()`

const diamondScript = {
  rules: [
    { match: "^Report", delayMs: 200, outcomes: [{ complete: "Report written to report.md." }] },
    { match: "Fetch", delayMs: 300, outcomes: [{ complete: "Fetched 120 rows." }] },
    {
      match: "^Clean the rows",
      delayMs: 900,
      outcomes: [{ fail: "the cleaner crashed" }, { complete: "Cleaned 118 rows." }]
    },
    { match: "Count", delayMs: 200, outcomes: [{ complete: "7 distinct values." }] }
  ],
  default: { complete: "done" }
}

const diamond = [
  task(1, "Retrieval", "Fetch the rows from the export"),
  task(2, "Processing", "Clean the rows", [1]),
  task(3, "Analysis", "Count the distinct values", [1]),
  task(4, "Processing", "Report on the cleaned rows and the counts", [2, 3])
]

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("the session page's views in a browser", (it) => {
  it.scoped(
    "draws a diamond plan as four nodes and four edges that follow the run live; an event shows in full",
    () =>
      Effect.gen(function* () {
        const context = yield* Browser
        const sessionId = yield* startPlan("Fetch the rows, clean them and count them, then report.", diamond, {
          maxParallel: 2,
          maxAttempts: 2
        })
        const { url } = yield* startServer
        const { page, errors } = yield* openPage(context, `${url}/sessions/${sessionId}`)
        yield* showView(page, "graph")
        yield* waitFor(page, '#graph [data-node="4"]')
        expect(yield* run(() => page.$$eval("#graph [data-node]", (nodes) => nodes.length))).toBe(4)
        const edges = yield* run(() =>
          page.$$eval("#graph [data-edge]", (paths) => paths.map((edge) => edge.getAttribute("data-edge")).sort())
        )
        expect(edges).toEqual(["1-2", "1-3", "2-4", "3-4"])
        // Left to right by depth: 1, then 2 and 3 in one column (a parallel group), then 4.
        const x = (id: number) =>
          run(() => page.$eval(`#graph [data-node="${id}"]`, (node) => Math.round(node.getBoundingClientRect().left)))
        const [x1, x2, x3, x4] = [yield* x(1), yield* x(2), yield* x(3), yield* x(4)]
        expect(x1).toBeLessThan(x2)
        expect(x2).toBe(x3)
        expect(x3).toBeLessThan(x4)
        expect(yield* run(() => page.$$eval("#graph .band.parallel", (bands) => bands.length))).toBe(1)
        expect(yield* run(() => page.textContent("#graph .band.parallel .band-label"))).toContain("2 in parallel")
        expect(yield* nodeStatuses(page)).toEqual(["Dispatched", "Planned", "Planned", "Planned"])
        yield* run(() => page.evaluate(recordNodes))

        const running = yield* Effect.fork(Runner.run(sessionId))
        yield* waitFor(page, '#graph [data-node="4"][data-status="Completed"]', 30_000)
        const result = yield* Fiber.join(running)
        expect(result.state.status).toBe("Succeeded")
        expect(yield* nodeStatuses(page)).toEqual(["Completed", "Completed", "Completed", "Completed"])
        const seen = (yield* run(() => page.evaluate("window.__nodes"))) as Record<string, ReadonlyArray<string>>
        expect(seen["1"]).toEqual(["Dispatched", "Running", "Completed"])
        expect(seen["2"]).toEqual(expect.arrayContaining(["Planned", "Running", "Completed"]))
        expect(seen["4"]?.[0]).toBe("Planned")
        expect(seen["4"]?.at(-1)).toBe("Completed")
        expect(yield* run(() => page.evaluate("'__sameDocument' in window"))).toBe(true)
        // The critical path runs through the slow, retried task 2, not the quick task 3.
        const critical = yield* run(() =>
          page.$$eval("#graph .node.critical", (nodes) => nodes.map((node) => node.getAttribute("data-node")).sort())
        )
        expect(critical).toEqual(["1", "2", "4"])
        expect(yield* run(() => page.$$eval("#graph .edge.critical", (paths) => paths.length))).toBe(2)

        // A node is reachable by keyboard and shows its task in full.
        yield* run(() => page.focus('#graph [data-node="2"]'))
        yield* run(() => page.keyboard.press("Enter"))
        yield* waitFor(page, '#graph-task [data-task-id="2"]')
        expect(yield* run(() => page.textContent('#graph-task [data-task-id="2"] .result .block-text'))).toBe(
          "Cleaned 118 rows."
        )
        yield* screenshot(page, "dashboard-graph.png")

        // Selecting an event shows its JSON, its ids, and what it changed.
        const lastSequence = result.state.version
        yield* waitFor(page, `#event-list [data-sequence="${lastSequence}"]`)
        const retry = yield* run(() =>
          page.$eval("#event-list .t-TaskRetryScheduled", (item) => Number(item.getAttribute("data-sequence")))
        )
        yield* run(() => page.click(`#event-list [data-sequence="${retry}"] button`))
        yield* waitFor(page, `#event-detail .event-detail[data-sequence="${retry}"] .diff`)
        const shown = JSON.parse((yield* run(() => page.textContent("#event-json"))) ?? "{}")
        expect(shown).toMatchObject({ sequence: retry, type: "TaskRetryScheduled", data: { taskId: 2, attempt: 1 } })
        expect(shown.metadata.eventId).toEqual(expect.any(String))
        expect(yield* run(() => page.textContent("#event-detail .event-facts"))).toContain(shown.metadata.eventId)
        const diff = yield* run(() =>
          page.$$eval("#event-detail .diff tbody tr", (rows) =>
            rows.map((row) => [...row.querySelectorAll("td")].map((cell) => cell.textContent))
          )
        )
        expect(diff).toContainEqual(["#2", "status", "Running", "Retry scheduled"])
        expect(diff).toContainEqual(["#2", "error", "—", "the cleaner crashed"])
        // The state right after it, as the API folds it.
        yield* run(() => page.click("#event-detail details:not([open]) summary"))
        const after = JSON.parse((yield* run(() => page.textContent("#state-json"))) ?? "{}")
        expect(after.version).toBe(retry)
        expect(after.tasks[1].status).toBe("RetryScheduled")
        // The graph shows that moment too.
        yield* waitFor(page, '#graph .graph-svg.past [data-node="2"][data-status="RetryScheduled"]')
        yield* screenshot(page, "dashboard-event.png")

        // The timeline of attempts: task 2 ran twice with a backoff between.
        yield* run(() => page.click("#go-live"))
        yield* showView(page, "timeline")
        yield* waitFor(page, '#gantt .gantt-row[data-task-id="2"] .seg-backoff')
        const kinds = yield* run(() =>
          page.$$eval('#gantt .gantt-row[data-task-id="2"] .seg', (segments) =>
            segments.map((segment) => `${segment.getAttribute("data-kind")}:${segment.getAttribute("data-attempt")}`)
          )
        )
        expect(kinds).toEqual(["queued:1", "running:1", "backoff:1", "queued:2", "running:2"])
        yield* screenshot(page, "dashboard-timeline.png")
        expect(errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript(diamondScript))),
    90_000
  )

  it.scoped(
    "resume, retry, fork and cancel from the page, each confirmed first, change the log as the CLI's commands do",
    () =>
      Effect.gen(function* () {
        const context = yield* Browser
        const store = yield* PlannerStore
        const { url } = yield* startServer
        const confirm = (page: Page, button: string) =>
          Effect.gen(function* () {
            yield* run(() => page.click(button))
            yield* waitFor(page, "dialog.confirm[open]")
            yield* run(() => page.click("#confirm-yes"))
            yield* waitFor(page, "#action-status:not([hidden])")
          })

        // Retry: task 2 failed for good; retrying it forks the session from before its first dispatch.
        const failing = yield* startPlan("Fetch the rows, then break.", [
          task(1, "Retrieval", "Fetch the rows"),
          task(2, "Processing", "Break for good", [1])
        ])
        expect((yield* Runner.run(failing)).state.status).toBe("Failed")
        const { page, errors } = yield* openPage(context, `${url}/sessions/${failing}`)
        yield* showView(page, "board")
        yield* waitFor(page, '#board [data-task-id="2"][data-status="Failed"] .retry-task')
        // A refusal in the dialog changes nothing.
        yield* run(() => page.click('#board [data-task-id="2"] .retry-task'))
        yield* waitFor(page, "dialog.confirm[open]")
        yield* run(() => page.keyboard.press("Escape"))
        // The dialog goes once it has closed; a refusal leaves nothing behind.
        yield* run(() => page.waitForSelector("dialog.confirm", { state: "detached", timeout: 10_000 }))
        expect(yield* run(() => page.$$("dialog.confirm"))).toHaveLength(0)
        const sessionsBefore = (yield* store.sessions).length
        yield* confirm(page, '#board [data-task-id="2"] .retry-task')
        yield* waitFor(page, "#action-status a.new-session")
        const retriedId =
          (yield* run(() => page.textContent("#action-status a.new-session")))?.replace("Open ", "") ?? ""
        expect((yield* store.sessions).length).toBe(sessionsBefore + 1)
        const retried = yield* Effect.flatMap(PlannerService, (service) => service.state(retriedId))
        expect(retried.tasks.map((t) => t.status)).toEqual(["Completed", "Dispatched"])
        const retriedFirst = (yield* store.load(retriedId, { toSequence: 1 }))[0]
        expect(retriedFirst?.metadata.extra?.forkedFrom).toMatchObject({ sessionId: failing })

        // Fork from the event the slider is on.
        yield* run(() => page.fill("#timeline-slider", "2"))
        yield* waitFor(page, '#fork-plan:has-text("Fork from event 2")')
        yield* confirm(page, "#fork-plan")
        // The retry's status and link are still on the page until the fork's answer replaces them.
        yield* waitFor(page, '#action-status:has-text("Forked at event 2") a.new-session')
        const forkedId =
          (yield* run(() => page.textContent("#action-status a.new-session")))?.replace("Open ", "") ?? ""
        const forked = yield* store.load(forkedId)
        const source = yield* store.load(failing)
        expect(forked.slice(0, 2).map((r) => r.event)).toEqual(source.slice(0, 2).map((r) => r.event))
        expect(forked[0]?.metadata.extra?.forkedFrom).toEqual({ sessionId: failing, sequence: 2 })
        // As the CLI's fork records it: a SessionForked after the copies, causation ids kept inside the new log.
        expect(forked[2]?.event).toMatchObject({ _tag: "SessionForked", fromSessionId: failing, atSequence: 2 })
        const forkedIds = new Set(forked.map((record) => record.metadata.eventId))
        for (const record of forked) {
          if (record.metadata.causationId !== undefined) expect(forkedIds.has(record.metadata.causationId)).toBe(true)
        }

        // Resume and cancel a running session (nothing serves it, so it stays where it is).
        const idle = yield* startPlan("Wait for a worker.", [task(1, "Processing", "Wait")])
        const other = yield* openPage(context, `${url}/sessions/${idle}`)
        yield* waitFor(other.page, "#resume-plan:not([hidden])")
        yield* confirm(other.page, "#resume-plan")
        expect(yield* run(() => other.page.textContent("#action-status"))).toContain("Nothing was waiting")
        yield* confirm(other.page, "#cancel-plan")
        yield* waitFor(other.page, '.status-slot .pill[data-status="Cancelled"]')
        const last = (yield* store.load(idle)).at(-1)
        expect(last?.event).toMatchObject({ _tag: "PlanningCompleted", outcome: "Cancelled" })
        expect(yield* run(() => other.page.isHidden("#resume-plan"))).toBe(true)
        expect([...errors, ...other.errors]).toEqual([])
      }).pipe(
        Effect.provide(
          plannerWithScript({
            rules: [{ match: "Break", outcomes: [{ fail: "broken", retryable: false }] }],
            default: { complete: "done" }
          })
        )
      ),
    90_000
  )
})
