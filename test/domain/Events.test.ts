import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { defaultConfig } from "../../src/domain/Config.js"
import { currentVersion, decodeEvent, encodeEvent, TaskDispatched, TasksPlanned } from "../../src/domain/Events.js"

const reason = (type: string, version: number | string, data: unknown) =>
  Either.flip(decodeEvent(type, version, data)).pipe(Either.getOrThrow)

describe("stored events", () => {
  it("an event made without checking its fields is checked when it is encoded: a broken one is never stored", () => {
    const broken = new TaskDispatched(
      { taskId: 0, attempt: 1, kind: "Processing", description: "x", clarifications: [], at: Number.NaN },
      true
    )
    expect(() => encodeEvent(broken)).toThrow(/TaskId|Int|positive|NaN/)
    const sound = new TaskDispatched(
      { taskId: 1, attempt: 1, kind: "Processing", description: "x", clarifications: [], at: 5 },
      true
    )
    expect(encodeEvent(sound).data).toMatchObject({ taskId: 1, attempt: 1, at: 5 })
  })

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

  it("a plan file as the source round-trips, and sources stored before it existed decode unchanged", () => {
    const stored = (source: TasksPlanned["source"]) =>
      encodeEvent(new TasksPlanned({ request: "x", attachments: [], tasks: [], config: defaultConfig, source, at: 0 }))
    const sourceOf = (record: ReturnType<typeof stored>) => {
      const event = Either.getOrThrow(decodeEvent("TasksPlanned", record.version, record.data))
      return event._tag === "TasksPlanned" ? event.source : undefined
    }
    for (const source of [
      { _tag: "PlanFile", path: "plans/trip.json" },
      { _tag: "PlanFile", path: "-" }
    ] as const) {
      const record = stored(source)
      expect(record.data).toMatchObject({ source })
      expect(sourceOf(record)).toEqual(source)
    }
    // Written by earlier builds, including a plan file recorded as the parser.
    for (const source of [
      { _tag: "Parser" },
      { _tag: "Parser", reason: "plan file plan.json" },
      { _tag: "Llm", model: "llama3.1", notes: ["dropped a link"] }
    ] as const) {
      expect(sourceOf(stored(source))).toEqual(source)
    }
    expect(
      reason("TasksPlanned", 2, { ...(stored({ _tag: "Parser" }).data as object), source: { _tag: "PlanFile" } }).reason
    ).toContain("path")
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
