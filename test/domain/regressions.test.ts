/**
 * One test for each defect of the reference implementation's planner (../shared/notes/reference-pitfalls.md,
 * "The planner"), so none of them can come back. Parser defects (7, 8) are covered in Parser.test.ts; store defects
 * in the event store's contract suite.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import {
  ClarificationProvided,
  CompactContext,
  Continue,
  HandleExecutorEvent,
  Initialize,
  NeedsClarification,
  type PlannerCommand,
  TaskCompleted
} from "../../src/domain/Commands.js"
import { decodeEvent, encodeEvent, eventTypes, type PlannerEvent } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import { tasks } from "../support/DeciderSpec.js"

const T0 = 1_700_000_000_000
const report = (event: HandleExecutorEvent["event"], at = T0) => new HandleExecutorEvent({ event, at })

/** Runs commands like a live runner, checking after each that replaying the log gives the live state. */
const live = (commands: ReadonlyArray<PlannerCommand>) => {
  const log: Array<PlannerEvent> = []
  let state = Planner.initialState
  for (const command of commands) {
    const events = Either.getOrThrow(Planner.decideEither(state, command))
    for (const event of events) state = Planner.evolve(state, event)
    log.push(...events)
    expect(Planner.fold(log)).toEqual(state)
  }
  return { log, state }
}

describe("regressions from the reference implementation", () => {
  it("1. a clarification answer re-dispatches the task instead of stalling", () => {
    const { log, state } = live([
      new Initialize({ request: "x", tasks: tasks(["Set the cookie expiry"], ["Write tests"]), at: T0 }),
      report(new NeedsClarification({ taskId: 1, question: "How long should cookies live?" })),
      report(new ClarificationProvided({ taskId: 1, answer: "24 hours" }))
    ])
    const redispatch = log.at(-1)
    expect(redispatch?._tag).toBe("TaskDispatched")
    if (redispatch?._tag !== "TaskDispatched") return
    expect(redispatch.taskId).toBe(1)
    expect(redispatch.attempt).toBe(2)
    expect(redispatch.clarifications).toEqual([{ question: "How long should cookies live?", answer: "24 hours" }])
    expect(state.tasks[0]?.status).toBe("Dispatched")
    // And the plan can go on to the end.
    const after = live([
      new Initialize({ request: "x", tasks: tasks(["Set the cookie expiry"], ["Write tests"]), at: T0 }),
      report(new NeedsClarification({ taskId: 1, question: "How long?" })),
      report(new ClarificationProvided({ taskId: 1, answer: "24 hours" })),
      report(new TaskCompleted({ taskId: 1, result: "set" })),
      report(new TaskCompleted({ taskId: 2, result: "tested" }))
    ])
    expect(after.state.status).toBe("Succeeded")
  })

  it("2. replaying the log after a clarification gives the live state at every point", () => {
    // `live` asserts fold(log) == live state after every command.
    live([
      new Initialize({ request: "x", tasks: tasks(["a", []], ["b", []], ["c", [1, 2]]), at: T0 }),
      report(new NeedsClarification({ taskId: 2, question: "Which one?" })),
      report(new TaskCompleted({ taskId: 1, result: "A" })),
      report(new ClarificationProvided({ taskId: 2, answer: "the first" })),
      report(new TaskCompleted({ taskId: 2, result: "B" })),
      report(new TaskCompleted({ taskId: 3, result: "C" }))
    ])
  })

  it("3. compaction never stops the last task from being dispatched", () => {
    const { state } = live([
      new Initialize({ request: "x", tasks: tasks(["a"], ["b"], ["c"]), at: T0 }),
      report(new TaskCompleted({ taskId: 1, result: "A" })),
      report(new TaskCompleted({ taskId: 2, result: "B" })),
      new CompactContext({ maxTokens: 50, summary: "A, B", removedTaskIds: [1, 2], at: T0 })
    ])
    expect(state.tasks[2]?.status).toBe("Dispatched")
    const done = Either.getOrThrow(Planner.decideEither(state, report(new TaskCompleted({ taskId: 3, result: "C" }))))
    expect(done.map((event) => event._tag)).toEqual(["TaskStatusUpdated", "PlanningCompleted"])
  })

  it("4. Continue after completion emits nothing, so PlanningCompleted happens once", () => {
    const { log, state } = live([
      new Initialize({ request: "x", tasks: tasks(["a"]), at: T0 }),
      report(new TaskCompleted({ taskId: 1, result: "A" })),
      new Continue({ at: T0 + 1 }),
      new Continue({ at: T0 + 2 })
    ])
    expect(state.status).toBe("Succeeded")
    expect(log.filter((event) => event._tag === "PlanningCompleted")).toHaveLength(1)
  })

  it("5. every event variant is stored under its own type name", () => {
    const { log } = live([
      new Initialize({ request: "x", tasks: tasks(["a"]), at: T0 }),
      report(new TaskCompleted({ taskId: 1, result: "A" }))
    ])
    const types = log.map((event) => encodeEvent(event).type)
    expect(types).toEqual(["TasksPlanned", "TaskDispatched", "TaskStatusUpdated", "PlanningCompleted"])
    expect(new Set(eventTypes).size).toBe(eventTypes.length)
    expect(eventTypes).not.toContain("PlannerEvent")
    // A reader filtering on PlanningCompleted finds it.
    const completed = log.map(encodeEvent).filter((stored) => stored.type === "PlanningCompleted")
    expect(completed).toHaveLength(1)
    const decoded = completed[0] && decodeEvent(completed[0].type, completed[0].version, completed[0].data)
    expect(decoded && Either.isRight(decoded)).toBe(true)
  })

  it("6. the plan an LLM produced is what gets recorded, not a re-parse of the raw text", () => {
    const llmPlan = tasks(["Read the spec", []], ["Implement login", [1]], ["Write tests", [2]])
    const { log } = live([
      new Initialize({
        request: "raw text that the parser would split differently",
        tasks: llmPlan,
        source: { _tag: "Llm", model: "m" },
        at: T0
      })
    ])
    const planned = log[0]
    expect(planned?._tag).toBe("TasksPlanned")
    if (planned?._tag !== "TasksPlanned") return
    expect(planned.tasks).toEqual(llmPlan)
    expect(planned.source).toEqual({ _tag: "Llm", model: "m" })
  })
})
