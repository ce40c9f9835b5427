/**
 * Timeouts, retries and the circuit breaker against a real HTTP server: what the server saw (how many requests, and
 * which ones the client gave up on) is the evidence. Waits run on the `TestClock`: a test lets the client's request
 * reach the server (real I/O), reads how long the client then sleeps, and moves the clock; nothing depends on how
 * long anything took on this machine.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import * as Planning from "../../src/app/Planning.js"
import { Llm } from "../../src/infra/Llm.js"
import { makeSettings } from "../../src/infra/LlmConfig.js"
import * as OpenAiLlm from "../../src/infra/OpenAiLlm.js"
import { advanceToNextSleep, eventually, nextSleep } from "../support/clock.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { Reply } from "./support/FakeOpenAiServer.js"
import { apis, goodPlan, llmLayer, model, request, settingsFor } from "./support/layers.js"

const reasonOf = (plan: Planning.PlanResult) => (plan.source._tag === "Parser" ? (plan.source.reason ?? "") : "")

/**
 * Long enough that a pending request timeout is never mistaken for a retry wait: a timed-out race leaves its sleep in
 * the TestClock's list.
 */
const requestTimeout = Duration.seconds(60)
const retryWaitsBelow = Duration.seconds(30)

/**
 * After the client's request `n` has reached the server and failed: how long the client waits before retrying. The
 * clock is moved to just before that moment (no retry yet), then to it, and the retry must arrive.
 */
const retryWaitAfter = (server: FakeOpenAiServer.FakeOpenAiServer, n: number) =>
  Effect.gen(function* () {
    yield* server.received(n)
    const wait = yield* nextSleep(retryWaitsBelow)
    yield* TestClock.adjust(Duration.millis(wait.delay - 1))
    expect(server.modelRequests()).toHaveLength(n)
    yield* TestClock.setTime(wait.wake)
    yield* server.received(n + 1)
    return wait.delay
  })

