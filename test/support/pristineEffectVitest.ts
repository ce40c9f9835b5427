/**
 * Vitest setup file, run before each test file: gives `it` from `@effect/vitest` back its own methods.
 *
 * The suite runs its files without isolation (`isolate: false` in `vitest.config.ts`): each fork imports the modules
 * once and runs file after file, which more than halves the suite's time on two cores. `@effect/vitest` 0.30's
 * `layer(...)` assigns its layered `effect`, `scoped`, `prop`, `flakyTest` and `layer` onto the shared `it` (vitest's
 * own `it` object) instead of a copy, and never takes them back. In one process that outlives the file, every later
 * file's `it.effect` then ran inside the first file's layer: with `excludeTestServices` (the browser tests) without
 * the TestClock, so a test driving `TestClock.adjust` failed with "testClock.adjust is not a function". (Effect's next
 * major version fixes it with proxies instead of assignment: Effect-TS/effect-smol#2177.)
 *
 * The first run of this file, before any test file has loaded, keeps the pristine methods on `globalThis` (which the
 * forks' files share); each later run puts them back.
 */
import { it } from "@effect/vitest"

const methodNames = ["effect", "scoped", "live", "scopedLive", "prop", "flakyTest", "layer"] as const
type Methods = Pick<typeof it, (typeof methodNames)[number]>

const key = Symbol.for("event-sourced-planner/test/pristine-effect-vitest")
const store = globalThis as { [key]?: Methods }
if (store[key] === undefined) store[key] = Object.fromEntries(methodNames.map((name) => [name, it[name]])) as Methods
Object.assign(it, store[key])
