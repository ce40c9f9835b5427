/**
 * Embeddings from an OpenAI-compatible endpoint (`POST {baseUrl}/embeddings`, as OpenAI, Ollama, vLLM and llama.cpp
 * serve it), for the memory index's similarity search.
 *
 * Configured by `PLANNER_EMBEDDINGS_MODEL`, sent to the LLM's base URL (`PLANNER_LLM_BASE_URL`, or api.openai.com when
 * only a key is set) with the LLM's key (`PLANNER_LLM_API_KEY` or `OPENAI_API_KEY`). Without the model, memory
 * searches by text alone. The key is `Redacted`, sent only in the Authorization header, and never part of an error.
 */
import { Config, ConfigError, Duration, Effect, Either, Option, Redacted } from "effect"
import * as EnvConfig from "./internal/envConfig.js"
import { type Embedder, MemoryIndexError } from "./MemoryIndex.js"

export interface EmbeddingsSettings {
  /** Without a trailing slash. */
  readonly baseUrl: string
  readonly model: string
  readonly apiKey: Option.Option<Redacted.Redacted>
  /** Per request. */
  readonly timeout: Duration.Duration
  /** Texts per request. */
  readonly batchSize: number
}

export const makeSettings = (
  options: Pick<EmbeddingsSettings, "baseUrl" | "model"> & Partial<Omit<EmbeddingsSettings, "baseUrl" | "model">>
): EmbeddingsSettings => ({
  apiKey: Option.none(),
  timeout: Duration.seconds(30),
  batchSize: 64,
  ...options,
  baseUrl: options.baseUrl.replace(/\/+$/, "")
})

/** The embeddings settings from the environment, `None` when `PLANNER_EMBEDDINGS_MODEL` is not set. */
export const fromEnv: Config.Config<Option.Option<EmbeddingsSettings>> = Config.all({
  model: EnvConfig.optionalText("PLANNER_EMBEDDINGS_MODEL"),
  baseUrl: EnvConfig.optionalText("PLANNER_LLM_BASE_URL"),
  apiKey: EnvConfig.apiKey
}).pipe(
  Config.mapOrFail((env) => {
    if (Option.isNone(env.model)) return Either.right(Option.none())
    if (Option.isNone(env.baseUrl) && Option.isNone(env.apiKey)) {
      return Either.left(
        ConfigError.InvalidData(
          [],
          "PLANNER_EMBEDDINGS_MODEL is set but there is nowhere to send requests: set PLANNER_LLM_BASE_URL (for example http://localhost:11434/v1), or OPENAI_API_KEY to use api.openai.com"
        )
      )
    }
    const baseUrl = Option.getOrElse(env.baseUrl, () => "https://api.openai.com/v1")
    if (!/^https?:\/\/[^\s/]+/i.test(baseUrl)) {
      return Either.left(
        ConfigError.InvalidData([], `PLANNER_LLM_BASE_URL must be an http(s) URL, got ${JSON.stringify(baseUrl)}`)
      )
    }
    return Either.right(Option.some(makeSettings({ baseUrl, model: env.model.value, apiKey: env.apiKey })))
  })
)

interface EmbeddingsResponse {
  readonly data: ReadonlyArray<{ readonly embedding: ReadonlyArray<number>; readonly index?: number }>
}

const isResponse = (body: unknown, expected: number): body is EmbeddingsResponse => {
  if (typeof body !== "object" || body === null) return false
  const data = (body as { data?: unknown }).data
  return (
    Array.isArray(data) &&
    data.length === expected &&
    data.every(
      (item) =>
        typeof item === "object" &&
        item !== null &&
        Array.isArray((item as { embedding?: unknown }).embedding) &&
        ((item as { embedding: Array<unknown> }).embedding as Array<unknown>).every((x) => typeof x === "number")
    )
  )
}

/** An `Embedder` over the endpoint. */
export const make = (settings: EmbeddingsSettings): Embedder => {
  const url = `${settings.baseUrl}/embeddings`
  const failure = (reason: string) => new MemoryIndexError({ operation: "embed texts", reason })
  const request = (texts: ReadonlyArray<string>) =>
    Effect.tryPromise({
      try: async (signal) => {
        const headers: Record<string, string> = { "content-type": "application/json" }
        if (Option.isSome(settings.apiKey)) headers.authorization = `Bearer ${Redacted.value(settings.apiKey.value)}`
        const response = await fetch(url, {
          method: "POST",
          headers,
          body: JSON.stringify({ model: settings.model, input: texts }),
          signal
        })
        const text = await response.text()
        if (!response.ok) throw new Error(`${url} answered ${response.status}: ${text.slice(0, 200)}`)
        return JSON.parse(text) as unknown
      },
      catch: (error) => failure(error instanceof Error ? error.message : String(error))
    }).pipe(
      Effect.timeoutFail({
        duration: settings.timeout,
        onTimeout: () => failure(`${url} did not answer within ${Duration.format(settings.timeout)}`)
      }),
      Effect.flatMap((body) =>
        isResponse(body, texts.length)
          ? Effect.succeed(
              [...body.data]
                .map((item, position) => ({ index: item.index ?? position, embedding: item.embedding }))
                .sort((a, b) => a.index - b.index)
                .map((item) => item.embedding)
            )
          : Effect.fail(failure(`${url} did not answer with one embedding per text`))
      )
    )
  return {
    model: settings.model,
    embed: (texts) =>
      Effect.gen(function* () {
        const vectors: Array<ReadonlyArray<number>> = []
        for (let i = 0; i < texts.length; i += settings.batchSize) {
          vectors.push(...(yield* request(texts.slice(i, i + settings.batchSize))))
        }
        return vectors
      }).pipe(Effect.withSpan("Embeddings.embed", { attributes: { texts: texts.length, model: settings.model } }))
  }
}

/** The embedder the environment configures, if any. */
export const fromEnvironment: Effect.Effect<Option.Option<Embedder>, ConfigError.ConfigError> = Effect.map(
  fromEnv,
  Option.map(make)
)
