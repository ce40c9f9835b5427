/**
 * The budget (#16) in a real browser: a session whose step was held back by its budget shows its spend against the
 * limit among its facts and the budget question on the task's card; answered "yes 20000" in the page, the budget is
 * raised by an event, the step runs and the plan finishes, and the page shows the new limit and the raise in its
 * timeline. Real server, real SQLite store, the step run by the script executor.
 */
import { expect, layer } from "@effect/vitest"
import { Clock, Effect } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { ClaimTask, HandleExecutorEvent, NeedsClarification, RecordUsage } from "../../src/domain/Commands.js"
import { Browser, BrowserLive, openPage, run, screenshot, showView, waitFor } from "./browserSupport.js"
import { plannerWithScript, startPlan, startServer, task } from "./fixtures.js"

const script = { rules: [], default: { complete: "done: {description}" } }

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("the budget in a browser", (it) => {
  it.scoped(
    "shows the spend and the budget question, and a yes in the page raises the budget and lets the step run",
    () =>
      Effect.gen(function* () {
        const service = yield* PlannerService.PlannerService
        const sessionId = yield* startPlan(
          "Summarise the release, then draft the announcement.",
          [task(1, "Processing", "Summarise the release"), task(2, "Processing", "Draft the announcement", [1])],
          { budgetTokens: 5_000 }
        )
        // What a worker does when the step's model call would cross the budget: records what was spent so far (here,
        // the plan call) and asks the budget question instead of making the call.
        const at = yield* Clock.currentTimeMillis
        yield* service.execute(
          sessionId,
          new RecordUsage({
            usage: [{ purpose: "planning", model: "gpt-test", inputTokens: 4_000, outputTokens: 500, counted: "api" }],
            at
          })
        )
        yield* service.execute(sessionId, new ClaimTask({ taskId: 1, attempt: 1, workerId: "browser-test", at }))
        yield* service.execute(
          sessionId,
          new HandleExecutorEvent({
            event: new NeedsClarification({
              taskId: 1,
              attempt: 1,
              question: "over budget",
              budget: { tokens: 1_200 }
            }),
            at
          })
        )

        const context = yield* Browser
        const { url } = yield* startServer
        const { page, errors } = yield* openPage(context, `${url}/sessions/${encodeURIComponent(sessionId)}`)
        yield* waitFor(page, '[data-testid="budget"]')
        expect(yield* run(() => page.textContent('[data-testid="budget"]'))).toBe("spent 4,500 of 5,000 tokens")
        expect(yield* run(() => page.getAttribute('[data-testid="budget"] [role="meter"]', "aria-valuenow"))).toBe(
          "4500"
        )
        yield* showView(page, "board")
        yield* waitFor(page, '#board [data-task-id="1"][data-status="NeedsClarification"]')
        expect(yield* run(() => page.textContent('#board [data-task-id="1"] .question'))).toBe(
          "This plan has used 4,500 of 5,000 tokens; the next step needs about 1,200. Allow 2,000 more? (answer yes, yes AMOUNT, or no)"
        )
        yield* screenshot(page, "dashboard-budget.png")

        // Answered in the page like any question; then the session runs on in this process.
        yield* run(() => page.fill('#board [data-task-id="1"] textarea[name="answer"]', "yes 20000"))
        yield* run(() => page.click('#board [data-task-id="1"] button[type="submit"]'))
        yield* waitFor(page, '#board [data-task-id="1"][data-status="Dispatched"]')
        const result = yield* Runner.run(sessionId)
        expect(result.state.status).toBe("Succeeded")
        expect(result.state.budget?.tokens).toBe(25_000)
        yield* waitFor(page, '.status-slot .pill[data-status="Succeeded"]', 30_000)
        expect(yield* run(() => page.textContent('[data-testid="budget"]'))).toBe("spent 4,500 of 25,000 tokens")
        yield* showView(page, "timeline")
        const lines = yield* run(() =>
          page.$$eval("#event-list li", (items) => items.map((item) => item.textContent ?? ""))
        )
        expect(lines.some((line) => line.includes("Budget raised by 20,000 tokens to 25,000 tokens for #1"))).toBe(true)
        expect(lines.some((line) => line.includes("4,500 tokens spent on planning"))).toBe(true)
        expect(errors).toEqual([])
      }).pipe(Effect.provide(plannerWithScript(script))),
    120_000
  )
})
