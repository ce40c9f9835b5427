/**
 * OpenTelemetry: the planner's spans (every command, append, executor call and worker attempt) exported over OTLP/HTTP
 * when an endpoint is configured, and nothing at all otherwise. The exporter is `@effect/opentelemetry`'s own OTLP
 * tracer over an `HttpClient` (no OpenTelemetry SDK), configured by the standard environment variables:
 *
 * - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is, e.g. `http://localhost:4318/v1/traces`), or
 *   `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL; `/v1/traces` is appended). Neither set: no export.
 * - `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (the default, as the
 *   specification says) or `http/json`. `grpc` is not supported: point the planner at the collector's HTTP port (4318).
 * - `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2` (values
 *   percent-decoded), for example an authorization header. Kept redacted.
 * - `OTEL_SERVICE_NAME` (default `event-sourced-planner`, or `service.name` from `OTEL_RESOURCE_ATTRIBUTES`),
 *   `OTEL_SERVICE_VERSION`, `OTEL_RESOURCE_ATTRIBUTES`.
 * - `OTEL_BSP_SCHEDULE_DELAY`: milliseconds between exports (default 5000). Spans still buffered are sent when the
 *   layer's scope closes, so a short CLI run loses none.
 * - `OTEL_EXPORTER_OTLP_TIMEOUT`: milliseconds one export may take (default 10000, the specification's). Closing the
 *   layer lets the export under way finish and sends what is still buffered, each within this bound: a command waits
 *   that long at most for a slow or unreachable collector before it exits.
 * - `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER` without `otlp` (e.g. `none`), turn export off.
 */
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import { FetchHttpClient, HttpClient, HttpClientError, type HttpClientResponse } from "@effect/platform"
import { Config, ConfigError, Duration, Effect, Either, Fiber, FiberSet, Layer, Option, Redacted } from "effect"
import * as Tracing from "../infra/Tracing.js"

export const defaultServiceName = "event-sourced-planner"

export type OtlpProtocol = "http/protobuf" | "http/json"

export interface TelemetrySettings {
  /** Where spans are posted: the full URL, ending in `/v1/traces` for a standard collector. */
  readonly tracesUrl: string
  readonly protocol: OtlpProtocol
  readonly serviceName: string
  /** Extra HTTP headers for the collector (authorization, tenant); values are secrets. */
  readonly headers: Readonly<Record<string, Redacted.Redacted>>
  readonly exportInterval: Duration.Duration
  /** How long closing the layer may wait for the last export. */
  readonly shutdownTimeout: Duration.Duration
}

const optionalText = (name: string) =>
  Config.option(Config.string(name)).pipe(
    Config.map(Option.map((value) => value.trim())),
    Config.map(Option.filter((value) => value.length > 0))
  )

/** `key=value,key2=value2` as the OpenTelemetry specification writes headers and resource attributes. */
const parsePairs = (text: string): Either.Either<ReadonlyArray<readonly [string, string]>, string> => {
  const pairs: Array<readonly [string, string]> = []
  for (const item of text.split(",")) {
    if (item.trim() === "") continue
    const separator = item.indexOf("=")
    if (separator <= 0) return Either.left(`"${item.trim()}" is not key=value`)
    try {
      pairs.push([item.slice(0, separator).trim(), decodeURIComponent(item.slice(separator + 1).trim())])
    } catch {
      return Either.left(`the value of "${item.slice(0, separator).trim()}" is not validly percent-encoded`)
    }
  }
  return Either.right(pairs)
}

const invalid = (message: string) => Either.left(ConfigError.InvalidData([], message))