describe.each(apis)("retries over the %s protocol", (api) => {
  it.scoped("a 429 with Retry-After in seconds is waited for, then the call succeeds", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(429, { "retry-after": "1" }), Reply.json(goodPlan))
      const call = yield* Planning.planRequest(request).pipe(
        Effect.provide(llmLayer(api, settingsFor(server, { requestTimeout }))),
        Effect.fork
      )
      // The backoff alone would have waited about 20 ms.
      expect(yield* retryWaitAfter(server, 1)).toBe(1_000)
      const plan = yield* Fiber.join(call)
      expect(plan.source).toEqual({ _tag: "Llm", model })
      expect(server.modelRequests()).toHaveLength(2)
    })
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
  it.scoped("retry-after-ms (OpenAI's header) is honoured", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(429, { "retry-after-ms": "300" }), Reply.json(goodPlan))
      const call = yield* Planning.planRequest(request).pipe(
        Effect.provide(llmLayer("responses", settingsFor(server, { requestTimeout }))),
        Effect.fork
      )
      expect(yield* retryWaitAfter(server, 1)).toBe(300)
      expect((yield* Fiber.join(call)).source._tag).toBe("Llm")
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

  it.scoped(
    "5xx on every attempt: maxRetries + 1 requests with growing waits, then the parser plans and says why",
    () =>
      Effect.gen(function* () {
        const server = yield* FakeOpenAiServer.make
        server.enqueue(Reply.status(500), Reply.status(502), Reply.status(500))
        const call = yield* Planning.planRequest(request).pipe(
          Effect.provide(llmLayer("chat", settingsFor(server, { requestTimeout }))),
          Effect.fork
        )
        // Exponential: 20 ms, then 40 ms, each jittered by at most +-20%.
        const first = yield* retryWaitAfter(server, 1)
        const second = yield* retryWaitAfter(server, 2)
        expect(first).toBeGreaterThanOrEqual(16)
        expect(first).toBeLessThanOrEqual(24)
        expect(second).toBeGreaterThanOrEqual(32)
        expect(second).toBeLessThanOrEqual(48)
        const plan = yield* Fiber.join(call)
        expect(server.modelRequests()).toHaveLength(3)
        expect(reasonOf(plan)).toMatch(/^LLM request failed \(ServerError\): HTTP 500/)
      })
  )

  it.scoped("an answer slower than the timeout is abandoned and the call retried", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.hang(), Reply.json(goodPlan))
      const call = yield* Planning.planRequest(request).pipe(
        Effect.provide(llmLayer("responses", settingsFor(server, { requestTimeout: Duration.millis(300) }))),
        Effect.fork
      )
      yield* server.received(1)
      // The client waits for the answer exactly as long as its timeout, then gives up on the request.
      expect((yield* nextSleep()).delay).toBe(300)
      yield* TestClock.adjust(Duration.millis(299))
      expect(server.abandoned()).toHaveLength(0)
      yield* TestClock.adjust(Duration.millis(1))
      yield* eventually(
        "the client closes the unanswered request",
        Effect.sync(() => server.abandoned().length === 1)
      )
      // Then backs off (about 20 ms) and asks again; the second answer is used.
      yield* advanceToNextSleep(Duration.millis(300))
      const plan = yield* Fiber.join(call)
      expect(plan.source._tag).toBe("Llm")
      expect(server.modelRequests()).toHaveLength(2)
      expect(server.abandoned()).toEqual([server.modelRequests()[0]])
    })
  )

  it.scoped("timeouts on every attempt fall back to the parser with the reason", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.hang(), Reply.hang())
      const call = yield* Planning.planRequest(request).pipe(
        Effect.provide(llmLayer("chat", settingsFor(server, { requestTimeout: Duration.millis(200), maxRetries: 1 }))),
        Effect.fork
      )
      yield* server.received(1)
      expect(yield* advanceToNextSleep()).toBe(200)
      yield* advanceToNextSleep(Duration.millis(200))
      yield* server.received(2)
      expect(yield* advanceToNextSleep()).toBe(200)
      const plan = yield* Fiber.join(call)
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
  it.scoped("opens after consecutive failures, fails fast while open, and probes after the cool-down", () =>
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
        // The port itself fails fast too, with a typed reason rather than a fallback.
        const llm = yield* Llm
        const direct = yield* llm.parseTasks(request).pipe(Effect.flip)
        expect(direct.reason).toBe("CircuitOpen")

        // Open until the cool-down has passed, to the millisecond.
        yield* TestClock.adjust(Duration.millis(399))
        expect(reasonOf(yield* Planning.planRequest(request))).toMatch(/^LLM circuit breaker is open/)
        expect(server.modelRequests()).toHaveLength(2)

        // After the cool-down one probe goes through; it succeeds and closes the breaker.
        yield* TestClock.adjust(Duration.millis(1))
        server.enqueue(Reply.json(goodPlan), Reply.json(goodPlan))
        const probed = yield* Planning.planRequest(request)
        expect(probed.source).toEqual({ _tag: "Llm", model })
        const drafts = yield* llm.parseTasks(request)
        expect(drafts.map((draft) => draft.id)).toEqual(goodPlan.tasks.map((task) => task.id))
        expect(server.modelRequests()).toHaveLength(4)
      }).pipe(Effect.provide(llmLayer("responses", settings)))
    })
  )

  it.scoped("a failed probe opens the breaker for another cool-down", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const settings = settingsFor(server, { maxRetries: 0, breakerFailures: 1, breakerCooldown: Duration.millis(300) })
      yield* Effect.gen(function* () {
        server.enqueue(Reply.status(503), Reply.status(503), Reply.json(goodPlan))
        yield* Planning.planRequest(request)
        yield* TestClock.adjust(Duration.millis(300))
        expect(reasonOf(yield* Planning.planRequest(request))).toContain("ServerError")
        expect(reasonOf(yield* Planning.planRequest(request))).toMatch(/^LLM circuit breaker is open/)
        expect(server.modelRequests()).toHaveLength(2)
        // Another whole cool-down, counted from the failed probe.
        yield* TestClock.adjust(Duration.millis(299))
        expect(reasonOf(yield* Planning.planRequest(request))).toMatch(/^LLM circuit breaker is open/)
        yield* TestClock.adjust(Duration.millis(1))
        expect((yield* Planning.planRequest(request)).source._tag).toBe("Llm")
        expect(server.modelRequests()).toHaveLength(3)
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
