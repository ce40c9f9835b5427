import { describe, expect, it } from "@effect/vitest"
import {
  AbandonTask,
  Cancel,
  ClaimTask,
  ClarificationProvided,
  CompactContext,
  Continue,
  ExtendLease,
  HandleExecutorEvent,
  Initialize,
  NeedsClarification,
  ReleaseTask,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import {
  EmptyRequest,
  InvalidCompaction,
  InvalidPlan,
  InvalidTransition,
  RequestTooLarge,
  SessionAlreadyStarted,
  SessionFinished,
  SessionNotStarted,
  StaleAttempt,
  TaskAlreadyClaimed,
  UnknownTask
} from "../../src/domain/Errors.js"
import {
  ClarificationReceived,
  ClarificationRequested,
  ContextCompacted,
  PlanningCompleted,
  SessionForked,
  TaskClaimed,
  TaskDispatched,
  TaskLeaseExtended,
  TaskReleased,
  TaskRetryScheduled,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"
import * as Parser from "../../src/domain/Parser.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { given, tasks } from "../support/DeciderSpec.js"

const T0 = 1_700_000_000_000
const config = (overrides: Partial<PlannerConfig> = {}): PlannerConfig => ({ ...defaultConfig, ...overrides })

const planned = (plan: ReadonlyArray<TaskPlan>, overrides: Partial<PlannerConfig> = {}, request = "a request") =>
  new TasksPlanned({
    request,
    attachments: [],
    tasks: plan,
    config: config(overrides),
    source: { _tag: "Parser" },
    at: T0
  })

const dispatched = (taskId: number, description: string, attempt = 1, at = T0, extra: Partial<TaskDispatched> = {}) =>
  new TaskDispatched({ taskId, attempt, kind: "Processing", description, clarifications: [], at, ...extra })

const completed = (taskId: number, result: string, attempt = 1, at = T0) =>
  new TaskStatusUpdated({ taskId, status: "Completed", attempt, result, at })

const report = (event: HandleExecutorEvent["event"], at = T0) => new HandleExecutorEvent({ event, at })

const twoStep = tasks(["Write the code"], ["Write the tests"])
const twoStepStarted = [planned(twoStep), dispatched(1, "Write the code")]

describe("Initialize", () => {
  it("plans a single task and dispatches it", () => {
    const plan = tasks(["Summarise the report"])
    given()
      .when(new Initialize({ request: "Summarise the report", tasks: plan, at: T0 }))
      .then(
        new TasksPlanned({
          request: "Summarise the report",
          attachments: [],
          tasks: plan,
          config: defaultConfig,
          source: { _tag: "Parser" },
          at: T0
        }),
        dispatched(1, "Summarise the report")
      )
  })

  it("parses the request with the deterministic parser when no tasks are given", () => {
    const request =
      "Add login with session cookies. Read the spec at https://example.com/spec.pdf. Then write unit tests."
    const parsed = Parser.parse(request)
    if (parsed._tag === "Left") throw new Error(parsed.left.message)
    const state = given()
      .when(new Initialize({ request, at: T0 }))
      .then(
        new TasksPlanned({
          request,
          attachments: [],
          tasks: parsed.right,
          config: defaultConfig,
          source: { _tag: "Parser" },
          at: T0
        }),
        new TaskDispatched({
          taskId: 1,
          attempt: 1,
          kind: parsed.right[0]?.kind ?? "Processing",
          description: parsed.right[0]?.description ?? "",
          clarifications: [],
          at: T0
        })
      )
    expect(state.tasks.length).toBe(3)
    expect(state.tasks[1]?.attachments).toEqual([{ kind: "Link", value: "https://example.com/spec.pdf" }])
  })

  it("records an LLM's plan exactly as given, with its source, and dispatches every ready root up to maxParallel", () => {
    const plan = tasks(["Read the spec", []], ["Design the schema", []], ["Sketch the UI", []], ["Build it", [1, 2, 3]])
    given()
      .when(
        new Initialize({
          request: "Build a thing",
          tasks: plan,
          source: { _tag: "Llm", model: "gpt-test" },
          config: config({ maxParallel: 2 }),
          at: T0
        })
      )
      .then(
        new TasksPlanned({
          request: "Build a thing",
          attachments: [],
          tasks: plan,
          config: config({ maxParallel: 2 }),
          source: { _tag: "Llm", model: "gpt-test" },
          at: T0
        }),
        dispatched(1, "Read the spec"),
        dispatched(2, "Design the schema")
      )
  })

  it("records a plan file's plan with the file as its source", () => {
    const plan = tasks(["Enroll in the course", []], ["Order a pizza", []], ["Drive to the campus", [2]])
    const state = given()
      .when(
        new Initialize({ request: "From a file", tasks: plan, source: { _tag: "PlanFile", path: "plan.json" }, at: T0 })
      )
      .then(
        new TasksPlanned({
          request: "From a file",
          attachments: [],
          tasks: plan,
          config: defaultConfig,
          source: { _tag: "PlanFile", path: "plan.json" },
          at: T0
        }),
        dispatched(1, "Enroll in the course"),
        dispatched(2, "Order a pizza")
      )
    expect(state.source).toEqual({ _tag: "PlanFile", path: "plan.json" })
  })

  it("when maxParallel leaves fewer slots than ready tasks, starts the critical path and the longest chains first", () => {
    // Task 3 heads the longest chain (3 -> 4 -> 5), then task 2 (2 -> 6); task 1 leads nowhere.
    const plan = tasks(["Lint", []], ["Build", []], ["Migrate", []], ["Seed", [3]], ["Verify", [4]], ["Package", [2]])
    given(planned(plan, { maxParallel: 2 }))
      .when(new Continue({ at: T0 }))
      .then(dispatched(3, "Migrate"), dispatched(2, "Build"))
    // With a slot for everything ready, the order is the plain id order.
    given(planned(plan, { maxParallel: 3 }))
      .when(new Continue({ at: T0 }))
      .then(dispatched(1, "Lint"), dispatched(2, "Build"), dispatched(3, "Migrate"))
  })

  it("keeps attachments given for the whole request", () => {
    const plan = tasks(["Review it"])
    const attachments = [{ kind: "FileRef" as const, value: "docs/spec.md" }]
    given()
      .when(new Initialize({ request: "Review it", attachments, tasks: plan, at: T0 }))
      .then(
        new TasksPlanned({
          request: "Review it",
          attachments,
          tasks: plan,
          config: defaultConfig,
          source: { _tag: "Parser" },
          at: T0
        }),
        dispatched(1, "Review it")
      )
  })

  it("asks a Clarification task's question instead of dispatching it", () => {
    const plan = tasks(["Which database should we use?", [], "Clarification"], ["Set up the database"])
    given()
      .when(new Initialize({ request: "x", tasks: plan, at: T0 }))
      .then(
        new TasksPlanned({
          request: "x",
          attachments: [],
          tasks: plan,
          config: defaultConfig,
          source: { _tag: "Parser" },
          at: T0
        }),
        new ClarificationRequested({ taskId: 1, question: "Which database should we use?", at: T0 })
      )
  })

  it("refuses an empty or whitespace-only request", () => {
    given()
      .when(new Initialize({ request: "", at: T0 }))
      .thenFails(new EmptyRequest())
    given()
      .when(new Initialize({ request: " \n\t ", at: T0 }))
      .thenFails(new EmptyRequest())
  })

  it("refuses a request over the size limit", () => {
    const request = "a".repeat(Parser.MAX_REQUEST_CHARS + 1)
    given()
      .when(new Initialize({ request, at: T0 }))
      .thenFails(new RequestTooLarge({ size: request.length, limit: Parser.MAX_REQUEST_CHARS }))
  })

  it("refuses a plan with a cycle or an unknown dependency", () => {
    given()
      .when(new Initialize({ request: "x", tasks: tasks(["a", [2]], ["b", [1]]), at: T0 }))
      .thenFails(new InvalidPlan({ reason: "tasks 1 -> 2 -> 1 form a cycle" }))
    given()
      .when(new Initialize({ request: "x", tasks: tasks(["a", [7]]), at: T0 }))
      .thenFails(new InvalidPlan({ reason: "task 1 depends on unknown task 7" }))
  })

  it("refuses to start a session twice", () => {
    given(twoStepStarted)
      .when(new Initialize({ request: "again", at: T0 }))
      .thenFails(new SessionAlreadyStarted())
  })
})

describe("commands before a plan exists", () => {
  it("are refused", () => {
    given()
      .when(new Continue({ at: T0 }))
      .thenFails(new SessionNotStarted())
    given()
      .when(report(new TaskCompleted({ taskId: 1, result: "x" })))
      .thenFails(new SessionNotStarted())
    given()
      .when(new Cancel({ at: T0 }))
      .thenFails(new SessionNotStarted())
  })
})

describe("TaskCompleted", () => {
  it("records the result and dispatches the next task", () => {
    given(twoStepStarted)
      .when(report(new TaskCompleted({ taskId: 1, result: "code written" }), T0 + 5))
      .then(completed(1, "code written", 1, T0 + 5), dispatched(2, "Write the tests", 1, T0 + 5))
  })

  it("completes the plan exactly once when the last task completes", () => {
    given(twoStepStarted, completed(1, "ok"), dispatched(2, "Write the tests"))
      .when(report(new TaskCompleted({ taskId: 2, result: "tests pass" }), T0 + 9))
      .then(
        completed(2, "tests pass", 1, T0 + 9),
        new PlanningCompleted({ outcome: "Succeeded", summary: "2 of 2 tasks completed.", at: T0 + 9 })
      )
  })

  it("is a no-op when it repeats an outcome already applied", () => {
    given(twoStepStarted, completed(1, "ok"), dispatched(2, "Write the tests"))
      .when(report(new TaskCompleted({ taskId: 1, attempt: 1, result: "ok" })))
      .thenNothing()
  })

  it("refuses a different result for a task already completed", () => {
    given(twoStepStarted, completed(1, "ok"), dispatched(2, "Write the tests"))
      .when(report(new TaskCompleted({ taskId: 1, result: "something else" })))
      .thenFails(new InvalidTransition({ taskId: 1, status: "Completed", action: "complete" }))
  })

  it("refuses a result for a task that was never dispatched", () => {
    given(twoStepStarted)
      .when(report(new TaskCompleted({ taskId: 2, result: "early" })))
      .thenFails(new InvalidTransition({ taskId: 2, status: "Planned", action: "complete" }))
  })

  it("refuses an outcome from an attempt that is no longer current", () => {
    given(
      twoStepStarted,
      new TaskRetryScheduled({ taskId: 1, attempt: 1, error: "boom", retryAt: T0, at: T0 }),
      dispatched(1, "Write the code", 2)
    )
      .when(report(new TaskCompleted({ taskId: 1, attempt: 1, result: "late" })))
      .thenFails(new StaleAttempt({ taskId: 1, attempt: 1, current: 2 }))
  })

  it("refuses an unknown task", () => {
    given(twoStepStarted)
      .when(report(new TaskCompleted({ taskId: 9, result: "?" })))
      .thenFails(new UnknownTask({ taskId: 9 }))
  })

  it("ignores an outcome that arrives after the plan was cancelled", () => {
    given(
      twoStepStarted,
      new TaskStatusUpdated({ taskId: 1, status: "Cancelled", attempt: 1, error: "stop", at: T0 }),
      new TaskStatusUpdated({ taskId: 2, status: "Cancelled", attempt: 0, error: "stop", at: T0 }),
      new PlanningCompleted({ outcome: "Cancelled", summary: "stopped", at: T0 })
    )
      .when(report(new TaskCompleted({ taskId: 1, result: "done anyway" })))
      .thenNothing()
  })
})

describe("TaskFailed", () => {
  it("schedules a retry with exponential backoff while attempts remain, dispatched at once to run at its time", () => {
    const backoff = { initialDelayMs: 1_000, factor: 2, maxDelayMs: 60_000 }
    const history = [planned(twoStep, { maxAttempts: 3, backoff }), dispatched(1, "Write the code")]
    const state = given(history)
      .when(report(new TaskFailed({ taskId: 1, error: "network down" }), T0 + 10))
      .then(
        new TaskRetryScheduled({ taskId: 1, attempt: 1, error: "network down", retryAt: T0 + 1_010, at: T0 + 10 }),
        dispatched(1, "Write the code", 2, T0 + 10, { runAt: T0 + 1_010 })
      )
    // The next attempt's job is not taken before the retry's time.
    expect(state.tasks[0]).toMatchObject({ status: "Dispatched", attempt: 2, failures: 1, retryAt: T0 + 1_010 })
    expect(state.tasks.map(Planner.jobRunAt)).toEqual([T0 + 1_010, 0])
    given(
      history,
      new TaskRetryScheduled({ taskId: 1, attempt: 1, error: "network down", retryAt: T0 + 1_010, at: T0 + 10 }),
      dispatched(1, "Write the code", 2, T0 + 10, { runAt: T0 + 1_010 })
    )
      .when(report(new TaskFailed({ taskId: 1, attempt: 2, error: "still down" }), T0 + 1_100))
      .then(
        new TaskRetryScheduled({ taskId: 1, attempt: 2, error: "still down", retryAt: T0 + 3_100, at: T0 + 1_100 }),
        dispatched(1, "Write the code", 3, T0 + 1_100, { runAt: T0 + 3_100 })
      )
  })

  it("spreads the backoff by the jitter the command carries, and records it", () => {
    const backoff = { initialDelayMs: 1_000, factor: 2, maxDelayMs: 60_000 }
    const history = [planned(twoStep, { maxAttempts: 3, backoff }), dispatched(1, "Write the code")]
    // 0.75 + 0.9 / 2 = 1.2 times the delay.
    given(history)
      .when(new HandleExecutorEvent({ event: new TaskFailed({ taskId: 1, error: "down" }), jitter: 0.9, at: T0 }))
      .then(
        new TaskRetryScheduled({ taskId: 1, attempt: 1, error: "down", retryAt: T0 + 1_200, jitter: 0.9, at: T0 }),
        dispatched(1, "Write the code", 2, T0, { runAt: T0 + 1_200 })
      )
    // Never over the maximum delay.
    given(
      planned(twoStep, { maxAttempts: 3, backoff: { ...backoff, maxDelayMs: 1_100 } }),
      dispatched(1, "Write the code")
    )
      .when(new HandleExecutorEvent({ event: new TaskFailed({ taskId: 1, error: "down" }), jitter: 0.99, at: T0 }))
      .then(
        new TaskRetryScheduled({ taskId: 1, attempt: 1, error: "down", retryAt: T0 + 1_100, jitter: 0.99, at: T0 }),
        dispatched(1, "Write the code", 2, T0, { runAt: T0 + 1_100 })
      )
  })

  it("fails the task when attempts run out, skips what depends on it, and runs the rest (continue policy)", () => {
    const plan = tasks(["a", []], ["b", [1]], ["c", [2]], ["d", []])
    given(
      planned(plan, { maxAttempts: 1, onFailure: "continue" }),
      dispatched(1, "a"),
      dispatched(4, "d"),
      completed(4, "d done")
    )
      .when(report(new TaskFailed({ taskId: 1, error: "broken" }), T0 + 1))
      .then(
        new TaskStatusUpdated({ taskId: 1, status: "Failed", attempt: 1, error: "broken", at: T0 + 1 }),
        new TaskStatusUpdated({
          taskId: 2,
          status: "Skipped",
          attempt: 0,
          error: "skipped because task 1 failed",
          at: T0 + 1
        }),
        new TaskStatusUpdated({
          taskId: 3,
          status: "Skipped",
          attempt: 0,
          error: "skipped because task 1 failed",
          at: T0 + 1
        }),
        new PlanningCompleted({
          outcome: "Failed",
          summary: "1 of 4 tasks completed; task 1 failed: broken; 2 skipped.",
          at: T0 + 1
        })
      )
  })

  it("fails at once when the executor says retrying cannot help", () => {
    given(planned(twoStep, { maxAttempts: 5 }), dispatched(1, "Write the code"))
      .when(report(new TaskFailed({ taskId: 1, error: "syntax error", retryable: false })))
      .then(
        new TaskStatusUpdated({ taskId: 1, status: "Failed", attempt: 1, error: "syntax error", at: T0 }),
        new TaskStatusUpdated({
          taskId: 2,
          status: "Skipped",
          attempt: 0,
          error: "skipped because task 1 failed",
          at: T0
        }),
        new PlanningCompleted({
          outcome: "Failed",
          summary: "0 of 2 tasks completed; task 1 failed: syntax error; 1 skipped.",
          at: T0
        })
      )
  })

  it("aborts the plan under the abort policy, cancelling everything unfinished", () => {
    const plan = tasks(["a", []], ["b", []], ["c", [1]])
    given(planned(plan, { maxAttempts: 1, onFailure: "abort" }), dispatched(1, "a"), dispatched(2, "b"))
      .when(report(new TaskFailed({ taskId: 1, error: "fatal" })))
      .then(
        new TaskStatusUpdated({ taskId: 1, status: "Failed", attempt: 1, error: "fatal", at: T0 }),
        new TaskStatusUpdated({
          taskId: 2,
          status: "Cancelled",
          attempt: 1,
          error: "the plan was aborted because task 1 failed",
          at: T0
        }),
        new TaskStatusUpdated({
          taskId: 3,
          status: "Cancelled",
          attempt: 0,
          error: "the plan was aborted because task 1 failed",
          at: T0
        }),
        new PlanningCompleted({
          outcome: "Failed",
          summary:
            "0 of 3 tasks completed; task 1 failed: fatal; 2 cancelled. The plan was aborted because task 1 failed.",
          at: T0
        })
      )
  })

  it("is a no-op when it repeats a failure already applied", () => {
    given(twoStepStarted, new TaskRetryScheduled({ taskId: 1, attempt: 1, error: "boom", retryAt: T0 + 1_000, at: T0 }))
      .when(report(new TaskFailed({ taskId: 1, attempt: 1, error: "boom" })))
      .thenNothing()
  })
})

describe("clarifications", () => {
  it("pause only the task that asked; independent tasks go on", () => {
    const plan = tasks(["a", []], ["b", []], ["c", [1]])
    given(planned(plan), dispatched(1, "a"), dispatched(2, "b"))
      .when(report(new NeedsClarification({ taskId: 1, question: "Which cookie expiry?" }), T0 + 3))
      .then(new ClarificationRequested({ taskId: 1, question: "Which cookie expiry?", at: T0 + 3 }))
    const state = Planner.fold([
      planned(plan),
      dispatched(1, "a"),
      dispatched(2, "b"),
      new ClarificationRequested({ taskId: 1, question: "Which cookie expiry?", at: T0 + 3 })
    ])
    expect(state.tasks.map((t) => t.status)).toEqual(["NeedsClarification", "Dispatched", "Planned"])
  })

  it("an answer is stored with the task and leads to a fresh dispatch carrying it", () => {
    const asked = new ClarificationRequested({ taskId: 1, question: "Which cookie expiry?", at: T0 })
    const state = given(twoStepStarted, asked)
      .when(report(new ClarificationProvided({ taskId: 1, answer: "24 hours" }), T0 + 7))
      .then(
        new ClarificationReceived({ taskId: 1, answer: "24 hours", at: T0 + 7 }),
        dispatched(1, "Write the code", 2, T0 + 7, {
          clarifications: [{ question: "Which cookie expiry?", answer: "24 hours" }]
        })
      )
    expect(state.tasks[0]?.status).toBe("Dispatched")
    expect(state.tasks[0]?.failures).toBe(0)
  })

  it("the answer to a Clarification task is its result", () => {
    const plan = tasks(["Which database?", [], "Clarification"], ["Set it up"])
    given(planned(plan), new ClarificationRequested({ taskId: 1, question: "Which database?", at: T0 }))
      .when(report(new ClarificationProvided({ taskId: 1, answer: "PostgreSQL" })))
      .then(
        new ClarificationReceived({ taskId: 1, answer: "PostgreSQL", at: T0 }),
        completed(1, "PostgreSQL", 0),
        dispatched(2, "Set it up")
      )
  })

  it("a repeated question or answer is a no-op; an answer nobody asked for is refused", () => {
    const asked = new ClarificationRequested({ taskId: 1, question: "Expiry?", at: T0 })
    given(twoStepStarted, asked)
      .when(report(new NeedsClarification({ taskId: 1, question: "Expiry?" })))
      .thenNothing()
    given(
      twoStepStarted,
      asked,
      new ClarificationReceived({ taskId: 1, answer: "1h", at: T0 }),
      dispatched(1, "Write the code", 2)
    )
      .when(report(new ClarificationProvided({ taskId: 1, answer: "1h" })))
      .thenNothing()
    given(twoStepStarted)
      .when(report(new ClarificationProvided({ taskId: 1, answer: "unasked" })))
      .thenFails(
        new InvalidTransition({ taskId: 1, status: "Dispatched", action: "take an answer: it has no question pending" })
      )
  })

  it("a question about an attachment is answered with its replacement", () => {
    const spec = { kind: "FileRef" as const, value: "docs/spec.md" }
    const plan = tasks(["Read docs/spec.md", [], "Processing", [spec]])
    const asked = new ClarificationRequested({
      taskId: 1,
      question: "docs/spec.md cannot be read: upload it again or give another path or link",
      attachment: spec,
      at: T0
    })
    given(planned(plan), dispatched(1, "Read docs/spec.md"))
      .when(report(new NeedsClarification({ taskId: 1, question: asked.question, attachment: spec })))
      .then(asked)
    const state = given(planned(plan), dispatched(1, "Read docs/spec.md"), asked)
      .when(report(new ClarificationProvided({ taskId: 1, answer: "https://example.com/spec.md" })))
      .then(
        new ClarificationReceived({ taskId: 1, answer: "https://example.com/spec.md", at: T0 }),
        dispatched(1, "Read docs/spec.md", 2, T0, {
          clarifications: [{ question: asked.question, attachment: spec, answer: "https://example.com/spec.md" }]
        })
      )
    expect(state.tasks[0]?.attachments).toEqual([{ kind: "Link", value: "https://example.com/spec.md" }])
  })

  it("an answer to a finished session is refused", () => {
    given(
      twoStepStarted,
      new TaskStatusUpdated({ taskId: 1, status: "Cancelled", attempt: 1, at: T0 }),
      new TaskStatusUpdated({ taskId: 2, status: "Cancelled", attempt: 0, at: T0 }),
      new PlanningCompleted({ outcome: "Cancelled", summary: "", at: T0 })
    )
      .when(report(new ClarificationProvided({ taskId: 1, answer: "too late" })))
      .thenFails(new SessionFinished({ outcome: "Cancelled" }))
  })
})

describe("workers and leases", () => {
  const claimed = new TaskClaimed({
    taskId: 1,
    attempt: 1,
    workerId: "w1",
    leaseExpiresAt: T0 + 1 + 60_000,
    at: T0 + 1
  })

  it("a worker claims a dispatched attempt under a lease", () => {
    given(twoStepStarted)
      .when(new ClaimTask({ taskId: 1, attempt: 1, workerId: "w1", at: T0 + 1 }))
      .then(claimed)
  })

  it("a new taker of the same attempt is accepted (its holder's lease in the queue ran out); the same worker claiming again is a no-op", () => {
    const state = given(twoStepStarted, claimed)
      .when(new ClaimTask({ taskId: 1, attempt: 1, workerId: "w2", at: T0 + 2 }))
      .then(new TaskClaimed({ taskId: 1, attempt: 1, workerId: "w2", leaseExpiresAt: T0 + 2 + 60_000, at: T0 + 2 }))
    expect(state.tasks[0]).toMatchObject({ status: "Running", attempt: 1, lease: { workerId: "w2" } })
    given(twoStepStarted, claimed)
      .when(new ClaimTask({ taskId: 1, attempt: 1, workerId: "w1", at: T0 + 2 }))
      .thenNothing()
  })

  it("a claim for an old attempt is stale", () => {
    given(
      twoStepStarted,
      new ClarificationRequested({ taskId: 1, question: "q", at: T0 }),
      new ClarificationReceived({ taskId: 1, answer: "a", at: T0 }),
      dispatched(1, "Write the code", 2)
    )
      .when(new ClaimTask({ taskId: 1, attempt: 1, workerId: "w1", at: T0 }))
      .thenFails(new StaleAttempt({ taskId: 1, attempt: 1, current: 2 }))
  })

  it("the holder extends its lease; another worker cannot", () => {
    given(twoStepStarted, claimed)
      .when(new ExtendLease({ taskId: 1, attempt: 1, workerId: "w1", at: T0 + 30_000 }))
      .then(
        new TaskLeaseExtended({ taskId: 1, attempt: 1, workerId: "w1", leaseExpiresAt: T0 + 90_000, at: T0 + 30_000 })
      )
    given(twoStepStarted, claimed)
      .when(new ExtendLease({ taskId: 1, attempt: 1, workerId: "w2", at: T0 + 30_000 }))
      .thenFails(new TaskAlreadyClaimed({ taskId: 1, workerId: "w1" }))
  })

  it("a released task is dispatched again without counting as a failure", () => {
    const state = given(twoStepStarted, claimed)
      .when(new ReleaseTask({ taskId: 1, attempt: 1, workerId: "w1", at: T0 + 5 }))
      .then(
        new TaskReleased({ taskId: 1, attempt: 1, workerId: "w1", at: T0 + 5 }),
        dispatched(1, "Write the code", 2, T0 + 5)
      )
    expect(state.tasks[0]?.failures).toBe(0)
  })

  it("a lease recorded in the log never fails an attempt by itself: leases are the task queue's", () => {
    given(twoStepStarted, claimed)
      .when(new Continue({ at: T0 + 70_000 }))
      .thenNothing()
  })

  it("the first outcome of an attempt wins: a late outcome of a former taker changes nothing or is refused", () => {
    const retaken = new TaskClaimed({ taskId: 1, attempt: 1, workerId: "w2", leaseExpiresAt: T0 + 60_002, at: T0 + 2 })
    // The former holder finishes first: accepted, whoever holds the task now.
    given(twoStepStarted, claimed, retaken)
      .when(report(new TaskCompleted({ taskId: 1, attempt: 1, result: "done by w1" }), T0 + 3))
      .then(completed(1, "done by w1", 1, T0 + 3), dispatched(2, "Write the tests", 1, T0 + 3))
    // The new taker's outcome afterwards: the same result is a repeat, another result is refused.
    given(twoStepStarted, claimed, retaken, completed(1, "done", 1, T0 + 3))
      .when(report(new TaskCompleted({ taskId: 1, attempt: 1, result: "done" }), T0 + 4))
      .thenNothing()
    given(twoStepStarted, claimed, retaken, completed(1, "done", 1, T0 + 3))
      .when(report(new TaskCompleted({ taskId: 1, attempt: 1, result: "other" }), T0 + 4))
      .thenFails(new InvalidTransition({ taskId: 1, status: "Completed", action: "complete" }))
  })

  it("a task held by a worker known to be gone is retried at once", () => {
    given(twoStepStarted, claimed)
      .when(
        new AbandonTask({
          taskId: 1,
          attempt: 1,
          workerId: "w1",
          reason: "worker w1's process 123 is gone",
          at: T0 + 10
        })
      )
      .then(
        new TaskRetryScheduled({
          taskId: 1,
          attempt: 1,
          error: "worker w1's process 123 is gone",
          retryAt: T0 + 1_010,
          at: T0 + 10
        }),
        dispatched(1, "Write the code", 2, T0 + 10, { runAt: T0 + 1_010 })
      )
    // Abandoning what already moved on changes nothing.
    given(twoStepStarted, claimed, completed(1, "ok"), dispatched(2, "Write the tests"))
      .when(new AbandonTask({ taskId: 1, attempt: 1, workerId: "w1", reason: "gone", at: T0 + 10 }))
      .thenNothing()
  })

  it("claims on a finished session are refused", () => {
    given(
      planned(tasks(["a"])),
      dispatched(1, "a"),
      completed(1, "ok"),
      new PlanningCompleted({ outcome: "Succeeded", summary: "", at: T0 })
    )
      .when(new ClaimTask({ taskId: 1, attempt: 1, workerId: "w1", at: T0 }))
      .thenFails(new SessionFinished({ outcome: "Succeeded" }))
  })
})

describe("fork", () => {
  it("copies the source's events, records where they came from, and gives up the attempts running there", () => {
    const claimed = new TaskClaimed({ taskId: 1, attempt: 1, workerId: "w1", leaseExpiresAt: T0 + 60_000, at: T0 })
    const copied = [planned(twoStep, { maxAttempts: 3 }), dispatched(1, "Write the code"), claimed]
    const events = Planner.forkEvents(
      copied,
      { fromSessionId: "source", atSequence: 3, reason: "forked from source at 3" },
      T0 + 10,
      0.5
    )
    expect(events).toEqual([
      ...copied,
      new SessionForked({ fromSessionId: "source", atSequence: 3, at: T0 + 10 }),
      new TaskRetryScheduled({
        taskId: 1,
        attempt: 1,
        error: "forked from source at 3",
        retryAt: T0 + 10 + 1_000,
        jitter: 0.5,
        at: T0 + 10
      }),
      dispatched(1, "Write the code", 2, T0 + 10, { runAt: T0 + 1_010 })
    ])
    const state = Planner.fold(events)
    expect(state.forkedFrom).toEqual({ sessionId: "source", sequence: 3 })
    expect(state.tasks[0]).toMatchObject({ status: "Dispatched", attempt: 2, failures: 1 })
  })

  it("a plan records the executor it runs with", () => {
    const plan = tasks(["Summarise the report"])
    const state = given()
      .when(new Initialize({ request: "Summarise the report", tasks: plan, executor: "echo", at: T0 }))
      .then(
        new TasksPlanned({
          request: "Summarise the report",
          attachments: [],
          tasks: plan,
          config: defaultConfig,
          source: { _tag: "Parser" },
          executor: "echo",
          at: T0
        }),
        dispatched(1, "Summarise the report")
      )
    expect(state.executor).toBe("echo")
  })
})

describe("Continue", () => {
  it("is idempotent: with nothing ready it does nothing", () => {
    given(twoStepStarted)
      .when(new Continue({ at: T0 + 1 }))
      .thenNothing()
  })

  it("dispatches a retry an older log left waiting: at once, its job to run at the retry's time", () => {
    const retry = new TaskRetryScheduled({ taskId: 1, attempt: 1, error: "boom", retryAt: T0 + 1_000, at: T0 })
    given(twoStepStarted, retry)
      .when(new Continue({ at: T0 + 999 }))
      .then(dispatched(1, "Write the code", 2, T0 + 999, { runAt: T0 + 1_000 }))
    given(twoStepStarted, retry)
      .when(new Continue({ at: T0 + 1_000 }))
      .then(dispatched(1, "Write the code", 2, T0 + 1_000))
  })

  it("after completion does nothing, and never completes the plan again", () => {
    given(
      planned(tasks(["a"])),
      dispatched(1, "a"),
      completed(1, "ok"),
      new PlanningCompleted({ outcome: "Succeeded", summary: "1 of 1 tasks completed.", at: T0 })
    )
      .when(new Continue({ at: T0 + 1 }))
      .thenNothing()
  })

  it("fills free slots up to maxParallel as tasks finish", () => {
    const plan = tasks(["a", []], ["b", []], ["c", []])
    given(planned(plan, { maxParallel: 2 }), dispatched(1, "a"), dispatched(2, "b"))
      .when(report(new TaskCompleted({ taskId: 2, result: "b done" })))
      .then(completed(2, "b done"), dispatched(3, "c"))
  })
})

describe("CompactContext", () => {
  const history = [
    planned(tasks(["a"], ["b"], ["c"])),
    dispatched(1, "a"),
    completed(1, "A"),
    dispatched(2, "b"),
    completed(2, "B"),
    dispatched(3, "c")
  ]

  it("folds completed results into the summary without touching progress", () => {
    const state = given(history)
      .when(new CompactContext({ maxTokens: 100, summary: "A and B were done", removedTaskIds: [1, 2], at: T0 }))
      .then(new ContextCompacted({ summary: "A and B were done", removedTaskIds: [1, 2], tokenBudget: 100, at: T0 }))
    expect(state.contextSummary).toBe("A and B were done")
    expect(state.tasks.map((t) => [t.status, t.compacted])).toEqual([
      ["Completed", true],
      ["Completed", true],
      ["Dispatched", false]
    ])
  })

  it("refuses unknown tasks, unfinished tasks and tasks compacted before", () => {
    given(history)
      .when(new CompactContext({ maxTokens: 100, summary: "s", removedTaskIds: [9], at: T0 }))
      .thenFails(new UnknownTask({ taskId: 9 }))
    given(history)
      .when(new CompactContext({ maxTokens: 100, summary: "s", removedTaskIds: [3], at: T0 }))
      .thenFails(new InvalidCompaction({ reason: "task 3 is Dispatched and has no result to fold in yet" }))
    given(history, new ContextCompacted({ summary: "s", removedTaskIds: [1], tokenBudget: 100, at: T0 }))
      .when(new CompactContext({ maxTokens: 100, summary: "s2", removedTaskIds: [1], at: T0 }))
      .thenFails(new InvalidCompaction({ reason: "task 1 was already compacted" }))
  })

  it("is a no-op when it changes nothing", () => {
    given(history, new ContextCompacted({ summary: "s", removedTaskIds: [1], tokenBudget: 100, at: T0 }))
      .when(new CompactContext({ maxTokens: 100, summary: "s", removedTaskIds: [], at: T0 }))
      .thenNothing()
  })
})

describe("Cancel", () => {
  it("cancels every unfinished task and ends the plan", () => {
    given(twoStepStarted)
      .when(new Cancel({ reason: "changed my mind", at: T0 + 4 }))
      .then(
        new TaskStatusUpdated({ taskId: 1, status: "Cancelled", attempt: 1, error: "changed my mind", at: T0 + 4 }),
        new TaskStatusUpdated({ taskId: 2, status: "Cancelled", attempt: 0, error: "changed my mind", at: T0 + 4 }),
        new PlanningCompleted({
          outcome: "Cancelled",
          summary: "0 of 2 tasks completed; 2 cancelled. Changed my mind.",
          at: T0 + 4
        })
      )
  })

  it("a second cancel is a no-op; cancelling a finished plan is refused", () => {
    const cancelled = [
      ...twoStepStarted,
      new TaskStatusUpdated({ taskId: 1, status: "Cancelled", attempt: 1, at: T0 }),
      new TaskStatusUpdated({ taskId: 2, status: "Cancelled", attempt: 0, at: T0 }),
      new PlanningCompleted({ outcome: "Cancelled", summary: "", at: T0 })
    ]
    given(cancelled)
      .when(new Cancel({ at: T0 }))
      .thenNothing()
    given(
      planned(tasks(["a"])),
      dispatched(1, "a"),
      completed(1, "ok"),
      new PlanningCompleted({ outcome: "Succeeded", summary: "", at: T0 })
    )
      .when(new Cancel({ at: T0 }))
      .thenFails(new SessionFinished({ outcome: "Succeeded" }))
  })
})
