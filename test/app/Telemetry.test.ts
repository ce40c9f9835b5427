/**
 * OpenTelemetry export against a real HTTP server on 127.0.0.1 playing the collector: a small plan runs with the
 * telemetry layer configured by the standard environment variables, and the spans it posts are decoded and checked
 * for names, nesting and the resource's service name.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Option } from "effect"
import * as Runner from "../../src/app/Runner.js"
import * as Telemetry from "../../src/app/Telemetry.js"
import * as Worker from "../../src/app/Worker.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { collector, collectorAnswering } from "../support/otlpCollector.js"
import { plannerRuntime } from "./fixtures/runtime.js"

const settings = (url: string, exportInterval: Duration.Duration, timeout: Duration.Duration) => ({
  tracesUrl: `${url}/v1/traces`,
  protocol: "http/json" as const,
  serviceName: "closing-under-test",
  headers: {},
  exportInterval,
  shutdownTimeout: timeout
})

interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
}

interface OtlpTraces {
  readonly resourceSpans: ReadonlyArray<{
    readonly resource: { readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: unknown }> }
    readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<OtlpSpan> }>
  }>
}

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** A two-step plan, run to the end with telemetry as `env` configures it; the layer (and its exporter) closed after. */
const smallRun = (env: Record<string, string>) =>
  Effect.gen(function* () {
    const executor = ScriptExecutor.make(
      yield* ScriptExecutor.parse(JSON.stringify({ rules: [], default: { complete: "done" } }), "telemetry.json")
    )
    const result = yield* Effect.gen(function* () {
      const { sessionId } = yield* Runner.start("Write the code. Then test it.")
      return yield* Runner.run(sessionId)
    }).pipe(
      Effect.provide(plannerRuntime(MemoryEventStore.layer(), executor)),
      Effect.provide(Telemetry.layerFromEnv),
      withEnv(env)
    )
    expect(result.state.status).toBe("Succeeded")
  })

const parentOf = (spans: ReadonlyArray<OtlpSpan>, span: OtlpSpan) =>
  spans.find((candidate) => candidate.spanId === span.parentSpanId)

/** The names of a span's ancestors, nearest first. */
const ancestry = (spans: ReadonlyArray<OtlpSpan>, span: OtlpSpan): ReadonlyArray<string> => {
  const names: Array<string> = []
  for (let parent = parentOf(spans, span); parent !== undefined; parent = parentOf(spans, parent)) {
    names.push(parent.name)
  }
  return names
}

