/**
 * Which LLM the planner talks to, read from the environment:
 *
 * - `PLANNER_LLM_BASE_URL`: the API base, for example `https://api.openai.com/v1` or `http://localhost:11434/v1`.
 *   Defaults to OpenAI's when only an API key and a model are set.
 * - `PLANNER_LLM_MODEL`: the model name (`gpt-4.1-mini`, `llama3.1`, ...).
 * - `PLANNER_LLM_API_KEY`, or `OPENAI_API_KEY`: kept `Redacted`; optional for local servers.
 * - `PLANNER_LLM_API`: `responses` (default; OpenAI, Ollama 0.13.3+, vLLM) or `chat` (`/chat/completions`, for
 *   llama.cpp and older servers).
 * - `PLANNER_LLM_TIMEOUT_MS` (60000), `PLANNER_LLM_MAX_RETRIES` (3), `PLANNER_LLM_RETRY_BASE_MS` (500),
 *   `PLANNER_LLM_RETRY_MAX_MS` (30000), `PLANNER_LLM_BREAKER_FAILURES` (5), `PLANNER_LLM_BREAKER_COOLDOWN_MS` (30000),
 *   `PLANNER_LLM_STRICT` (true: OpenAI strict structured outputs), `PLANNER_LLM_RESPONSE_FORMAT` (`json_schema`, or
 *   `json_object` for chat servers that do not take a schema).
 *
 * With neither a base URL nor a model set, the heuristic layer is used and nothing is sent anywhere.
 */
import { Config, ConfigError, Duration, Effect, Either, Layer, Option, type Redacted } from "effect"
import * as ChatCompletionsLlm from "./ChatCompletionsLlm.js"
import * as HeuristicLlm from "./HeuristicLlm.js"
import * as EnvConfig from "./internal/envConfig.js"
import type { Llm } from "./Llm.js"
import * as OpenAiLlm from "./OpenAiLlm.js"

export type LlmApi = "responses" | "chat"

export interface LlmSettings {
  readonly api: LlmApi
  /** Without a trailing slash; requests go to `${baseUrl}/responses` or `${baseUrl}/chat/completions`. */
  readonly baseUrl: string
  readonly model: string
  readonly apiKey: Option.Option<Redacted.Redacted>
  /** Per attempt. */
  readonly requestTimeout: Duration.Duration
  /** Retries after the first attempt, on 429, 5xx, timeouts and unreachable endpoints. */
  readonly maxRetries: number
  readonly retryBaseDelay: Duration.Duration
  /** The longest wait between attempts; a longer Retry-After is not waited for. */
  readonly maxRetryDelay: Duration.Duration
  /** Consecutive failed calls that open the circuit breaker. */
  readonly breakerFailures: number
  readonly breakerCooldown: Duration.Duration
  /** Send JSON schemas with `strict: true` (OpenAI structured outputs). */
  readonly strictSchema: boolean
  /** How the chat-completions layer asks for JSON. */
  readonly chatResponseFormat: "json_schema" | "json_object"
}

export const openAiBaseUrl = "https://api.openai.com/v1"

export const defaults = {
  api: "responses",
  requestTimeout: Duration.seconds(60),
  maxRetries: 3,
  retryBaseDelay: Duration.millis(500),
  maxRetryDelay: Duration.seconds(30),
  breakerFailures: 5,
  breakerCooldown: Duration.seconds(30),
  strictSchema: true,
  chatResponseFormat: "json_schema"
} as const satisfies Partial<LlmSettings>

/** Settings for `baseUrl` and `model`, with the defaults for everything not given. */
export const makeSettings = (
  options: Pick<LlmSettings, "baseUrl" | "model"> & Partial<Omit<LlmSettings, "baseUrl" | "model">>
): LlmSettings => ({
  apiKey: Option.none(),
  ...defaults,
  ...options,
  baseUrl: options.baseUrl.replace(/\/+$/, "")
})

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a positive whole number`, validation: (value) => value > 0 })
  )

const nonNegativeInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be zero or a positive whole number`, validation: (value) => value >= 0 })
  )

