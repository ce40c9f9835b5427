/**
 * Spans for hot paths. `Effect.withSpan` costs about 12-20 µs per call here, even with tracing disabled, mostly in
 * copying the fiber's references to install the span as the parent; an append on SQLite costs about 100 µs in all,
 * and a task passes through a dozen such spans. With Effect's built-in tracer, which keeps spans in memory and exports
 * them nowhere, a span can only be seen by code that asks for the current span, which none of these paths do. So a
 * hot span is only made when another tracer is installed (`Telemetry`'s OTLP exporter, or any the caller provides).
 *
 * `scrubbing` wraps a tracer so that no registered secret reaches what it exports.
 */
import { Cause, Effect, Exit, Inspectable, Tracer } from "effect"
import type { YieldWrap } from "effect/Utils"
import * as Secrets from "./Secrets.js"

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

/**
 * The current span when spans go anywhere (see `hotSpan`), to link work done on another fiber to it; none otherwise,
 * at the cost of one look at the tracer.
 */
export const tracedSpan: Effect.Effect<Tracer.AnySpan | undefined> = Effect.tracerWith((tracer) =>
  tracer === builtInTracer ? Effect.succeed(undefined) : Effect.orElseSucceed(Effect.currentSpan, () => undefined)
)

/** `hotSpan` with attributes only. */
export const hotSpanWith = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  name: string,
  attributes: () => Record<string, unknown>
): Effect.Effect<A, E, R> => hotSpan(effect, name, () => ({ attributes: attributes() }))

const noSpanOptions = (): Tracer.SpanOptions => ({})

/**
 * `Effect.fn(name)` for a function called for every task (a queue's take, an executor): its span is a `hotSpan`, and
 * no stack trace is taken at each call (`Effect.fn` takes one, to point the span at its caller).
 */
export const hotFn =
  (name: string) =>
  <Args extends ReadonlyArray<unknown>, Eff extends YieldWrap<Effect.Effect<unknown, unknown, unknown>>, A>(
    body: (...args: Args) => Generator<Eff, A, never>
  ): ((
    ...args: Args
  ) => Effect.Effect<
    A,
    [Eff] extends [never] ? never : [Eff] extends [YieldWrap<Effect.Effect<infer _A, infer E, infer _R>>] ? E : never,
    [Eff] extends [never] ? never : [Eff] extends [YieldWrap<Effect.Effect<infer _A, infer _E, infer R>>] ? R : never
  >) =>
  (...args) =>
    hotSpan(Effect.gen(() => body(...args)) as never, name, noSpanOptions)

/** A string with the registered secrets scrubbed; other values as they are, arrays and plain objects looked into. */
const scrubValue = (value: unknown, depth = 0): unknown => {
  if (typeof value === "string") return Secrets.scrub(value)
  if (depth > 4 || value === null || typeof value !== "object") return value
  if (Array.isArray(value)) return value.map((item) => scrubValue(item, depth + 1))
  if (Object.getPrototypeOf(value) !== Object.prototype) {
    // Exporters write other objects as text: scrub that text, and keep the object when there was nothing to scrub.
    const text = Inspectable.toStringUnknown(value)
    const scrubbed = Secrets.scrub(text)
    return scrubbed === text ? value : scrubbed
  }
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, scrubValue(item, depth + 1)]))
}

/** An error as a span records it (name, message, stack trace and causes), with the registered secrets scrubbed. */
const scrubbedError = (error: unknown): Error => {
  const [first] = Cause.prettyErrors(Cause.fail(error))
  const copy = new Error(Secrets.scrub(first?.message ?? String(error)))
  copy.name = Secrets.scrub(first?.name ?? "Error")
  copy.stack = Secrets.scrub(Cause.pretty(Cause.fail(error), { renderErrorCause: true }))
  return copy
}

const scrubCause = (cause: Cause.Cause<unknown>): Cause.Cause<unknown> =>
  Cause.match(cause, {
    onEmpty: Cause.empty as Cause.Cause<unknown>,
    onFail: (error) => Cause.fail(scrubbedError(error)),
    onDie: (defect) => Cause.die(scrubbedError(defect)),
    onInterrupt: (fiberId) => Cause.interrupt(fiberId),
    onSequential: (left, right) => Cause.sequential(left, right),
    onParallel: (left, right) => Cause.parallel(left, right)
  })

/**
 * `tracer` with every registered secret (`Secrets.register`) scrubbed from what its spans record: names, attributes,
 * events (log lines become events), and the error a span ends with (its message and stack trace). Anything a provider
 * said (an error body echoing the API key, a response header) goes through it before an exporter sees it.
 */
export const scrubbing = (tracer: Tracer.Tracer): Tracer.Tracer =>
  Tracer.make({
    span(name, parent, context, links, startTime, kind, options) {
      const span = tracer.span(Secrets.scrub(name), parent, context, links, startTime, kind, options)
      const attribute = span.attribute.bind(span)
      const event = span.event.bind(span)
      const end = span.end.bind(span)
      // The span itself is what the exporter holds: its methods are replaced, so the exported object is unchanged.
      Object.assign(span, {
        attribute: (key: string, value: unknown) => attribute(key, Secrets.anyRegistered() ? scrubValue(value) : value),
        event: (eventName: string, time: bigint, attributes?: Record<string, unknown>) =>
          Secrets.anyRegistered()
            ? event(
                Secrets.scrub(eventName),
                time,
                attributes === undefined ? undefined : (scrubValue(attributes) as Record<string, unknown>)
              )
            : event(eventName, time, attributes),
        end: (endTime: bigint, exit: Exit.Exit<unknown, unknown>) =>
          end(endTime, Secrets.anyRegistered() && Exit.isFailure(exit) ? Exit.failCause(scrubCause(exit.cause)) : exit)
      })
      return span
    },
    context: (f, fiber) => tracer.context(f, fiber)
  })