describe("OpenTelemetry export", () => {
  it.scopedLive("a run's commands, appends, attempts and executor calls arrive as nested spans (OTLP/HTTP JSON)", () =>
    Effect.gen(function* () {
      const server = yield* collector
      yield* smallRun({
        OTEL_EXPORTER_OTLP_ENDPOINT: `${server.url}/`,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "planner-under-test",
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20collector-token"
      })

      expect(server.received.length).toBeGreaterThan(0)
      for (const request of server.received) {
        expect(request.path).toBe("/v1/traces")
        expect(request.headers["content-type"]).toBe("application/json")
        expect(request.headers.authorization).toBe("Bearer collector-token")
      }
      const batches = server.received.map((request) => JSON.parse(request.body.toString("utf8")) as OtlpTraces)
      const resource = batches[0]?.resourceSpans[0]?.resource.attributes
      expect(resource).toContainEqual({ key: "service.name", value: { stringValue: "planner-under-test" } })
      const spans = batches.flatMap((batch) =>
        batch.resourceSpans.flatMap((resourceSpans) => resourceSpans.scopeSpans.flatMap((scope) => scope.spans))
      )
      const named = (name: string) => spans.filter((span) => span.name === name)

      for (const name of [
        "Runner.start",
        "Runner.run",
        "Worker.run",
        "Worker.work",
        "PlannerService.execute",
        "PlannerService.append",
        "EventStore.append",
        "Executor.execute",
        "ScriptExecutor.execute"
      ]) {
        expect(named(name).length, name).toBeGreaterThan(0)
      }
      // Two tasks: two attempts, each executed once; every command appended through the store.
      expect(named("Worker.work")).toHaveLength(2)
      expect(named("Executor.execute")).toHaveLength(2)
      for (const span of named("Executor.execute")) {
        expect(ancestry(spans, span)).toEqual(["Worker.work", "Worker.run", "Runner.run"])
        expect(named("ScriptExecutor.execute").some((child) => child.parentSpanId === span.spanId)).toBe(true)
      }
      for (const span of named("EventStore.append")) {
        expect(ancestry(spans, span).slice(0, 2)).toEqual(["PlannerService.append", "PlannerService.execute"])
      }
      // A claim and a report per attempt, under the attempt's span; the plan itself under Runner.start.
      for (const work of named("Worker.work")) {
        const commands = named("PlannerService.execute").filter((span) => ancestry(spans, span).includes("Worker.work"))
        expect(commands.some((span) => span.parentSpanId === work.spanId)).toBe(true)
      }
      const [start] = named("Runner.start")
      expect(named("PlannerService.execute").some((span) => span.parentSpanId === start?.spanId)).toBe(true)
      // The run is one trace.
      const [run] = named("Runner.run")
      for (const span of named("Worker.work")) expect(span.traceId).toBe(run?.traceId)
    })
  )

  it.scopedLive("a worker serving every session traces each attempt on its own, not under a span that never ends", () =>
    Effect.gen(function* () {
      const server = yield* collector
      const executor = ScriptExecutor.make(
        yield* ScriptExecutor.parse(JSON.stringify({ rules: [], default: { complete: "done" } }), "telemetry.json")
      )
      yield* Effect.gen(function* () {
        const worker = yield* Effect.fork(Worker.run())
        const { sessionId } = yield* Runner.start("Write the code. Then test it.")
        const result = yield* Runner.run(sessionId, { localWorker: false })
        expect(result.state.status).toBe("Succeeded")
        yield* Fiber.interrupt(worker)
      }).pipe(
        Effect.provide(plannerRuntime(MemoryEventStore.layer(), executor)),
        Effect.provide(Telemetry.layerFromEnv),
        withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: server.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })
      )
      const spans = server.received.flatMap((request) =>
        (JSON.parse(request.body.toString("utf8")) as OtlpTraces).resourceSpans.flatMap((resource) =>
          resource.scopeSpans.flatMap((scope) => scope.spans)
        )
      )
      const attempts = spans.filter((span) => span.name === "Worker.work")
      expect(attempts).toHaveLength(2)
      expect(attempts.map((span) => span.parentSpanId ?? "")).toEqual(["", ""])
      expect(new Set(attempts.map((span) => span.traceId)).size).toBe(2)
      expect(spans.some((span) => span.name === "Worker.run")).toBe(false)
      for (const attempt of attempts) {
        expect(spans.some((span) => span.name === "Executor.execute" && span.parentSpanId === attempt.spanId)).toBe(
          true
        )
      }
    })
  )

  it.scopedLive("protobuf is the default protocol, as the OTLP specification says", () =>
    Effect.gen(function* () {
      const server = yield* collector
      yield* smallRun({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${server.url}/custom/traces` })
      expect(server.received.length).toBeGreaterThan(0)
      const body = Buffer.concat(server.received.map((request) => request.body))
      for (const request of server.received) {
        expect(request.path).toBe("/custom/traces")
        expect(request.headers["content-type"]).toBe("application/x-protobuf")
      }
      // Protobuf strings are their UTF-8 bytes: the span names and the default service name are in the body.
      for (const text of ["Worker.work", "Executor.execute", "PlannerService.execute", Telemetry.defaultServiceName]) {
        expect(body.includes(Buffer.from(text, "utf8")), text).toBe(true)
      }
    })
  )

  it.scopedLive("closing the layer finishes the export under way instead of abandoning its batch", () =>
    Effect.gen(function* () {
      // The collector holds its answers until a second body arrives: the batch holding the first span is under way
      // when the layer closes, and the second is the close's own last export. The exporter used to interrupt the
      // first there (its spans lost) and send only what was still buffered.
      const server = yield* collectorAnswering({ afterBodies: 2 })
      yield* Effect.gen(function* () {
        yield* Effect.withSpan(Effect.void, "exported-before-close")
        yield* Effect.sleep("10 millis").pipe(
          Effect.repeat({ until: () => server.received.length > 0 }),
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("no export arrived") })
        )
        expect(server.received.length).toBe(1)
        yield* Effect.withSpan(Effect.void, "buffered-at-close")
      }).pipe(Effect.provide(Telemetry.layer(settings(server.url, Duration.millis(50), Duration.seconds(20)))))
      const acknowledged = Buffer.concat(server.acknowledged).toString("utf8")
      expect(acknowledged).toContain("exported-before-close")
      expect(acknowledged).toContain("buffered-at-close")
    })
  )

  it.scopedLive("a collector that does not answer holds the close for the export timeout, not forever", () =>
    Effect.gen(function* () {
      const server = yield* collectorAnswering("never")
      yield* Effect.withSpan(Effect.sleep("100 millis"), "never-acknowledged").pipe(
        Effect.provide(Telemetry.layer(settings(server.url, Duration.millis(20), Duration.seconds(1))))
      )
      expect(server.received.length).toBeGreaterThan(0)
      expect(server.acknowledged).toEqual([])
    })
  )

  it.live("without an endpoint, or with export turned off or unusable, nothing changes", () =>
    Effect.gen(function* () {
      const tracer = yield* Effect.tracer
      const endpoint = "http://127.0.0.1:9/"
      for (const env of [
        {},
        { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: "true" },
        { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_EXPORTER: "none" },
        { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }
      ]) {
        const inside = yield* Effect.tracer.pipe(Effect.provide(Telemetry.layerFromEnv), withEnv(env))
        expect(inside, JSON.stringify(env)).toBe(tracer)
      }
      const configured = yield* Effect.tracer.pipe(
        Effect.provide(Telemetry.layerFromEnv),
        withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint })
      )
      expect(configured).not.toBe(tracer)
    })
  )

  it.effect("settings follow the OpenTelemetry environment variables", () =>
    Effect.gen(function* () {
      const read = (env: Record<string, string>) => Telemetry.fromEnv.pipe(withEnv(env))
      const traces = yield* read({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://traces.example.com/otlp/v1/traces",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=ci,service.name=from-attributes",
        OTEL_BSP_SCHEDULE_DELAY: "250"
      })
      expect(Option.map(traces, (s) => [s.tracesUrl, s.protocol, s.serviceName, s.exportInterval])).toEqual(
        Option.some([
          "https://traces.example.com/otlp/v1/traces",
          "http/protobuf",
          "from-attributes",
          expect.anything()
        ])
      )
      const base = yield* read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/", OTEL_SERVICE_NAME: "mine" })
      expect(Option.map(base, (s) => [s.tracesUrl, s.serviceName])).toEqual(
        Option.some(["http://collector:4318/v1/traces", "mine"])
      )
      expect(yield* read({})).toEqual(Option.none())
      const error = yield* Effect.flip(read({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }))
      expect(String(error)).toContain("http(s) URL")
      // Header values are secrets: they never show in the settings' printed form.
      const secret = yield* read({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c",
        OTEL_EXPORTER_OTLP_HEADERS: "api-key=s3cr3t"
      })
      expect(JSON.stringify(secret)).not.toContain("s3cr3t")
    })
  )
})
