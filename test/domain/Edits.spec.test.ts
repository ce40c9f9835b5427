/**
 * Plan edits and incremental forks, one transition per test: given the events so far, when an edit (or a fork)
 * arrives, then exactly these events, or this refusal. Every accepted decision is also replayed (see `given`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import {
  Cancel,
  EditPlan,
  ForkSession,
  HandleExecutorEvent,
  Initialize,
  type PlannerCommand,
  ReviseAfterFailure,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import * as Edits from "../../src/domain/Edits.js"
import {
  EditCreatesCycle,
  InvalidEdit,
  SessionAlreadyStarted,
  SessionFinished,
  SessionNotStarted,
  TaskHasDependents,
  TaskNotEditable,
  UnknownTask
} from "../../src/domain/Errors.js"
import {
  ClarificationReceived,
  ClarificationRequested,
  PlanEdited,
  type PlannerEvent,
  PlanningCompleted,
  SessionForked,
  TaskClaimed,
  TaskDispatched,
  TaskStatusUpdated,
  TasksPlanned
} from "../../src/domain/Events.js"
import { AddTask, type PlanEdit, RemoveTask, SetAnswer, SetDependencies, SetTask } from "../../src/domain/PlanEdit.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { given, tasks } from "../support/DeciderSpec.js"

const T0 = 1_700_000_000_000
const T1 = T0 + 1_000
const config = (overrides: Partial<PlannerConfig> = {}): PlannerConfig => ({ ...defaultConfig, ...overrides })

const planned = (plan: ReadonlyArray<TaskPlan>, overrides: Partial<PlannerConfig> = {}) =>
  new TasksPlanned({
    request: "a request",
    attachments: [],
    tasks: plan,
    config: config(overrides),
    source: { _tag: "Parser" },
    at: T0
  })

const dispatched = (taskId: number, description: string, attempt = 1, at = T0) =>
  new TaskDispatched({ taskId, attempt, kind: "Processing", description, clarifications: [], at })

const completed = (taskId: number, result: string, attempt = 1, at = T0) =>
  new TaskStatusUpdated({ taskId, status: "Completed", attempt, result, at })

const user = { _tag: "User" } as const

/** The log of `commands` decided in turn. */
const logOf = (commands: ReadonlyArray<PlannerCommand>): ReadonlyArray<PlannerEvent> => {
  const log: Array<PlannerEvent> = []
  for (const command of commands) log.push(...Either.getOrThrow(Planner.decideEither(Planner.fold(log), command)))
  return log
}
const edit = (...edits: ReadonlyArray<PlanEdit>) => new EditPlan({ edits, at: T1 })
const edited = (...edits: ReadonlyArray<PlanEdit>) => new PlanEdited({ edits, source: user, at: T1 })

/** Code (1), then tests (2) after it, then docs (3) after the tests: task 1 dispatched. */
const chain = tasks(["Write the code"], ["Write the tests"], ["Write the docs"])
const chainStarted = [planned(chain), dispatched(1, "Write the code")]

