/**
 * Issue #18: the LLM API key must not reach OpenTelemetry. A real OTLP/HTTP collector on 127.0.0.1 receives the spans
 * of a plan run against a provider (a real HTTP server) that echoes the key, whole and in OpenAI's masked form, in its
 * 401 bodies and in a response header, over both the Responses and the chat API. The key and its echoed fragments
 * must appear nowhere: not in the exported spans (names, attributes, events, status, exception stack traces), not in
 * the logs, not in the store, not in the outcomes. Planning, the LLM executor and the LLM compactor all call the model.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Logger } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Telemetry from "../../src/app/Telemetry.js"
import * as AttachmentChecker from "../../src/infra/AttachmentChecker.js"
import { Llm } from "../../src/infra/Llm.js"
import * as LlmCompactor from "../../src/infra/LlmCompactor.js"
import * as LlmExecutor from "../../src/infra/LlmExecutor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as Secrets from "../../src/infra/Secrets.js"
import { collector } from "../support/otlpCollector.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { Reply } from "./support/FakeOpenAiServer.js"
import { apiKey, apis, llmLayer, settingsFor } from "./support/layers.js"

/** How OpenAI echoes a rejected key: its start, a run of stars, its last four characters. */
const openAiMasked = `${apiKey.slice(0, 8)}${"*".repeat(28)}${apiKey.slice(-4)}`
/** The short form some providers and proxies use. */
const shortMasked = `${apiKey.slice(0, 3)}...${apiKey.slice(-4)}`

/** Everything that would identify the key: the key, its random part, both masked forms, its last four characters. */
const forbidden = [apiKey, apiKey.slice(8), apiKey.slice(8, 20), openAiMasked, shortMasked, apiKey.slice(-4)]

const echoing = Reply.dynamic((recorded) => {
  const authorization = String(recorded.headers.authorization)
  return Reply.status(
    401,
    { "x-echo-authorization": authorization },
    {
      error: {
        message: `Incorrect API key provided: ${openAiMasked}. Short: ${shortMasked}. You sent: ${authorization}`,
        type: "invalid_request_error",
        code: "invalid_api_key"
      }
    }
  )
})

/** Every log line, formatted the ways Effect's loggers print it. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    lines.push(Logger.logfmtLogger.log(options), Logger.jsonLogger.log(options))
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** Each forbidden fragment found, with where it was (the text's index and what surrounds it). */
const leaks = (texts: ReadonlyArray<string>): ReadonlyArray<string> =>
  texts.flatMap((text, index) =>
    forbidden.flatMap((fragment) => {
      const at = text.indexOf(fragment)
      return at < 0 ? [] : [`${fragment} in text ${index}: …${text.slice(Math.max(0, at - 150), at + 80)}…`]
    })
  )

describe.each(apis)("the API key and OpenTelemetry over the %s API", (api) => {
  it.scopedLive("no span, log, event or outcome carries the key or its echoed fragments", () =>
    Effect.gen(function* () {
      const otlp = yield* collector
      const server = yield* FakeOpenAiServer.make
      for (let n = 0; n < 200; n += 1) server.enqueue(echoing)
      const logs = captureLogs()
      const texts: Array<string> = []

      const settings = settingsFor(server, { maxRetries: 1 })
      const runtime = Layer.mergeAll(
        PlannerService.layer().pipe(Layer.provideMerge(PlannerStore.layer)),
        LlmExecutor.layerRegistry({ everyKind: true }),
        AttachmentChecker.layerNode({ checkLinks: false }),
        LlmCompactor.layer
      ).pipe(Layer.provideMerge(llmLayer(api, settings)), Layer.provideMerge(MemoryEventStore.layer()))

      yield* Effect.gen(function* () {
        // A plan: the model plans it (rejected, so the parser does), the LLM executor performs its steps (rejected).
        const { sessionId } = yield* Runner.start("Summarise the spec. Then write the report.", {
          config: { maxAttempts: 1 }
        })
        const result = yield* Runner.run(sessionId)
        texts.push(JSON.stringify(result.state))
        texts.push(JSON.stringify(yield* Runner.history(sessionId)))
        // The compactor and the executor called directly, so each path is covered whatever the plan did.
        const llm = yield* Llm
        const compactor = LlmCompactor.fromLlm(llm)
        const summary = yield* compactor.compact({
          summary: "",
          entries: [{ taskId: 1, text: "word ".repeat(3000) }],
          budget: 50,
          profile: "general",
          systemPrompt: ""
        })
        texts.push(summary.summary)
        texts.push(yield* compactor.compactError(`Error: failed\n${"    at frame (file.ts:1:1)\n".repeat(200)}`, 200))
        const outcome = yield* LlmExecutor.fromLlm(llm).execute({
          sessionId,
          taskId: 1,
          kind: "Processing",
          description: "Summarise the spec",
          attachments: [],
          attempt: 1,
          clarifications: [],
          request: "Summarise the spec",
          requestAttachments: [],
          contextSummary: "",
          dependencyResults: [],
          idempotencyKey: `${sessionId}/1/9`,
          workingDirectory: "/tmp"
        })
        expect(outcome._tag).toBe("Failed")
        texts.push(JSON.stringify(outcome))
      }).pipe(
        Effect.provide(runtime),
        Effect.provide(
          Telemetry.layer({
            tracesUrl: `${otlp.url}/v1/traces`,
            protocol: "http/json",
            serviceName: "secrets-under-test",
            headers: {},
            exportInterval: Duration.millis(100),
            shutdownTimeout: Duration.seconds(5)
          })
        ),
        Effect.provide(logs.layer)
      )

      // The provider did answer with the key, many times, on every path.
      expect(server.modelRequests().length).toBeGreaterThanOrEqual(4)
      const exported = otlp.bodies().join("\n")
      expect(exported).toContain("Llm.parseTasks")
      expect(exported).toContain("Llm.performStep")
      expect(exported).toContain("Llm.compactContext")
      expect(exported).toContain("Llm.compactErrorMessage")
      // What the provider said still arrives, scrubbed.
      expect(exported).toContain("Incorrect API key provided")
      expect(exported).toContain(Secrets.redactedText)
      expect(leaks([...otlp.bodies(), ...logs.lines, ...texts])).toEqual([])
    })
  )
})
