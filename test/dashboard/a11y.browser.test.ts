/**
 * Keyboard and accessibility in a real browser: every control is reachable with Tab and shows where the focus is; the
 * controls have names; the text meets WCAG AA contrast (4.5:1, or 3:1 for large text) against what is behind it; and
 * the pages work at 1280, 1920 and a narrow 390 pixels wide, with no short label (LINK, a status) broken mid-word and
 * nothing wider than the window.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { Page } from "playwright-core"
import * as Runner from "../../src/app/Runner.js"
import { Browser, BrowserLive, openPage, run, screenshot, showView, waitFor } from "./browserSupport.js"
import { plannerWithScript, startPlan, startServer, task } from "./fixtures.js"

/**
 * Runs in the page: the visible text elements whose contrast is under AA, with the ratio. The background is the first
 * opaque one up the tree (translucent ones are blended over it). In-page code is a string: the tests are type-checked
 * without the DOM library.
 */
const contrastProblems = `(() => {
  const canvas = document.createElement("canvas").getContext("2d")
  const parse = (text) => {
    canvas.clearRect(0, 0, 1, 1)
    canvas.fillStyle = "#000"
    canvas.fillStyle = text
    canvas.fillRect(0, 0, 1, 1)
    const [r, g, b, a] = canvas.getImageData(0, 0, 1, 1).data
    return { r, g, b, a: a / 255 }
  }
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1
  })
  const background = (element) => {
    const layers = []
    for (let node = element; node !== null; node = node.parentElement) {
      const color = parse(getComputedStyle(node).backgroundColor)
      if (color.a > 0) layers.push(color)
      if (color.a >= 1) break
    }
    let result = { r: 255, g: 255, b: 255, a: 1 }
    for (const layer of layers.reverse()) result = blend(layer, result)
    return result
  }
  const luminance = ({ r, g, b }) => {
    const channel = (value) => {
      const v = value / 255
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4
    }
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
  }
  const problems = []
  for (const element of document.querySelectorAll("main *, header *")) {
    const own = [...element.childNodes].some((node) => node.nodeType === 3 && node.textContent.trim() !== "")
    if (!own || element.closest("svg, [hidden], .future, button:disabled, .past")) continue
    const rect = element.getBoundingClientRect()
    if (rect.width === 0 || rect.height === 0) continue
    const style = getComputedStyle(element)
    if (style.visibility === "hidden" || Number(style.opacity) < 1) continue
    const back = background(element)
    const fore = blend(parse(style.color), back)
    const [light, dark] = [luminance(fore), luminance(back)].sort((a, b) => b - a)
    const ratio = (light + 0.05) / (dark + 0.05)
    const size = parseFloat(style.fontSize)
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700)
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(element.tagName.toLowerCase() + "." + element.className + " '" + element.textContent.trim().slice(0, 30) + "' " + ratio.toFixed(2))
    }
  }
  return problems
})()`

/** Runs in the page: short labels that wrap onto a second line, and whether the page is wider than the window. */
const layoutProblems = `(() => {
  const wrapped = []
  for (const element of document.querySelectorAll(".attachment-kind, .pill, .kind, .task-id, [role=tab], .actions button, .event-type, .live-text")) {
    const rect = element.getBoundingClientRect()
    if (rect.width === 0) continue
    const lineHeight = parseFloat(getComputedStyle(element).lineHeight) || parseFloat(getComputedStyle(element).fontSize) * 1.5
    const lines = element.getClientRects().length
    if (lines > 1 || element.scrollWidth > element.clientWidth + 1 || rect.height > lineHeight * 1.9 + 12) {
      wrapped.push(element.className + " '" + element.textContent.trim() + "'")
    }
  }
  return { wrapped, overflow: document.documentElement.scrollWidth - window.innerWidth }
})()`

/** Presses Tab until `selector` has the focus (at most `limit` times); the focused element's outline. */
const tabTo = (page: Page, selector: string, limit = 80) =>
  run(async () => {
    for (let index = 0; index < limit; index++) {
      await page.keyboard.press("Tab")
      const found = await page.evaluate(`document.activeElement?.matches(${JSON.stringify(selector)}) ?? false`)
      if (found === true) {
        return (await page.evaluate(
          "(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth })()"
        )) as string
      }
    }
    throw new Error(`Tab never reached ${selector}`)
  })

const request =
  "Read the spec at https://example.com/spec.pdf, then implement the login form. Then deploy it to production."

