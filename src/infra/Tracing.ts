/**
 * Spans for hot paths. `Effect.withSpan` costs about 12-20 µs per call here, even with tracing disabled, mostly in
 * copying the fiber's references to install the span as the parent; an append on SQLite costs about 100 µs in all,
 * and a task passes through a dozen such spans. With Effect's built-in tracer, which keeps spans in memory and exports
 * them nowhere, a span can only be seen by code that asks for the current span, which none of these paths do. So a
 * hot span is only made when another tracer is installed (`Telemetry`'s OTLP exporter, or any the caller provides).
 */
import { Effect, type Tracer } from "effect"

/** The tracer every fiber has unless one is provided. */
const builtInTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** `Effect.withSpan(effect, name, options())` when spans go anywhere; `effect` itself otherwise. */
export const hotSpan = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  name: string,
  options: () => Tracer.SpanOptions
): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) =>
    tracer === builtInTracer ? effect : Effect.withSpan(effect, name, { captureStackTrace: false, ...options() })
  )

/** `hotSpan` with attributes only. */
export const hotSpanWith = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  name: string,
  attributes: () => Record<string, unknown>
): Effect.Effect<A, E, R> => hotSpan(effect, name, () => ({ attributes: attributes() }))
