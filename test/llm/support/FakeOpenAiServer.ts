/**
 * A real HTTP server on 127.0.0.1 that speaks both OpenAI protocols the planner uses: the Responses API
 * (`POST /responses`, in the shape `@effect/ai-openai` 0.41 decodes) and chat completions (`POST /chat/completions`).
 * Each test scripts the answers in order (good JSON, malformed or truncated JSON, a refusal, 429 with Retry-After,
 * 500, no answer at all) and reads back every request it received, with headers, to count retries and check what was
 * sent. `received(n)` tells a test driving the client's clock (`TestClock`) that the client's n-th request is here,
 * and `abandoned()` which requests the client gave up on before they were answered.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, type Scope } from "effect"

export type Reply =
  /** The model's answer text (valid JSON, malformed JSON, anything). `truncated` marks it as cut off by a length limit. */
  | { readonly _tag: "Output"; readonly text: string; readonly truncated?: boolean; readonly usage?: Usage }
  | { readonly _tag: "Refusal"; readonly refusal: string }
  /** An HTTP error status with optional headers and JSON body. */
  | {
      readonly _tag: "Status"
      readonly status: number
      readonly headers?: Readonly<Record<string, string>>
      readonly body?: unknown
    }
  /** Any status and body, sent as given (a protocol-level mistake). */
  | { readonly _tag: "Raw"; readonly status: number; readonly contentType: string; readonly body: string }
  /** Answers after `ms` of real time (the client may give up first). */
  | { readonly _tag: "Delay"; readonly ms: number; readonly then: Reply }
  /** Never answers: the request stays open until the client gives up or the server closes. */
  | { readonly _tag: "Hang" }
  /**
   * Answers when `signal` settles: with `then` when it resolves, with a 500 naming the reason when it rejects. For
   * holding requests open until something else has happened (for example, until a parallel request has arrived).
   */
  | { readonly _tag: "After"; readonly signal: Promise<unknown>; readonly then: Reply }
  /** Decides from the request (for echoing what was sent). */
  | { readonly _tag: "Dynamic"; readonly respond: (request: RecordedRequest) => Reply }

/** The token usage a reply reports (default 12 in, 7 out); `null` reports none, so the client must count. */
export type Usage = { readonly input: number; readonly output: number } | null

export const Reply = {
  json: (value: unknown, usage?: Usage): Reply =>
    usage === undefined
      ? { _tag: "Output", text: JSON.stringify(value) }
      : { _tag: "Output", text: JSON.stringify(value), usage },
  text: (text: string, truncated = false): Reply => ({ _tag: "Output", text, truncated }),
  refusal: (refusal: string): Reply => ({ _tag: "Refusal", refusal }),
  status: (status: number, headers: Readonly<Record<string, string>> = {}, body?: unknown): Reply => ({
    _tag: "Status",
    status,
    headers,
    body: body ?? { error: { message: `scripted ${status}`, type: "test" } }
  }),
  raw: (status: number, contentType: string, body: string): Reply => ({ _tag: "Raw", status, contentType, body }),
  delay: (ms: number, then: Reply): Reply => ({ _tag: "Delay", ms, then }),
  hang: (): Reply => ({ _tag: "Hang" }),
  after: (signal: Promise<unknown>, then: Reply): Reply => {
    // Settled by the server when the reply is used; never an unhandled rejection when it is not.
    signal.catch(() => undefined)
    return { _tag: "After", signal, then }
  },
  dynamic: (respond: (request: RecordedRequest) => Reply): Reply => ({ _tag: "Dynamic", respond })
}

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  /** Lower-cased names, as Node gives them. */
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  /** The parsed JSON body, or the raw text when it is not JSON. */
  readonly body: unknown
  readonly rawBody: string
  /** `Date.now()` when the request arrived: for ordering requests, never for measuring waits. */
  readonly receivedAt: number
}