/** The telemetry settings from the environment; `None` when no OTLP endpoint is configured or export is off. */
export const fromEnv: Config.Config<Option.Option<TelemetrySettings>> = Config.all({
  disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
  exporters: optionalText("OTEL_TRACES_EXPORTER"),
  tracesEndpoint: optionalText("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
  endpoint: optionalText("OTEL_EXPORTER_OTLP_ENDPOINT"),
  tracesProtocol: optionalText("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
  protocol: optionalText("OTEL_EXPORTER_OTLP_PROTOCOL"),
  tracesHeaders: Config.option(Config.redacted("OTEL_EXPORTER_OTLP_TRACES_HEADERS")),
  headers: Config.option(Config.redacted("OTEL_EXPORTER_OTLP_HEADERS")),
  serviceName: optionalText("OTEL_SERVICE_NAME"),
  resourceAttributes: optionalText("OTEL_RESOURCE_ATTRIBUTES"),
  exportTimeoutMs: Config.integer("OTEL_EXPORTER_OTLP_TIMEOUT").pipe(
    Config.withDefault(10_000),
    Config.validate({
      message: "OTEL_EXPORTER_OTLP_TIMEOUT must be a positive number of milliseconds",
      validation: (ms) => ms > 0
    })
  ),
  exportDelayMs: Config.integer("OTEL_BSP_SCHEDULE_DELAY").pipe(
    Config.withDefault(5_000),
    Config.validate({
      message: "OTEL_BSP_SCHEDULE_DELAY must be a positive number of milliseconds",
      validation: (ms) => ms > 0
    })
  )
}).pipe(
  Config.mapOrFail((env) => {
    const exportersOff = Option.match(env.exporters, {
      onNone: () => false,
      onSome: (list) => !list.split(",").some((name) => name.trim() === "otlp")
    })
    if (env.disabled || exportersOff) return Either.right(Option.none())
    const tracesUrl = Option.orElse(env.tracesEndpoint, () =>
      Option.map(env.endpoint, (base) => `${base.replace(/\/+$/, "")}/v1/traces`)
    )
    if (Option.isNone(tracesUrl)) return Either.right(Option.none())
    if (!/^https?:\/\/[^\s/]+/i.test(tracesUrl.value)) {
      return invalid(`the OTLP traces endpoint must be an http(s) URL, got ${JSON.stringify(tracesUrl.value)}`)
    }
    const protocol = Option.getOrElse(
      Option.orElse(env.tracesProtocol, () => env.protocol),
      () => "http/protobuf"
    )
    if (protocol !== "http/protobuf" && protocol !== "http/json") {
      return invalid(
        `OTLP protocol ${JSON.stringify(protocol)} is not supported: use http/protobuf or http/json (the collector's HTTP port, usually 4318)`
      )
    }
    const headerText = Option.orElse(env.tracesHeaders, () => env.headers)
    const headers = Option.isNone(headerText) ? Either.right([]) : parsePairs(Redacted.value(headerText.value))
    if (Either.isLeft(headers)) return invalid(`OTEL_EXPORTER_OTLP_HEADERS: ${headers.left}`)
    const attributes = Option.isNone(env.resourceAttributes)
      ? Either.right([])
      : parsePairs(env.resourceAttributes.value)
    const attributeName = Either.isRight(attributes)
      ? attributes.right.find(([key]) => key === "service.name")?.[1]
      : undefined
    return Either.right(
      Option.some<TelemetrySettings>({
        tracesUrl: tracesUrl.value,
        protocol,
        serviceName: Option.getOrElse(env.serviceName, () => attributeName ?? defaultServiceName),
        headers: Object.fromEntries(headers.right.map(([key, value]) => [key, Redacted.make(value)])),
        exportInterval: Duration.millis(env.exportDelayMs),
        shutdownTimeout: Duration.millis(env.exportTimeoutMs)
      })
    )
  })
)

/**
 * Exports every span over OTLP/HTTP as `settings` say. Registered secrets (the LLM API key, see `Secrets.register`) and
 * their echoed fragments are scrubbed from every span before it is exported: names, attributes, events and errors.
 */
export const layer = (settings: TelemetrySettings): Layer.Layer<never> =>
  Layer.unwrapScoped(
    Effect.map(
      OtlpTracer.make({
        url: settings.tracesUrl,
        resource: { serviceName: settings.serviceName },
        headers: Object.fromEntries(
          Object.entries(settings.headers).map(([key, value]) => [key, Redacted.value(value)])
        ),
        exportInterval: settings.exportInterval,
        shutdownTimeout: settings.shutdownTimeout
      }),
      (tracer) => Layer.setTracer(Tracing.scrubbing(tracer))
    )
  ).pipe(
    Layer.provide(settings.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
    Layer.provide(finishingExports(settings.shutdownTimeout)),
    Layer.provide(FetchHttpClient.layer)
  )

/**
 * The exporter's HTTP client, made so that closing the layer loses no batch. `@effect/opentelemetry` exports on a
 * fiber it interrupts when its scope closes: a batch whose POST was under way at that moment was abandoned (the request
 * aborted, its spans gone), and only what was still buffered went out in the last export. On a loaded machine a
 * run's spans, all but the last few, vanished that way. Each POST now runs on a fiber of its own, bounded by the
 * export timeout, that the exporter's interruption does not reach; the layer's scope waits for the ones under way.
 */
const finishingExports = (timeout: Duration.Duration) =>
  Layer.scoped(
    HttpClient.HttpClient,
    Effect.gen(function* () {
      const client = yield* HttpClient.HttpClient
      const underWay = yield* FiberSet.make<HttpClientResponse.HttpClientResponse, unknown>()
      // Added before the exporter's own finalizers, so it runs after them: after the last export has been started.
      yield* Effect.addFinalizer(() => FiberSet.awaitEmpty(underWay).pipe(Effect.timeoutOption(timeout), Effect.asVoid))
      return HttpClient.transform(client, (response, request) =>
        Effect.flatMap(
          FiberSet.run(
            underWay,
            Effect.timeoutFail(response, {
              duration: timeout,
              onTimeout: () =>
                new HttpClientError.RequestError({
                  request,
                  reason: "Transport",
                  description: `the collector did not answer within ${Duration.format(timeout)}`
                })
            })
          ),
          Fiber.join
        )
      )
    })
  )

/**
 * Telemetry as the environment configures it: OTLP export when an endpoint is set, nothing otherwise. Settings that
 * cannot be used (a gRPC protocol, a malformed URL) turn export off with a warning rather than stop the planner.
 */
export const layerFromEnv: Layer.Layer<never> = Layer.unwrapEffect(
  fromEnv.pipe(
    Effect.map(Option.match({ onNone: () => Layer.empty, onSome: layer })),
    Effect.catchAll((error) =>
      Effect.logWarning(`OpenTelemetry export is off: ${error.message}`).pipe(Effect.as(Layer.empty))
    )
  )
)
