/** A two-level plan through the CLI on PostgreSQL (see `subPlanSuite`). */
import { beforeAll, describe, inject, it } from "@effect/vitest"
import { createDatabase, uniqueDatabaseName } from "../support/postgres.js"
import { ensureBuilt } from "./cli.js"
import { expandRefusals, twoLevelPlan } from "./subPlanSuite.js"

beforeAll(() => ensureBuilt(), 180_000)

const postgres = async () => ["--db", await createDatabase(inject("postgresUrl"), uniqueDatabaseName("subplans"))]

describe("sub-plans on PostgreSQL", { timeout: 300_000 }, () => {
  it("a question inside a sub-plan is answered with the root's id, and the tree runs to its end", () =>
    twoLevelPlan(postgres))
  it("expand refuses a started task and records a planned one", () => expandRefusals(postgres))
})