export interface FakeOpenAiServer {
  /** The base URL to configure: `http://127.0.0.1:<port>/v1`. */
  readonly url: string
  /** Queues replies; each request takes the next one. With none left, the server answers 400 so a test fails loudly. */
  readonly enqueue: (...replies: ReadonlyArray<Reply>) => void
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Requests that asked for a model answer (`/responses` or `/chat/completions`). */
  readonly modelRequests: () => ReadonlyArray<RecordedRequest>
  /** Completes once `count` model requests have arrived: the signal a test driving the client's clock waits for. */
  readonly received: (count: number) => Effect.Effect<void>
  /** Model requests whose connection the client closed before they were answered. */
  readonly abandoned: () => ReadonlyArray<RecordedRequest>
  readonly pending: () => number
}

const modelPaths = new Set(["/v1/responses", "/v1/chat/completions"])

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

/** The conversation a recorded request sent, as role and text, for either protocol. */
export const messagesOf = (
  request: RecordedRequest
): ReadonlyArray<{ readonly role: string; readonly text: string }> => {
  if (!isRecord(request.body)) return []
  const items = request.body.input ?? request.body.messages
  if (!Array.isArray(items)) return []
  return items.flatMap((item: unknown) => {
    if (!isRecord(item) || typeof item.role !== "string") return []
    const content = item.content
    if (typeof content === "string") return [{ role: item.role, text: content }]
    if (!Array.isArray(content)) return []
    const text = content
      .map((part: unknown) => (isRecord(part) && typeof part.text === "string" ? part.text : ""))
      .join("")
    return [{ role: item.role, text }]
  })
}

/** The JSON schema a recorded request asked the answer to follow, for either protocol. */
export const schemaOf = (request: RecordedRequest): unknown => {
  if (!isRecord(request.body)) return undefined
  const text = request.body.text
  if (isRecord(text) && isRecord(text.format)) return text.format.schema
  const format = request.body.response_format
  if (isRecord(format) && isRecord(format.json_schema)) return format.json_schema.schema
  return undefined
}

let counter = 0

const responsesBody = (
  model: string,
  reply: { readonly text: string; readonly truncated?: boolean; readonly usage?: Usage } | { readonly refusal: string }
) => {
  counter += 1
  const usage = "usage" in reply && reply.usage !== undefined ? reply.usage : { input: 12, output: 7 }
  const content =
    "refusal" in reply
      ? [{ type: "refusal", refusal: reply.refusal }]
      : [{ type: "output_text", text: reply.text, annotations: [] }]
  const truncated = "text" in reply && reply.truncated === true
  return {
    id: `resp_${counter}`,
    object: "response",
    created_at: Math.floor(Date.now() / 1000),
    status: truncated ? "incomplete" : "completed",
    error: null,
    incomplete_details: truncated ? { reason: "max_output_tokens" } : null,
    instructions: null,
    model,
    output: [
      {
        id: `msg_${counter}`,
        type: "message",
        role: "assistant",
        status: truncated ? "incomplete" : "completed",
        content
      }
    ],
    parallel_tool_calls: true,
    tools: [],
    tool_choice: "auto",
    metadata: null,
    temperature: null,
    top_p: null,
    ...(usage === null
      ? {}
      : {
          usage: {
            input_tokens: usage.input,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: usage.output,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: usage.input + usage.output
          }
        })
  }
}

