/**
 * The LLM port: what the planner asks a language model, with typed answers and typed errors.
 *
 * Layers: `OpenAiLlm.layer` (Responses API through `@effect/ai-openai`), `ChatCompletionsLlm.layer` (`/chat/completions`
 * for servers without the Responses API, such as llama.cpp), `HeuristicLlm.layer` (no model at all), and
 * `LlmConfig.layerFromEnv`, which picks one from the environment.
 *
 * Every remote call asks for structured output validated by a `Schema` (its JSON schema is sent to the model), gets
 * one repair attempt when the answer is malformed, runs under a timeout, is retried with exponential backoff on 429
 * and 5xx (honouring Retry-After), and passes through a circuit breaker. Callers decide what to fall back to: the
 * methods here fail with `LlmError` rather than guessing.
 */
import type * as AiError from "@effect/ai/AiError"
import type * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import {
  Clock,
  Context,
  Data,
  Duration,
  Effect,
  Either,
  FiberRef,
  JSONSchema,
  Option,
  ParseResult,
  type Redacted,
  Schedule,
  Schema
} from "effect"
import { globalValue } from "effect/GlobalValue"
import type { Attachment, NodeKind } from "../domain/Task.js"
import { AttachmentKind, nodeKinds } from "../domain/Task.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type { CompactionInput } from "./Compactor.js"
import type { TaskContext } from "./Executor.js"
import type { LlmSettings } from "./LlmConfig.js"
import * as LlmUsage from "./LlmUsage.js"
import * as Secrets from "./Secrets.js"
import * as Tokenizer from "./Tokenizer.js"

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

export const LlmErrorReason = Schema.Literal(
  /** No answer within the request timeout. */
  "Timeout",
  /** 429 after every retry, or a Retry-After longer than the longest wait allowed. */
  "RateLimited",
  /** 5xx after every retry. */
  "ServerError",
  /** Any other 4xx (bad key, bad request, unknown model): retrying cannot help. */
  "ClientError",
  /** The endpoint could not be reached. */
  "Transport",
  /** The endpoint answered with something that is not the protocol's response. */
  "InvalidResponse",
  /** The circuit breaker is open: the call was not made. */
  "CircuitOpen",
  /** The model's answer did not match the schema, twice (the first answer and the repair). */
  "MalformedOutput",
  /** This layer has no model to do what was asked (the heuristic layer performing a step). */
  "Unavailable",
  /** The call would cross the session's budget (see `LlmUsage`): it was not made. */
  "BudgetExhausted"
)
export type LlmErrorReason = typeof LlmErrorReason.Type

/** Why an LLM call failed. Never contains the API key: details are built from scrubbed text only. */
export class LlmError extends Schema.TaggedError<LlmError>()("LlmError", {
  reason: LlmErrorReason,
  detail: Schema.String,
  status: Schema.optionalWith(Schema.Int, { exact: true }),
  /** What the server asked us to wait before trying again. */
  retryAfterMs: Schema.optionalWith(Schema.Number, { exact: true })
}) {
  override get message() {
    return `LLM ${describeReason[this.reason]}: ${this.detail}`
  }
  /** Whether trying the same request again can succeed. */
  get retryable(): boolean {
    return (
      this.reason === "Timeout" ||
      this.reason === "RateLimited" ||
      this.reason === "ServerError" ||
      this.reason === "Transport"
    )
  }
  /** Whether the failure says the endpoint is unhealthy (and counts towards opening the circuit breaker). */
  get endpointFailure(): boolean {
    return this.retryable
  }
}

const describeReason: Record<LlmErrorReason, string> = {
  Timeout: "request timed out",
  RateLimited: "rate limit reached",
  ServerError: "server error",
  ClientError: "request rejected",
  Transport: "endpoint unreachable",
  InvalidResponse: "answer was not understood",
  CircuitOpen: "circuit breaker is open",
  MalformedOutput: "output was malformed twice",
  Unavailable: "unavailable",
  BudgetExhausted: "call would cross the budget"
}

// ---------------------------------------------------------------------------------------------------------------
// What the service answers
// ---------------------------------------------------------------------------------------------------------------

