/**
 * The plan-edit options of `planner edit` and `planner fork` as `PlanEdit`s (EditFlags.parseEdits): the kind of an
 * added task (`--add-kind`, paired with the n-th `--add` as `--after` is), and the usage errors of its shape.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { type EditFlagValues, noEdits, parseEdits } from "../../src/app/cli/EditFlags.js"
import { ExitCode } from "../../src/app/cli/Failure.js"

const parse = (flags: Partial<EditFlagValues>) => Effect.runSync(Effect.either(parseEdits({ ...noEdits, ...flags })))

describe("EditFlags: the kind of an added task", () => {
  it("given two --add and one --add-kind, when parsed, then the first added task has that kind and the second is Processing", () => {
    const edits = parse({ add: ["Check the logs", "Write the summary"], after: ["2"], addKind: ["analysis"] })
    expect(Either.getOrThrow(edits)).toEqual([
      {
        _tag: "AddTask",
        description: "Check the logs",
        kind: "Analysis",
        dependsOn: [2],
        attachments: [],
        dependents: []
      },
      {
        _tag: "AddTask",
        description: "Write the summary",
        kind: "Processing",
        dependsOn: [],
        attachments: [],
        dependents: []
      }
    ])
  })

  it("given an --add-kind that names no kind, when parsed, then it is a usage error listing the kinds", () => {
    const edits = parse({ add: ["Check the logs"], addKind: ["Deployment"] })
    const failure = Either.getLeft(edits)
    expect(failure._tag).toBe("Some")
    if (failure._tag !== "Some") return
    expect(failure.value.code).toBe(ExitCode.usage)
    expect(failure.value.message).toMatch(/^--add-kind: "Deployment" is not a kind; use one of .*Processing/)
  })

  it("given more --add-kind than --add, when parsed, then it is a usage error", () => {
    const edits = parse({ add: ["Check the logs"], addKind: ["Analysis", "Retrieval"] })
    const failure = Either.getLeft(edits)
    expect(failure._tag).toBe("Some")
    if (failure._tag !== "Some") return
    expect(failure.value.message).toBe(
      "--add-kind is given 2 times but --add 1: each --add-kind goes with the --add before it."
    )
  })

  it("given --kind N=KIND, when parsed, then it still sets that task's kind (the same kind names)", () => {
    const edits = parse({ kind: ["3=retrieval"] })
    expect(Either.getOrThrow(edits)).toEqual([{ _tag: "SetTask", taskId: 3, kind: "Retrieval" }])
  })
})
