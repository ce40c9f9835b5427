/** A budget pause and its approval through the CLI on SQLite (see `budgetSuite`). */
import { beforeAll, describe, it } from "@effect/vitest"
import { budgetPause, budgetTooSmallToPlan } from "./budgetSuite.js"
import { ensureBuilt } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

const sqlite = () => Promise.resolve([])

describe("a budget on SQLite", { timeout: 300_000 }, () => {
  it("pauses a step that would cross it and goes on once the budget is raised", () => budgetPause(sqlite))
  it("plans with the parser when the budget cannot hold the plan call", () => budgetTooSmallToPlan(sqlite))
})
