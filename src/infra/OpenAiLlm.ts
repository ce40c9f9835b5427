/**
 * The `Llm` over the OpenAI Responses API (`POST {baseUrl}/responses`) through `@effect/ai-openai`: OpenAI itself,
 * Ollama 0.13.3 and later, recent vLLM. For servers that only speak `/chat/completions` use `ChatCompletionsLlm`.
 */
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import * as OpenAiLanguageModel from "@effect/ai-openai/OpenAiLanguageModel"
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { Effect, FiberRef, Layer, Option, type Redacted, type Scope } from "effect"
import { currentIdempotencyKey, Llm, type LlmService, makeRemote } from "./Llm.js"
import type { LlmSettings } from "./LlmConfig.js"
import * as Secrets from "./Secrets.js"

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

/** Statuses whose response has no body. */
const bodilessStatuses = new Set([101, 103, 204, 205, 304])

/**
 * The client with every response's headers and body scrubbed of `secrets` and their fragments before anything reads
 * them: a provider that echoes the key (OpenAI does, in part, in a 401's body) cannot put it into an error, a log or a
 * span. Event streams keep their body (nothing here streams).
 */
export const withScrubbedResponses =
  (secrets: ReadonlyArray<Redacted.Redacted>) =>
  (client: HttpClient.HttpClient): HttpClient.HttpClient => {
    if (secrets.length === 0) return client
    const scrub = Secrets.scrubWith(secrets)
    return HttpClient.transformResponse(
      client,
      Effect.flatMap((response) => {
        const headers = new globalThis.Headers()
        for (const [name, value] of Object.entries(response.headers)) {
          // The body is given decoded and rewritten: its length and encoding headers no longer apply.
          if (name !== "content-length" && name !== "content-encoding" && name !== "transfer-encoding") {
            headers.set(name, scrub(value))
          }
        }
        const streaming = (response.headers["content-type"] ?? "").includes("text/event-stream")
        if (streaming || bodilessStatuses.has(response.status)) return Effect.succeed(response)
        return Effect.map(response.text, (text) =>
          HttpClientResponse.fromWeb(
            response.request,
            new globalThis.Response(scrub(text), { status: response.status, headers })
          )
        )
      })
    )
  }

/** The service over an `HttpClient` from the context (for a custom client); `layer` brings its own. */
export const make = (settings: LlmSettings): Effect.Effect<LlmService, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    const secrets = Option.toArray(settings.apiKey)
    const client = yield* OpenAiClient.make({
      apiKey: Option.getOrUndefined(settings.apiKey),
      apiUrl: settings.baseUrl,
      transformClient: (client) => withScrubbedResponses(secrets)(withIdempotencyKey(client))
    })
    const languageModel = yield* OpenAiLanguageModel.make({
      model: settings.model,
      config: { strict: settings.strictSchema }
    }).pipe(Effect.provideService(OpenAiClient.OpenAiClient, client))
    return yield* makeRemote(languageModel, { ...settings, api: "responses" }, secrets)
  })

export const layer = (settings: LlmSettings): Layer.Layer<Llm> =>
  Layer.scoped(Llm, make(settings)).pipe(Layer.provide(FetchHttpClient.layer))
