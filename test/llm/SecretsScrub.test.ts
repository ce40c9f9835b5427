/**
 * Scrubbing a secret and the fragments servers echo of it (issue #18), and the tracer that scrubs registered secrets
 * from everything a span records: names, attributes, events (log lines) and the error it ends with.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Tracer } from "effect"
import * as Secrets from "../../src/infra/Secrets.js"
import * as Tracing from "../../src/infra/Tracing.js"

const key = "sk-proj-Qm7Zt2Lp9Xc4Vb8Nw1Rk6Hy3Jd5Gs0Fa"

describe("Secrets.scrubWith", () => {
  const scrub = Secrets.scrubWith([key])

  it("replaces the key, the forms providers echo, and runs of its characters", () => {
    expect(scrub(`Bearer ${key}`)).toBe("Bearer <redacted>")
    expect(scrub(`Incorrect API key provided: sk-proj-${"*".repeat(30)}s0Fa. See docs.`)).toBe(
      "Incorrect API key provided: <redacted>. See docs."
    )
    expect(scrub("key sk-...s0Fa rejected")).toBe("key <redacted> rejected")
    expect(scrub("key sk-…s0Fa rejected")).toBe("key <redacted> rejected")
    expect(scrub("key ****s0Fa rejected")).toBe("key <redacted> rejected")
    expect(scrub("key sk-proj-Q**** rejected")).toBe("key <redacted> rejected")
    expect(scrub("key sk-proj-Qm7Z**** rejected")).not.toContain("Qm7Z")
    // A piece of the key, cut out of it, inside other text.
    expect(scrub(`"auth":"${key.slice(5, 25)}"`)).toBe(`"auth":"<redacted>"`)
    expect(scrub(`x${key.slice(12)}`)).toBe("x<redacted>")
  })

  it("leaves innocent text alone", () => {
    for (const text of [
      "loading... done",
      "a **bold** claim",
      "sk-...abcd is another key",
      "****1234",
      "the key ends in s0Fa",
      "Qm7Zt2Lp9",
      ""
    ]) {
      expect(scrub(text), text).toBe(text)
    }
  })

  it("short secrets are replaced whole only; empty ones are ignored", () => {
    expect(Secrets.scrubWith(["abcd"])("x abcd y ab**cd")).toBe("x <redacted> y ab**cd")
    expect(Secrets.scrubWith([""])("anything")).toBe("anything")
  })

  it("handles long text with many masks in one pass", () => {
    const text = `${"word... **x** ".repeat(20_000)}sk-...s0Fa`
    const scrubbed = scrub(text)
    expect(scrubbed.endsWith("<redacted>")).toBe(true)
    expect(scrubbed.length).toBe(text.length - "sk-...s0Fa".length + "<redacted>".length)
  })
})

interface Recorded {
  name: string
  readonly attributes: Map<string, unknown>
  readonly events: Array<{ readonly name: string; readonly attributes: Record<string, unknown> | undefined }>
  exit?: Exit.Exit<unknown, unknown>
}

/** A tracer that keeps what its spans were given, as an exporter would receive it. */
const recordingTracer = () => {
  const spans: Array<Recorded> = []
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind) {
      const recorded: Recorded = { name, attributes: new Map(), events: [] }
      spans.push(recorded)
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span-${spans.length}`,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes: recorded.attributes,
        links,
        sampled: true,
        kind,
        end: (_endTime, exit) => {
          recorded.exit = exit
        },
        attribute: (attributeKey, value) => {
          recorded.attributes.set(attributeKey, value)
        },
        event: (eventName, _time, attributes) => {
          recorded.events.push({ name: eventName, attributes })
        },
        addLinks: () => undefined
      }
      return span
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

describe("Tracing.scrubbing", () => {
  it.effect("no registered secret reaches a span's name, attributes, events or error", () =>
    Effect.gen(function* () {
      const secret = "tok-9Vq4Xe7Bn2Mz5Lc8Kw1Pd6Hs3"
      Secrets.register(secret)
      const { spans, tracer } = recordingTracer()
      const failure = new Error(`401: Incorrect API key provided: tok-9Vq4${"*".repeat(12)}Hs3. Sent ${secret}`)
      const exit = yield* Effect.gen(function* () {
        yield* Effect.annotateCurrentSpan("http.response.header.x-echo", `Bearer ${secret}`)
        yield* Effect.annotateCurrentSpan("nested", { header: [secret] })
        yield* Effect.logWarning(`provider said ${secret}`)
        return yield* Effect.fail(failure)
      }).pipe(Effect.withSpan(`call ${secret}`), Effect.withTracer(Tracing.scrubbing(tracer)), Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)

      const span = spans[0]
      if (span === undefined) throw new Error("no span recorded")
      expect(span.name).toBe("call <redacted>")
      expect(span.attributes.get("http.response.header.x-echo")).toBe("Bearer <redacted>")
      expect(span.attributes.get("nested")).toEqual({ header: ["<redacted>"] })
      expect(span.events.map((event) => event.name)).toContain("provider said <redacted>")
      const ended = span.exit
      if (ended === undefined || Exit.isSuccess(ended)) throw new Error("the span did not end with the failure")
      const everything = JSON.stringify({
        name: span.name,
        attributes: [...span.attributes],
        events: span.events,
        // What an OTLP exporter sends for the error: its message, and the pretty cause as the stack trace.
        errors: Cause.prettyErrors(ended.cause).map((error) => [error.name, error.message, error.stack]),
        pretty: Cause.pretty(ended.cause, { renderErrorCause: true })
      })
      expect(everything).toContain("Incorrect API key provided: <redacted>")
      expect(everything).not.toContain(secret)
      expect(everything).not.toContain("Hs3")
      expect(everything).not.toContain(secret.slice(4, 14))
    })
  )
})
