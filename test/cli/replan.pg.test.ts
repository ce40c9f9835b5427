/** `planner run --on-failure replan` through the CLI on PostgreSQL: the core case of `replanSuite`. */
import { beforeAll, describe, inject, it } from "@effect/vitest"
import { createDatabase, uniqueDatabaseName } from "../support/postgres.js"
import { ensureBuilt } from "./cli.js"
import { replanAfterFailure } from "./replanSuite.js"

beforeAll(() => ensureBuilt(), 180_000)

const postgres = async () => ["--db", await createDatabase(inject("postgresUrl"), uniqueDatabaseName("replan"))]

describe("planner run --on-failure replan on PostgreSQL", { timeout: 300_000 }, () => {
  it("asks the LLM for a revised plan after a failure, runs the revised tasks, and the session succeeds", () =>
    replanAfterFailure(postgres))
})
