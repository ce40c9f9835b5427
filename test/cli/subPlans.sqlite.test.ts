/** A two-level plan through the CLI on a SQLite file (see `subPlanSuite`). */
import { beforeAll, describe, it } from "@effect/vitest"
import { ensureBuilt } from "./cli.js"
import { expandRefusals, twoLevelPlan } from "./subPlanSuite.js"

beforeAll(() => ensureBuilt(), 180_000)

const sqlite = async () => ["--db", "planner.db"]

describe("sub-plans on a SQLite file", { timeout: 300_000 }, () => {
  it("a question inside a sub-plan is answered with the root's id, and the tree runs to its end", () =>
    twoLevelPlan(sqlite))
  it("expand refuses a started task and records a planned one", () => expandRefusals(sqlite))
})
