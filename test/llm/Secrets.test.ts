/**
 * The API key is sent to the endpoint and nowhere else: not in logs (at every level), not in errors however they are
 * printed, not in the plan's recorded source or events, not in an executor's outcome. The server here echoes the
 * Authorization header back in its error bodies and the model echoes the key in its output, as a hostile or careless
 * endpoint might, so the scrubbing is exercised, not just the absence of an obvious leak.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Either, Exit, Logger, LogLevel } from "effect"
import * as Planning from "../../src/app/Planning.js"
import { Initialize } from "../../src/domain/Commands.js"
import { encodeEvent } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskContext } from "../../src/infra/Executor.js"
import { Llm } from "../../src/infra/Llm.js"
import * as LlmExecutor from "../../src/infra/LlmExecutor.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { Reply } from "./support/FakeOpenAiServer.js"
import { apiKey, apis, llmLayer, request, settingsFor } from "./support/layers.js"

const echoKey = Reply.dynamic((recorded) =>
  Reply.status(401, {}, { error: { message: `Incorrect API key provided: ${String(recorded.headers.authorization)}` } })
)

/** Everything logged, at every level, formatted both ways Effect's loggers would print it. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    lines.push(
      Logger.logfmtLogger.log(options),
      Logger.jsonLogger.log(options),
      JSON.stringify(Logger.structuredLogger.log(options))
    )
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** Every way an error ends up printed. */
const renderings = (exit: Exit.Exit<unknown, unknown>): ReadonlyArray<string> =>
  Exit.match(exit, {
    onSuccess: (value) => [JSON.stringify(value)],
    onFailure: (cause) => {
      const failure = Cause.squash(cause)
      return [
        Cause.pretty(cause, { renderErrorCause: true }),
        String(failure),
        failure instanceof Error ? `${failure.message}\n${failure.stack ?? ""}` : "",
        JSON.stringify(failure)
      ]
    }
  })

const context: TaskContext = {
  sessionId: "s",
  taskId: 1,
  kind: "Processing",
  description: "Summarise the spec",
  attachments: [],
  attempt: 1,
  clarifications: [],
  request,
  requestAttachments: [],
  contextSummary: "",
  dependencyResults: [],
  idempotencyKey: "s/1/1",
  workingDirectory: "/tmp"
}

describe.each(apis)("the API key over the %s protocol", (api) => {
  it.scopedLive("never appears in logs, errors, plan sources, events or outcomes", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const logs = captureLogs()
      const texts: Array<string> = []

      yield* Effect.gen(function* () {
        const llm = yield* Llm
        // A rejected key, echoed back by the server.
        server.enqueue(echoKey)
        texts.push(...renderings(yield* Effect.exit(llm.parseTasks(request))))
        // Server errors on every attempt, then a timeout.
        server.enqueue(Reply.status(500), Reply.status(502), Reply.status(503))
        texts.push(...renderings(yield* Effect.exit(llm.parseTasks("Deploy"))))
        // Only requests that are never answered get a short timeout: under load an answer can take longer than one.
        server.enqueue(Reply.hang(), Reply.hang(), Reply.hang())
        const timingOut = Effect.flatMap(Llm, (short) => short.parseTasks("Deploy")).pipe(
          Effect.provide(
            llmLayer(
              api,
              settingsFor(server, { requestTimeout: Duration.millis(150), retryBaseDelay: Duration.millis(5) })
            )
          )
        )
        texts.push(...renderings(yield* Effect.exit(timingOut)))
        // A model that puts the key in malformed output, twice.
        const leakingPlan = {
          tasks: [{ id: "t1", description: "Deploy", kind: `Leaking ${apiKey}`, dependsOn: [], attachments: [] }]
        }
        server.enqueue(Reply.json(leakingPlan), Reply.text(`no JSON, just ${apiKey}`))
        const malformed = yield* Effect.exit(llm.parseTasks("Deploy"))
        expect(Exit.isFailure(malformed) && Cause.squash(malformed.cause)).toMatchObject({ reason: "MalformedOutput" })
        texts.push(...renderings(malformed))

        // The plan and its event after a rejected key.
        server.enqueue(echoKey)
        const plan = yield* Planning.planRequest(request)
        texts.push(JSON.stringify(plan))
        const events = Either.getOrThrow(
          Planner.decideEither(
            Planner.initialState,
            new Initialize({ request, tasks: plan.tasks, source: plan.source, at: 0 })
          )
        )
        texts.push(JSON.stringify(events.map(encodeEvent)))

        // An executor's failed attempt.
        server.enqueue(echoKey)
        const executor = yield* LlmExecutor.make
        texts.push(JSON.stringify(yield* executor.execute(context)))
      }).pipe(
        Effect.provide(
          llmLayer(
            api,
            settingsFor(server, { requestTimeout: Duration.seconds(20), retryBaseDelay: Duration.millis(5) })
          )
        ),
        Effect.provide(logs.layer),
        Logger.withMinimumLogLevel(LogLevel.All)
      )

      // The key was really used, and really echoed: the test would see a leak.
      expect(server.modelRequests().every((recorded) => recorded.headers.authorization === `Bearer ${apiKey}`)).toBe(
        true
      )
      expect(server.modelRequests().length).toBeGreaterThanOrEqual(11)
      expect(texts.join("\n")).toContain("Incorrect API key provided: Bearer <redacted>")
      expect(logs.lines.length).toBeGreaterThan(5)

      for (const text of [...texts, ...logs.lines]) expect(text).not.toContain(apiKey)
      // Not even a recognisable part of it.
      for (const text of [...texts, ...logs.lines]) expect(text).not.toContain(apiKey.slice(8, 24))
    })
  )
})
