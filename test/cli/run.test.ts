/**
 * Running plans through the built `planner` command on the embedded SQLite default: runs that complete, fail, wait
 * for answers and are answered, forked, cancelled; reading sessions back; and the exit code of each outcome.
 * Standard input is /dev/null here (not a terminal), so questions stop a run with exit code 3.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import {
  cli,
  demoScript,
  ensureBuilt,
  oneLine,
  parseJson,
  type ResultJson,
  sessionIdIn,
  tempFolder,
  writeScript
} from "./cli.js"
import { defaultDb, readSession, sessionIds } from "./store.js"

beforeAll(() => ensureBuilt(), 180_000)

/** Outcomes for the tasks of these tests, by words in their descriptions. */
const script = {
  rules: [
    { match: "flaky", outcomes: [{ fail: "network blip", retryable: true }, { complete: "flaky call answered" }] },
    { match: "broken", outcomes: [{ fail: "syntax error on line 3", retryable: false }] },
    { match: "deploy", outcomes: [{ ask: "Deploy to staging or production?" }, { complete: "Deployed to {answer}" }] }
  ],
  default: { complete: "done: {description}" }
}

const setUp = () => {
  const cwd = tempFolder()
  return { cwd, executor: `script:${writeScript(cwd, "script.json", script)}` }
}

interface HistoryJson {
  readonly sessionId: string
  readonly events: ReadonlyArray<{
    readonly sequence: number
    readonly time: string
    readonly type: string
    readonly gist: string
    readonly data: Record<string, unknown>
  }>
}

interface StateJson extends ResultJson {
  readonly request: string
  readonly version: number
  readonly forkedFrom?: { readonly sessionId: string; readonly sequence: number }
  readonly attachments: ReadonlyArray<{ readonly kind: string; readonly value: string }>
}

