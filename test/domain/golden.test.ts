/**
 * Golden event logs: committed logs that must keep replaying to their committed states. A change to the event
 * schemas, the upcasters or `evolve` that breaks an old log fails here.
 *
 * The logs were recorded from the scenarios below. `UPDATE_GOLDEN=1` records a missing log; it never rewrites an
 * existing one, because a log written by an old version is exactly what must keep working.
 */

import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import {
  Cancel,
  ClaimTask,
  ClarificationProvided,
  CompactContext,
  Continue,
  EditPlan,
  ForkSession,
  HandleExecutorEvent,
  Initialize,
  NeedsClarification,
  type PlannerCommand,
  RecordUsage,
  ReviseAfterFailure,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import { decodeEvent, encodeEvent, type PlannerEvent } from "../../src/domain/Events.js"
import { AddTask, RemoveTask, SetAnswer, SetDependencies, SetTask } from "../../src/domain/PlanEdit.js"
import * as Planner from "../../src/domain/Planner.js"

const dir = path.join(import.meta.dirname, "..", "golden")
const T0 = 1_750_000_000_000
const report = (event: HandleExecutorEvent["event"], at: number) => new HandleExecutorEvent({ event, at })

const seedRequest =
  "Add login with session cookies. Use basic auth. Read API spec at https://example.com/spec.pdf. Then write unit tests."

/** The log of `commands` decided in turn (a fork's scenario starts from another session's log). */
const logOf = (commands: ReadonlyArray<PlannerCommand>): ReadonlyArray<PlannerEvent> => {
  const log: Array<PlannerEvent> = []
  for (const command of commands) log.push(...Either.getOrThrow(Planner.decideEither(Planner.fold(log), command)))
  return log
}

/** The source of the incremental fork below: task 1 asks which database, 2 builds on the answer, 3 does not. */
const forkSource = logOf([
  new Initialize({
    request: "Which database? Then design the schema. Also write the README.",
    tasks: [
      { id: 1, description: "Which database should we use?", kind: "Clarification", dependsOn: [], attachments: [] },
      { id: 2, description: "Design the schema", kind: "Processing", dependsOn: [1], attachments: [] },
      { id: 3, description: "Write the README", kind: "Processing", dependsOn: [], attachments: [] }
    ],
    at: T0
  }),
  report(new TaskCompleted({ taskId: 3, result: "README written" }), T0 + 100),
  report(new ClarificationProvided({ taskId: 1, answer: "MySQL" }), T0 + 200),
  report(new TaskCompleted({ taskId: 2, result: "schema for MySQL" }), T0 + 300)
])

/**
 * The source of the fork that carries its spend and sub-plan (#16): a budget of 20,000 tokens, a planning call and a
 * step's call recorded, task 2 expanded into a child, task 1 done, task 2 waiting on its child.
 */
const carrySource = logOf([
  new Initialize({
    request: "Write the notes. Then build and publish the release. Then tell the team.",
    tasks: [
      { id: 1, description: "Write the notes", kind: "Processing", dependsOn: [], attachments: [] },
      {
        id: 2,
        description: "Build the release. Then publish it.",
        kind: "Processing",
        dependsOn: [1],
        attachments: []
      },
      { id: 3, description: "Tell the team", kind: "Processing", dependsOn: [2], attachments: [] }
    ],
    config: { ...defaultConfig, budgetTokens: 20_000 },
    usage: [{ purpose: "planning", model: "gpt-4o-mini", inputTokens: 900, outputTokens: 250, counted: "api" }],
    expand: [{ taskId: 2, childSessionId: "golden-carry~2" }],
    at: T0
  }),
  new RecordUsage({
    usage: [
      {
        purpose: "execution",
        model: "gpt-4o-mini",
        inputTokens: 1_500,
        outputTokens: 400,
        counted: "api",
        taskId: 1,
        attempt: 1
      }
    ],
    at: T0 + 50
  }),
  report(new TaskCompleted({ taskId: 1, result: "notes written" }), T0 + 100)
])

/** Scenarios: commands run through `decide` to record a log. */
const scenarios: Record<string, ReadonlyArray<PlannerCommand>> = {
  "seed-example-succeeds": [
    new Initialize({ request: seedRequest, at: T0 }),
    report(new TaskCompleted({ taskId: 1, result: "login endpoint added" }), T0 + 1_000),
    report(new TaskCompleted({ taskId: 2, result: "basic auth configured" }), T0 + 2_000),
    report(new TaskCompleted({ taskId: 3, result: "spec read: cookies expire in 24h" }), T0 + 3_000),
    report(new TaskCompleted({ taskId: 4, result: "12 tests pass" }), T0 + 4_000)
  ],
  "clarification-retry-compaction": [
    new Initialize({
      request: "Design the schema\nWrite the migration\nDocument it",
      config: { ...defaultConfig, maxAttempts: 3 },
      at: T0
    }),
    new ClaimTask({ taskId: 1, attempt: 1, workerId: "worker-a", at: T0 + 10 }),
    report(new NeedsClarification({ taskId: 1, question: "Which database?" }), T0 + 20),
    report(new ClarificationProvided({ taskId: 1, answer: "PostgreSQL 16" }), T0 + 30),
    report(new TaskCompleted({ taskId: 1, attempt: 2, result: "schema for PostgreSQL 16" }), T0 + 40),
    report(new TaskFailed({ taskId: 2, error: "connection refused" }), T0 + 50),
    new Continue({ at: T0 + 1_050 }),
    report(new TaskCompleted({ taskId: 2, result: "migration 001 written" }), T0 + 1_100),
    new CompactContext({
      maxTokens: 200,
      summary: "Schema and migration 001 for PostgreSQL 16.",
      removedTaskIds: [1, 2],
      at: T0 + 1_110
    }),
    report(new TaskCompleted({ taskId: 3, result: "README updated" }), T0 + 1_200)
  ],
  "failure-aborts": [
    new Initialize({
      request: "- Fetch data\n- Transform it\n- Publish it",
      config: { ...defaultConfig, onFailure: "abort", maxAttempts: 1 },
      at: T0
    }),
    report(new TaskFailed({ taskId: 1, error: "HTTP 503 from upstream", retryable: false }), T0 + 100)
  ],
  // The task-queue flow: a start recorded per take (a new taker of the same attempt after a lease ran out in the
  // queue), a retry dispatched at once with its job's runAt and the jitter it was spread by, no lease events.
  "queue-new-taker-and-jittered-retry": [
    new Initialize({
      request: "Fetch the feed\nPublish the digest",
      config: { ...defaultConfig, maxAttempts: 3 },
      at: T0
    }),
    new ClaimTask({ taskId: 1, attempt: 1, workerId: "host-a/101/w1", at: T0 + 10 }),
    new ClaimTask({ taskId: 1, attempt: 1, workerId: "host-b/202/w2", at: T0 + 70_000 }),
    new HandleExecutorEvent({
      event: new TaskFailed({ taskId: 1, attempt: 1, error: "feed timed out" }),
      jitter: 0.25,
      at: T0 + 70_100
    }),
    new ClaimTask({ taskId: 1, attempt: 2, workerId: "host-b/202/w2", at: T0 + 71_000 }),
    report(new TaskCompleted({ taskId: 1, attempt: 2, result: "42 items" }), T0 + 71_100),
    new ClaimTask({ taskId: 2, attempt: 1, workerId: "host-a/101/w1", at: T0 + 71_200 }),
    report(new TaskCompleted({ taskId: 2, attempt: 1, result: "digest published" }), T0 + 71_300)
  ],
  // Replanning after a failure: task 2 fails for good, a revised plan (as an LLM gave it) replaces it and task 3,
  // the revised tasks run and the plan succeeds.
  "replan-after-failure": [
    new Initialize({
      request: "Fetch the sales data. Then convert it. Then write the report.",
      tasks: [
        { id: 1, description: "Fetch the sales data", kind: "Retrieval", dependsOn: [], attachments: [] },
        { id: 2, description: "Convert the data with tool A", kind: "Processing", dependsOn: [1], attachments: [] },
        { id: 3, description: "Write the report", kind: "Processing", dependsOn: [2], attachments: [] }
      ],
      source: { _tag: "Llm", model: "gpt-test" },
      config: { ...defaultConfig, onFailure: "replan", maxReplans: 1, maxAttempts: 1 },
      at: T0
    }),
    report(new TaskCompleted({ taskId: 1, result: "1,204 rows" }), T0 + 100),
    report(new TaskFailed({ taskId: 2, error: "tool A crashed: unsupported format", retryable: false }), T0 + 200),
    new ReviseAfterFailure({
      taskId: 2,
      tasks: [
        { id: 4, description: "Convert the data with tool B", kind: "Processing", dependsOn: [1], attachments: [] },
        {
          id: 5,
          description: "Write the report from the tool B output",
          kind: "Processing",
          dependsOn: [4],
          attachments: []
        }
      ],
      source: { _tag: "Llm", model: "gpt-test" },
      at: T0 + 300
    }),
    report(new TaskCompleted({ taskId: 4, result: "converted with tool B" }), T0 + 400),
    report(new TaskCompleted({ taskId: 5, result: "report written" }), T0 + 500)
  ],
  // A sub-plan (#16), the two logs of one tree: the root expands task 2 as it is planned, the task is dispatched with
  // no job once task 1 is done, and the child's outcome (its summary) completes it; the child's plan names its parent.
  "subplan-tree-root": [
    new Initialize({
      request: "Write the notes. Then release it.",
      tasks: [
        { id: 1, description: "Write the notes", kind: "Processing", dependsOn: [], attachments: [] },
        {
          id: 2,
          description: "Build the release. Then publish it.",
          kind: "Processing",
          dependsOn: [1],
          attachments: []
        }
      ],
      expand: [{ taskId: 2, childSessionId: "golden-root~2" }],
      at: T0
    }),
    new ClaimTask({ taskId: 1, attempt: 1, workerId: "host-a/101/w1", at: T0 + 10 }),
    report(new TaskCompleted({ taskId: 1, attempt: 1, result: "notes written" }), T0 + 20),
    report(new TaskCompleted({ taskId: 2, result: "2 of 2 tasks completed." }), T0 + 90)
  ],
  "subplan-tree-child": [
    new Initialize({
      request: "Build the release. Then publish it.",
      source: { _tag: "Parser", reason: "sub-plan of task 2 of session golden-root" },
      subPlanOf: { sessionId: "golden-root", taskId: 2, rootSessionId: "golden-root", depth: 1, maxDepth: 3 },
      at: T0 + 30
    }),
    new ClaimTask({ taskId: 1, attempt: 1, workerId: "host-a/101/w1", at: T0 + 40 }),
    report(new TaskCompleted({ taskId: 1, attempt: 1, result: "built" }), T0 + 50),
    new ClaimTask({ taskId: 2, attempt: 1, workerId: "host-a/101/w1", at: T0 + 60 }),
    report(new TaskCompleted({ taskId: 2, attempt: 1, result: "published" }), T0 + 70)
  ],
  // A budget (#16): the plan call's usage recorded with the plan, a step's call held back by the budget question, the
  // answer raising the budget by an event before the call is made, then its usage (counted, the server gave none).
  "budget-pause-and-raise": [
    new Initialize({
      request: "Summarise the release. Then draft the announcement.",
      tasks: [
        { id: 1, description: "Summarise the release", kind: "Processing", dependsOn: [], attachments: [] },
        { id: 2, description: "Draft the announcement", kind: "Processing", dependsOn: [1], attachments: [] }
      ],
      source: { _tag: "Llm", model: "gpt-test" },
      config: { ...defaultConfig, budgetTokens: 5_000 },
      usage: [{ purpose: "planning", model: "gpt-test", inputTokens: 4_000, outputTokens: 500, counted: "api" }],
      at: T0
    }),
    new ClaimTask({ taskId: 1, attempt: 1, workerId: "host-a/101/w1", at: T0 + 10 }),
    report(
      new NeedsClarification({ taskId: 1, attempt: 1, question: "over budget", budget: { tokens: 1_180 } }),
      T0 + 20
    ),
    report(new ClarificationProvided({ taskId: 1, answer: "yes 20000" }), T0 + 30),
    new ClaimTask({ taskId: 1, attempt: 2, workerId: "host-a/101/w1", at: T0 + 40 }),
    new RecordUsage({
      usage: [
        {
          purpose: "execution",
          model: "gpt-test",
          inputTokens: 160,
          outputTokens: 14,
          counted: "tokenizer",
          estimatedTokens: 1_160,
          usd: 0.00012,
          taskId: 1,
          attempt: 2
        }
      ],
      at: T0 + 50
    }),
    report(new TaskCompleted({ taskId: 1, attempt: 2, result: "Summary done" }), T0 + 60),
    report(new TaskCompleted({ taskId: 2, attempt: 1, result: "Announcement drafted" }), T0 + 70)
  ],
  // Plan edits (#15) on a running session: a planned task changed, a task added between two others, a task removed,
  // a dependency changed; what became ready is dispatched with the edit.
  "plan-edited-while-running": [
    new Initialize({
      request: "Write the code. Then the tests. Then the docs. Then publish.",
      tasks: [
        { id: 1, description: "Write the code", kind: "CodeImplementation", dependsOn: [], attachments: [] },
        { id: 2, description: "Write the tests", kind: "UnitTest", dependsOn: [1], attachments: [] },
        { id: 3, description: "Write the docs", kind: "Processing", dependsOn: [2], attachments: [] },
        { id: 4, description: "Publish", kind: "ToolCall", dependsOn: [3], attachments: [] }
      ],
      at: T0
    }),
    new EditPlan({
      edits: [
        SetTask.make({ taskId: 2, description: "Write property tests" }),
        AddTask.make({ description: "Review the code", kind: "Analysis", dependsOn: [1], dependents: [3] }),
        RemoveTask.make({ taskId: 4 })
      ],
      at: T0 + 50
    }),
    report(new TaskCompleted({ taskId: 1, result: "code written" }), T0 + 100),
    new EditPlan({
      edits: [SetDependencies.make({ taskId: 3, dependsOn: [5] })],
      source: { _tag: "User", by: "reviewer" },
      at: T0 + 150
    }),
    report(new TaskCompleted({ taskId: 5, result: "looks good" }), T0 + 200),
    report(new TaskCompleted({ taskId: 2, result: "40 properties pass" }), T0 + 300),
    report(new TaskCompleted({ taskId: 3, result: "docs written" }), T0 + 400)
  ],
  // An incremental fork (#15) of a finished session with a different answer: the README is reused (naming the event
  // that completed it), the Clarification task takes the new answer, and only the schema runs again.
  "incremental-fork-with-a-different-answer": [
    new ForkSession({
      fromSessionId: "golden-source",
      atSequence: forkSource.length,
      sourceEvents: forkSource,
      edits: [SetAnswer.make({ taskId: 1, answer: "PostgreSQL" })],
      at: T0 + 1_000
    }),
    report(new TaskCompleted({ taskId: 2, result: "schema for PostgreSQL" }), T0 + 1_100)
  ],
  // An incremental fork (#15, #16) carries its source's spend (one usage event with every call) and keeps the waiting
  // expanded task expanded, into the fork's own child; the child's outcome completes it.
  "incremental-fork-carrying-spend-and-sub-plan": [
    new ForkSession({
      fromSessionId: "golden-carry",
      atSequence: carrySource.length,
      sourceEvents: carrySource,
      intoSessionId: "golden-carry-fork",
      at: T0 + 1_000
    }),
    report(new TaskCompleted({ taskId: 2, result: "release built and published" }), T0 + 1_100),
    report(new TaskCompleted({ taskId: 3, result: "team told" }), T0 + 1_200)
  ],
  "cancelled-midway": [
    new Initialize({ request: "1. Plan the release\n2. Tag it\n3. Announce it", at: T0 }),
    report(new TaskCompleted({ taskId: 1, result: "release planned" }), T0 + 100),
    new Cancel({ reason: "release postponed", at: T0 + 200 })
  ]
}

interface GoldenLog {
  readonly description: string
  readonly events: ReadonlyArray<{ readonly type: string; readonly version: number; readonly data: unknown }>
  readonly expected: unknown
}

const encodeState = Schema.encodeSync(Planner.PlannerState)

const record = (commands: ReadonlyArray<PlannerCommand>): ReadonlyArray<PlannerEvent> => {
  const log: Array<PlannerEvent> = []
  for (const command of commands) {
    const events = Either.getOrThrow(Planner.decideEither(Planner.fold(log), command))
    log.push(...events)
  }
  return log
}

const replay = (golden: GoldenLog) =>
  Planner.fold(golden.events.map((stored) => Either.getOrThrow(decodeEvent(stored.type, stored.version, stored.data))))

const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((file) => file.endsWith(".json")) : []

describe("golden event logs", () => {
  if (process.env.UPDATE_GOLDEN === "1") {
    it("records missing logs", () => {
      fs.mkdirSync(dir, { recursive: true })
      for (const [name, commands] of Object.entries(scenarios)) {
        const file = path.join(dir, `${name}.json`)
        if (fs.existsSync(file)) continue
        const events = record(commands).map(encodeEvent)
        const golden = { description: name, events, expected: null }
        const expected = encodeState(replay(golden))
        fs.writeFileSync(file, `${JSON.stringify({ ...golden, expected }, null, 2)}\n`)
      }
    })
  }

  it("every scenario has a committed log", () => {
    for (const name of Object.keys(scenarios)) expect(files).toContain(`${name}.json`)
  })

  it.each(files)("%s replays to its committed state", (file) => {
    const golden: GoldenLog = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"))
    expect(golden.events.length).toBeGreaterThan(0)
    expect(encodeState(replay(golden))).toEqual(golden.expected)
  })
})
