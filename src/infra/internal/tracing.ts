/**
 * Spans for hot paths. `Effect.withSpan` costs about 12 µs per call here, even with tracing disabled, mostly in
 * copying the fiber's references to install the span as the parent; an append on SQLite costs about 100 µs in all.
 * With Effect's built-in tracer, which keeps spans in memory and exports them nowhere, such a span can only be seen by
 * code running inside it, and the store runs none of the caller's code inside an append. So a hot span is only made
 * when another tracer is installed (`Telemetry`'s OTLP exporter, or any the caller provides).
 *
 * @internal
 */
import { Effect, type Tracer } from "effect"

/** The tracer every fiber has unless one is provided. */
const builtInTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

export const hotSpan = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  name: string,
  attributes: () => Record<string, unknown>
): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) =>
    tracer === builtInTracer
      ? effect
      : Effect.withSpan(effect, name, { attributes: attributes(), captureStackTrace: false })
  )
