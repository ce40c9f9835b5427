/**
 * Whatever dependencies a model proposes, the plan that comes out is valid: the proposal itself when the graph code
 * accepts it, otherwise a chain, with the reason. And it attaches only what the user gave.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { fromDrafts } from "../../src/app/Planning.js"
import * as Graph from "../../src/domain/Graph.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import type { TaskDraft } from "../../src/infra/Llm.js"

const ids = ["a", "b", "c", "d", "e", "f", "g"]
const draftsArb = fc.array(
  fc.record({
    id: fc.constantFrom(...ids),
    dependsOn: fc.array(fc.constantFrom(...ids, "zz"), { maxLength: 4 })
  }),
  { minLength: 1, maxLength: 7 }
)

const isChain = (tasks: ReadonlyArray<TaskPlan>) =>
  tasks.every((task, index) =>
    index === 0 ? task.dependsOn.length === 0 : task.dependsOn.length === 1 && task.dependsOn[0] === index
  )

describe("dependency fallback", () => {
  it.prop(
    "any proposed dependencies give either the proposal as a valid DAG or a chain with a reason",
    [draftsArb],
    ([raw]) => {
      const drafts: ReadonlyArray<TaskDraft> = raw.map((draft, index) => ({
        id: draft.id,
        description: `Step ${index + 1}`,
        kind: "Processing",
        dependsOn: draft.dependsOn,
        attachments: []
      }))
      const { tasks, rejected } = fromDrafts(drafts)
      expect(Either.isRight(Graph.validate(tasks))).toBe(true)
      expect(tasks.map((task) => task.id)).toEqual(drafts.map((_, index) => index + 1))
      if (rejected === undefined) {
        const position = new Map(drafts.map((draft, index) => [draft.id, index + 1]))
        expect(position.size).toBe(drafts.length)
        for (const [index, task] of tasks.entries()) {
          expect(task.dependsOn).toEqual([...new Set((drafts[index]?.dependsOn ?? []).map((dep) => position.get(dep)))])
        }
      } else {
        expect(isChain(tasks)).toBe(true)
        expect(rejected).toMatch(/cycle|unknown task|both have the id|depends on itself/)
      }
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("says which id is repeated, which dependency is unknown, which tasks form a cycle", () => {
    const draft = (id: string, dependsOn: ReadonlyArray<string> = []): TaskDraft => ({
      id,
      description: `Do ${id}`,
      kind: "Processing",
      dependsOn,
      attachments: []
    })
    expect(fromDrafts([draft("a"), draft("a")]).rejected).toBe('tasks 1 and 2 both have the id "a"')
    expect(fromDrafts([draft("a"), draft("b", ["q"])]).rejected).toBe('task 2 depends on unknown task "q"')
    expect(fromDrafts([draft("a", ["b"]), draft("b", ["a"])]).rejected).toBe("tasks 1 -> 2 -> 1 form a cycle")
    expect(fromDrafts([draft("a", ["a"])]).rejected).toBe("task 1 depends on itself")
  })

  it("adds the URLs in a description to the model's attachments, once", () => {
    const { tasks } = fromDrafts([
      {
        id: "a",
        description: "Read https://example.com/spec.pdf.",
        kind: "Retrieval",
        dependsOn: [],
        attachments: [
          { kind: "Link", value: "https://example.com/spec.pdf" },
          { kind: "FileRef", value: "docs/notes.md" }
        ]
      }
    ])
    expect(tasks[0]?.attachments).toEqual([
      { kind: "Link", value: "https://example.com/spec.pdf" },
      { kind: "FileRef", value: "docs/notes.md" }
    ])
  })

  it("drops attachments the user never gave, and says which; keeps what the request names or --attach gave", () => {
    const { tasks, dropped } = fromDrafts(
      [
        {
          id: "a",
          description: "Read https://example.com/spec.pdf and https://invented.example/extra",
          kind: "Retrieval",
          dependsOn: [],
          attachments: [
            { kind: "Link", value: "https://example.com/spec.pdf" },
            { kind: "FileRef", value: "docs/notes.md" },
            { kind: "ImageRef", value: "shot.png" },
            { kind: "FileRef", value: "/etc/passwd" }
          ]
        }
      ],
      {
        request: "Summarise https://example.com/spec.pdf and the screenshot shot.png",
        attachments: [{ kind: "FileRef", value: "docs/notes.md" }]
      }
    )
    expect(tasks[0]?.attachments).toEqual([
      { kind: "Link", value: "https://example.com/spec.pdf" },
      { kind: "FileRef", value: "docs/notes.md" },
      { kind: "ImageRef", value: "shot.png" }
    ])
    expect(dropped).toEqual([
      "attachment dropped from task 1: FileRef /etc/passwd (not in the request or --attach)",
      "attachment dropped from task 1: Link https://invented.example/extra (not in the request or --attach)"
    ])
  })
})