const chatBody = (
  model: string,
  reply: { readonly text: string; readonly truncated?: boolean; readonly usage?: Usage } | { readonly refusal: string }
) => {
  counter += 1
  const usage = "usage" in reply && reply.usage !== undefined ? reply.usage : { input: 12, output: 7 }
  const refusal = "refusal" in reply ? reply.refusal : null
  return {
    id: `chatcmpl_${counter}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: "text" in reply ? reply.text : null, refusal },
        finish_reason: "text" in reply && reply.truncated === true ? "length" : "stop"
      }
    ],
    ...(usage === null
      ? {}
      : {
          usage: {
            prompt_tokens: usage.input,
            completion_tokens: usage.output,
            total_tokens: usage.input + usage.output
          }
        })
  }
}

const readBody = (request: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    request.on("error", reject)
  })

const sendJson = (
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {}
) => {
  if (response.destroyed || response.writableEnded) return
  response.writeHead(status, { "content-type": "application/json", ...headers })
  response.end(JSON.stringify(body))
}

/** Starts a server for the scope; it is closed (with every open connection) when the scope closes. */
export const make: Effect.Effect<FakeOpenAiServer, never, Scope.Scope> = Effect.gen(function* () {
  const queue: Array<Reply> = []
  const requests: Array<RecordedRequest> = []
  const timers = new Set<NodeJS.Timeout>()
  const abandoned: Array<RecordedRequest> = []
  let modelRequestCount = 0
  const waiting = new Set<{ readonly count: number; readonly resume: () => void }>()
  const signalReceived = () => {
    modelRequestCount += 1
    for (const waiter of waiting) {
      if (modelRequestCount >= waiter.count) {
        waiting.delete(waiter)
        waiter.resume()
      }
    }
  }

  const answer = (recorded: RecordedRequest, response: ServerResponse, reply: Reply): void => {
    const model = isRecord(recorded.body) && typeof recorded.body.model === "string" ? recorded.body.model : "unknown"
    const chat = recorded.path.endsWith("/chat/completions")
    switch (reply._tag) {
      case "Output":
      case "Refusal":
        sendJson(response, 200, chat ? chatBody(model, reply) : responsesBody(model, reply))
        return
      case "Status":
        sendJson(response, reply.status, reply.body ?? {}, reply.headers)
        return
      case "Raw":
        if (response.destroyed) return
        response.writeHead(reply.status, { "content-type": reply.contentType })
        response.end(reply.body)
        return
      case "Delay": {
        const timer = setTimeout(() => {
          timers.delete(timer)
          answer(recorded, response, reply.then)
        }, reply.ms)
        timers.add(timer)
        response.on("close", () => {
          clearTimeout(timer)
          timers.delete(timer)
        })
        return
      }
      case "Hang":
        return
      case "After":
        reply.signal.then(
          () => answer(recorded, response, reply.then),
          (error: unknown) =>
            sendJson(response, 500, {
              error: { message: `FakeOpenAiServer: held reply released by failure: ${String(error)}` }
            })
        )
        return
      case "Dynamic":
        answer(recorded, response, reply.respond(recorded))
        return
    }
  }

  const server = createServer((request, response) => {
    readBody(request).then(
      (rawBody) => {
        let body: unknown = rawBody
        try {
          body = rawBody.length > 0 ? JSON.parse(rawBody) : undefined
        } catch {
          body = rawBody
        }
        const recorded: RecordedRequest = {
          method: request.method ?? "GET",
          path: (request.url ?? "/").split("?")[0] ?? "/",
          headers: request.headers,
          body,
          rawBody,
          receivedAt: Date.now()
        }
        requests.push(recorded)
        if (request.method !== "POST" || !modelPaths.has(recorded.path)) {
          return sendJson(response, 404, {
            error: { message: `FakeOpenAiServer: no route for ${request.method} ${recorded.path}` }
          })
        }
        response.on("close", () => {
          if (!response.writableEnded) abandoned.push(recorded)
        })
        signalReceived()
        const next = queue.shift()
        if (next === undefined) {
          return sendJson(response, 400, { error: { message: "FakeOpenAiServer: no scripted reply left" } })
        }
        answer(recorded, response, next)
      },
      () => response.destroy()
    )
  })

  const port = yield* Effect.acquireRelease(
    Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
    }),
    () =>
      Effect.async<void>((resume) => {
        for (const timer of timers) clearTimeout(timer)
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

  return {
    url: `http://127.0.0.1:${port}/v1`,
    enqueue: (...replies) => {
      queue.push(...replies)
    },
    requests,
    modelRequests: () => requests.filter((request) => modelPaths.has(request.path)),
    received: (count) =>
      Effect.async<void>((resume) => {
        if (modelRequestCount >= count) return resume(Effect.void)
        const waiter = { count, resume: () => resume(Effect.void) }
        waiting.add(waiter)
        return Effect.sync(() => waiting.delete(waiter))
      }),
    abandoned: () => [...abandoned],
    pending: () => queue.length
  } satisfies FakeOpenAiServer
})
