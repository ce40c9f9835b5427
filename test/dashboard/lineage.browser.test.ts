/**
 * #15 in a real browser (Debian's Chromium through playwright-core) against the real server, store and script
 * executor: the edit form on planned tasks (the edits reach the log through the writer, a refused edit changes
 * nothing and says why), and a fork's lineage with the diff view against its origin.
 */
import { expect, layer } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { PlannerService } from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { ForkSession } from "../../src/domain/Commands.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import { Browser, BrowserLive, openPage, run, screenshot, showView, waitFor } from "./browserSupport.js"
import { plannerWithScript, startPlan, startServer, task } from "./fixtures.js"

const script = { rules: [], default: { complete: "done: {description}" } }

const plan = [
  task(1, "Retrieval", "Fetch the rows"),
  task(2, "Processing", "Clean the rows", [1]),
  task(3, "Analysis", "Count the distinct values", [2])
]

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("plan edits and lineage in a browser", (it) => {
  it.scoped(
    "the edit form changes, adds and refuses edits on a running plan, through the writer",
    () =>
      Effect.gen(function* () {
        const context = yield* Browser
        const service = yield* PlannerService
        // Initialized but not run: task 1 is dispatched, 2 and 3 wait: the plan is live and editable.
        const sessionId = yield* startPlan("Fetch, clean and count the rows.", plan)
        const { url } = yield* startServer
        const { page, errors } = yield* openPage(context, `${url}/sessions/${sessionId}`)
        yield* showView(page, "graph")
        yield* waitFor(page, "#edit-plan:not([hidden])")
        yield* run(() => page.click("#edit-plan"))
        yield* waitFor(page, "#edit-form")
        // Only the tasks that have not started are offered.
        const offered = yield* run(() =>
          page.$$eval("#edit-form .edit-row[data-task]", (rows) => rows.map((row) => row.getAttribute("data-task")))
        )
        expect(offered).toEqual(["2", "3"])

        // A refused edit (a cycle: 2 after 3, which is after 2) is shown and records nothing.
        const before = (yield* service.state(sessionId)).version
        yield* run(() => page.fill('[data-edit-after="2"]', "3"))
        yield* run(() => page.click("#edit-save"))
        yield* waitFor(page, "#edit-error:not([hidden])")
        expect(yield* run(() => page.textContent("#edit-error"))).toMatch(/2 -> 3 -> 2 wait for each other/)
        expect((yield* service.state(sessionId)).version).toBe(before)

        // Change task 3's text and kind, add a task after 2.
        yield* run(() => page.fill('[data-edit-after="2"]', "1"))
        yield* run(() => page.fill('[data-edit-text="3"]', "Count the distinct values per region"))
        yield* run(() => page.selectOption("#edit-kind-3", "Processing"))
        yield* run(() => page.fill("#edit-add-text", "Write the summary"))
        yield* run(() => page.fill("#edit-add-after", "2"))
        yield* screenshot(page, "dashboard-edit.png")
        yield* run(() => page.click("#edit-save"))
        yield* waitFor(page, "#action-status:not([hidden])")
        expect(yield* run(() => page.textContent("#action-status"))).toContain("Edited the plan")
        yield* waitFor(page, '#graph [data-node="4"]')
        // The event list says what the edit did and who made it.
        yield* waitFor(page, "#event-list li.t-PlanEdited")
        expect(yield* run(() => page.textContent("#event-list li.t-PlanEdited .event-type"))).toBe("edited")
        expect(yield* run(() => page.textContent("#event-list li.t-PlanEdited .event-text"))).toMatch(
          /^Plan edited by the user: .*(#3|#4)/
        )

        const edited = yield* service.state(sessionId)
        expect(edited.tasks.map((t) => [t.id, t.description, t.kind, [...t.dependsOn]])).toEqual([
          [1, "Fetch the rows", "Retrieval", []],
          [2, "Clean the rows", "Processing", [1]],
          [3, "Count the distinct values per region", "Processing", [2]],
          [4, "Write the summary", "Processing", [2]]
        ])
        const store = yield* PlannerStore
        const records = yield* store.load(sessionId)
        expect(records.filter((record) => record.event._tag === "PlanEdited")).toHaveLength(1)

        // The edited plan runs as edited.
        const result = yield* Runner.run(sessionId)
        expect(result.state.status).toBe("Succeeded")
        expect(result.state.tasks[3]?.result).toBe("done: Write the summary")
        yield* waitFor(page, "#edit-plan[hidden]")
        // The refused edit's 409 is the only thing the browser logged.
        expect(errors).toEqual(["Failed to load resource: the server responded with a status of 409 (Conflict)"])
      }).pipe(Effect.provide(plannerWithScript(script))),
    90_000
  )

  it.scoped(
    "a fork shows its origin, the origin lists its forks, and the diff view shows what differs",
    () =>
      Effect.gen(function* () {
        const context = yield* Browser
        const sessionId = yield* startPlan("Fetch, clean and count the rows.", plan)
        const done = yield* Runner.run(sessionId)
        expect(done.state.status).toBe("Succeeded")
        // An incremental fork at the end: task 3 with another description; 1 and 2 are reused.
        const store = yield* PlannerStore
        const service = yield* PlannerService
        const sourceEvents = (yield* store.load(sessionId)).map((record) => record.event)
        const forked = { sessionId: `${sessionId}-fork` }
        yield* service.execute(
          forked.sessionId,
          new ForkSession({
            fromSessionId: sessionId,
            atSequence: done.state.version,
            sourceEvents,
            edits: [{ _tag: "SetTask", taskId: 3, description: "Count the rows per region" }],
            at: yield* Clock.currentTimeMillis
          })
        )
        const rerun = yield* Runner.run(forked.sessionId)
        expect(rerun.state.status).toBe("Succeeded")
        const { url } = yield* startServer

        const { page, errors } = yield* openPage(context, `${url}/sessions/${forked.sessionId}`)
        yield* waitFor(page, "#lineage:not([hidden]) #lineage-origin")
        expect(yield* run(() => page.textContent("#lineage-origin"))).toContain(`Forked from ${sessionId}`)
        // The fork's first event names the tasks it took over without running them.
        yield* waitFor(page, "#event-list li.t-SessionForked")
        expect(yield* run(() => page.textContent("#event-list li.t-SessionForked .event-text"))).toBe(
          `Forked from ${sessionId} at event ${done.state.version}, reusing #1, #2`
        )
        yield* run(() => page.click(`#lineage-origin [data-compare="${forked.sessionId}"]`))
        yield* waitFor(page, "#diff-view")
        const rows = yield* run(() =>
          page.$$eval("#diff-view tbody tr", (trs) =>
            trs.map((tr) => [tr.getAttribute("data-task"), tr.getAttribute("data-field")])
          )
        )
        expect(rows).toEqual([
          ["3", "description"],
          ["3", "result"]
        ])
        const cells = yield* run(() =>
          page.$$eval('#diff-view tr[data-field="result"] td', (tds) => tds.map((td) => td.textContent))
        )
        expect(cells).toEqual(["result", "done: Count the distinct values", "done: Count the rows per region"])
        expect(yield* run(() => page.textContent("#diff-view"))).toContain("2 other tasks are the same.")
        expect(yield* run(() => page.textContent("#diff-reused"))).toContain("2 tasks of")
        expect(yield* run(() => page.textContent("#diff-divergence"))).toMatch(/The logs part at event \d+/)
        yield* run(() => page.locator("#lineage").scrollIntoViewIfNeeded())
        yield* screenshot(page, "dashboard-diff.png")

        // The origin lists the fork, with the event it was forked at.
        yield* run(() => page.goto(`${url}/sessions/${sessionId}`))
        yield* waitFor(page, `#lineage-forks [data-fork="${forked.sessionId}"]`)
        expect(yield* run(() => page.textContent(`#lineage-forks [data-fork="${forked.sessionId}"]`))).toContain(
          `forked at event ${done.state.version}`
        )
        yield* showView(page, "graph")
        expect(errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript(script))),
    90_000
  )
})
