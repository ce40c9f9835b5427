/** A SIGKILL during a sub-plan and `resume` of the root, on a SQLite file (see `subPlanKillSuite`). */
import { beforeAll, describe, it } from "@effect/vitest"
import { ensureBuilt } from "./cli.js"
import { killDuringChild } from "./subPlanKillSuite.js"

beforeAll(() => ensureBuilt(), 180_000)

const sqlite = async () => ["--db", "planner.db"]

describe("a killed run of a tree of sub-plans on a SQLite file", { timeout: 300_000 }, () => {
  it("SIGKILL while a child's middle task runs: resume of the root finishes the tree, nothing lost or run twice", () =>
    killDuringChild(sqlite, 2))
  it("SIGKILL while a child's first task runs (nothing of the child done yet): the same", () =>
    killDuringChild(sqlite, 1))
})
