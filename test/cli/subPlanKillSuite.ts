/**
 * A SIGKILL during a sub-plan, and `planner resume` of the root (issue #16): `run --plan FILE --expand` runs task 2
 * of the root (itself three steps) as a child session; once one of the child's tasks is running (seen in the script
 * executor's record file, not by waiting a fixed time) the process is killed with SIGKILL. `planner resume ROOT`
 * then finishes the whole tree. Checked from the stored logs and the record: every task of the root and of the child
 * completed exactly once, the only task run twice is the one the killed process held (its attempt 1 and a retry),
 * the expanded task itself never ran on the executor, and the task queue equals its rebuild from the log
 * (`planner doctor` exits 0). Run over SQLite and PostgreSQL by the two test files beside this one.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { expect } from "@effect/vitest"
import { cli, parseJson, type ResultJson, sessionIdIn, startCli, tempFolder } from "./cli.js"

const plan = {
  request: "Ship it",
  tasks: [
    { id: 1, description: "Write the notes", kind: "Processing", dependsOn: [], attachments: [] },
    {
      id: 2,
      description: "Prepare the data. Then run the slow step. Then check the output.",
      kind: "Processing",
      dependsOn: [1],
      attachments: []
    },
    { id: 3, description: "Tell the team", kind: "Processing", dependsOn: [2], attachments: [] }
  ]
}

/** What each task's description is on the executor, by session: the child's tasks are the parser's split of task 2. */
const expected = {
  root: ["Write the notes", "Tell the team"],
  child: ["Prepare the data", "run the slow step", "check the output"]
}

interface Execution {
  readonly taskId: number
  readonly attempt: number
  readonly description: string
}

interface HistoryJson {
  readonly sessionId: string
  readonly events: ReadonlyArray<{ readonly type: string; readonly data: Record<string, unknown> }>
}

/** Polls `check` every 25 ms until it holds (no fixed wait decides the order); fails after `timeoutMs`. */
const until = async (what: string, check: () => boolean, timeoutMs = 120_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

const readRecord = (file: string): ReadonlyArray<Execution> =>
  fs.existsSync(file)
    ? fs
        .readFileSync(file, "utf8")
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as Execution)
    : []

const writeScript = (file: string, record: string, slow: string, slowDelayMs: number) =>
  fs.writeFileSync(
    file,
    JSON.stringify({
      rules: [{ match: `^${slow}$`, delayMs: slowDelayMs, outcomes: [{ complete: "slow step done" }] }],
      default: { complete: "done: {description}" },
      record
    })
  )

/** The final statuses each task of a session's log reached, by task id, in the order they were recorded. */
const finalStatuses = (history: HistoryJson): Map<number, Array<string>> => {
  const statuses = new Map<number, Array<string>>()
  for (const event of history.events) {
    if (event.type !== "TaskStatusUpdated") continue
    const taskId = event.data.taskId as number
    statuses.set(taskId, [...(statuses.get(taskId) ?? []), event.data.status as string])
  }
  return statuses
}

