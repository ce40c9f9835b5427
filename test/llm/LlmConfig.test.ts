/** Choosing the LLM layer from the environment. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Option, Redacted } from "effect"
import * as Planning from "../../src/app/Planning.js"
import { Llm } from "../../src/infra/Llm.js"
import * as LlmConfig from "../../src/infra/LlmConfig.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { Reply } from "./support/FakeOpenAiServer.js"
import { apiKey, goodPlan, request } from "./support/layers.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const settings = (env: Record<string, string>) => LlmConfig.fromEnv.pipe(withEnv(env))

describe("LlmConfig", () => {
  it.effect("nothing configured: no settings, and the heuristic layer", () =>
    Effect.gen(function* () {
      expect(yield* settings({})).toEqual(Option.none())
      expect(yield* settings({ PLANNER_LLM_BASE_URL: "  ", PLANNER_LLM_MODEL: "" })).toEqual(Option.none())
      const llm = yield* Effect.provide(Llm, LlmConfig.layerFromEnv).pipe(withEnv({}))
      expect(llm.provider).toEqual({ _tag: "Heuristic" })
    })
  )

  it.effect("a local server: base URL and model, Responses API by default", () =>
    Effect.gen(function* () {
      const configured = Option.getOrThrow(
        yield* settings({ PLANNER_LLM_BASE_URL: "http://localhost:11434/v1/", PLANNER_LLM_MODEL: "llama3.1" })
      )
      expect(configured.baseUrl).toBe("http://localhost:11434/v1")
      expect(configured.model).toBe("llama3.1")
      expect(configured.api).toBe("responses")
      expect(Option.isNone(configured.apiKey)).toBe(true)
      expect(Duration.toMillis(configured.requestTimeout)).toBe(60_000)
    })
  )

  it.effect("the API key: PLANNER_LLM_API_KEY before OPENAI_API_KEY, empty ones ignored, always redacted", () =>
    Effect.gen(function* () {
      const base = { PLANNER_LLM_BASE_URL: "http://127.0.0.1:8080/v1", PLANNER_LLM_MODEL: "m" }
      const keyOf = (env: Record<string, string>) =>
        Effect.map(settings({ ...base, ...env }), (found) =>
          Option.getOrThrow(found).apiKey.pipe(Option.map(Redacted.value), Option.getOrUndefined)
        )
      expect(yield* keyOf({ OPENAI_API_KEY: "from-openai" })).toBe("from-openai")
      expect(yield* keyOf({ OPENAI_API_KEY: "from-openai", PLANNER_LLM_API_KEY: "own" })).toBe("own")
      expect(yield* keyOf({ OPENAI_API_KEY: "from-openai", PLANNER_LLM_API_KEY: "" })).toBe("from-openai")
      const withKey = Option.getOrThrow(yield* settings({ ...base, PLANNER_LLM_API_KEY: apiKey }))
      expect(JSON.stringify(withKey)).not.toContain(apiKey)
      expect(String(withKey.apiKey)).not.toContain(apiKey)
    })
  )

  it.effect("OpenAI itself: a model and a key are enough", () =>
    Effect.gen(function* () {
      const configured = Option.getOrThrow(
        yield* settings({ PLANNER_LLM_MODEL: "gpt-4.1-mini", OPENAI_API_KEY: "sk-x" })
      )
      expect(configured.baseUrl).toBe("https://api.openai.com/v1")
    })
  )

  it.effect("tuning variables are read and checked", () =>
    Effect.gen(function* () {
      const configured = Option.getOrThrow(
        yield* settings({
          PLANNER_LLM_BASE_URL: "http://127.0.0.1:8080",
          PLANNER_LLM_MODEL: "m",
          PLANNER_LLM_API: "chat",
          PLANNER_LLM_TIMEOUT_MS: "1500",
          PLANNER_LLM_MAX_RETRIES: "0",
          PLANNER_LLM_BREAKER_FAILURES: "2",
          PLANNER_LLM_BREAKER_COOLDOWN_MS: "1000",
          PLANNER_LLM_RESPONSE_FORMAT: "json_object",
          PLANNER_LLM_STRICT: "false"
        })
      )
      expect(configured.api).toBe("chat")
      expect(Duration.toMillis(configured.requestTimeout)).toBe(1500)
      expect(configured.maxRetries).toBe(0)
      expect(configured.breakerFailures).toBe(2)
      expect(Duration.toMillis(configured.breakerCooldown)).toBe(1000)
      expect(configured.chatResponseFormat).toBe("json_object")
      expect(configured.strictSchema).toBe(false)
      const invalid = yield* settings({
        PLANNER_LLM_BASE_URL: "http://h",
        PLANNER_LLM_MODEL: "m",
        PLANNER_LLM_API: "grpc"
      }).pipe(Effect.flip)
      expect(String(invalid)).toContain("PLANNER_LLM_API")
      const negative = yield* settings({
        PLANNER_LLM_BASE_URL: "http://h",
        PLANNER_LLM_MODEL: "m",
        PLANNER_LLM_TIMEOUT_MS: "0"
      }).pipe(Effect.flip)
      expect(String(negative)).toContain("PLANNER_LLM_TIMEOUT_MS must be a positive whole number")
    })
  )

  it.effect("half a configuration is an error that says what is missing", () =>
    Effect.gen(function* () {
      const noModel = yield* settings({ PLANNER_LLM_BASE_URL: "http://localhost:11434/v1" }).pipe(Effect.flip)
      expect(String(noModel)).toContain("PLANNER_LLM_MODEL is not")
      const nowhere = yield* settings({ PLANNER_LLM_MODEL: "llama3.1" }).pipe(Effect.flip)
      expect(String(nowhere)).toContain("set PLANNER_LLM_BASE_URL")
      const notUrl = yield* settings({ PLANNER_LLM_BASE_URL: "localhost:11434", PLANNER_LLM_MODEL: "m" }).pipe(
        Effect.flip
      )
      expect(String(notUrl)).toContain("must be an http(s) URL")
    })
  )

  it.scopedLive("PLANNER_LLM_API=chat selects the chat-completions layer", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json(goodPlan), Reply.json(goodPlan))
      const env = { PLANNER_LLM_BASE_URL: server.url, PLANNER_LLM_MODEL: "llama3.1", PLANNER_LLM_API_KEY: apiKey }
      const viaChat = yield* Planning.planRequest(request).pipe(
        Effect.provide(LlmConfig.layerFromEnv),
        withEnv({ ...env, PLANNER_LLM_API: "chat" })
      )
      const viaResponses = yield* Planning.planRequest(request).pipe(
        Effect.provide(LlmConfig.layerFromEnv),
        withEnv(env)
      )
      expect(viaChat.source).toEqual({ _tag: "Llm", model: "llama3.1" })
      expect(viaResponses.source).toEqual({ _tag: "Llm", model: "llama3.1" })
      expect(server.modelRequests().map((recorded) => recorded.path)).toEqual(["/v1/chat/completions", "/v1/responses"])
    })
  )

  it.scopedLive("json_object mode sends the schema in the instructions", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.json(goodPlan))
      const env = {
        PLANNER_LLM_BASE_URL: server.url,
        PLANNER_LLM_MODEL: "llama3.1",
        PLANNER_LLM_API: "chat",
        PLANNER_LLM_RESPONSE_FORMAT: "json_object"
      }
      const plan = yield* Planning.planRequest(request).pipe(Effect.provide(LlmConfig.layerFromEnv), withEnv(env))
      expect(plan.source._tag).toBe("Llm")
      const body = server.modelRequests()[0]?.body as {
        response_format?: unknown
        messages?: Array<{ content: string }>
      }
      expect(body.response_format).toEqual({ type: "json_object" })
      expect(body.messages?.[0]?.content).toContain('"required":["tasks"]')
      // No key configured: no Authorization header at all.
      expect(server.modelRequests()[0]?.headers.authorization).toBeUndefined()
    })
  )
})
