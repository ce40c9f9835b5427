/**
 * A long run whose tasks all complete at once (`--executor echo`, 2,000 tasks, SQLite) still lets Node's event loop
 * turn (#18): its progress reaches a pipe while it runs, and SIGTERM stops it with exit code 130, leaving a session
 * that `resume` can continue. It used to be one chain of microtasks: the signal was never handled and the run went
 * on to exit 0.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { ensureBuilt, sessionIdIn, startCli, tempFolder } from "./cli.js"
import { defaultDb, readSession } from "./store.js"

beforeAll(() => ensureBuilt(), 180_000)

describe("planner run with 2,000 instant tasks", { timeout: 300_000 }, () => {
  it("prints progress before the end, and SIGTERM ends it with exit code 130", async () => {
    const cwd = tempFolder()
    const file = path.join(cwd, "request.txt")
    fs.writeFileSync(file, Array.from({ length: 2_000 }, (_, index) => `- Write part ${index + 1}`).join("\n"))
    const running = startCli(["run", "--executor", "echo", "--file", file], { cwd })

    // Progress arrives on the pipe while the run goes on: the 20th task's line comes before the plan's end.
    await running.waitFor(/^task 20 completed: Write part 20$/m)
    expect(running.stdout()).not.toContain("plan succeeded")

    running.child.kill("SIGTERM")
    const result = await running.result
    expect(result.code, result.stderr).toBe(130)
    expect(result.stdout).not.toContain("plan succeeded")
    const sessionId = sessionIdIn(result.stdout)
    expect(result.stderr).toContain(`Stopped. Session ${sessionId} goes on with: planner resume ${sessionId}`)

    // Stopped for real: the stored session is unfinished, short of its 2,000 tasks.
    const { state } = await readSession(defaultDb(cwd), sessionId)
    expect(state.status).toBe("Running")
    expect(state.tasks.filter((task) => task.status === "Completed").length).toBeLessThan(2_000)
  })
})
