/**
 * The commands that look at the task queue beside the log, on a SQLite file. `planner doctor`: a queue that matches
 * its log is reported clean (exit 0); a job missing and a job left over are named (exit 1); `--repair` rebuilds the
 * session's jobs from its log, after which the check is clean. `planner show`: a task whose job a worker holds shows
 * running on that worker, though the log records its start only with its outcome.
 */
import * as path from "node:path"
import { Effect } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { Initialize } from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { independentTasks } from "../app/fixtures/plans.js"
import { cli, ensureBuilt, tempFolder } from "./cli.js"
import { withService } from "./store.js"

const tasks = independentTasks(3)

beforeAll(() => ensureBuilt(), 180_000)

describe("planner doctor", { timeout: 300_000 }, () => {
  it("names the jobs that differ from the log, exits 1, and --repair rebuilds them from it", async () => {
    const cwd = tempFolder()
    const db = path.join(cwd, "doctor.db")
    await withService(db, (service) =>
      service.execute(
        "s-doctor",
        new Initialize({ request: "three tasks", tasks, config: { ...defaultConfig, maxParallel: 3 }, at: 1 })
      )
    )
    const clean = await cli(["doctor", "--db", db], { cwd })
    expect(clean).toMatchObject({ code: 0 })
    expect(clean.stdout).toContain("The task queue matches the event log")

    // A job of the log lost from the queue, and one the log never dispatched.
    await withService(db, (_, queue) =>
      Effect.zipRight(
        queue.remove("s-doctor", [2]),
        queue.enqueue([
          { sessionId: "s-doctor", taskId: 3, attempt: 7, kind: "Processing", runAt: 0, payload: { description: "?" } }
        ])
      )
    )
    const found = await cli(["doctor", "--db", db], { cwd })
    expect(found.code).toBe(1)
    expect(found.stdout).toContain("session s-doctor:")
    expect(found.stdout).toContain("missing from the queue: task 2 attempt 1 (Processing)")
    expect(found.stdout).toContain("in the queue, not in the log: task 3 attempt 7 (Processing)")
    expect(found.stdout).toContain("planner doctor --repair")

    const asJson = await cli(["doctor", "--db", db, "--json"], { cwd })
    expect(asJson.code).toBe(1)
    const report = JSON.parse(asJson.stdout) as {
      ok: boolean
      drifted: ReadonlyArray<{ sessionId: string; missing: ReadonlyArray<{ taskId: number }> }>
    }
    expect(report.ok).toBe(false)
    expect(report.drifted.map((session) => [session.sessionId, session.missing.map((job) => job.taskId)])).toEqual([
      ["s-doctor", [2]]
    ])

    const repaired = await cli(["doctor", "--db", db, "--repair"], { cwd })
    expect(repaired.code).toBe(0)
    expect(repaired.stdout).toContain("Repaired")
    const jobs = await withService(db, (_, queue) => queue.list("s-doctor"))
    expect(jobs.map((job) => [job.taskId, job.attempt])).toEqual([
      [1, 1],
      [2, 1],
      [3, 1]
    ])
    expect((await cli(["doctor", "--db", db], { cwd })).code).toBe(0)
  })
})

describe("planner show", { timeout: 300_000 }, () => {
  it("shows a dispatched task whose job a worker holds as running on that worker", async () => {
    const cwd = tempFolder()
    const db = path.join(cwd, "show.db")
    await withService(db, (service, queue) =>
      Effect.zipRight(
        service.execute(
          "s-show",
          new Initialize({ request: "three tasks", tasks, config: { ...defaultConfig, maxParallel: 3 }, at: 1 })
        ),
        queue.take({ workerId: "far-host/42/w", limit: 1, leaseMs: 600_000, sessionId: "s-show" })
      )
    )
    const shown = await cli(["show", "s-show", "--db", db, "--json"], { cwd })
    expect(shown.code).toBe(0)
    const state = JSON.parse(shown.stdout) as {
      tasks: ReadonlyArray<{ id: number; status: string; worker?: string }>
    }
    expect(state.tasks.map((task) => [task.id, task.status, task.worker])).toEqual([
      [1, "Running", "far-host/42/w"],
      [2, "Dispatched", undefined],
      [3, "Dispatched", undefined]
    ])
    const text = await cli(["show", "s-show", "--db", db], { cwd })
    expect(text.stdout).toMatch(/running.*task 1/)
  })
})
