/**
 * Plan files (`planner run --plan FILE`): what `planner plan --json` prints reads back as the same plan, hand-written
 * plans may leave out what the parser can fill in, and every malformed plan is refused with a one-line reason.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Parser from "../../src/domain/Parser.js"
import { parsePlanFile, toPlanFile } from "../../src/domain/PlanFile.js"

const reason = (text: string) => Either.flip(parsePlanFile(text, "plan.json")).pipe(Either.getOrThrow).reason

describe("PlanFile", () => {
  it("reads back what the parser planned, unchanged, with its request", () => {
    const request = "Enroll in the course, order a pizza, and then drive to https://campus.example.org/map."
    const tasks = Either.getOrThrow(Parser.parse(request))
    expect(Either.getOrThrow(parsePlanFile(toPlanFile(request, tasks), "plan.json"))).toEqual({ request, tasks })
  })

  it("fills in what a hand-written plan leaves out: kind, attachments, dependencies, request", () => {
    const plan = Either.getOrThrow(
      parsePlanFile(
        JSON.stringify({
          tasks: [
            { id: 1, description: "Run `npm test`" },
            { id: 2, description: "Read https://x.org/spec.pdf", dependsOn: [] },
            { id: 3, description: "Write the summary", kind: "Analysis", dependsOn: [1, 2] }
          ]
        }),
        "plan.json"
      )
    )
    expect(plan.request).toBe("Run `npm test`. Read https://x.org/spec.pdf. Write the summary")
    expect(plan.tasks).toEqual([
      { id: 1, description: "Run `npm test`", kind: "ToolCall", dependsOn: [], attachments: [] },
      {
        id: 2,
        description: "Read https://x.org/spec.pdf",
        kind: "Retrieval",
        dependsOn: [],
        attachments: [{ kind: "Link", value: "https://x.org/spec.pdf" }]
      },
      { id: 3, description: "Write the summary", kind: "Analysis", dependsOn: [1, 2], attachments: [] }
    ])
  })

  it("refuses malformed plans with the reason, and the message says what to do", () => {
    expect(reason("{ tasks: [")).toMatch(/^it is not JSON \(/)
    expect(reason("[]")).toMatch(/Expected/)
    expect(reason(JSON.stringify({ tasks: [] }))).toBe("it has no tasks")
    expect(reason(JSON.stringify({ tasks: [{ id: 1, description: "  " }] }))).toMatch(/^tasks\.0\.description: /)
    expect(reason(JSON.stringify({ tasks: [{ id: 1, description: "a", kind: "Magic" }] }))).toMatch(/^tasks\.0\.kind: /)
    expect(reason(JSON.stringify({ tasks: [{ id: 0, description: "a" }] }))).toMatch(/^tasks\.0\.id: /)
    expect(reason(JSON.stringify({ tasks: [{ id: 2, description: "a" }] }))).toBe(
      "task ids must be 1..1 in order, found 2 at position 1"
    )
    expect(reason(JSON.stringify({ tasks: [{ id: 1, description: "a", dependsOn: [4] }] }))).toBe(
      "task 1 depends on unknown task 4"
    )
    expect(
      reason(
        JSON.stringify({
          tasks: [
            { id: 1, description: "a", dependsOn: [2] },
            { id: 2, description: "b", dependsOn: [1] }
          ]
        })
      )
    ).toBe("tasks 1 -> 2 -> 1 form a cycle")
    const error = Either.flip(parsePlanFile("{}", "standard input")).pipe(Either.getOrThrow)
    expect(error._tag).toBe("InvalidPlanFile")
    expect(error.message).toMatch(/^standard input is not a plan planner can run: tasks: .*planner plan --json/)
  })
})
