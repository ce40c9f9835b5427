/**
 * Timeouts, retries and the circuit breaker against a real HTTP server: what the server saw (how many requests, and
 * when) is the evidence.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Planning from "../../src/app/Planning.js"
import { Llm } from "../../src/infra/Llm.js"
import { makeSettings } from "../../src/infra/LlmConfig.js"
import * as OpenAiLlm from "../../src/infra/OpenAiLlm.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { Reply } from "./support/FakeOpenAiServer.js"
import { apis, goodPlan, llmLayer, model, request, settingsFor } from "./support/layers.js"

const reasonOf = (plan: Planning.PlanResult) => (plan.source._tag === "Parser" ? (plan.source.reason ?? "") : "")

const gaps = (server: FakeOpenAiServer.FakeOpenAiServer) => {
  const times = server.modelRequests().map((recorded) => recorded.receivedAt)
  return times.slice(1).map((time, index) => time - (times[index] ?? time))
}

describe.each(apis)("retries over the %s protocol", (api) => {
  it.scopedLive(
    "a 429 with Retry-After in seconds is waited for, then the call succeeds",
    () =>
      Effect.gen(function* () {
        const server = yield* FakeOpenAiServer.make
        server.enqueue(Reply.status(429, { "retry-after": "1" }), Reply.json(goodPlan))
        const plan = yield* Planning.planRequest(request).pipe(Effect.provide(llmLayer(api, settingsFor(server))))
        expect(plan.source).toEqual({ _tag: "Llm", model })
        expect(server.modelRequests()).toHaveLength(2)
        // The backoff alone would have waited about 20 ms.
        expect(gaps(server)[0]).toBeGreaterThanOrEqual(950)
      }),
    10_000
  )

  it.scopedLive("a 500 is retried with backoff and the second answer is used", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(500), Reply.status(503), Reply.json(goodPlan))
      const plan = yield* Planning.planRequest(request).pipe(Effect.provide(llmLayer(api, settingsFor(server))))
      expect(plan.source).toEqual({ _tag: "Llm", model })
      expect(server.modelRequests()).toHaveLength(3)
    })
  )

  it.scopedLive("400 and 401 are not retried", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(401, {}, { error: { message: "Incorrect API key provided" } }))
      const unauthorized = yield* Planning.planRequest(request).pipe(Effect.provide(llmLayer(api, settingsFor(server))))
      expect(server.modelRequests()).toHaveLength(1)
      expect(reasonOf(unauthorized)).toMatch(/^LLM request failed \(ClientError\): HTTP 401/)
      expect(reasonOf(unauthorized)).toContain("Incorrect API key provided")

      server.enqueue(Reply.status(400, {}, { error: { message: "Unknown parameter" } }))
      const badRequest = yield* Planning.planRequest(request).pipe(Effect.provide(llmLayer(api, settingsFor(server))))
      expect(server.modelRequests()).toHaveLength(2)
      expect(reasonOf(badRequest)).toMatch(/^LLM request failed \(ClientError\): HTTP 400/)
    })
  )
})

describe("retries and timeouts", () => {
  it.scopedLive("retry-after-ms (OpenAI's header) is honoured", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(429, { "retry-after-ms": "300" }), Reply.json(goodPlan))
      const plan = yield* Planning.planRequest(request).pipe(Effect.provide(llmLayer("responses", settingsFor(server))))
      expect(plan.source._tag).toBe("Llm")
      expect(gaps(server)[0]).toBeGreaterThanOrEqual(290)
    })
  )

  it.scopedLive("a Retry-After longer than the longest allowed wait is not waited for", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(429, { "retry-after": "120" }))
      const plan = yield* Planning.planRequest(request).pipe(
        Effect.provide(llmLayer("responses", settingsFor(server, { maxRetryDelay: Duration.seconds(2) })))
      )
      expect(server.modelRequests()).toHaveLength(1)
      expect(reasonOf(plan)).toMatch(/^LLM request failed \(RateLimited\): HTTP 429/)
    })
  )

  it.scopedLive("5xx on every attempt: maxRetries + 1 requests, then the parser plans and says why", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(500), Reply.status(502), Reply.status(500))
      const plan = yield* Planning.planRequest(request).pipe(Effect.provide(llmLayer("chat", settingsFor(server))))
      expect(server.modelRequests()).toHaveLength(3)
      expect(reasonOf(plan)).toMatch(/^LLM request failed \(ServerError\): HTTP 500/)
      // Exponential: the second wait is longer than the first (20 ms base, factor 2, jittered by at most +-20%).
      const [first = 0, second = 0] = gaps(server)
      expect(first).toBeGreaterThanOrEqual(14)
      expect(second).toBeGreaterThanOrEqual(28)
    })
  )

  it.scopedLive("an answer slower than the timeout is abandoned and the call retried", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.delay(3_000, Reply.json(goodPlan)), Reply.json(goodPlan))
      const started = Date.now()
      const plan = yield* Planning.planRequest(request).pipe(
        Effect.provide(llmLayer("responses", settingsFor(server, { requestTimeout: Duration.millis(300) })))
      )
      expect(plan.source._tag).toBe("Llm")
      expect(server.modelRequests()).toHaveLength(2)
      expect(gaps(server)[0]).toBeGreaterThanOrEqual(290)
      expect(Date.now() - started).toBeLessThan(2_500)
    })
  )

  it.scopedLive("timeouts on every attempt fall back to the parser with the reason", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.delay(2_000, Reply.json(goodPlan)), Reply.delay(2_000, Reply.json(goodPlan)))
      const plan = yield* Planning.planRequest(request).pipe(
        Effect.provide(llmLayer("chat", settingsFor(server, { requestTimeout: Duration.millis(200), maxRetries: 1 })))
      )
      expect(server.modelRequests()).toHaveLength(2)
      expect(reasonOf(plan)).toBe("LLM request failed (Timeout): no answer within 200 ms")
    })
  )

  it.live("an unreachable endpoint is a transport failure", () =>
    Effect.gen(function* () {
      const settings = makeSettings({
        baseUrl: "http://127.0.0.1:1/v1",
        model,
        maxRetries: 1,
        retryBaseDelay: Duration.millis(10)
      })
      const plan = yield* Planning.planRequest(request).pipe(Effect.provide(OpenAiLlm.layer(settings)))
      expect(reasonOf(plan)).toMatch(/^LLM request failed \(Transport\)/)
    })
  )

  it.scopedLive("an answer that is not the protocol's response is not repaired or retried", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.raw(200, "application/json", JSON.stringify({ hello: "world" })))
      const plan = yield* Planning.planRequest(request).pipe(Effect.provide(llmLayer("responses", settingsFor(server))))
      expect(server.modelRequests()).toHaveLength(1)
      expect(reasonOf(plan)).toMatch(/^LLM request failed \(InvalidResponse\)/)
    })
  )
})

describe("the circuit breaker", () => {
  it.scopedLive("opens after consecutive failures, fails fast while open, and probes after the cool-down", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const settings = settingsFor(server, {
        maxRetries: 0,
        breakerFailures: 2,
        breakerCooldown: Duration.millis(400)
      })
      // One layer, so the calls share one breaker, as they do in a running planner.
      yield* Effect.gen(function* () {
        server.enqueue(Reply.status(500), Reply.status(500))
        expect(reasonOf(yield* Planning.planRequest(request))).toContain("ServerError")
        expect(reasonOf(yield* Planning.planRequest(request))).toContain("ServerError")
        expect(server.modelRequests()).toHaveLength(2)

        // Open: the endpoint is not called and the plan's source says why.
        const whileOpen = yield* Planning.planRequest(request)
        expect(server.modelRequests()).toHaveLength(2)
        expect(whileOpen.source._tag).toBe("Parser")
        expect(reasonOf(whileOpen)).toMatch(/^LLM circuit breaker is open: the endpoint failed 2 times in a row/)
        const llm = yield* Llm
        const direct = yield* llm.classifyNodeKind("Deploy the site").pipe(Effect.flip)
        expect(direct.reason).toBe("CircuitOpen")

        // After the cool-down one probe goes through; it succeeds and closes the breaker.
        yield* Effect.sleep(Duration.millis(450))
        server.enqueue(Reply.json(goodPlan), Reply.json({ kind: "ToolCall" }))
        const probed = yield* Planning.planRequest(request)
        expect(probed.source).toEqual({ _tag: "Llm", model })
        expect(yield* llm.classifyNodeKind("Deploy the site")).toBe("ToolCall")
        expect(server.modelRequests()).toHaveLength(4)
      }).pipe(Effect.provide(llmLayer("responses", settings)))
    })
  )

  it.scopedLive("a failed probe opens the breaker for another cool-down", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const settings = settingsFor(server, { maxRetries: 0, breakerFailures: 1, breakerCooldown: Duration.millis(300) })
      yield* Effect.gen(function* () {
        server.enqueue(Reply.status(503), Reply.status(503))
        yield* Planning.planRequest(request)
        yield* Effect.sleep(Duration.millis(350))
        expect(reasonOf(yield* Planning.planRequest(request))).toContain("ServerError")
        expect(reasonOf(yield* Planning.planRequest(request))).toMatch(/^LLM circuit breaker is open/)
        expect(server.modelRequests()).toHaveLength(2)
      }).pipe(Effect.provide(llmLayer("chat", settings)))
    })
  )

  it.scopedLive("client errors do not open the breaker", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const settings = settingsFor(server, { maxRetries: 0, breakerFailures: 2 })
      yield* Effect.gen(function* () {
        server.enqueue(Reply.status(400), Reply.status(400), Reply.status(400), Reply.json(goodPlan))
        for (let index = 0; index < 3; index++)
          expect(reasonOf(yield* Planning.planRequest(request))).toContain("ClientError")
        expect((yield* Planning.planRequest(request)).source._tag).toBe("Llm")
        expect(server.modelRequests()).toHaveLength(4)
      }).pipe(Effect.provide(llmLayer("responses", settings)))
    })
  )
})