/**
 * A task as the model proposed it. Ids are the model's own (any unique strings); the planner maps them to 1..n and
 * checks the dependencies with the graph code before anything is recorded.
 */
export interface TaskDraft {
  readonly id: string
  readonly description: string
  readonly kind: NodeKind
  readonly dependsOn: ReadonlyArray<string>
  readonly attachments: ReadonlyArray<Attachment>
  /** The model marked the step as itself a multi-step job, to run as a sub-plan (#16). */
  readonly subPlan?: boolean
}

/** What the model made of one step. */
export type StepAnswer = Data.TaggedEnum<{
  Completed: { readonly result: string }
  NeedsClarification: { readonly question: string }
  /** The model would not or could not do the step (a refusal, or missing means). */
  Declined: { readonly reason: string }
}>
export const StepAnswer = Data.taggedEnum<StepAnswer>()

export type Provider =
  | { readonly _tag: "Heuristic" }
  | { readonly _tag: "Remote"; readonly model: string; readonly api: "responses" | "chat" }

export interface ParseTasksOptions {
  /** The plan's system prompt (`PlannerConfig.systemPrompt`). */
  readonly systemPrompt?: string
  /** Attachments given for the whole request, so the model can refer to them. */
  readonly attachments?: ReadonlyArray<Attachment>
}

export interface LlmService {
  /** Which model answers, if any: `planRequest` records it as the plan's source. */
  readonly provider: Provider
  readonly parseTasks: (text: string, options?: ParseTasksOptions) => Effect.Effect<ReadonlyArray<TaskDraft>, LlmError>
  /** The model's summary; it may overshoot the budget, which `LlmCompactor` enforces. */
  readonly compactContext: (input: CompactionInput) => Effect.Effect<string, LlmError>
  /** The model's shortened error; it may overshoot `limit`, which `LlmCompactor` enforces. */
  readonly compactErrorMessage: (message: string, limit: number) => Effect.Effect<string, LlmError>
  /** Performs one step of a plan. The context's idempotency key is sent with the request. */
  readonly performStep: (context: TaskContext) => Effect.Effect<StepAnswer, LlmError>
}

export class Llm extends Context.Tag("event-sourced-planner/Llm")<Llm, LlmService>() {}

// ---------------------------------------------------------------------------------------------------------------
// Structured output: what the model is asked to return
// ---------------------------------------------------------------------------------------------------------------

// Every field is required and every object closed, so the schemas work with OpenAI's strict structured outputs. The
// fields are explained in the instructions rather than in annotations, which would also rename the types in the
// validation errors the model is shown.
const ModelId = Schema.Union(Schema.String, Schema.Int)
const KindOutput = Schema.Literal(...nodeKinds)

const planStepFields = {
  id: ModelId,
  description: Schema.String,
  kind: KindOutput,
  dependsOn: Schema.Array(ModelId),
  attachments: Schema.Array(Schema.Struct({ kind: AttachmentKind, value: Schema.String }))
}

/**
 * The plan as the model is asked for it: `subPlan` required on every step, like every field (strict outputs). Made
 * of schemas without identifiers, so its JSON schema has no `$defs` (an annotation's would be dropped) and no `$ref`.
 */
export const PlanOutputRequested = Schema.Struct({
  tasks: Schema.Array(
    Schema.Struct({
      ...planStepFields,
      id: Schema.Union(Schema.String, Schema.Number.pipe(Schema.int())),
      dependsOn: Schema.Array(Schema.Union(Schema.String, Schema.Number.pipe(Schema.int()))),
      attachments: Schema.Array(
        Schema.Struct({ kind: Schema.Literal(...AttachmentKind.literals), value: Schema.String })
      ),
      subPlan: Schema.Boolean
    })
  )
})

const { $schema: _unused, ...planJsonSchema } = JSONSchema.make(PlanOutputRequested)

/**
 * The plan as it is accepted (#16): a step's `subPlan` (it is itself a multi-step job, to be planned and run as a
 * sub-plan) may be missing, so answers to the older prompt, and models that leave it out, still plan. The JSON schema
 * sent is the strict one above.
 */
