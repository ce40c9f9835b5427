/** A SIGKILL during a sub-plan and `resume` of the root, on PostgreSQL (see `subPlanKillSuite`). */
import { beforeAll, describe, inject, it } from "@effect/vitest"
import { createDatabase, uniqueDatabaseName } from "../support/postgres.js"
import { ensureBuilt } from "./cli.js"
import { killDuringChild } from "./subPlanKillSuite.js"

beforeAll(() => ensureBuilt(), 180_000)

const postgres = async () => ["--db", await createDatabase(inject("postgresUrl"), uniqueDatabaseName("subkill"))]

describe("a killed run of a tree of sub-plans on PostgreSQL", { timeout: 300_000 }, () => {
  it("SIGKILL while a child's middle task runs: resume of the root finishes the tree, nothing lost or run twice", () =>
    killDuringChild(postgres, 2))
})
