/**
 * Vitest global setup: one PostgreSQL server for the whole `vitest run`, shared by every test file through
 * `inject("postgresUrl")`. Test files carve their own databases out of it (`freshDatabaseUrl`, `freshPgClientLayer`
 * in `./postgres.ts`) because files run in parallel forks.
 *
 * Only a type is imported from vitest: its runtime API must not be loaded in the global setup's context.
 */
import type { TestProject } from "vitest/node"
import { startPostgres } from "./postgres.js"

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of a database on the run's server; its user may create databases. */
    postgresUrl: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres({ log: process.env.PLANNER_TEST_POSTGRES_LOG === "1" })
  project.provide("postgresUrl", server.url)
  return server.stop
}
