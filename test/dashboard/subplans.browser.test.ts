/**
 * The tree of sub-plans (#16) in a real browser: a root session whose task 2 is expanded shows, under task 2, its child
 * session (not started yet, then its three tasks as they complete, while the tree runs in this process); the child's
 * link opens the child's page, which links up to its parent task's session. Real server, real SQLite store, the steps
 * run by the script executor.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as SubPlanRun from "../../src/app/SubPlanRun.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import { Browser, BrowserLive, openPage, run, screenshot, waitFor } from "./browserSupport.js"
import { plannerWithScript, startServer } from "./fixtures.js"
import { script, startTree } from "./subplanFixtures.js"

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("the tree of sub-plans in a browser", (it) => {
  it.scoped(
    "nests a child's tasks under its parent task, with links from the parent to the child and back",
    () =>
      Effect.gen(function* () {
        const root = yield* startTree
        const child = childSessionId(root, 2)
        const context = yield* Browser
        const { url } = yield* startServer
        const { page, errors } = yield* openPage(context, `${url}/sessions/${encodeURIComponent(root)}`)

        // Before task 2 runs: its child is named, not started yet.
        const under2 = `#subplan-tree > li[data-task="2"] > .subplan-child[data-child="${child}"]`
        yield* waitFor(page, under2)
        expect(yield* run(() => page.textContent(`${under2} .pill`))).toBe("not started yet")

        // The tree runs in this process; the page follows it (the root's stream, and its own polling for the child).
        const done = yield* SubPlanRun.runTree(root)
        expect(done.state.status).toBe("Succeeded")
        yield* waitFor(page, `${under2} > .subplan-tasks > li[data-task="3"][data-status="Completed"]`, 30_000)
        const childTasks = yield* run(() =>
          page.$$eval(`${under2} > .subplan-tasks > li`, (items) =>
            items.map((item) => [item.getAttribute("data-task"), item.querySelector(".subplan-task")?.textContent])
          )
        )
        expect(childTasks).toEqual([
          ["1", "Build the release"],
          ["2", "test it"],
          ["3", "publish it"]
        ])
        expect(yield* run(() => page.getAttribute(`${under2} > .pill`, "data-status"))).toBe("Succeeded")
        // Only the expanded task is in the tree: tasks 1 and 3 of the root are on the board.
        expect(yield* run(() => page.locator("#subplan-tree > li").count())).toBe(1)
        yield* screenshot(page, "dashboard-subplans.png")

        // Down to the child's page, and back up to the parent's.
        yield* run(() => page.click(`${under2} > a.subplan-link`))
        yield* waitFor(page, `#subplan-parent a[data-parent="${root}"]`)
        expect(page.url()).toBe(`${url}/sessions/${encodeURIComponent(child)}`)
        expect(yield* run(() => page.textContent("#subplan-parent"))).toBe(
          `Sub-plan of task #2 (Build the release. Then test it. Then publish it.) of ${root}.`
        )
        expect(yield* run(() => page.locator("#subplan-tree").count())).toBe(0)
        yield* run(() => page.click(`#subplan-parent a[data-parent="${root}"]`))
        yield* waitFor(page, under2)
        expect(page.url()).toBe(`${url}/sessions/${encodeURIComponent(root)}`)
        expect(errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript(script))),
    120_000
  )
})
