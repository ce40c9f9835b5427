/**
 * The budget question is the planner's, not the step's: once answered, a later attempt of the task is not shown it
 * (the LLM executor would put it in its prompt), while a question the step itself asked still is. Both stay in the
 * task's history.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Worker from "../../src/app/Worker.js"
import * as Budget from "../../src/domain/Budget.js"
import type { PlannerCommand } from "../../src/domain/Commands.js"
import {
  ClaimTask,
  ClarificationProvided,
  HandleExecutorEvent,
  Initialize,
  NeedsClarification
} from "../../src/domain/Commands.js"
import { defaultConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"

const at = 1_700_000_000_000

const after = (commands: ReadonlyArray<PlannerCommand>) =>
  commands.reduce(
    (state, command) => Either.getOrThrow(Planner.decideAndEvolve(state, command)).state,
    Planner.initialState
  )

describe("the budget question in a task's context", () => {
  it("is left out of what the executor sees; the step's own question is not", () => {
    const state = after([
      new Initialize({
        request: "Draft the announcement",
        tasks: [{ id: 1, description: "Draft the announcement", kind: "Processing", dependsOn: [], attachments: [] }],
        config: { ...defaultConfig, budgetTokens: 1_000 },
        at
      }),
      new ClaimTask({ taskId: 1, attempt: 1, workerId: "w", at }),
      new HandleExecutorEvent({
        event: new NeedsClarification({ taskId: 1, attempt: 1, question: "over", budget: { tokens: 2_000 } }),
        at
      }),
      new HandleExecutorEvent({ event: new ClarificationProvided({ taskId: 1, answer: "yes 5000" }), at }),
      new ClaimTask({ taskId: 1, attempt: 2, workerId: "w", at }),
      new HandleExecutorEvent({
        event: new NeedsClarification({ taskId: 1, attempt: 2, question: "Which audience?" }),
        at
      }),
      new HandleExecutorEvent({ event: new ClarificationProvided({ taskId: 1, answer: "customers" }), at })
    ])
    const task = Planner.task(state, 1)
    if (task === undefined) throw new Error("no task 1")
    expect(task.clarifications.map((clarification) => Budget.isBudgetQuestion(clarification.question))).toEqual([
      true,
      false
    ])
    const context = Worker.taskContext(state, task, "s", "/tmp")
    expect(context.clarifications).toEqual([{ question: "Which audience?", answer: "customers" }])
  })
})
