/** The person executor: a step becomes a question for a person, and the answer is its result. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { TaskContext } from "../../src/infra/Executor.js"
import * as PersonExecutor from "../../src/infra/PersonExecutor.js"

const context = (clarifications: TaskContext["clarifications"]): TaskContext => ({
  sessionId: "s",
  taskId: 1,
  kind: "Processing",
  description: "Check the logs",
  attachments: [],
  attempt: clarifications.length + 1,
  clarifications,
  request: "Check the logs",
  requestAttachments: [],
  contextSummary: "",
  dependencyResults: [],
  idempotencyKey: "s/1/1",
  workingDirectory: "."
})

const question = "Do this step and report the result: Check the logs"

describe("PersonExecutor", () => {
  it.effect("asks a person to do the step first", () =>
    Effect.gen(function* () {
      const outcome = yield* PersonExecutor.make().execute(context([]))
      expect(outcome).toEqual(PersonExecutor.decide(context([])))
      expect(outcome._tag === "NeedsClarification" && outcome.question).toBe(question)
    })
  )

  it("takes the answer to its own question as the result", () => {
    const outcome = PersonExecutor.decide(context([{ question, answer: "  no errors since Monday " }]))
    expect(outcome._tag === "Completed" && outcome.result).toBe("no errors since Monday")
  })

  it("records a failure, not to be retried, for an answer that starts with failed:", () => {
    const outcome = PersonExecutor.decide(context([{ question, answer: "Failed: the logs are gone" }]))
    expect(outcome).toMatchObject({ _tag: "Failed", error: "the logs are gone", retryable: false })
  })

  it("asks again when the latest answer was to another question (an attachment, a shell approval)", () => {
    const outcome = PersonExecutor.decide(
      context([
        { question, answer: "done" },
        { question: "The file notes.md cannot be read: give another path.", answer: "notes2.md" }
      ])
    )
    expect(outcome._tag).toBe("NeedsClarification")
  })
})