describe("EditPlan: add a task", () => {
  it("appends the task with the next id and dispatches it when it is ready", () => {
    const state = given(chainStarted)
      .when(edit(AddTask.make({ description: "Lint the code" })))
      .then(
        edited(
          AddTask.make({ id: 4, description: "Lint the code", kind: "Processing", dependsOn: [], dependents: [] })
        ),
        new TaskDispatched({
          taskId: 4,
          attempt: 1,
          kind: "Processing",
          description: "Lint the code",
          clarifications: [],
          at: T1
        })
      )
    expect(state.tasks.map((t) => t.id)).toEqual([1, 2, 3, 4])
    expect(Planner.task(state, 4)?.status).toBe("Dispatched")
  })

  it("keeps a task added after an unfinished one planned, and makes dependents wait for it", () => {
    const state = given(chainStarted)
      .when(edit(AddTask.make({ description: "Review the code", dependsOn: [1], dependents: [2] })))
      .then(edited(AddTask.make({ id: 4, description: "Review the code", dependsOn: [1], dependents: [2] })))
    expect(Planner.task(state, 4)?.status).toBe("Planned")
    expect(Planner.task(state, 2)?.dependsOn).toEqual([1, 4])
    expect(state.index.dependents[3]).toEqual([2])
  })

  it("lets later edits of the same batch name the added task", () => {
    const state = given(chainStarted)
      .when(
        edit(
          AddTask.make({ id: 4, description: "Review the code", dependsOn: [1] }),
          SetDependencies.make({ taskId: 3, dependsOn: [2, 4] })
        )
      )
      .then(
        edited(
          AddTask.make({ id: 4, description: "Review the code", dependsOn: [1] }),
          SetDependencies.make({ taskId: 3, dependsOn: [2, 4] })
        )
      )
    expect(Planner.task(state, 3)?.dependsOn).toEqual([2, 4])
  })

  it("refuses an id that is not the next one", () => {
    given(chainStarted)
      .when(edit(AddTask.make({ id: 7, description: "Lint" })))
      .thenFails(new InvalidEdit({ reason: "a new task takes the next id, 4, not 7" }))
  })

  it("refuses a dependency on a task that does not exist", () => {
    given(chainStarted)
      .when(edit(AddTask.make({ description: "Lint", dependsOn: [9] })))
      .thenFails(new UnknownTask({ taskId: 9 }))
  })

  it("refuses a dependency on a task that failed and will never complete", () => {
    given(
      planned(tasks(["Fetch"], ["Publish", []]), { maxAttempts: 1 }),
      dispatched(1, "Fetch"),
      new TaskDispatched({
        taskId: 2,
        attempt: 1,
        kind: "Processing",
        description: "Publish",
        clarifications: [],
        at: T0
      }),
      new TaskStatusUpdated({ taskId: 1, status: "Failed", attempt: 1, error: "boom", at: T0 })
    )
      .when(edit(AddTask.make({ description: "Report", dependsOn: [1] })))
      .thenFails(new InvalidEdit({ reason: "task 3 cannot depend on task 1: it is Failed and will never complete" }))
  })

  it("refuses making a started task wait for the new one", () => {
    given(chainStarted)
      .when(edit(AddTask.make({ description: "Prepare", dependents: [1] })))
      .thenFails(new TaskNotEditable({ taskId: 1, status: "Dispatched" }))
  })
})

describe("EditPlan: change a task", () => {
  it("changes the description and kind of a task that has not started", () => {
    const state = given(chainStarted)
      .when(edit(SetTask.make({ taskId: 2, description: "Write property tests", kind: "UnitTest" })))
      .then(edited(SetTask.make({ taskId: 2, description: "Write property tests", kind: "UnitTest" })))
    expect(Planner.task(state, 2)).toMatchObject({ description: "Write property tests", kind: "UnitTest" })
  })

  it("refuses a dispatched task", () => {
    given(chainStarted)
      .when(edit(SetTask.make({ taskId: 1, description: "Write less code" })))
      .thenFails(new TaskNotEditable({ taskId: 1, status: "Dispatched" }))
  })

  it("refuses a running task", () => {
    given(chainStarted, new TaskClaimed({ taskId: 1, attempt: 1, workerId: "w", leaseExpiresAt: T0 + 60_000, at: T0 }))
      .when(edit(SetTask.make({ taskId: 1, description: "Write less code" })))
      .thenFails(new TaskNotEditable({ taskId: 1, status: "Running" }))
  })

  it("refuses a finished task", () => {
    given(chainStarted, completed(1, "done"), dispatched(2, "Write the tests"))
      .when(edit(SetTask.make({ taskId: 1, description: "Write less code" })))
      .thenFails(new TaskNotEditable({ taskId: 1, status: "Completed" }))
  })

  it("refuses an unknown task", () => {
    given(chainStarted)
      .when(edit(SetTask.make({ taskId: 8, description: "Anything" })))
      .thenFails(new UnknownTask({ taskId: 8 }))
  })

  it("refuses a change that names nothing to change", () => {
    given(chainStarted)
      .when(edit(SetTask.make({ taskId: 2 })))
      .thenFails(new InvalidEdit({ reason: "the change of task 2 names nothing to change" }))
  })
})

