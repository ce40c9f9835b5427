/**
 * `PgEventStore.layer` against a server on 127.0.0.1 that accepts connections and never answers (#18): opening the
 * store fails with `EventStoreError` instead of hanging, whether the server never answers the connection or answers
 * it and then never answers a statement; and the wait can be interrupted.
 */
import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Exit, Fiber, Layer, Redacted } from "effect"
import * as PgEventStore from "../../src/infra/PgEventStore.js"

/** A server that accepts and never answers; with `answerStartup`, it completes the start-up and ignores queries. */
const silentServer = (answerStartup: boolean, onConnect: () => void = () => undefined) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: net.Server; readonly port: number; readonly sockets: Set<net.Socket> }>(
      (resume) => {
        const sockets = new Set<net.Socket>()
        const server = net.createServer((socket) => {
          sockets.add(socket)
          onConnect()
          socket.on("error", () => undefined)
          if (answerStartup) {
            socket.once("data", () => {
              const authenticationOk = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0])
              const readyForQuery = Buffer.from([0x5a, 0, 0, 0, 5, 0x49])
              socket.write(Buffer.concat([authenticationOk, readyForQuery]))
            })
          }
        })
        server.listen(0, "127.0.0.1", () =>
          resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port, sockets }))
        )
      }
    ),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )

const url = (port: number) => Redacted.make(`postgres://planner:secret-pw@127.0.0.1:${port}/planner`)

describe("PgEventStore against a server that never answers", () => {
  it.scopedLive("a connection that is never answered fails with EventStoreError after the connect timeout", () =>
    Effect.gen(function* () {
      const { port } = yield* silentServer(false)
      const opened = yield* Effect.either(
        Layer.build(PgEventStore.layer({ url: url(port), client: { connectTimeout: "500 millis" } }))
      )
      expect(Either.isLeft(opened) && opened.left._tag).toBe("EventStoreError")
      expect(Either.isLeft(opened) && opened.left.message).toContain("could not connect")
    })
  )

  it.scopedLive("a statement that is never answered fails with EventStoreError after the statement timeout", () =>
    Effect.gen(function* () {
      const { port } = yield* silentServer(true)
      const opened = yield* Effect.either(
        Layer.build(PgEventStore.layer({ url: url(port), statementTimeout: "500 millis" }))
      )
      expect(Either.isLeft(opened) && opened.left._tag).toBe("EventStoreError")
      expect(Either.isLeft(opened) && opened.left.message).toContain("timeout")
    })
  )

  it.scopedLive("opening the store can be interrupted while the server keeps it waiting", () =>
    Effect.gen(function* () {
      const connected = yield* Deferred.make<void>()
      const { port } = yield* silentServer(true, () => Deferred.unsafeDone(connected, Exit.void))
      // Timeouts far beyond the test's own: only the interruption can end it.
      const opening = yield* Layer.build(
        PgEventStore.layer({ url: url(port), client: { connectTimeout: "1 hour" }, statementTimeout: "1 hour" })
      ).pipe(Effect.scoped, Effect.fork)
      yield* Deferred.await(connected)
      const exit = yield* Fiber.interrupt(opening)
      expect(Exit.isInterrupted(exit)).toBe(true)
    })
  )
})
