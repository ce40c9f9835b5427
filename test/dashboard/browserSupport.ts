/**
 * The dashboard's browser tests' shared pieces: one Chromium (Debian's, through playwright-core) per test file with a
 * fresh profile, pages whose script errors are collected, and waiting for a selector.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Effect, Layer } from "effect"
import { type BrowserContext, chromium, type Page } from "playwright-core"

export const chromiumPath = "/usr/bin/chromium"
export const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

/** One browser for the file (it takes seconds to start here): a fresh profile, removed at the end. */
export class Browser extends Context.Tag("test/dashboard/Browser")<Browser, BrowserContext>() {}

const launchBrowser = Effect.acquireRelease(
  Effect.gen(function* () {
    if (!fs.existsSync(chromiumPath)) {
      return yield* Effect.fail(
        new Error(
          `Chromium is not installed at ${chromiumPath}: the dashboard's browser tests need Debian's chromium package ` +
            "(apt-get update && apt-get install -y chromium). .ci/run installs it when missing."
        )
      )
    }
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "planner-chromium-"))
    const context = yield* Effect.tryPromise(() =>
      chromium.launchPersistentContext(profile, {
        executablePath: chromiumPath,
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync"
        ],
        viewport: { width: 1440, height: 900 },
        colorScheme: "light",
        locale: "en-GB",
        timezoneId: "UTC"
      })
    )
    return { context, profile }
  }),
  ({ context, profile }) =>
    Effect.promise(async () => {
      await context.close()
      fs.rmSync(profile, { recursive: true, force: true })
    })
).pipe(Effect.map(({ context }) => context))

export const BrowserLive = Layer.scoped(Browser, launchBrowser)

/** A page whose script errors (including CSP violations) are collected, to assert there were none. */
export const openPage = (context: BrowserContext, url: string) =>
  Effect.promise(async () => {
    const page = await context.newPage()
    const errors: Array<string> = []
    page.on("pageerror", (error) => errors.push(error.message))
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text())
    })
    await page.goto(url)
    return { page, errors }
  }).pipe(Effect.tap(({ page }) => Effect.addFinalizer(() => Effect.promise(() => page.close()))))

export const run = <A>(body: () => Promise<A>) => Effect.promise(body)

export const waitFor = (page: Page, selector: string, timeout = 20_000) =>
  run(() => page.waitForSelector(selector, { timeout, state: "attached" }))

/** Shows one of the session page's views (graph, board, timeline). */
export const showView = (page: Page, view: "graph" | "board" | "timeline") =>
  run(() => page.click(`#view-${view}`)).pipe(Effect.zipRight(waitFor(page, `#view-${view}[aria-selected="true"]`)))

/** A screenshot to test-output/, and to docs/ when that one is missing or screenshots are being updated. */
export const screenshot = (page: Page, name: string, options: { fullPage?: boolean } = {}) =>
  run(async () => {
    fs.mkdirSync(path.join(repoRoot, "test-output"), { recursive: true })
    await page.screenshot({ path: path.join(repoRoot, "test-output", name), fullPage: options.fullPage ?? true })
    const docs = path.join(repoRoot, "docs", name)
    if (!fs.existsSync(docs) || process.env.PLANNER_UPDATE_SCREENSHOTS === "1")
      fs.copyFileSync(path.join(repoRoot, "test-output", name), docs)
  })
