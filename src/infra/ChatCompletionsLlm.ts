/**
 * The `Llm` over `POST {baseUrl}/chat/completions`, for servers that do not serve the Responses API (llama.cpp's
 * server, older vLLM and Ollama, most OpenAI-compatible proxies). Selected by `PLANNER_LLM_API=chat`.
 *
 * It is an `@effect/ai` `LanguageModel`, so structured output, repair, retries and the circuit breaker are exactly
 * those of the Responses layer. JSON is requested with `response_format: { type: "json_schema" }`, or with
 * `json_object` plus the schema in the instructions for servers that take no schema.
 */
import * as AiError from "@effect/ai/AiError"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { Effect, Layer, Option, Schema, type Scope, Stream } from "effect"
import { Llm, type LlmService, makeRemote } from "./Llm.js"
import type { LlmSettings } from "./LlmConfig.js"
import { withIdempotencyKey, withScrubbedResponses } from "./OpenAiLlm.js"

const ChatCompletion = Schema.Struct({
  id: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  created: Schema.optional(Schema.Number),
  choices: Schema.Array(
    Schema.Struct({
      message: Schema.Struct({
        content: Schema.optional(Schema.NullOr(Schema.String)),
        refusal: Schema.optional(Schema.NullOr(Schema.String))
      }),
      finish_reason: Schema.optional(Schema.NullOr(Schema.String))
    })
  ),
  usage: Schema.optional(
    Schema.NullOr(
      Schema.Struct({
        prompt_tokens: Schema.optional(Schema.Number),
        completion_tokens: Schema.optional(Schema.Number),
        total_tokens: Schema.optional(Schema.Number)
      })
    )
  )
})

interface ChatMessage {
  readonly role: "system" | "user" | "assistant"
  readonly content: string
}

const finishReason = (reason: string | null | undefined): Response.FinishReason => {
  switch (reason) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "content_filter":
      return "content-filter"
    case "tool_calls":
    case "function_call":
      return "tool-calls"
    default:
      return "unknown"
  }
}

const toMessages = (prompt: Prompt.Prompt): Array<ChatMessage> => {
  const messages: Array<ChatMessage> = []
  for (const message of prompt.content) {
    switch (message.role) {
      case "system":
        messages.push({ role: "system", content: message.content })
        break
      case "user":
      case "assistant": {
        const text = message.content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("")
        messages.push({ role: message.role, content: text })
        break
      }
      case "tool":
        break
    }
  }
  return messages
}

/** A chat-completions `LanguageModel` over an `HttpClient` whose requests already carry the base URL and key. */
export const makeLanguageModel = (
  client: HttpClient.HttpClient,
  settings: LlmSettings
): Effect.Effect<LanguageModel.Service> => {
  const requestBody = (options: LanguageModel.ProviderOptions) => {
    const messages = toMessages(options.prompt)
    const format = options.responseFormat
    if (format.type === "text") return { model: settings.model, messages, stream: false }
    const schema = Tool.getJsonSchemaFromSchemaAst(format.schema.ast)
    if (settings.chatResponseFormat === "json_object") {
      const instructions = `Answer with a single JSON object that matches this JSON schema:\n${JSON.stringify(schema)}`
      const [first, ...rest] = messages
      const withSchema =
        first?.role === "system"
          ? [{ role: "system" as const, content: `${first.content}\n\n${instructions}` }, ...rest]
          : [{ role: "system" as const, content: instructions }, ...messages]
      return { model: settings.model, messages: withSchema, stream: false, response_format: { type: "json_object" } }
    }
    return {
      model: settings.model,
      messages,
      stream: false,
      response_format: {
        type: "json_schema",
        json_schema: { name: format.objectName, schema, strict: settings.strictSchema }
      }
    }
  }

  const generateText = (options: LanguageModel.ProviderOptions) =>
    HttpClientRequest.post("/chat/completions").pipe(
      HttpClientRequest.bodyJson(requestBody(options)),
      Effect.flatMap((request) => HttpClient.filterStatusOk(client).execute(request)),
      Effect.flatMap(HttpClientResponse.schemaBodyJson(ChatCompletion)),
      Effect.scoped,
      Effect.map((completion): Array<Response.PartEncoded> => {
        const choice = completion.choices[0]
        const parts: Array<Response.PartEncoded> = [
          {
            type: "response-metadata",
            id: completion.id,
            modelId: completion.model,
            timestamp: completion.created === undefined ? undefined : new Date(completion.created * 1000).toISOString()
          }
        ]
        const refusal = choice?.message.refusal
        // A refusal is passed on as the answer's text: it is not JSON, so it goes through repair and then fallback.
        const text = choice?.message.content ?? (refusal !== undefined && refusal !== null ? refusal : undefined)
        if (text !== undefined && text !== null) parts.push({ type: "text", text })
        parts.push({
          type: "finish",
          reason: finishReason(choice?.finish_reason),
          usage: {
            inputTokens: completion.usage?.prompt_tokens,
            outputTokens: completion.usage?.completion_tokens,
            totalTokens: completion.usage?.total_tokens
          }
        })
        return parts
      }),
      Effect.catchTags({
        RequestError: (error) =>
          Effect.fail(
            AiError.HttpRequestError.fromRequestError({ module: "ChatCompletionsLlm", method: "generateText", error })
          ),
        ResponseError: (error) =>
          AiError.HttpResponseError.fromResponseError({ module: "ChatCompletionsLlm", method: "generateText", error }),
        ParseError: (error) =>
          Effect.fail(
            AiError.MalformedOutput.fromParseError({ module: "ChatCompletionsLlm", method: "generateText", error })
          ),
        HttpBodyError: (error) =>
          Effect.fail(
            new AiError.MalformedInput({
              module: "ChatCompletionsLlm",
              method: "generateText",
              description: `the request body could not be encoded: ${String(error.reason._tag)}`
            })
          )
      })
    )

  return LanguageModel.make({
    generateText,
    streamText: (options) =>
      // No streaming on this path: the whole answer is delivered as one text part.
      Stream.unwrap(
        Effect.map(generateText(options), (parts) =>
          Stream.fromIterable(
            parts.flatMap(
              (part): Array<Response.StreamPartEncoded> =>
                part.type === "text"
                  ? [
                      { type: "text-start", id: "0" },
                      { type: "text-delta", id: "0", delta: part.text },
                      { type: "text-end", id: "0" }
                    ]
                  : part.type === "finish" || part.type === "response-metadata"
                    ? [part]
                    : []
            )
          )
        )
      )
  })
}

/** The service over an `HttpClient` from the context (for a custom client); `layer` brings its own. */
export const make = (settings: LlmSettings): Effect.Effect<LlmService, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((request) =>
        request.pipe(
          HttpClientRequest.prependUrl(settings.baseUrl),
          Option.match(settings.apiKey, {
            onNone: () => (self: HttpClientRequest.HttpClientRequest) => self,
            onSome: (key) => HttpClientRequest.bearerToken(key)
          }),
          HttpClientRequest.acceptJson
        )
      ),
      withIdempotencyKey,
      withScrubbedResponses(Option.toArray(settings.apiKey))
    )
    const languageModel = yield* makeLanguageModel(client, settings)
    return yield* makeRemote(languageModel, { ...settings, api: "chat" }, Option.toArray(settings.apiKey))
  })

export const layer = (settings: LlmSettings): Layer.Layer<Llm> =>
  Layer.scoped(Llm, make(settings)).pipe(Layer.provide(FetchHttpClient.layer))