describe("EditPlan: remove a task", () => {
  it("takes a task nobody depends on out of the plan; it keeps its id, cancelled and marked removed", () => {
    const state = given(chainStarted)
      .when(edit(RemoveTask.make({ taskId: 3 })))
      .then(edited(RemoveTask.make({ taskId: 3, rewire: false })))
    expect(Planner.task(state, 3)).toMatchObject({ status: "Cancelled", removed: true, error: Edits.removedNote })
  })

  it("with rewire, hands its dependencies to the tasks that depended on it", () => {
    const state = given(chainStarted)
      .when(edit(RemoveTask.make({ taskId: 2, rewire: true })))
      .then(edited(RemoveTask.make({ taskId: 2, rewire: true })))
    expect(Planner.task(state, 3)?.dependsOn).toEqual([1])
    expect(state.index.dependents[0]).toContain(3)
  })

  it("refuses a task others depend on unless they are handled", () => {
    given(chainStarted)
      .when(edit(RemoveTask.make({ taskId: 2 })))
      .thenFails(new TaskHasDependents({ taskId: 2, dependents: [3] }))
  })

  it("accepts it when the same batch changes the dependents", () => {
    const state = given(chainStarted)
      .when(edit(RemoveTask.make({ taskId: 2 }), SetDependencies.make({ taskId: 3, dependsOn: [1] })))
      .then(edited(RemoveTask.make({ taskId: 2 }), SetDependencies.make({ taskId: 3, dependsOn: [1] })))
    expect(Planner.task(state, 3)?.dependsOn).toEqual([1])
  })

  it("refuses a task that has started", () => {
    given(chainStarted)
      .when(edit(RemoveTask.make({ taskId: 1, rewire: true })))
      .thenFails(new TaskNotEditable({ taskId: 1, status: "Dispatched" }))
  })

  it("refuses a task removed already", () => {
    given(chainStarted, edited(RemoveTask.make({ taskId: 3 })))
      .when(edit(RemoveTask.make({ taskId: 3 })))
      .thenFails(new InvalidEdit({ reason: "task 3 was removed from the plan" }))
  })

  it("ends the plan when what it removes was all that was left", () => {
    given(chainStarted, completed(1, "code"), dispatched(2, "Write the tests"), completed(2, "tests"))
      .when(edit(RemoveTask.make({ taskId: 3 })))
      .then(
        edited(RemoveTask.make({ taskId: 3 })),
        new PlanningCompleted({ outcome: "Succeeded", summary: "2 of 3 tasks completed; 1 cancelled.", at: T1 })
      )
  })
})

describe("EditPlan: change dependencies", () => {
  it("replaces a planned task's dependencies and dispatches it when they are all completed", () => {
    given(chainStarted, completed(1, "code"), dispatched(2, "Write the tests"))
      .when(edit(SetDependencies.make({ taskId: 3, dependsOn: [1] })))
      .then(
        edited(SetDependencies.make({ taskId: 3, dependsOn: [1] })),
        new TaskDispatched({
          taskId: 3,
          attempt: 1,
          kind: "Processing",
          description: "Write the docs",
          clarifications: [],
          at: T1
        })
      )
  })

  it("refuses a cycle", () => {
    given(planned(tasks(["A", []], ["B"], ["C"]), { maxParallel: 1 }), dispatched(1, "A"))
      .when(edit(AddTask.make({ description: "D", dependsOn: [3], dependents: [2] })))
      .thenFails(new EditCreatesCycle({ cycle: [2, 4, 3, 2] }))
  })

  it("refuses a task depending on itself, or on a task twice", () => {
    given(chainStarted)
      .when(edit(SetDependencies.make({ taskId: 3, dependsOn: [3] })))
      .thenFails(new InvalidEdit({ reason: "task 3 cannot depend on itself" }))
    given(chainStarted)
      .when(edit(SetDependencies.make({ taskId: 3, dependsOn: [1, 1] })))
      .thenFails(new InvalidEdit({ reason: "task 3 lists task 1 twice" }))
  })

  it("refuses a dependency on a removed task", () => {
    given(chainStarted, edited(RemoveTask.make({ taskId: 3 })))
      .when(edit(SetDependencies.make({ taskId: 2, dependsOn: [3] })))
      .thenFails(new InvalidEdit({ reason: "task 2 cannot depend on task 3: it was removed" }))
  })
})