describe.concurrent("planner run", { timeout: 300_000 }, () => {
  it("runs the demo script to completion, then shows, lists, replays and prints the history", async () => {
    const cwd = tempFolder()
    const run = await cli(["run", "--executor", `script:${demoScript}`, "Add a login page. Then write tests for it."], {
      cwd
    })
    expect(run.code, run.stderr).toBe(0)
    const sessionId = sessionIdIn(run.stdout)
    expect(run.stdout.trim().split("\n")).toEqual([
      `Session ${sessionId}: 2 tasks`,
      "  1. [CodeImplementation] Add a login page",
      "  2. [UnitTest] write tests for it  (after 1)",
      "task 1 started: Add a login page",
      "task 1 completed: Created src/pages/Login.tsx with a form and validation",
      "task 2 started: write tests for it",
      expect.stringMatching(
        /^task 2 attempt 1 failed: 2 of 14 tests failed: LoginForm rejects an empty password; retry at \d\d:\d\d:\d\d$/
      ),
      "task 2 started: write tests for it (attempt 2)",
      "task 2 completed: 14 tests passed",
      "plan succeeded",
      "Succeeded: 2 of 2 tasks completed.",
      `Session ${sessionId}. See it again with: planner show ${sessionId}`
    ])
    expect(run.stderr).toBe("")
    // The embedded default store, created on first use.
    expect(fs.existsSync(defaultDb(cwd))).toBe(true)

    const [show, history, sessions, replay, replayText, tooFar] = await Promise.all([
      cli(["show", sessionId, "--json"], { cwd }),
      cli(["history", sessionId, "--json"], { cwd }),
      cli(["sessions", "--json"], { cwd }),
      cli(["replay", sessionId, "--at", "4", "--json"], { cwd }),
      cli(["replay", sessionId, "--at", "4"], { cwd }),
      cli(["replay", sessionId, "--at", "99"], { cwd })
    ])
    const state = parseJson<StateJson>(show)
    expect(state).toMatchObject({
      sessionId,
      status: "Succeeded",
      waiting: false,
      summary: "2 of 2 tasks completed.",
      request: "Add a login page. Then write tests for it."
    })
    expect(state.tasks).toEqual([
      {
        id: 1,
        description: "Add a login page",
        kind: "CodeImplementation",
        status: "Completed",
        attempts: 1,
        result: "Created src/pages/Login.tsx with a form and validation"
      },
      {
        id: 2,
        description: "write tests for it",
        kind: "UnitTest",
        status: "Completed",
        attempts: 2,
        result: "14 tests passed"
      }
    ])

    const events = parseJson<HistoryJson>(history).events
    expect(events.map((event) => event.sequence)).toEqual(events.map((_, index) => index + 1))
    expect(events.map((event) => event.type)).toEqual([
      "TasksPlanned",
      "TaskDispatched",
      "TaskClaimed",
      "TaskStatusUpdated",
      "TaskDispatched",
      "TaskClaimed",
      "TaskRetryScheduled",
      "TaskDispatched",
      "TaskClaimed",
      "TaskStatusUpdated",
      "PlanningCompleted"
    ])
    expect(state.version).toBe(events.length)
    expect(events[6]?.gist).toMatch(/^task 2 attempt 1 failed, retry at \d\d:\d\d:\d\d: 2 of 14 tests failed/)

    expect(parseJson<{ sessions: Array<Record<string, unknown>> }>(sessions).sessions).toEqual([
      expect.objectContaining({
        sessionId,
        status: "Succeeded",
        waiting: false,
        events: events.length,
        request: "Add a login page. Then write tests for it.",
        tasks: expect.objectContaining({ total: 2, Completed: 2 })
      })
    ])

    // Time travel: right after event 4 task 1 had completed and task 2 was not dispatched yet.
    const past = parseJson<StateJson>(replay)
    expect(past).toMatchObject({ sessionId, status: "Running", version: 4 })
    expect(past.tasks.map((task) => [task.status, task.attempts])).toEqual([
      ["Completed", 1],
      ["Planned", 0]
    ])
    expect(replayText.stdout).toContain(`Session ${sessionId} as it was after event 4 of 11: Running`)
    expect(replayText.stdout).toMatch(/Event 4: TaskStatusUpdated at .*, task 1 completed/)
    expect(tooFar.code).toBe(2)
    expect(oneLine(tooFar.stderr)).toContain(`--at 99 is out of range: session ${sessionId} has events 1 to 11`)
  })

  it("a question stops the run with exit code 3 and the answer command; the answer finishes it; a fork answers differently", async () => {
    const { cwd, executor } = setUp()
    const run = await cli(["run", "--executor", executor, "Write the code. Then deploy it."], { cwd })
    expect(run.code, run.stderr).toBe(3)
    const sessionId = sessionIdIn(run.stdout)
    expect(run.stdout).toContain("task 2 waits for an answer: Deploy to staging or production?")
    expect(run.stdout).toContain(
      `Task 2 asks: Deploy to staging or production?\n  planner answer ${sessionId} 2 "<text>"\n`
    )
    const waiting = await readSession(defaultDb(cwd), sessionId)
    const asked = waiting.types.lastIndexOf("ClarificationRequested") + 1
    expect(asked).toBe(waiting.state.version)

    // The executor the session ran with is remembered: no --executor needed to go on.
    const [answered, forked] = await Promise.all([
      cli(["answer", sessionId, "2", "staging"], { cwd }),
      cli(["fork", sessionId, "--at", String(asked), "--answer", "2=production", "--json"], { cwd })
    ])
    expect(answered.code, answered.stderr).toBe(0)
    expect(answered.stdout).toContain("Recorded the answer to task 2.")
    expect(answered.stdout).toContain("task 2 completed: Deployed to staging")
    expect(answered.stdout).toContain("Succeeded: 2 of 2 tasks completed.")

    expect(forked.code, forked.stderr).toBe(0)
    const fork = parseJson<ResultJson>(forked)
    expect(fork.sessionId).not.toBe(sessionId)
    expect(fork.tasks.map((task) => task.result)).toEqual(["done: Write the code", "Deployed to production"])
    const [shown, newest] = await Promise.all([
      cli(["show", fork.sessionId], { cwd }),
      cli(["sessions", "--limit", "1"], { cwd })
    ])
    expect(shown.stdout).toContain(`Forked from session ${sessionId} at event ${asked}`)
    expect(newest.stdout).toMatch(
      /^SESSION +CREATED +STATUS +TASKS +REQUEST\n\S+ .*\n\(showing 1-1 of 2 sessions, newest first; more with `planner sessions --offset 1 --limit 1`\)\n$/
    )
    const [original, copy] = await Promise.all([
      readSession(defaultDb(cwd), sessionId),
      readSession(defaultDb(cwd), fork.sessionId)
    ])
    expect(original.state.tasks[1]?.result).toBe("Deployed to staging")
    // The copy starts with the original's first events, as stored, each saying where it came from.
    expect(copy.records.slice(0, asked).map((record) => record.event)).toEqual(
      original.records.slice(0, asked).map((record) => record.event)
    )
    expect(copy.records[0]?.metadata.extra).toMatchObject({ forkedFrom: { sessionId, sequence: asked } })
  })

  it("--json prints one object; a fork gives up the attempts that were running at its point, so they run again", async () => {
    const { cwd, executor } = setUp()
    const run = await cli(["run", "--executor", executor, "--json", "Write the code. Then test it."], { cwd })
    expect(run.code, run.stderr).toBe(0)
    // --json prints exactly one object: the session, its status, its tasks and the summary.
    const json = parseJson<ResultJson>(run)
    expect(Object.keys(json)).toEqual(["sessionId", "status", "waiting", "tasks", "summary"])
    expect(json).toEqual({
      sessionId: expect.stringMatching(/^\d{8}-\d{6}-[0-9a-f]{6}$/),
      status: "Succeeded",
      waiting: false,
      tasks: [
        {
          id: 1,
          description: "Write the code",
          kind: "CodeImplementation",
          status: "Completed",
          attempts: 1,
          result: "done: Write the code"
        },
        { id: 2, description: "test it", kind: "Processing", status: "Completed", attempts: 1, result: "done: test it" }
      ],
      summary: "2 of 2 tasks completed."
    })
    const { sessionId } = json
    const { types } = await readSession(defaultDb(cwd), sessionId)
    const claimed = types.indexOf("TaskClaimed") + 1
    const forked = await cli(["fork", sessionId, "--at", String(claimed), "--executor", "echo", "--json"], { cwd })
    expect(forked.code, forked.stderr).toBe(0)
    const fork = parseJson<ResultJson>(forked)
    expect(fork.tasks.map((task) => [task.result, task.attempts])).toEqual([
      ["Write the code", 2],
      ["test it", 1]
    ])
    const copy = await readSession(defaultDb(cwd), fork.sessionId)
    const retry = copy.records.find((record) => record.event._tag === "TaskRetryScheduled")?.event
    expect(retry?._tag === "TaskRetryScheduled" && retry.error).toBe(`forked from ${sessionId} at ${claimed}`)
  })

  it("a failed plan exits with 1 under either failure policy", async () => {
    const { cwd, executor } = setUp()
    const [abort, proceed] = await Promise.all([
      cli(
        [
          "run",
          "--executor",
          executor,
          "--max-attempts",
          "1",
          "--on-failure",
          "abort",
          "--json",
          "Call the flaky service. Then report."
        ],
        { cwd }
      ),
      cli(["run", "--executor", executor, "--json", "Fix the broken build. Then report."], { cwd })
    ])
    expect(abort.code, abort.stderr).toBe(1)
    const aborted = parseJson<ResultJson>(abort)
    expect(aborted.status).toBe("Failed")
    expect(aborted.tasks.map((task) => [task.status, task.attempts, task.error])).toEqual([
      ["Failed", 1, "network blip"],
      ["Cancelled", 0, "the plan was aborted because task 1 failed"]
    ])
    expect(proceed.code, proceed.stderr).toBe(1)
    const continued = parseJson<ResultJson>(proceed)
    expect(continued.tasks.map((task) => task.status)).toEqual(["Failed", "Skipped"])
    expect(continued.summary).toBe("0 of 2 tasks completed; task 1 failed: syntax error on line 3; 1 skipped.")
  })

  it("answers given in advance with --answer; a malformed or misdirected --answer is bad usage", async () => {
    const { cwd, executor } = setUp()
    const [ahead, malformed, unknownTask] = await Promise.all([
      cli(["run", "--executor", executor, "--answer", "2=production", "--json", "Write the code. Then deploy it."], {
        cwd
      }),
      cli(["run", "--executor", executor, "--answer", "deploy", "Write the code. Then deploy it."], { cwd }),
      cli(["run", "--executor", executor, "--answer", "7=yes", "Write the code. Then deploy it."], { cwd })
    ])
    expect(ahead.code, ahead.stderr).toBe(0)
    expect(parseJson<ResultJson>(ahead).tasks[1]?.result).toBe("Deployed to production")
    expect(malformed.code).toBe(2)
    expect(oneLine(malformed.stderr)).toBe(
      'planner: --answer expects TASK_ID=TEXT, for example --answer 3="deploy to staging"; got "deploy".'
    )
    expect(unknownTask.code).toBe(2)
    expect(oneLine(unknownTask.stderr)).toBe(
      "planner: --answer 7=...: the plan has no task 7 (its tasks are numbered 1 to 2)."
    )
    // Neither bad command recorded a session.
    expect(await sessionIds(defaultDb(cwd))).toHaveLength(1)
  })

  it("without an LLM, auto asks a person to do each step; cancel ends the waiting session, resume reports it", async () => {
    const cwd = tempFolder()
    const run = await cli(["run", "Review the design. Then write a summary."], { cwd })
    expect(run.code, run.stderr).toBe(3)
    const sessionId = sessionIdIn(run.stdout)
    expect(run.stdout).toContain("Task 1 asks: Do this step and report the result: Review the design")
    expect(run.stdout).toContain(`planner answer ${sessionId} 1 "<text>"`)

    const [first, wrongTask] = await Promise.all([
      cli(["answer", sessionId, "1", "The design is sound"], { cwd }),
      cli(["answer", sessionId, "5", "anything"], { cwd })
    ])
    expect(first.code, first.stderr).toBe(3)
    expect(first.stdout).toContain("task 1 completed: The design is sound")
    expect(first.stdout).toContain(`planner answer ${sessionId} 2 "<text>"`)
    expect(wrongTask.code).toBe(2)
    expect(oneLine(wrongTask.stderr)).toContain(`Session ${sessionId} has no task 5: its tasks are numbered 1 to 2`)

    const emptyReason = await cli(["cancel", sessionId, "--reason", "  "], { cwd })
    expect(emptyReason.code).toBe(2)
    expect(oneLine(emptyReason.stderr)).toBe(
      "planner: --reason is empty: say why the session is cancelled, or leave --reason out."
    )
    const cancelled = await cli(["cancel", sessionId, "--reason", "changed my mind", "--json"], { cwd })
    expect(cancelled.code, cancelled.stderr).toBe(0)
    expect(parseJson<ResultJson>(cancelled)).toMatchObject({
      status: "Cancelled",
      waiting: false,
      summary: "1 of 2 tasks completed; 1 cancelled. Changed my mind."
    })
    const [twice, resumed, late] = await Promise.all([
      cli(["cancel", sessionId], { cwd }),
      cli(["resume", sessionId], { cwd }),
      cli(["answer", sessionId, "2", "too late"], { cwd })
    ])
    expect(twice.code).toBe(0)
    expect(resumed.code).toBe(1)
    expect(resumed.stdout).toContain("Cancelled: 1 of 2 tasks completed; 1 cancelled. Changed my mind.")
    expect(late.code).toBe(2)
    expect(oneLine(late.stderr)).toBe(
      `planner: Session ${sessionId} has already finished (Cancelled): there is no question to answer; fork it to run part of it again.`
    )
  })

  it("--allow-shell runs a ToolCall task's command without asking", async () => {
    const cwd = tempFolder()
    const run = await cli(["run", "--allow-shell", "--json", "Run `echo hello from the shell`"], { cwd })
    expect(run.code, run.stderr).toBe(0)
    const [task] = parseJson<ResultJson>(run).tasks
    expect(task?.kind).toBe("ToolCall")
    expect(task?.result).toMatch(/^\$ echo hello from the shell \(exit 0, [\d.]+ s\)\nhello from the shell$/)
  })

  it("records --attach and the policy options with the plan; --no-check-links skips the unreachable link; --verbose shows dispatches and workers", async () => {
    const cwd = tempFolder()
    fs.writeFileSync(path.join(cwd, "notes.md"), "# notes")
    const run = await cli(
      [
        "run",
        "--executor",
        "echo",
        "--attach",
        "notes.md",
        "--attach",
        "https://example.com/spec",
        "--max-parallel",
        "2",
        "--max-attempts",
        "5",
        "--on-failure",
        "abort",
        "--no-check-links",
        "--verbose",
        "Summarise the notes at http://127.0.0.1:9/notes.md. Then file them."
      ],
      { cwd }
    )
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/^task 2 attempt 1 dispatched$/m)
    expect(run.stdout).toMatch(
      /^task 1 started: Summarise the notes at http:\/\/127\.0\.0\.1:9\/notes\.md \[worker [^\]]+\/\d+\/[0-9a-f]+\]$/m
    )
    const { state } = await readSession(defaultDb(cwd), sessionIdIn(run.stdout))
    expect(state.config).toMatchObject({ maxParallel: 2, maxAttempts: 5, onFailure: "abort" })
    expect(state.attachments).toEqual([
      { kind: "FileRef", value: "notes.md" },
      { kind: "Link", value: "https://example.com/spec" }
    ])
  })

  it("bad input exits with 2, an unusable store with 4, each with one line saying what to do", async () => {
    const cwd = tempFolder()
    const malformed = writeScript(cwd, "malformed.json", { rules: [], default: { complet: "typo" } })
    fs.writeFileSync(path.join(cwd, "a-file"), "")
    const [badScript, unknownSession, missingAttachment, unwritable, badExecutor] = await Promise.all([
      cli(["run", "--executor", `script:${malformed}`, "Do it"], { cwd }),
      cli(["show", "20200101-000000-abcdef"], { cwd }),
      cli(["run", "--executor", "echo", "--attach", "missing.pdf", "Read it"], { cwd }),
      cli(["sessions", "--db", path.join(cwd, "a-file", "planner.db")], { cwd }),
      cli(["run", "--executor", "magic", "Do it"], { cwd })
    ])
    expect(badScript.code).toBe(2)
    expect(oneLine(badScript.stderr)).toMatch(
      /^planner: The script file .*malformed\.json cannot be used: at default\.complet: is unexpected/
    )
    expect(unknownSession.code).toBe(2)
    expect(oneLine(unknownSession.stderr)).toBe(
      "planner: There is no session 20200101-000000-abcdef in ./.planner/planner.db: list the sessions with `planner sessions`, or check --db."
    )
    expect(missingAttachment.code).toBe(2)
    expect(oneLine(missingAttachment.stderr)).toContain("--attach missing.pdf: there is no such file")
    expect(unwritable.code).toBe(4)
    expect(oneLine(unwritable.stderr)).toMatch(
      /^planner: Cannot create the folder for the database .*a-file.* \(a file is in the way\): choose a writable path with --db\.$/
    )
    expect(badExecutor.code).toBe(2)
    expect(oneLine(badExecutor.stderr)).toBe('planner: Unknown executor "magic": use auto, echo or script:PATH.')
    // The malformed script stopped the run before anything was recorded.
    const sessions = await cli(["sessions"], { cwd })
    expect(sessions.stdout).toMatch(/^No sessions in \.\/\.planner\/planner\.db yet/)
  })
})
