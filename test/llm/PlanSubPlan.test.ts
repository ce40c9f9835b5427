/**
 * #16: an LLM plan may mark a step as a sub-plan (`subPlan: true`, a step that is itself a multi-step job). The schema
 * sent asks for the flag on every step (strict structured outputs need every field required); the schema accepted
 * lets it be missing, so answers without it still plan; a flag of the wrong type is malformed output, repaired once and
 * then planned by the parser. Against a real HTTP server speaking both protocols.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, JSONSchema, Schema } from "effect"
import * as Planning from "../../src/app/Planning.js"
import { PlanOutput } from "../../src/infra/Llm.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { messagesOf, Reply, schemaOf } from "./support/FakeOpenAiServer.js"
import { apis, llmLayer, model, settingsFor } from "./support/layers.js"

const request = "Write the notes. Then build and publish the release. Then ask the team which date suits them."

const step = (id: string, description: string, kind: string, dependsOn: ReadonlyArray<string>) => ({
  id,
  description,
  kind,
  dependsOn,
  attachments: []
})

const marked = {
  tasks: [
    { ...step("notes", "Write the notes", "Processing", []), subPlan: false },
    { ...step("release", "Build the release. Then publish it.", "Processing", ["notes"]), subPlan: true },
    // A question to the person cannot be a sub-plan: the mark is left out.
    { ...step("date", "Ask the team which date suits them", "Clarification", ["release"]), subPlan: true }
  ]
}

const withoutFlag = {
  tasks: [
    step("notes", "Write the notes", "Processing", []),
    step("release", "Build the release. Then publish it.", "Processing", ["notes"])
  ]
}

interface ObjectSchema {
  readonly type?: string
  readonly required?: ReadonlyArray<string>
  readonly properties?: Record<string, { readonly type?: string; readonly items?: ObjectSchema }>
  readonly additionalProperties?: boolean
}

describe("the plan's output schema", () => {
  it("asks for subPlan on every step, required and boolean, in a self-contained closed object", () => {
    const sent = JSONSchema.make(PlanOutput) as ObjectSchema
    const item = sent.properties?.tasks?.items
    expect(item?.properties?.subPlan).toEqual({ type: "boolean" })
    expect([...(item?.required ?? [])].sort()).toEqual(
      ["attachments", "dependsOn", "description", "id", "kind", "subPlan"].sort()
    )
    expect(item?.additionalProperties).toBe(false)
    // Self-contained: no reference to definitions an annotation would not carry.
    expect(JSON.stringify(sent)).not.toContain("$ref")
  })

  it("accepts steps with and without the flag, and refuses a flag that is not a boolean", () => {
    const decode = Schema.decodeUnknownEither(PlanOutput)
    const old = decode(withoutFlag)
    expect(Either.isRight(old) && old.right.tasks.map((task) => task.subPlan)).toEqual([undefined, undefined])
    const flagged = decode(marked)
    expect(Either.isRight(flagged) && flagged.right.tasks.map((task) => task.subPlan)).toEqual([false, true, true])
    expect(Either.isLeft(decode({ tasks: [{ ...withoutFlag.tasks[0], subPlan: "yes" }] }))).toBe(true)
  })
})

describe.each(apis)("sub-plan steps over the %s protocol", (api) => {
  const withLlm = (server: FakeOpenAiServer.FakeOpenAiServer) => Effect.provide(llmLayer(api, settingsFor(server)))

  it.scopedLive("the steps the model marks are returned as sub-plans, questions left out", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json(marked))
      const plan = yield* Planning.planRequest(request).pipe(withLlm(server))
      expect(plan.source).toEqual({ _tag: "Llm", model })
      expect(plan.tasks.map((task) => [task.id, task.kind, task.dependsOn])).toEqual([
        [1, "Processing", []],
        [2, "Processing", [1]],
        [3, "Clarification", [2]]
      ])
      expect(plan.subPlans).toEqual([2])
      const [sent] = server.modelRequests()
      const schema = schemaOf(sent as FakeOpenAiServer.RecordedRequest) as ObjectSchema
      expect(schema.properties?.tasks?.items?.required).toContain("subPlan")
      expect(messagesOf(sent as FakeOpenAiServer.RecordedRequest)[0]?.text).toContain(
        "`subPlan`, true for a step that is itself a multi-step job"
      )
    })
  )

  it.scopedLive("an answer without the flag plans as before, with no sub-plans", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json(withoutFlag))
      const plan = yield* Planning.planRequest(request).pipe(withLlm(server))
      expect(plan.source).toEqual({ _tag: "Llm", model })
      expect(plan.tasks).toHaveLength(2)
      expect(plan.subPlans).toBeUndefined()
    })
  )

  it.scopedLive("a flag that is not a boolean, twice, falls back to the parser", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const garbage = { tasks: [{ ...withoutFlag.tasks[0], subPlan: "yes" }] }
      server.enqueue(Reply.json(garbage), Reply.json(garbage))
      const plan = yield* Planning.planRequest(request).pipe(withLlm(server))
      expect(plan.source._tag).toBe("Parser")
      expect(plan.source._tag === "Parser" && plan.source.reason).toMatch(/^LLM output was malformed twice: /)
      expect(plan.subPlans).toBeUndefined()
      expect(server.modelRequests()).toHaveLength(2)
    })
  )
})