describe("EditPlan: a different answer", () => {
  // Task 2 asked and was answered, and waits for a free slot (one at a time, task 3 runs).
  const answeredWaiting = [
    planned(tasks(["Fetch", []], ["Load", []], ["Other", []]), { maxParallel: 1 }),
    dispatched(1, "Fetch"),
    completed(1, "fetched"),
    dispatched(2, "Load"),
    new ClarificationRequested({ taskId: 2, question: "Which table?", at: T0 }),
    new ClarificationReceived({ taskId: 2, answer: "users", at: T0 }),
    dispatched(3, "Other")
  ]

  it("replaces the last answer of a task that has not started again", () => {
    const state = given(answeredWaiting)
      .when(edit(SetAnswer.make({ taskId: 2, answer: "accounts" })))
      .then(edited(SetAnswer.make({ taskId: 2, answer: "accounts", index: 0 })))
    expect(Planner.task(state, 2)?.clarifications).toEqual([{ question: "Which table?", answer: "accounts" }])
  })

  it("refuses a task with no answered question", () => {
    given(chainStarted)
      .when(edit(SetAnswer.make({ taskId: 2, answer: "yes" })))
      .thenFails(new InvalidEdit({ reason: "task 2 has no answered question to change" }))
  })

  it("refuses a question number that was never answered", () => {
    given(answeredWaiting)
      .when(edit(SetAnswer.make({ taskId: 2, answer: "x", index: 3 })))
      .thenFails(new InvalidEdit({ reason: "task 2 has no answered question number 4" }))
  })
})

