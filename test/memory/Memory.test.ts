/** The pure side of memory: records from events, stats, the clarification flag, and the in-memory text helpers. */
import { describe, expect, it } from "@effect/vitest"
import { overlap } from "../../src/app/MemoryPlanning.js"
import { PlanEdited, PlanningCompleted } from "../../src/domain/Events.js"
import { clarificationFlag, recordsOf, stats, type TaskMemory } from "../../src/domain/Memory.js"
import * as PlanEdit from "../../src/domain/PlanEdit.js"
import { fuse, stem, terms } from "../../src/infra/MemoryIndex.js"
import { planned, sessionEvents, taskEvents } from "./support.js"

const records = recordsOf(
  "s",
  sessionEvents("Ship it", [
    { description: "Build the bundle", kind: "ToolCall", duration: 200 },
    { description: "Ask about the target", kind: "ToolCall", questions: ["Where?"], attempts: 3, duration: 400 },
    { description: "Summarise", kind: "Analysis", outcome: "Failed", duration: 600 }
  ])
)

describe("Memory records and stats", () => {
  it("an edited plan is remembered as edited: an added task, a changed text, a removed task", () => {
    const edited = recordsOf("e", [
      planned("Ship it", [
        { description: "Build the bundle" },
        { description: "Write the notes" },
        { description: "Tag" }
      ]),
      new PlanEdited({
        edits: [
          PlanEdit.AddTask.make({ id: 4, description: "Announce the release", kind: "Analysis", dependsOn: [1] }),
          PlanEdit.SetTask.make({ taskId: 2, description: "Write the release notes" }),
          PlanEdit.RemoveTask.make({ taskId: 3 })
        ],
        source: { _tag: "User" },
        at: 1_500
      }),
      ...taskEvents(1, { description: "Build the bundle" }, 2_000),
      ...taskEvents(2, { description: "Write the release notes" }, 3_000),
      ...taskEvents(4, { description: "Announce the release", kind: "Analysis" }, 4_000),
      new PlanningCompleted({ outcome: "Succeeded", summary: "shipped", at: 5_000 })
    ])
    const byTask = new Map(
      edited.flatMap((record) => (record._tag === "Task" ? [[record.taskId, record] as const] : []))
    )
    expect([...byTask.keys()].sort()).toEqual([1, 2, 4])
    expect(byTask.get(2)?.description).toBe("Write the release notes")
    expect(byTask.get(4)).toMatchObject({ description: "Announce the release", kind: "Analysis", status: "Completed" })
    const session = edited.find((record) => record._tag === "Session")
    expect(session?._tag === "Session" ? session.plan.map((step) => step.id) : []).toEqual([1, 2, 4])
  })

  it("records each ended task and the finished session", () => {
    expect(records.map((record) => (record._tag === "Task" ? record.taskId : "session"))).toEqual([1, 2, 3, "session"])
    expect(records[2]).toMatchObject({ status: "Failed", result: "it broke", durationMs: 600 })
    expect(records[3]).toMatchObject({ _tag: "Session", outcome: "Failed", request: "Ship it" })
  })

  it("stats: success rate, mean attempts and duration, clarification rate, per kind and overall", () => {
    const figures = stats(records)
    expect(figures.byKind.ToolCall).toEqual({
      tasks: 2,
      succeeded: 2,
      successRate: 1,
      meanAttempts: 2,
      meanDurationMs: 300,
      askedClarification: 1,
      clarificationRate: 0.5
    })
    expect(figures.byKind.Analysis?.successRate).toBe(0)
    expect(figures.overall).toMatchObject({ tasks: 3, succeeded: 2, meanAttempts: 5 / 3, meanDurationMs: 400 })
    expect(figures.sessions).toEqual({ finished: 1, succeeded: 0, successRate: 0 })
    expect(stats([]).overall.successRate).toBe(0)
  })

  it("flags only when most of at least two similar tasks asked", () => {
    const task = (asked: boolean) => ({ questions: asked ? ["?"] : [] }) as unknown as TaskMemory
    expect(clarificationFlag([task(true)])).toBeUndefined()
    expect(clarificationFlag([task(true), task(false)])).toBeUndefined()
    expect(clarificationFlag([task(true), task(true), task(false)])).toEqual({ asked: 2, of: 3 })
    expect(clarificationFlag([true, true, true, true, false, false].map(task))).toEqual({ asked: 4, of: 6 })
  })

  it("text helpers: terms drop stop words, stems meet, overlap and fusion", () => {
    expect(terms("Run the tests, then deploy it!")).toEqual(["run", "tests", "deploy"])
    expect(new Set(["test", "tests", "testing", "tested"].map(stem)).size).toBe(1)
    expect(stem("running")).toBe(stem("run"))
    expect(overlap("Build the parser", "build parsers")).toBe(1)
    expect(overlap("Build the parser", "water the plants")).toBe(0)
    expect(
      fuse([
        ["a", "b"],
        ["b", "c"]
      ]).map((hit) => hit.key)
    ).toEqual(["b", "a", "c"])
  })
})
