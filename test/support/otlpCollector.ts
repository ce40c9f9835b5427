/**
 * An OTLP/HTTP collector on 127.0.0.1 for tests: records every POST it receives and answers 200, at once, or only once
 * `afterBodies` bodies have arrived (the answers held till then), or never. `acknowledged` holds the bodies whose answer
 * reached the exporter's connection: a batch the exporter gave up on is not among them. `bodies` are the received
 * bodies as text. Closed with the scope.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, type Scope } from "effect"

export interface Received {
  readonly path: string
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly body: Buffer
}

export interface Collector {
  /** The server's base URL (no path). */
  readonly url: string
  readonly received: ReadonlyArray<Received>
  readonly acknowledged: ReadonlyArray<Buffer>
  /** Every body received, as UTF-8 text. */
  readonly bodies: () => ReadonlyArray<string>
}

/** When the collector answers a request. */
export type Answering = "at once" | { readonly afterBodies: number } | "never"

export const collectorAnswering = (answering: Answering): Effect.Effect<Collector, never, Scope.Scope> =>
  Effect.gen(function* () {
    const received: Array<Received> = []
    const acknowledged: Array<Buffer> = []
    const held: Array<() => void> = []
    const due = () => answering === "at once" || (answering !== "never" && received.length >= answering.afterBodies)
    const server = createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const body = Buffer.concat(chunks)
        received.push({ path: request.url ?? "", headers: request.headers, body })
        response.on("finish", () => acknowledged.push(body))
        held.push(() => {
          // An exporter that gave up has closed the connection: nothing to answer.
          if (response.destroyed) return
          response.writeHead(200, { "content-type": "application/json" })
          response.end("{}")
        })
        if (due()) for (const answer of held.splice(0)) answer()
      })
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    return {
      url: `http://127.0.0.1:${port}`,
      received,
      acknowledged,
      bodies: () => received.map((request) => request.body.toString("utf8"))
    }
  })

/** A collector that answers at once. */
export const collector: Effect.Effect<Collector, never, Scope.Scope> = collectorAnswering("at once")