export const PlanOutput = Schema.Struct({
  tasks: Schema.Array(
    Schema.Struct({ ...planStepFields, subPlan: Schema.optionalWith(Schema.Boolean, { exact: true }) })
  )
}).annotations({ jsonSchema: planJsonSchema })

export const SummaryOutput = Schema.Struct({ summary: Schema.String })
export const ErrorOutput = Schema.Struct({ message: Schema.String })

export const StepOutput = Schema.Struct({
  outcome: Schema.Literal("completed", "needs_clarification", "cannot_complete"),
  result: Schema.String,
  question: Schema.String,
  reason: Schema.String
})

// ---------------------------------------------------------------------------------------------------------------
// Retry-After, secrets, idempotency keys
// ---------------------------------------------------------------------------------------------------------------

/**
 * How long the server asked us to wait, from `retry-after-ms` (OpenAI), or `Retry-After` in seconds or as an HTTP
 * date. Undefined when there is no usable header.
 */
export const parseRetryAfter = (headers: Readonly<Record<string, string>>, nowMs: number): number | undefined => {
  const header = (name: string) => {
    for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value.trim()
    return undefined
  }
  const millis = header("retry-after-ms")
  if (millis !== undefined && /^\d+(\.\d+)?$/.test(millis)) return Number(millis)
  const value = header("retry-after")
  if (value === undefined || value.length === 0) return undefined
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs)
}

/**
 * Replaces every secret, and every fragment of one a server might echo (`sk-...abcd`, `sk-proj-****abcd`, a run of its
 * characters), in `text`; applied to anything a server said before it reaches an error or a log.
 */
export const scrubber = (secrets: ReadonlyArray<Redacted.Redacted>): ((text: string) => string) =>
  Secrets.scrubWith(secrets)

/**
 * The idempotency key of the step being performed, sent as the `Idempotency-Key` header by both HTTP layers. A
 * fiber-local, so it reaches the HTTP request without threading it through `@effect/ai`.
 */
export const currentIdempotencyKey: FiberRef.FiberRef<Option.Option<string>> = globalValue(
  "event-sourced-planner/Llm/currentIdempotencyKey",
  () => FiberRef.unsafeMake<Option.Option<string>>(Option.none())
)

/** What an error response said, in one line: OpenAI-style `{ error: { message } }`, or the body compacted. */
const describeBody = (body: string | undefined): string => {
  if (body === undefined || body === "undefined") return ""
  let parsed: unknown = body
  try {
    parsed = JSON.parse(body)
  } catch {
    return body.replace(/\s+/g, " ").trim()
  }
  if (typeof parsed === "string") return parsed.replace(/\s+/g, " ").trim()
  if (typeof parsed === "object" && parsed !== null && "error" in parsed) {
    const inner: unknown = parsed.error
    if (typeof inner === "string") return inner
    if (typeof inner === "object" && inner !== null && "message" in inner && typeof inner.message === "string") {
      return inner.message
    }
  }
  return JSON.stringify(parsed)
}