layer(BrowserLive, { excludeTestServices: true, timeout: 60_000 })("the dashboard's accessibility", (it) => {
  it.scoped(
    "every control is reachable by keyboard with a visible focus; AA contrast; 1280, 1920 and 390 wide",
    () =>
      Effect.gen(function* () {
        const context = yield* Browser
        const sessionId = yield* startPlan(request, [
          {
            id: 1,
            kind: "Retrieval",
            description: "Read the spec at https://example.com/spec.pdf",
            dependsOn: [],
            attachments: [{ kind: "Link", value: "https://example.com/spec.pdf" }]
          },
          task(2, "CodeImplementation", "Implement the login form", [1]),
          task(3, "Refactor", "Tidy the imports"),
          task(4, "ToolCall", "Deploy it to production", [2, 3])
        ])
        const done = yield* Runner.run(sessionId)
        expect(done.state.status).toBe("Failed")
        const { url } = yield* startServer
        const { page, errors } = yield* openPage(context, `${url}/sessions/${sessionId}`)
        yield* showView(page, "graph")
        yield* waitFor(page, '#graph [data-node="4"]')

        // Keyboard: from the top of the page to the tabs, a graph node, the slider, the actions and an event.
        yield* run(() => page.evaluate("document.activeElement?.blur()"))
        yield* run(() => page.click("h1.session-title"))
        for (const selector of [
          "#fork-plan",
          "#timeline-slider",
          "#go-live, #view-graph",
          '#graph [data-node="1"]',
          '#graph [data-node="2"]'
        ]) {
          const outline = yield* tabTo(page, selector)
          expect(outline, selector).not.toMatch(/^none/)
        }
        yield* run(() => page.keyboard.press("Enter"))
        yield* waitFor(page, '#graph-task [data-task-id="2"]')
        yield* tabTo(page, "#event-list button")
        yield* run(() => page.keyboard.press("Enter"))
        yield* waitFor(page, "#event-detail .event-detail")
        // The view tabs move with the arrow keys, as tabs do.
        yield* run(() => page.focus("#view-graph"))
        yield* run(() => page.keyboard.press("ArrowRight"))
        yield* waitFor(page, '#view-board[aria-selected="true"]')
        expect(yield* run(() => page.evaluate("document.activeElement.id"))).toBe("view-board")

        // Every control has a name.
        const unnamed = yield* run(() =>
          page.evaluate(`[...document.querySelectorAll("button, input, select, textarea, [role=button], [role=tab]")]
            .filter((control) => {
              const label =
                control.getAttribute("aria-label") ??
                control.getAttribute("aria-labelledby") ??
                (control.id === "" ? null : document.querySelector("label[for='" + control.id + "']")?.textContent) ??
                control.closest("label")?.textContent ??
                control.textContent
              return (label ?? "").trim() === ""
            })
            .map((control) => control.outerHTML.slice(0, 80))`)
        )
        expect(unnamed).toEqual([])

        for (const width of [1280, 1920, 390]) {
          yield* run(() => page.setViewportSize({ width, height: 900 }))
          for (const view of ["graph", "board", "timeline"] as const) {
            yield* showView(page, view)
            const layout = (yield* run(() => page.evaluate(layoutProblems))) as {
              wrapped: Array<string>
              overflow: number
            }
            expect(layout.wrapped, `${view} at ${width}`).toEqual([])
            expect(layout.overflow, `${view} at ${width}`).toBeLessThanOrEqual(0)
            expect(yield* run(() => page.evaluate(contrastProblems)), `${view} at ${width}`).toEqual([])
          }
        }
        yield* showView(page, "board")
        yield* screenshot(page, "dashboard-narrow.png")

        const list = yield* openPage(context, `${url}/`)
        yield* waitFor(list.page, `tr[data-session-id="${sessionId}"]`)
        for (const width of [1280, 1920, 390]) {
          yield* run(() => list.page.setViewportSize({ width, height: 900 }))
          const layout = (yield* run(() => list.page.evaluate(layoutProblems))) as { wrapped: Array<string> }
          expect(layout.wrapped, `list at ${width}`).toEqual([])
          expect(yield* run(() => list.page.evaluate(contrastProblems)), `list at ${width}`).toEqual([])
        }
        yield* tabTo(list.page, "#filter-status")
        yield* tabTo(list.page, "#search-requests")
        yield* tabTo(list.page, "#sort-order")
        yield* tabTo(list.page, ".request-link")
        expect([...errors, ...list.errors]).toEqual([])
      }).pipe(
        Effect.provide(
          plannerWithScript({
            rules: [{ match: "Deploy", outcomes: [{ fail: "the host is unreachable", retryable: false }] }],
            default: { complete: "done: {description}" }
          })
        )
      ),
    120_000
  )
})
