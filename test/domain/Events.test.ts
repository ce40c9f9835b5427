import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { defaultConfig } from "../../src/domain/Config.js"
import { currentVersion, decodeEvent, encodeEvent, TaskDispatched, TasksPlanned } from "../../src/domain/Events.js"

const reason = (type: string, version: number | string, data: unknown) =>
  Either.flip(decodeEvent(type, version, data)).pipe(Either.getOrThrow)

describe("stored events", () => {
  it("are written with the current version only", () => {
    const planned = new TasksPlanned({
      request: "x",
      attachments: [],
      tasks: [],
      config: defaultConfig,
      source: { _tag: "Parser" },
      at: 0
    })
    expect(encodeEvent(planned).version).toBe(currentVersion("TasksPlanned"))
    expect(currentVersion("TasksPlanned")).toBe(2)
  })

  it("version 1 of TasksPlanned is upcast to a chain, with labels kept and nulls dropped", () => {
    const event = Either.getOrThrow(
      decodeEvent("TasksPlanned", "1", {
        tasks: [
          {
            id: 1,
            description: "a",
            kind: "Processing",
            attachments: [{ kind: "Link", value: "https://x.org", label: "spec" }]
          },
          {
            id: 2,
            description: "b",
            kind: "ToolCall",
            attachments: [{ kind: "FileRef", value: "a/b.ts", label: null }]
          }
        ]
      })
    )
    expect(event._tag).toBe("TasksPlanned")
    if (event._tag !== "TasksPlanned") return
    expect(event.tasks.map((t) => t.dependsOn)).toEqual([[], [1]])
    expect(event.tasks.map((t) => t.attachments)).toEqual([
      [{ kind: "Link", value: "https://x.org", label: "spec" }],
      [{ kind: "FileRef", value: "a/b.ts" }]
    ])
    expect(event.config.maxParallel).toBe(1)
  })

  it("unknown types, unknown versions, malformed payloads and mislabelled payloads are reported, not skipped", () => {
    expect(reason("PlannerEvent", 1, {}).reason).toBe("unknown event type")
    expect(reason("TaskDispatched", 7, {}).reason).toBe("unknown version (this build reads 1)")
    expect(reason("TaskDispatched", 1, { _tag: "TaskDispatched", taskId: "one" }).reason).toContain("taskId")
    const dispatched = encodeEvent(
      new TaskDispatched({ taskId: 1, attempt: 1, kind: "Processing", description: "d", clarifications: [], at: 0 })
    )
    expect(reason("TaskClaimed", 1, dispatched.data).reason.length).toBeGreaterThan(0)
    expect(reason("TasksPlanned", 1, { tasks: "nope" }).message).toContain("TasksPlanned")
  })
})