/** A token count a server reported that can be recorded: a whole number from zero up. */
const isCount = (value: number | undefined): value is number =>
  value !== undefined && Number.isSafeInteger(value) && value >= 0

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`)

// ---------------------------------------------------------------------------------------------------------------
// A remote Llm over any @effect/ai LanguageModel
// ---------------------------------------------------------------------------------------------------------------

type Messages = ReadonlyArray<Prompt.MessageEncoded>

/** A malformed answer: the text the model gave and what was wrong with it. */
interface Malformed {
  readonly raw: string
  readonly problem: string
}

/**
 * A parse error as the model should read it: one line per path, the members of a failed union merged, and long type
 * descriptions and values shortened.
 */
const formatParseError = (error: ParseResult.ParseError): string => {
  const byPath = new Map<string, { expected: Array<string>; actual: string; other: Array<string> }>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const path = issue.path.map(String).join(".")
    const entry = byPath.get(path) ?? { expected: [], actual: "", other: [] }
    const mismatch = /^Expected ([\s\S]*), actual ([\s\S]*)$/.exec(issue.message)
    if (mismatch !== null) {
      entry.expected.push(mismatch[1] ?? "")
      entry.actual = mismatch[2] ?? ""
    } else if (!entry.other.includes(issue.message)) {
      entry.other.push(issue.message)
    }
    byPath.set(path, entry)
  }
  return [...byPath.entries()]
    .slice(0, 8)
    .map(([path, entry]) => {
      const messages = [...entry.other]
      if (entry.expected.length > 0) {
        const expected = entry.expected.join(" | ")
        messages.push(
          expected.length <= 160
            ? `expected ${expected}, got ${clip(entry.actual, 80)}`
            : `does not match the schema, got ${clip(entry.actual, 80)}`
        )
      }
      return `${path.length > 0 ? `${path}: ` : ""}${messages.join("; ")}`
    })
    .join("; ")
}

/** The text the model produced, recovered from the decoding error (the JSON parser's input). */
const rawOutputOf = (error: AiError.MalformedOutput): string => {
  const cause = error.cause
  if (ParseResult.isParseError(cause) && "actual" in cause.issue && typeof cause.issue.actual === "string") {
    return cause.issue.actual
  }
  return ""
}

/** Whether a `MalformedOutput` is about the model's answer (repairable), not about the server's protocol. */
const isModelOutputError = (error: AiError.AiError): error is AiError.MalformedOutput =>
  error._tag === "MalformedOutput" && error.module === "LanguageModel"

const kindList = nodeKinds.join(", ")

const profileGuidance = (profile: string): string => {
  switch (profile.trim().toLowerCase()) {
    case "coding":
      return "Keep file paths, function and type names, commands that were run, error messages, and decisions made (with their reasons). Drop code bodies and chatter."
    case "analysis":
      return "Keep findings, numbers with their units, sources and links, and open questions. Drop narration and restated context."
    default:
      return "Keep facts, decisions, names, numbers and open problems. Drop repetition and narration."
  }
}

const withSystemPrompt = (systemPrompt: string | undefined, instructions: string): string =>
  systemPrompt !== undefined && systemPrompt.trim().length > 0
    ? `${systemPrompt.trim()}\n\n${instructions}`
    : instructions

const describeAttachments = (attachments: ReadonlyArray<Attachment>): string =>
  attachments
    .map((attachment) => `- ${attachment.kind}: ${attachment.value}${attachment.label ? ` (${attachment.label})` : ""}`)
    .join("\n")

/**
 * Builds the `Llm` service over a `LanguageModel` (the Responses API one from `@effect/ai-openai`, or the
 * chat-completions one). `secrets` are scrubbed from every error detail and log line.
 */
export const makeRemote = (
  languageModel: LanguageModel.Service,
  settings: LlmSettings,
  secrets: ReadonlyArray<Redacted.Redacted>
): Effect.Effect<LlmService> =>
  Effect.gen(function* () {
    // Known process-wide, so the telemetry layer scrubs the key from every span (an HTTP span records response headers).
    Secrets.register(...secrets)
    const scrub = scrubber(secrets)
    const breaker = yield* CircuitBreaker.make({
      maxFailures: settings.breakerFailures,
      cooldown: settings.breakerCooldown
    })
    const timeoutMs = Duration.toMillis(settings.requestTimeout)
    const maxWaitMs = Duration.toMillis(settings.maxRetryDelay)
    /** The longest one metered call can take: every attempt timing out, each after the longest wait, plus slack. */
    const callBound = (timeoutMs + maxWaitMs) * (settings.maxRetries + 1) + 60_000

    const fromAiError = (error: AiError.AiError): Effect.Effect<LlmError> =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        switch (error._tag) {
          case "HttpResponseError": {
            const status = error.response.status
            const said = describeBody(error.body)
            const body = said.length > 0 ? `: ${clip(scrub(said), 300)}` : ""
            if (error.reason !== "StatusCode") {
              return new LlmError({
                reason: "InvalidResponse",
                detail: `${error.reason} (HTTP ${status})${body}`,
                status
              })
            }
            const retryAfterMs = parseRetryAfter(error.response.headers, now)
            const fields = { status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }
            if (status === 429) return new LlmError({ reason: "RateLimited", detail: `HTTP 429${body}`, ...fields })
            if (status >= 500)
              return new LlmError({ reason: "ServerError", detail: `HTTP ${status}${body}`, ...fields })
            return new LlmError({ reason: "ClientError", detail: `HTTP ${status}${body}`, status })
          }
          case "HttpRequestError":
            return new LlmError({
              reason: error.reason === "Transport" ? "Transport" : "ClientError",
              detail: scrub(
                `${error.reason}: ${error.description ?? "the request could not be sent"} (${error.request.url})`
              )
            })
          case "MalformedOutput":
            return new LlmError({
              reason: "InvalidResponse",
              detail: scrub(clip(error.description ?? "undecodable answer", 300))
            })
          case "MalformedInput":
            return new LlmError({
              reason: "ClientError",
              detail: scrub(error.description ?? "the request could not be built")
            })
          case "UnknownError":
            return new LlmError({ reason: "InvalidResponse", detail: scrub(error.description ?? "unknown error") })
        }
      })

    // Retry on 429, 5xx, timeouts and unreachable endpoints, with exponential backoff and jitter; a Retry-After from
    // the server replaces the computed delay. A wait longer than `maxRetryDelay` is not attempted.
    const retryPolicy = Schedule.identity<LlmError>().pipe(
      Schedule.zipLeft(Schedule.jittered(Schedule.exponential(settings.retryBaseDelay, 2))),
      Schedule.modifyDelay((error, delay) =>
        error.retryAfterMs !== undefined
          ? Duration.millis(error.retryAfterMs)
          : Duration.min(delay, settings.maxRetryDelay)
      ),
      Schedule.whileInput(
        (error: LlmError) => error.retryable && (error.retryAfterMs === undefined || error.retryAfterMs <= maxWaitMs)
      ),
      Schedule.zipLeft(Schedule.recurs(settings.maxRetries)),
      Schedule.tapInput((error: LlmError) =>
        error.retryable ? Effect.logWarning(`LLM call failed: ${error.message}`) : Effect.void
      )
    )

    const counter = Tokenizer.forModel(settings.model)
    const promptText = (messages: Messages, schema: Schema.Schema.Any): string =>
      [
        ...messages.map((message) =>
          typeof message.content === "string" ? message.content : JSON.stringify(message.content)
        ),
        JSON.stringify(JSONSchema.make(schema))
      ].join("\n")

    /**
     * The metering of one HTTP call (see `LlmUsage`): before it, the meter in the fiber may refuse it (the call is not
     * made); after an answer, what it used is told to the meter, as the server reported it or counted.
     */
    const metered = <A>(
      operation: string,
      schema: Schema.Schema.Any,
      messages: Messages,
      send: Effect.Effect<
        {
          readonly value: Either.Either<A, Malformed>
          readonly usage?: { readonly inputTokens: number | undefined; readonly outputTokens: number | undefined }
          readonly text: string
        },
        LlmError
      >
    ): Effect.Effect<Either.Either<A, Malformed>, LlmError> =>
      Effect.flatMap(FiberRef.get(LlmUsage.currentMeter), (found) => {
        if (Option.isNone(found)) return Effect.map(send, (answer) => answer.value)
        /** The call, its usage told to the meter once it answers. */
        const measured = (meter: LlmUsage.Meter, estimatedTokens: number | undefined) =>
          Effect.flatMap(send, (answer) => {
            const reported = answer.usage
            // Only whole counts from zero up: a server's fraction or negative number (it happens with proxies and
            // local servers) would make the usage's event unconstructible after a paid call. The tokenizer counts then.
            const inputTokens = reported?.inputTokens
            const outputTokens = reported?.outputTokens
            const fromApi = isCount(inputTokens) && isCount(outputTokens)
            return Effect.as(
              meter.record({
                operation,
                model: settings.model,
                inputTokens: fromApi ? inputTokens : counter.count(promptText(messages, schema)),
                outputTokens: fromApi ? outputTokens : counter.count(answer.text),
                counted: fromApi ? "api" : "tokenizer",
                ...(estimatedTokens === undefined ? {} : { estimatedTokens })
              }),
              answer.value
            )
          })
        const meter = found.value
        if (meter.limited) {
          const estimate = {
            operation,
            model: settings.model,
            promptTokens: counter.count(promptText(messages, schema)),
            outputAllowance: LlmUsage.allowanceFor(operation),
            within: callBound
          }
          const estimatedTokens = estimate.promptTokens + estimate.outputAllowance
          return Effect.flatMap(meter.admit(estimate), (admitted) =>
            admitted
              ? measured(meter, estimatedTokens)
              : Effect.fail(
                  new LlmError({
                    reason: "BudgetExhausted",
                    detail: `the ${operation} call needs about ${estimatedTokens} tokens (${estimate.promptTokens} for the prompt, ${estimate.outputAllowance} allowed for the answer), more than the session's budget has left`
                  })
                )
          )
        }
        return measured(meter, undefined)
      })

    /** One model call: timeout per attempt, retries, circuit breaker. A malformed answer is a value, not an error. */
    const call = <A, I extends Record<string, unknown>>(
      operation: string,
      schema: Schema.Schema<A, I>,
      messages: Messages
    ): Effect.Effect<Either.Either<A, Malformed>, LlmError> => {
      const send = languageModel.generateObject({ prompt: messages, schema, objectName: operation }).pipe(
        Effect.map((response) => ({
          value: Either.right(response.value) as Either.Either<A, Malformed>,
          usage: response.usage,
          text: response.text
        })),
        Effect.catchIf(isModelOutputError, (error) => {
          const raw = rawOutputOf(error)
          return Effect.succeed({
            value: Either.left({
              raw,
              problem: ParseResult.isParseError(error.cause)
                ? formatParseError(error.cause)
                : (error.description ?? "the answer was not a JSON object")
            }) as Either.Either<A, Malformed>,
            text: raw
          })
        }),
        Effect.catchAll((error) => Effect.flatMap(fromAiError(error), Effect.fail)),
        Effect.timeoutFail({
          duration: settings.requestTimeout,
          onTimeout: () => new LlmError({ reason: "Timeout", detail: `no answer within ${timeoutMs} ms` })
        })
      )
      const attempt = metered(operation, schema, messages, send)
      return breaker
        .protect(Effect.retry(attempt, retryPolicy), (error: LlmError) => error.endpointFailure)
        .pipe(
          Effect.catchTag("CircuitOpen", (open) =>
            Effect.fail(new LlmError({ reason: "CircuitOpen", detail: open.message }))
          )
        )
    }

    /**
     * Asks for `schema`, checks the answer with `check`, and on a malformed answer asks once more, showing the model
     * its answer and what was wrong with it.
     */
    const structured = <A, I extends Record<string, unknown>, B>(
      operation: string,
      schema: Schema.Schema<A, I>,
      messages: Messages,
      check: (value: A) => Either.Either<B, string>
    ): Effect.Effect<B, LlmError> =>
      Effect.gen(function* () {
        const evaluate = (answer: Either.Either<A, Malformed>): Either.Either<B, Malformed> =>
          Either.flatMap(answer, (value) =>
            Either.mapLeft(check(value), (problem): Malformed => ({ raw: JSON.stringify(value), problem }))
          )
        const first = evaluate(yield* call(operation, schema, messages))
        if (Either.isRight(first)) return first.right
        yield* Effect.logWarning(
          `LLM ${operation} answer was malformed, asking for a repair: ${scrub(clip(first.left.problem, 300))}`
        )
        const repair: Messages = [
          ...messages,
          { role: "assistant", content: first.left.raw.length > 0 ? first.left.raw : "(empty answer)" },
          {
            role: "user",
            content: `That answer is not valid: ${first.left.problem}. Answer again with only the JSON object, complete and matching the schema.`
          }
        ]
        const repairKey = yield* FiberRef.get(currentIdempotencyKey)
        const second = evaluate(
          yield* call(operation, schema, repair).pipe(
            // A repair is a different request: an idempotent server must not answer it with the first answer.
            Effect.locally(
              currentIdempotencyKey,
              Option.map(repairKey, (key) => `${key}:repair`)
            )
          )
        )
        if (Either.isRight(second)) return second.right
        return yield* new LlmError({
          reason: "MalformedOutput",
          detail: scrub(clip(second.left.problem, 400))
        })
      })

    const system = (content: string): Prompt.MessageEncoded => ({ role: "system", content })
    const user = (content: string): Prompt.MessageEncoded => ({ role: "user", content })

    const parseTasks = Effect.fn("Llm.parseTasks")(function* (text: string, options?: ParseTasksOptions) {
      const attachments = options?.attachments ?? []
      const instructions = [
        "Turn the user's request into a plan: a list of small, verifiable steps.",
        "Steps: one step per action the user asks for. A list of actions (joined by commas, 'and', 'as well as', semicolons) gives one step each; a list of objects stays one step ('buy apples, pears and milk' is one step). Never split inside quoted text, code, URLs or after an abbreviation (e.g., U.S., Inc., Dr.). Sentences that only set the scene ('I am planning a trip', 'Thank you') are not steps. A condition ('If I get the job, book a hotel and show me the news') is kept in the description of every step it governs.",
        "For each step give: `id`, a short id unique in the plan (t1, t2, ...); `description`, one self-contained imperative sentence that keeps file names, URLs and commands verbatim, without filler ('I want to', 'Please', 'Also,', 'Kindly help me');",
        `\`kind\`, one of ${kindList} (ToolCall: run a command or tool; Clarification: a question only the user can answer; UnitTest, Retrieval, Analysis, Refactor, CodeImplementation when they fit; Processing otherwise);`,
        "`dependsOn`, the ids of the steps whose results this step needs, from what the request says: 'then', 'after that', 'next', 'finally', 'once X', 'after X' order a step after the one(s) before it; 'before X' and 'but first' put a step before the one it names; a step that refers back to another ('it', 'them', 'the results', 'the report', 'the booking details') depends on that step; 'also', 'meanwhile', 'at the same time', 'in parallel', and actions listed before an ordering word ('enroll in the course, order a pizza, and then drive to the campus') are independent of each other and must not depend on each other, so they run in parallel; when the request says nothing about order, keep the order written. Never depend on a later step or on itself;",
        "`attachments`, the URLs (Link), images (ImageRef) and files (FileRef) the step uses, only ones that appear in the request or in its attached list (never invent one; anything else is dropped);",
        "`subPlan`, true for a step that is itself a multi-step job (it will be planned and run as a plan of its own), false for a step done in one go; mark a step only when splitting it here would make the plan hard to follow.",
        "Answer with the JSON object only."
      ].join("\n")
      const request =
        attachments.length > 0 ? `${text}\n\nAttached to the request:\n${describeAttachments(attachments)}` : text
      return yield* structured(
        "plan",
        PlanOutput,
        [system(withSystemPrompt(options?.systemPrompt, instructions)), user(request)],
        (plan) => {
          if (plan.tasks.length === 0) return Either.left("the plan has no steps; give at least one")
          const blank = plan.tasks.findIndex((task) => task.description.trim().length === 0)
          if (blank >= 0) return Either.left(`tasks.${blank}.description is empty`)
          const badAttachment = plan.tasks.findIndex((task) =>
            task.attachments.some((attachment) => attachment.value.trim().length === 0)
          )
          if (badAttachment >= 0) return Either.left(`tasks.${badAttachment}.attachments has an empty value`)
          return Either.right(
            plan.tasks.map(
              (task): TaskDraft => ({
                id: String(task.id).trim(),
                description: task.description.trim().replace(/\s+/g, " "),
                kind: task.kind,
                dependsOn: task.dependsOn.map((dep) => String(dep).trim()),
                attachments: task.attachments.map((attachment) => ({
                  kind: attachment.kind,
                  value: attachment.value.trim()
                })),
                ...(task.subPlan === true ? { subPlan: true } : {})
              })
            )
          )
        }
      )
    })

    const compactContext = Effect.fn("Llm.compactContext")(function* (input: CompactionInput) {
      const words = Math.max(1, Math.floor(input.budget * 0.7))
      const instructions = withSystemPrompt(
        input.systemPrompt,
        `You maintain the rolling summary of a plan's progress, which later steps receive instead of the full history. Merge the new results into the summary. ${profileGuidance(input.profile)} The summary must stay under ${input.budget} tokens (about ${words} words); prefer the newest results when space is short. Answer with the summary only.`
      )
      const material = [
        `Summary so far:\n${input.summary.trim().length > 0 ? input.summary.trim() : "(empty)"}`,
        ...input.entries.map((entry) => `Result of task ${entry.taskId}:\n${entry.text}`)
      ].join("\n\n")
      const answer = yield* structured("summary", SummaryOutput, [system(instructions), user(material)], Either.right)
      return answer.summary.trim()
    })

    const compactErrorMessage = Effect.fn("Llm.compactErrorMessage")(function* (message: string, limit: number) {
      const instructions = `Shorten this error message to at most ${limit} characters. Keep the error types, file paths, line numbers and the failing command; drop repeated stack frames and library internals. Answer with the shortened message only.`
      const answer = yield* structured("error", ErrorOutput, [system(instructions), user(message)], (output) =>
        output.message.trim().length > 0 ? Either.right(output.message.trim()) : Either.left("message is empty")
      )
      return answer
    })

    const performStep = Effect.fn("Llm.performStep")(
      function* (context: TaskContext) {
        const instructions = withSystemPrompt(
          undefined,
          [
            "You carry out one step of a larger plan and report its result.",
            'Set `outcome` to "completed" with the result in `result` when you can do the step;',
            'to "needs_clarification" with one precise question in `question` when you cannot go on without an answer from the user;',
            'to "cannot_complete" with the reason in `reason` when you cannot do it at all. Leave the other fields empty.'
          ].join("\n")
        )
        const sections = [
          `The whole request:\n${context.request}`,
          context.requestAttachments.length > 0
            ? `Attached to the request:\n${describeAttachments(context.requestAttachments)}`
            : "",
          context.contextSummary.trim().length > 0
            ? `What earlier steps produced (summary):\n${context.contextSummary}`
            : "",
          context.dependencyResults.length > 0
            ? `Results of the steps this one needs:\n${context.dependencyResults.map((dep) => `- Step ${dep.taskId} (${dep.description}):\n${dep.result}`).join("\n")}`
            : "",
          `Your step (step ${context.taskId}, ${context.kind}, attempt ${context.attempt}):\n${context.description}`,
          context.attachments.length > 0 ? `Attached to this step:\n${describeAttachments(context.attachments)}` : "",
          context.clarifications.length > 0
            ? `Questions asked so far and their answers:\n${context.clarifications.map((c) => `Q: ${c.question}\nA: ${c.answer ?? "(not answered yet)"}`).join("\n")}`
            : ""
        ].filter((section) => section.length > 0)
        const answer = yield* structured(
          "step",
          StepOutput,
          [system(instructions), user(sections.join("\n\n"))],
          (output): Either.Either<StepAnswer, string> => {
            switch (output.outcome) {
              case "completed":
                return output.result.trim().length > 0
                  ? Either.right(StepAnswer.Completed({ result: output.result.trim() }))
                  : Either.left("outcome is completed but result is empty")
              case "needs_clarification":
                return output.question.trim().length > 0
                  ? Either.right(StepAnswer.NeedsClarification({ question: output.question.trim() }))
                  : Either.left("outcome is needs_clarification but question is empty")
              case "cannot_complete":
                return Either.right(
                  StepAnswer.Declined({
                    reason: output.reason.trim().length > 0 ? output.reason.trim() : "no reason given"
                  })
                )
            }
          }
        )
        return answer
      },
      (effect, context) => Effect.locally(effect, currentIdempotencyKey, Option.some(context.idempotencyKey))
    )

    return Llm.of({
      provider: { _tag: "Remote", model: settings.model, api: settings.api },
      parseTasks,
      compactContext,
      compactErrorMessage,
      performStep
    })
  })
