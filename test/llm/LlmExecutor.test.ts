/** The LLM executor's outcomes against a real HTTP server: every model behaviour becomes an Outcome, never a crash. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Outcome, type TaskContext } from "../../src/infra/Executor.js"
import * as HeuristicLlm from "../../src/infra/HeuristicLlm.js"
import * as LlmExecutor from "../../src/infra/LlmExecutor.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { messagesOf, Reply } from "./support/FakeOpenAiServer.js"
import { apis, llmLayer, settingsFor } from "./support/layers.js"

const context: TaskContext = {
  sessionId: "session-1",
  taskId: 3,
  kind: "Processing",
  description: "Summarise the constraints for the login form",
  attachments: [{ kind: "Link", value: "https://example.com/form-guidelines" }],
  attempt: 2,
  clarifications: [{ question: "Which identity provider?", answer: "Our own, with email and password." }],
  request: "Build a login page from the spec.",
  requestAttachments: [{ kind: "FileRef", value: "docs/spec.md" }],
  contextSummary: "Task 1: The spec requires 2FA for admins.",
  dependencyResults: [{ taskId: 1, description: "Read the spec", result: "Passwords need 12 characters." }],
  idempotencyKey: "session-1/3/2",
  workingDirectory: "/tmp"
}

const step = (outcome: string, fields: { result?: string; question?: string; reason?: string }) =>
  Reply.json({ outcome, result: fields.result ?? "", question: fields.question ?? "", reason: fields.reason ?? "" })

describe.each(apis)("LlmExecutor over the %s protocol", (api) => {
  const run = (server: FakeOpenAiServer.FakeOpenAiServer) =>
    Effect.flatMap(LlmExecutor.make, (executor) => executor.execute(context)).pipe(
      Effect.provide(llmLayer(api, settingsFor(server)))
    )

  it.scopedLive("completes with the model's result, sending the whole task context and the idempotency key", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(step("completed", { result: "Email + password (12+ chars), 2FA for admins." }))
      expect(yield* run(server)).toEqual(Outcome.Completed({ result: "Email + password (12+ chars), 2FA for admins." }))

      const [sent] = server.modelRequests()
      expect(sent?.headers["idempotency-key"]).toBe("session-1/3/2")
      const prompt = messagesOf(sent as FakeOpenAiServer.RecordedRequest)
        .map((message) => message.text)
        .join("\n")
      for (const part of [
        "Summarise the constraints for the login form",
        "https://example.com/form-guidelines",
        "Which identity provider?",
        "Our own, with email and password.",
        "Build a login page from the spec.",
        "docs/spec.md",
        "The spec requires 2FA for admins.",
        "Passwords need 12 characters."
      ]) {
        expect(prompt).toContain(part)
      }
    })
  )

  it.scopedLive("a question from the model pauses the task for clarification", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(step("needs_clarification", { question: "Should admins use TOTP or WebAuthn?" }))
      expect(yield* run(server)).toEqual(
        Outcome.NeedsClarification({ question: "Should admins use TOTP or WebAuthn?" })
      )
    })
  )

  it.scopedLive("a declined step is a retryable failure", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(step("cannot_complete", { reason: "The guidelines link is not readable." }))
      expect(yield* run(server)).toEqual(
        Outcome.Failed({ error: "The model declined the step: The guidelines link is not readable.", retryable: true })
      )
    })
  )

  it.scopedLive("a refusal, an empty result or malformed output is a retryable failure after one repair", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.refusal("I can't do that."), Reply.refusal("I can't do that."))
      const refused = yield* run(server)
      expect(refused._tag).toBe("Failed")
      expect(refused._tag === "Failed" && refused.retryable).toBe(true)

      server.enqueue(step("completed", {}), step("completed", { result: "   " }))
      const empty = yield* run(server)
      expect(empty._tag === "Failed" && empty.error).toContain("result is empty")

      server.enqueue(Reply.text('{"outcome": "completed", "result": "half'), Reply.text("not json"))
      const malformed = yield* run(server)
      expect(malformed._tag === "Failed" && malformed.retryable).toBe(true)
      expect(server.modelRequests()).toHaveLength(6)
      // The repair is a different request, so it carries a different idempotency key.
      expect(server.modelRequests().map((request) => request.headers["idempotency-key"])).toEqual([
        "session-1/3/2",
        "session-1/3/2:repair",
        "session-1/3/2",
        "session-1/3/2:repair",
        "session-1/3/2",
        "session-1/3/2:repair"
      ])
    })
  )

  it.scopedLive("a rejected key is a failure that retrying cannot fix", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(401))
      const outcome = yield* run(server)
      expect(outcome._tag === "Failed" && outcome.retryable).toBe(false)
      expect(outcome._tag === "Failed" && outcome.error).toContain("HTTP 401")
    })
  )
})

describe("LlmExecutor without a model", () => {
  it.live("fails the attempt for good, saying no LLM is configured", () =>
    Effect.gen(function* () {
      const executor = yield* Effect.provide(LlmExecutor.make, HeuristicLlm.layer)
      expect(executor.name).toBe("llm")
      const outcome = yield* executor.execute(context)
      expect(outcome._tag === "Failed" && outcome.retryable).toBe(false)
      expect(outcome._tag === "Failed" && outcome.error).toContain("no LLM is configured")
    })
  )
})
