/**
 * The `Llm` over the OpenAI Responses API (`POST {baseUrl}/responses`) through `@effect/ai-openai`: OpenAI itself,
 * Ollama 0.13.3 and later, recent vLLM. For servers that only speak `/chat/completions` use `ChatCompletionsLlm`.
 */
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import * as OpenAiLanguageModel from "@effect/ai-openai/OpenAiLanguageModel"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { Effect, FiberRef, Layer, Option, type Scope } from "effect"
import { currentIdempotencyKey, Llm, type LlmService, makeRemote } from "./Llm.js"
import type { LlmSettings } from "./LlmConfig.js"

/** Adds the current step's idempotency key, if any, as the `Idempotency-Key` header. */
export const withIdempotencyKey = (client: HttpClient.HttpClient): HttpClient.HttpClient =>
  HttpClient.mapRequestEffect(client, (request) =>
    Effect.map(FiberRef.get(currentIdempotencyKey), (key) =>
      Option.match(key, {
        onNone: () => request,
        onSome: (value) => HttpClientRequest.setHeader(request, "Idempotency-Key", value)
      })
    )
  )

/** The service over an `HttpClient` from the context (for a custom client); `layer` brings its own. */
export const make = (settings: LlmSettings): Effect.Effect<LlmService, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    const client = yield* OpenAiClient.make({
      apiKey: Option.getOrUndefined(settings.apiKey),
      apiUrl: settings.baseUrl,
      transformClient: withIdempotencyKey
    })
    const languageModel = yield* OpenAiLanguageModel.make({
      model: settings.model,
      config: { strict: settings.strictSchema }
    }).pipe(Effect.provideService(OpenAiClient.OpenAiClient, client))
    return yield* makeRemote(languageModel, { ...settings, api: "responses" }, Option.toArray(settings.apiKey))
  })

export const layer = (settings: LlmSettings): Layer.Layer<Llm> =>
  Layer.scoped(Llm, make(settings)).pipe(Layer.provide(FetchHttpClient.layer))