/** The LLM settings from the environment, or `None` when no LLM is configured (the heuristic layer is used then). */
export const fromEnv: Config.Config<Option.Option<LlmSettings>> = Config.all({
  baseUrl: EnvConfig.optionalText("PLANNER_LLM_BASE_URL"),
  model: EnvConfig.optionalText("PLANNER_LLM_MODEL"),
  apiKey: EnvConfig.apiKey,
  api: Config.literal("responses", "chat")("PLANNER_LLM_API").pipe(Config.withDefault(defaults.api)),
  timeoutMs: positiveInt("PLANNER_LLM_TIMEOUT_MS", Duration.toMillis(defaults.requestTimeout)),
  maxRetries: nonNegativeInt("PLANNER_LLM_MAX_RETRIES", defaults.maxRetries),
  retryBaseMs: positiveInt("PLANNER_LLM_RETRY_BASE_MS", Duration.toMillis(defaults.retryBaseDelay)),
  retryMaxMs: positiveInt("PLANNER_LLM_RETRY_MAX_MS", Duration.toMillis(defaults.maxRetryDelay)),
  breakerFailures: positiveInt("PLANNER_LLM_BREAKER_FAILURES", defaults.breakerFailures),
  breakerCooldownMs: positiveInt("PLANNER_LLM_BREAKER_COOLDOWN_MS", Duration.toMillis(defaults.breakerCooldown)),
  strictSchema: Config.boolean("PLANNER_LLM_STRICT").pipe(Config.withDefault(defaults.strictSchema)),
  chatResponseFormat: Config.literal(
    "json_schema",
    "json_object"
  )("PLANNER_LLM_RESPONSE_FORMAT").pipe(Config.withDefault(defaults.chatResponseFormat))
}).pipe(
  Config.mapOrFail((env) => {
    const invalid = (message: string) => Either.left(ConfigError.InvalidData([], message))
    if (Option.isNone(env.model)) {
      return Option.isSome(env.baseUrl)
        ? invalid(
            "PLANNER_LLM_BASE_URL is set but PLANNER_LLM_MODEL is not: set the model name too (for example llama3.1)"
          )
        : Either.right(Option.none<LlmSettings>())
    }
    if (Option.isNone(env.baseUrl) && Option.isNone(env.apiKey)) {
      return invalid(
        "PLANNER_LLM_MODEL is set but there is nowhere to send requests: set PLANNER_LLM_BASE_URL (for example http://localhost:11434/v1), or OPENAI_API_KEY to use api.openai.com"
      )
    }
    const baseUrl = Option.getOrElse(env.baseUrl, () => openAiBaseUrl)
    if (!/^https?:\/\/[^\s/]+/i.test(baseUrl)) {
      return invalid(`PLANNER_LLM_BASE_URL must be an http(s) URL, got ${JSON.stringify(baseUrl)}`)
    }
    return Either.right(
      Option.some(
        makeSettings({
          baseUrl,
          model: env.model.value,
          apiKey: env.apiKey,
          api: env.api,
          requestTimeout: Duration.millis(env.timeoutMs),
          maxRetries: env.maxRetries,
          retryBaseDelay: Duration.millis(env.retryBaseMs),
          maxRetryDelay: Duration.millis(env.retryMaxMs),
          breakerFailures: env.breakerFailures,
          breakerCooldown: Duration.millis(env.breakerCooldownMs),
          strictSchema: env.strictSchema,
          chatResponseFormat: env.chatResponseFormat
        })
      )
    )
  })
)

/** The layer for these settings: Responses API or chat completions, or the heuristic layer for `None`. */
export const layer = (settings: Option.Option<LlmSettings>): Layer.Layer<Llm> =>
  Option.match(settings, {
    onNone: () => HeuristicLlm.layer,
    onSome: (configured) =>
      configured.api === "chat" ? ChatCompletionsLlm.layer(configured) : OpenAiLlm.layer(configured)
  })

/** The `Llm` chosen by the environment (see the module comment); fails with a clear `ConfigError` when half-configured. */
export const layerFromEnv: Layer.Layer<Llm, ConfigError.ConfigError> = Layer.unwrapEffect(Effect.map(fromEnv, layer))