describe("EditPlan: the batch and the session", () => {
  it("is all or nothing: one refused edit refuses the batch", () => {
    given(chainStarted)
      .when(edit(SetTask.make({ taskId: 2, description: "ok" }), SetTask.make({ taskId: 1, description: "no" })))
      .thenFails(new TaskNotEditable({ taskId: 1, status: "Dispatched" }))
  })

  it("refuses an empty batch", () => {
    given(chainStarted)
      .when(edit())
      .thenFails(new InvalidEdit({ reason: "there are no edits" }))
  })

  it("refuses a session that has not started, or has finished", () => {
    given()
      .when(edit(AddTask.make({ description: "x" })))
      .thenFails(new SessionNotStarted())
    given(chainStarted, ...Either.getOrThrow(Planner.decideEither(Planner.fold(chainStarted), new Cancel({ at: T0 }))))
      .when(edit(AddTask.make({ description: "x" })))
      .thenFails(new SessionFinished({ outcome: "Cancelled" }))
  })

  it("records who edited: a replan names its reason and task", () => {
    const source = { _tag: "Replan", reason: "task 1 failed: boom", taskId: 1, model: "m" } as const
    given(chainStarted)
      .when(new EditPlan({ edits: [SetTask.make({ taskId: 3, description: "Docs" })], source, at: T1 }))
      .then(new PlanEdited({ edits: [SetTask.make({ taskId: 3, description: "Docs" })], source, at: T1 }))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Incremental fork
// ---------------------------------------------------------------------------------------------------------------

/** A diamond run to the end: 1 -> (2, 3) -> 4, every task completed. */
const diamond = tasks(["Root", []], ["Left", [1]], ["Right", [1]], ["Join", [2, 3]])
const diamondDone: ReadonlyArray<PlannerEvent> = [
  planned(diamond, { maxParallel: 4 }),
  dispatched(1, "Root"),
  completed(1, "r"),
  dispatched(2, "Left"),
  dispatched(3, "Right"),
  completed(2, "l"),
  completed(3, "rt"),
  dispatched(4, "Join"),
  completed(4, "j"),
  new PlanningCompleted({ outcome: "Succeeded", summary: "4 of 4 tasks completed.", at: T0 })
]

const fork = (source: ReadonlyArray<PlannerEvent>, options: Partial<ForkSession> = {}) =>
  new ForkSession({
    fromSessionId: "source",
    atSequence: source.length,
    sourceEvents: source,
    at: T1,
    ...options
  })

const forkedPlan = (source: ReadonlyArray<PlannerEvent>) => new TasksPlanned({ ...(source[0] as TasksPlanned), at: T1 })

describe("ForkSession", () => {
  it("with no edit reuses every completed task, runs none again, and ends at once", () => {
    const state = given()
      .when(fork(diamondDone))
      .then(
        forkedPlan(diamondDone),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 10,
          reused: [
            { taskId: 1, result: "r", attempt: 1, sequence: 3 },
            { taskId: 2, result: "l", attempt: 1, sequence: 6 },
            { taskId: 3, result: "rt", attempt: 1, sequence: 7 },
            { taskId: 4, result: "j", attempt: 1, sequence: 9 }
          ],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new PlanningCompleted({ outcome: "Succeeded", summary: "4 of 4 tasks completed.", at: T1 })
      )
    expect(state.forkedFrom).toEqual({ sessionId: "source", sequence: 10 })
  })

  it("with an edited task runs it and what is downstream again, and reuses the rest", () => {
    given()
      .when(fork(diamondDone, { edits: [SetTask.make({ taskId: 2, description: "Left, better" })] }))
      .then(
        forkedPlan(diamondDone),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 10,
          reused: [
            { taskId: 1, result: "r", attempt: 1, sequence: 3 },
            { taskId: 3, result: "rt", attempt: 1, sequence: 7 }
          ],
          removed: [],
          clarifications: [],
          at: T1
        }),
        edited(SetTask.make({ taskId: 2, description: "Left, better" })),
        new TaskDispatched({
          taskId: 2,
          attempt: 1,
          kind: "Processing",
          description: "Left, better",
          clarifications: [],
          at: T1
        })
      )
  })

  it("re-runs a task marked to re-run and what depends on it (planner rerun)", () => {
    const state = given()
      .when(fork(diamondDone, { rerun: [3] }))
      .then(
        forkedPlan(diamondDone),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 10,
          reused: [
            { taskId: 1, result: "r", attempt: 1, sequence: 3 },
            { taskId: 2, result: "l", attempt: 1, sequence: 6 }
          ],
          removed: [],
          clarifications: [],
          at: T1
        }),
        new TaskDispatched({
          taskId: 3,
          attempt: 1,
          kind: "Processing",
          description: "Right",
          clarifications: [],
          at: T1
        })
      )
    expect(Planner.task(state, 4)?.status).toBe("Planned")
  })

  it("at an earlier event runs what had not completed there", () => {
    const at = diamondDone.slice(0, 6) // 1 and 2 done, 3 dispatched
    const plan = Either.getOrThrow(
      Edits.planFork(Planner.fold(at), at, {
        fromSessionId: "source",
        atSequence: 6,
        edits: [],
        editSource: user,
        rerun: [],
        at: T1
      })
    )
    expect({ reused: plan.reused, rerun: plan.rerun, run: plan.run }).toEqual({
      reused: [1, 2],
      rerun: [],
      run: [3, 4]
    })
  })

  it("with a different answer re-runs the Clarification task with it as its result, and what depends on it", () => {
    const asked = tasks(["Which database?", [], "Clarification"], ["Design the schema", [1]], ["Unrelated", []])
    const source: ReadonlyArray<PlannerEvent> = [
      planned(asked, { maxParallel: 4 }),
      new ClarificationRequested({ taskId: 1, question: "Which database?", at: T0 }),
      dispatched(3, "Unrelated"),
      new ClarificationReceived({ taskId: 1, answer: "MySQL", at: T0 }),
      new TaskStatusUpdated({ taskId: 1, status: "Completed", attempt: 0, result: "MySQL", at: T0 }),
      dispatched(2, "Design the schema"),
      completed(2, "schema for MySQL"),
      completed(3, "done")
    ]
    const state = given()
      .when(fork(source, { edits: [SetAnswer.make({ taskId: 1, answer: "PostgreSQL" })] }))
      .then(
        forkedPlan(source),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 8,
          reused: [{ taskId: 3, result: "done", attempt: 1, sequence: 8 }],
          removed: [],
          clarifications: [{ taskId: 1, clarifications: [{ question: "Which database?", answer: "MySQL" }] }],
          at: T1
        }),
        edited(SetAnswer.make({ taskId: 1, answer: "PostgreSQL", index: 0 })),
        new TaskStatusUpdated({ taskId: 1, status: "Completed", attempt: 0, result: "PostgreSQL", at: T1 }),
        new TaskDispatched({
          taskId: 2,
          attempt: 1,
          kind: "Processing",
          description: "Design the schema",
          clarifications: [],
          at: T1
        })
      )
    expect(Planner.task(state, 1)?.result).toBe("PostgreSQL")
  })

  it("keeps tasks the source removed out of the plan", () => {
    const source = [...chainStarted, edited(RemoveTask.make({ taskId: 3 }))]
    const state = given()
      .when(fork(source))
      .then(
        forkedPlan(source),
        new SessionForked({
          fromSessionId: "source",
          atSequence: 3,
          reused: [],
          removed: [3],
          clarifications: [],
          at: T1
        }),
        new TaskDispatched({
          taskId: 1,
          attempt: 1,
          kind: "Processing",
          description: "Write the code",
          clarifications: [],
          at: T1
        })
      )
    expect(Planner.task(state, 3)?.removed).toBe(true)
  })

  it("leaves out the tasks a revised plan replaced, and reuses their replacements", () => {
    const replanned = logOf([
      new Initialize({
        request: "fetch, convert, report",
        tasks: tasks(["Fetch"], ["Convert with tool A"], ["Report"]),
        config: config({ onFailure: "replan", maxReplans: 1, maxAttempts: 1 }),
        at: T0
      }),
      new HandleExecutorEvent({ event: new TaskCompleted({ taskId: 1, result: "rows" }), at: T0 }),
      new HandleExecutorEvent({
        event: new TaskFailed({ taskId: 2, error: "tool A crashed", retryable: false }),
        at: T0
      }),
      new ReviseAfterFailure({
        taskId: 2,
        tasks: [
          { id: 4, description: "Convert with tool B", kind: "Processing", dependsOn: [1], attachments: [] },
          { id: 5, description: "Report from tool B", kind: "Processing", dependsOn: [4], attachments: [] }
        ],
        source: { _tag: "Llm", model: "m" },
        at: T0
      }),
      new HandleExecutorEvent({ event: new TaskCompleted({ taskId: 4, result: "converted" }), at: T0 }),
      new HandleExecutorEvent({ event: new TaskCompleted({ taskId: 5, result: "reported" }), at: T0 })
    ])
    const state = given()
      .when(fork(replanned))
      .then(
        new TasksPlanned({
          ...(replanned[0] as TasksPlanned),
          tasks: Planner.fold(replanned).tasks.map(({ attachments, dependsOn, description, id, kind }) => ({
            id,
            description,
            kind,
            dependsOn,
            attachments
          })),
          at: T1
        }),
        new SessionForked({
          fromSessionId: "source",
          atSequence: replanned.length,
          reused: [
            { taskId: 1, result: "rows", attempt: 1, sequence: 3 },
            { taskId: 4, result: "converted", attempt: 1, sequence: replanned.length - 3 },
            { taskId: 5, result: "reported", attempt: 1, sequence: replanned.length - 1 }
          ],
          removed: [2, 3],
          clarifications: [],
          at: T1
        }),
        new PlanningCompleted({ outcome: "Succeeded", summary: "3 of 5 tasks completed; 2 cancelled.", at: T1 })
      )
    expect(state.tasks.map((t) => t.status)).toEqual(["Completed", "Cancelled", "Cancelled", "Completed", "Completed"])
  })

  it("refuses edits that break the plan, a session already started, and a source without a plan", () => {
    given()
      .when(fork(diamondDone, { edits: [SetDependencies.make({ taskId: 1, dependsOn: [4] })] }))
      .thenFails(new EditCreatesCycle({ cycle: [1, 4, 2, 1] }))
    given()
      .when(fork(diamondDone, { rerun: [9] }))
      .thenFails(new UnknownTask({ taskId: 9 }))
    given(chainStarted).when(fork(diamondDone)).thenFails(new SessionAlreadyStarted())
    given()
      .when(new ForkSession({ fromSessionId: "s", atSequence: 1, sourceEvents: [], at: T1 }))
      .thenFails(new SessionNotStarted())
  })
})
