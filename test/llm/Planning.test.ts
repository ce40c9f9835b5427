/**
 * LLM planning against a real HTTP server speaking both protocols: good plans, repair of malformed and truncated
 * output, fallback to the parser with the reason recorded, and dependency checks by the graph code.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit } from "effect"
import * as Planning from "../../src/app/Planning.js"
import { Initialize } from "../../src/domain/Commands.js"
import * as Graph from "../../src/domain/Graph.js"
import * as Planner from "../../src/domain/Planner.js"
import * as HeuristicLlm from "../../src/infra/HeuristicLlm.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { messagesOf, Reply, schemaOf } from "./support/FakeOpenAiServer.js"
import { apiKey, apis, goodPlan, llmLayer, model, request, settingsFor } from "./support/layers.js"

const withLlm = (api: (typeof apis)[number], server: FakeOpenAiServer.FakeOpenAiServer) =>
  Effect.provide(llmLayer(api, settingsFor(server)))

describe.each(apis)("planning over the %s protocol", (api) => {
  const expectedPath = api === "chat" ? "/v1/chat/completions" : "/v1/responses"

  it.scopedLive("a good plan is recorded as the model gave it, renumbered 1..n, with its parallel branches", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json(goodPlan))
      const plan = yield* Planning.planRequest(request, [], { systemPrompt: "You plan web work." }).pipe(
        withLlm(api, server)
      )

      expect(plan.source).toEqual({ _tag: "Llm", model })
      expect(plan.notes).toEqual([])
      expect(plan.tasks.map((task) => [task.id, task.kind, task.dependsOn])).toEqual([
        [1, "Retrieval", []],
        [2, "CodeImplementation", [1]],
        [3, "CodeImplementation", [1]],
        [4, "UnitTest", [2, 3]]
      ])
      expect(plan.tasks[0]?.attachments).toEqual([{ kind: "Link", value: "https://example.com/spec.pdf" }])
      expect(Graph.parallelGroups(plan.tasks)).toEqual([[1], [2, 3], [4]])
      expect(Graph.criticalPath(plan.tasks)).toEqual([1, 2, 4])

      const [sent] = server.modelRequests()
      expect(server.modelRequests()).toHaveLength(1)
      expect(sent?.path).toBe(expectedPath)
      expect(sent?.headers.authorization).toBe(`Bearer ${apiKey}`)
      expect((sent?.body as { model?: string } | undefined)?.model).toBe(model)
      const schema = schemaOf(sent as FakeOpenAiServer.RecordedRequest) as { properties?: Record<string, unknown> }
      expect(Object.keys(schema.properties ?? {})).toEqual(["tasks"])
      const messages = messagesOf(sent as FakeOpenAiServer.RecordedRequest)
      expect(messages[0]?.text).toContain("You plan web work.")
      expect(messages.at(-1)).toEqual({ role: "user", text: request })

      // What the model planned is what the planner records: Initialize carries it into TasksPlanned.
      const events = Either.getOrThrow(
        Planner.decideEither(
          Planner.initialState,
          new Initialize({ request, tasks: plan.tasks, source: plan.source, at: 1_700_000_000_000 })
        )
      )
      const planned = events.find((event) => event._tag === "TasksPlanned")
      expect(planned?._tag === "TasksPlanned" && planned.source).toEqual({ _tag: "Llm", model })
      expect(planned?._tag === "TasksPlanned" && planned.tasks).toEqual(plan.tasks)
      // Only the first task is ready; the two branches wait for it.
      expect(events.flatMap((event) => (event._tag === "TaskDispatched" ? [event.taskId] : []))).toEqual([1])
    })
  )

  it.scopedLive("malformed output is repaired once: the model sees its answer and what was wrong", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const bad = JSON.stringify({
        tasks: [{ id: "a", description: "Do it", kind: "Cooking", dependsOn: [], attachments: [] }]
      })
      server.enqueue(Reply.text(bad), Reply.json(goodPlan))
      const plan = yield* Planning.planRequest(request).pipe(withLlm(api, server))

      expect(plan.source).toEqual({ _tag: "Llm", model })
      expect(plan.tasks).toHaveLength(4)
      const requests = server.modelRequests()
      expect(requests).toHaveLength(2)
      const repair = messagesOf(requests[1] as FakeOpenAiServer.RecordedRequest)
      expect(repair.at(-2)).toEqual({ role: "assistant", text: bad })
      expect(repair.at(-1)?.role).toBe("user")
      expect(repair.at(-1)?.text).toContain("tasks.0.kind")
      expect(repair.at(-1)?.text).toContain('"Cooking"')
    })
  )

  it.scopedLive("malformed output twice falls back to the parser, saying why", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.text("Sure! Here is your plan: 1. read 2. build"), Reply.text('{"tasks": "read, build"}'))
      const plan = yield* Planning.planRequest(request).pipe(withLlm(api, server))

      expect(plan.source._tag).toBe("Parser")
      const reason = plan.source._tag === "Parser" ? (plan.source.reason ?? "") : ""
      expect(reason.startsWith("LLM output was malformed twice: ")).toBe(true)
      expect(reason).toContain("tasks")
      expect(server.modelRequests()).toHaveLength(2)
      // The parser's plan of the same request.
      expect(plan.tasks.length).toBeGreaterThan(1)
      expect(Either.isRight(Graph.validate(plan.tasks))).toBe(true)
    })
  )

  it.scopedLive("truncated JSON (cut off by the output limit) is repaired", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const full = JSON.stringify(goodPlan)
      server.enqueue(Reply.text(full.slice(0, Math.floor(full.length / 2)), true), Reply.json(goodPlan))
      const plan = yield* Planning.planRequest(request).pipe(withLlm(api, server))

      expect(plan.source).toEqual({ _tag: "Llm", model })
      expect(plan.tasks).toHaveLength(4)
      const repair = messagesOf(server.modelRequests()[1] as FakeOpenAiServer.RecordedRequest)
      expect(repair.at(-1)?.text).toMatch(/JSON|Unexpected|Expected/)
    })
  )

  it.scopedLive("a refusal is repaired once, then the parser plans", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.refusal("I can't help with that."), Reply.refusal("I can't help with that."))
      const plan = yield* Planning.planRequest(request).pipe(withLlm(api, server))
      expect(plan.source._tag).toBe("Parser")
      expect(plan.source._tag === "Parser" && plan.source.reason).toMatch(/^LLM output was malformed twice: /)
      expect(server.modelRequests()).toHaveLength(2)
    })
  )
})

describe("dependencies proposed by the model", () => {
  const planWith = (dependsOn: ReadonlyArray<ReadonlyArray<string>>) => ({
    tasks: dependsOn.map((deps, index) => ({
      id: `t${index + 1}`,
      description: `Step number ${index + 1}`,
      kind: "Processing",
      dependsOn: deps,
      attachments: []
    }))
  })

  it.scopedLive("a cycle is rejected with a clear reason and the tasks run as a chain", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json(planWith([["t3"], ["t1"], ["t2"]])))
      const plan = yield* Planning.planRequest(request).pipe(withLlm("responses", server))
      const note =
        "LLM dependencies rejected (tasks 1 -> 3 -> 2 -> 1 form a cycle); the tasks run one after another instead"
      // The correction is recorded with the plan's source, so the event log says why the plan is a chain.
      expect(plan.source).toEqual({ _tag: "Llm", model, notes: [note] })
      expect(plan.tasks.map((task) => task.dependsOn)).toEqual([[], [1], [2]])
      expect(plan.notes).toEqual([note])
    })
  )

  it.scopedLive("a dependency on an unknown task is rejected and the tasks run as a chain", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json(planWith([[], ["t1"], ["t9"]])))
      const plan = yield* Planning.planRequest(request).pipe(withLlm("chat", server))
      expect(plan.tasks.map((task) => task.dependsOn)).toEqual([[], [1], [2]])
      expect(plan.notes[0]).toContain('task 3 depends on unknown task "t9"')
    })
  )

  it.scopedLive("numeric ids and repeated dependencies are accepted", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(
        Reply.json({
          tasks: [
            { id: 10, description: "First", kind: "Processing", dependsOn: [], attachments: [] },
            { id: 20, description: "Second", kind: "ToolCall", dependsOn: [10, 10], attachments: [] },
            { id: 30, description: "Third", kind: "Processing", dependsOn: [], attachments: [] }
          ]
        })
      )
      const plan = yield* Planning.planRequest(request).pipe(withLlm("responses", server))
      expect(plan.tasks.map((task) => task.dependsOn)).toEqual([[], [1], []])
      expect(plan.notes).toEqual([])
    })
  )

  it.scopedLive("an empty plan counts as malformed and is repaired", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json({ tasks: [] }), Reply.json(planWith([[], ["t1"]])))
      const plan = yield* Planning.planRequest(request).pipe(withLlm("responses", server))
      expect(plan.tasks).toHaveLength(2)
      expect(messagesOf(server.modelRequests()[1] as FakeOpenAiServer.RecordedRequest).at(-1)?.text).toContain(
        "no steps"
      )
    })
  )
})

describe("attachments an LLM plan may carry", () => {
  it.scopedLive("only what the request names or --attach gave; the rest is dropped and the drop recorded", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const invented = {
        tasks: [
          {
            id: "t1",
            description: "Read the spec at https://example.com/spec.pdf",
            kind: "Retrieval",
            dependsOn: [],
            attachments: [
              { kind: "Link", value: "https://example.com/spec.pdf" },
              { kind: "Link", value: "https://tracker.example.net/collect" },
              { kind: "FileRef", value: "notes/brief.md" }
            ]
          },
          { id: "t2", description: "Summarise ~/.ssh/id_rsa", kind: "Processing", dependsOn: ["t1"], attachments: [] }
        ]
      }
      server.enqueue(Reply.json(invented))
      const plan = yield* Planning.planRequest(request, [{ kind: "FileRef", value: "notes/brief.md" }]).pipe(
        withLlm("chat", server)
      )
      expect(plan.tasks.map((task) => task.attachments)).toEqual([
        [
          { kind: "Link", value: "https://example.com/spec.pdf" },
          { kind: "FileRef", value: "notes/brief.md" }
        ],
        []
      ])
      const notes = [
        "attachment dropped from task 1: Link https://tracker.example.net/collect (not in the request or --attach)",
        "attachment dropped from task 2: FileRef ~/.ssh/id_rsa (not in the request or --attach)"
      ]
      expect(plan.notes).toEqual(notes)
      expect(plan.source).toEqual({ _tag: "Llm", model, notes })
    })
  )
})

describe("planning without a model", () => {
  it.live("the heuristic layer plans with the parser and says no LLM is configured", () =>
    Effect.gen(function* () {
      const plan = yield* Planning.planRequest(request).pipe(Effect.provide(HeuristicLlm.layer))
      expect(plan.source).toEqual({ _tag: "Parser", reason: "no LLM configured" })
      expect(plan.tasks.length).toBeGreaterThan(1)
    })
  )

  it.scopedLive("an empty request is refused before any model is asked", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const exit = yield* Planning.planRequest("   \n ").pipe(withLlm("responses", server), Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(JSON.stringify(exit)).toContain("EmptyRequest")
      expect(server.modelRequests()).toHaveLength(0)
    })
  )
})
