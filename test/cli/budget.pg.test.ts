/** A budget pause and its approval through the CLI on PostgreSQL (see `budgetSuite`). */
import { beforeAll, describe, inject, it } from "@effect/vitest"
import { createDatabase, uniqueDatabaseName } from "../support/postgres.js"
import { budgetPause, budgetTooSmallToPlan } from "./budgetSuite.js"
import { ensureBuilt } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

const postgres = async () => ["--db", await createDatabase(inject("postgresUrl"), uniqueDatabaseName("budget"))]

describe("a budget on PostgreSQL", { timeout: 300_000 }, () => {
  it("pauses a step that would cross it and goes on once the budget is raised", () => budgetPause(postgres))
  it("plans with the parser when the budget cannot hold the plan call", () => budgetTooSmallToPlan(postgres))
})