/** `slowTask` is the child's task (1 to 3) that is slow: the one running when the process is killed. */
export const killDuringChild = async (db: () => Promise<ReadonlyArray<string>>, slowTask: 1 | 2 | 3) => {
  const slow = expected.child[slowTask - 1] ?? ""
  const cwd = tempFolder()
  const store = await db()
  const record = path.join(cwd, "executions.jsonl")
  const scriptFile = path.join(cwd, "script.json")
  fs.writeFileSync(path.join(cwd, "plan.json"), JSON.stringify(plan))
  // The slow step never ends by itself in the first process: the kill is certain to land while it runs.
  writeScript(scriptFile, record, slow, 600_000)
  const executor = ["--executor", `script:${scriptFile}`]

  const running = startCli(["run", ...store, "--non-interactive", ...executor, "--expand", "--plan", "plan.json"], {
    cwd
  })
  await until(`the child's task ${slowTask} is running`, () =>
    readRecord(record).some((execution) => execution.description === slow)
  )
  const root = sessionIdIn(running.stdout())
  const child = `${root}~2`
  running.child.kill("SIGKILL")
  expect((await running.result).code).toBe(137)
  expect(readRecord(record)).toEqual([
    { taskId: 1, attempt: 1, description: "Write the notes" },
    ...expected.child.slice(0, slowTask).map((description, index) => ({ taskId: index + 1, attempt: 1, description }))
  ])

  // The same script, now with a short slow step (the executor reads its file when a process starts).
  writeScript(scriptFile, record, slow, 50)
  const resumed = await cli(["resume", root, ...store, ...executor, "--json"], { cwd })
  expect(resumed.code, resumed.stderr).toBe(0)
  const done = parseJson<ResultJson>(resumed)
  expect(done.status).toBe("Succeeded")
  expect(done.tasks.map((task) => [task.id, task.status, task.attempts])).toEqual([
    [1, "Completed", 1],
    [2, "Completed", 1],
    [3, "Completed", 1]
  ])
  const childShown = parseJson<ResultJson>(await cli(["show", child, ...store, "--json"], { cwd }))
  expect(childShown.status).toBe("Succeeded")
  expect(childShown.tasks.map((task) => [task.description, task.status, task.attempts])).toEqual(
    expected.child.map((description) => [description, "Completed", description === slow ? 2 : 1])
  )
  expect(done.tasks[1]?.result).toBe(childShown.summary)

  // The logs: every task of the root and of the child reached one final status, Completed, once.
  const historyOf = async (session: string) =>
    parseJson<HistoryJson>(await cli(["history", session, ...store, "--json"], { cwd }))
  const rootLog = await historyOf(root)
  const childLog = await historyOf(child)
  for (const [log, count] of [
    [rootLog, 3],
    [childLog, 3]
  ] as const) {
    const statuses = finalStatuses(log)
    expect([...statuses.keys()].sort()).toEqual(Array.from({ length: count }, (_, index) => index + 1))
    for (const [taskId, recorded] of statuses)
      expect(recorded, `task ${taskId} of ${log.sessionId}`).toEqual(["Completed"])
  }
  // The killed attempt was retried as a failed attempt of the dead worker, and nothing else was retried.
  const retries = [...rootLog.events, ...childLog.events].filter((event) => event.type === "TaskRetryScheduled")
  expect(retries.map((event) => [event.data.taskId, event.data.attempt])).toEqual([[slowTask, 1]])
  expect(childLog.events).toContainEqual(expect.objectContaining({ type: "TaskRetryScheduled" }))
  expect(retries[0]?.data.error).toMatch(
    /^worker .* (died while running attempt 1 \(its process is gone\)|stopped answering: its lease on attempt 1 expired)$/
  )

  // The executions: at most one per task attempt, each task's attempts 1..n once, and the only second attempt is the
  // slow task the killed process held. The expanded task 2 of the root never ran on the executor.
  const executions = readRecord(record)
  const keys = executions.map((execution) => `${execution.description}#${execution.attempt}`)
  expect(new Set(keys).size).toBe(keys.length)
  const attemptsOf = (description: string) =>
    executions.filter((execution) => execution.description === description).map((execution) => execution.attempt)
  for (const description of [...expected.root, ...expected.child])
    expect(attemptsOf(description), description).toEqual(description === slow ? [1, 2] : [1])
  expect(executions).toHaveLength(expected.root.length + expected.child.length + 1)
  expect(attemptsOf(plan.tasks[1]?.description ?? "")).toEqual([])

  // The task queue equals its rebuild from the logs.
  const doctor = await cli(["doctor", ...store], { cwd })
  expect(doctor.code, `${doctor.stdout}${doctor.stderr}`).toBe(0)
  expect(doctor.stdout).toContain("The task queue matches the event log")
}
