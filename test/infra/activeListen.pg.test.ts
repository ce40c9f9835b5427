/**
 * `ActiveListen` over `PgPool.listener` on a real PostgreSQL server: a LISTEN that goes silent without an error (a
 * network cut) is found by the heartbeat and started again; a LISTEN that cannot connect at all (the server is away)
 * is tried again every second without telling the waiters it is back; and two streams of one channel share its
 * LISTEN, which the first to end does not take from the other.
 */
import * as net from "node:net"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Redacted, Schedule, Stream } from "effect"
import * as ActiveListen from "../../src/infra/internal/activeListen.js"
import * as PgPool from "../../src/infra/internal/pgPool.js"
import { within } from "./EventStoreContract.js"
import { freshPgDatabase } from "./fixtures/databases.js"

/** A pool on a fresh database, its client, and a listener with the pool's settings. */
const database = Effect.gen(function* () {
  const url = yield* freshPgDatabase
  const pool = yield* PgPool.open({ url: Redacted.make(url) })
  const client = yield* Layer.build(PgClient.layerFromPool({ acquire: Effect.succeed(pool) }))
  return { pool, sql: Context.get(client, SqlClient.SqlClient), listen: yield* PgPool.listener(pool.options) }
})

/** Waits (in real time, up to `seconds`) until `done` holds. */
const until = (what: string, done: () => boolean, seconds = 15) =>
  Effect.sync(done).pipe(
    Effect.repeat({ until: (held) => held, schedule: Schedule.spaced("20 millis") }),
    within(seconds, what)
  )

describe("ActiveListen on PostgreSQL", () => {
  it.scopedLive("a LISTEN that goes silent without an error is found by the heartbeat and started again", () =>
    Effect.gen(function* () {
      const { sql, listen } = yield* database
      // The first connection's notifications stop coming once `silent` is set, as on a cut network: no error, no end.
      let silent = false
      let started = 0
      const cut = (channel: string) =>
        Stream.suspend(() => {
          started += 1
          const generation = started
          return listen(channel).pipe(Stream.filter(() => !(silent && generation === 1)))
        })
      const heard: Array<string> = []
      let restarts = 0
      const start = yield* ActiveListen.make({
        sql,
        listen: cut,
        channel: "beat",
        scope: yield* Effect.scope,
        what: "test",
        heartbeat: "300 millis",
        onPayload: (payload) => Effect.sync(() => heard.push(payload)),
        onRestart: Effect.sync(() => {
          restarts += 1
        })
      })
      yield* start
      yield* sql`SELECT pg_notify('beat', 'one')`
      yield* until("the first notification", () => heard.includes("one"))
      silent = true
      // The next heartbeat's probe never comes back (5 s of tries), LISTEN starts again a second later, and once its
      // probe is back the waiters are told.
      yield* until("LISTEN started again", () => restarts === 1, 20)
      expect(started).toBe(2)
      yield* sql`SELECT pg_notify('beat', 'two')`
      yield* until("a notification on the new LISTEN", () => heard.includes("two"))
      expect(heard).toEqual(["one", "two"])
    })
  )

  it.scopedLive("a LISTEN that cannot connect is tried again each second, and never said to be back", () =>
    Effect.gen(function* () {
      const { sql } = yield* database
      // A port where nothing listens: every connection is refused at once.
      const port = yield* Effect.promise(
        () =>
          new Promise<number>((resolve) => {
            const server = net.createServer()
            server.listen(0, "127.0.0.1", () => {
              const address = server.address()
              server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
            })
          })
      )
      const listen = yield* PgPool.listener({ host: "127.0.0.1", port, user: "nobody", database: "none" })
      let tries = 0
      let restarts = 0
      const start = yield* ActiveListen.make({
        sql,
        listen: (channel) =>
          Stream.suspend(() => {
            tries += 1
            return listen(channel)
          }),
        channel: "away",
        scope: yield* Effect.scope,
        what: "test",
        onPayload: () => Effect.void,
        onRestart: Effect.sync(() => {
          restarts += 1
        })
      })
      // The start is released (the poll covers), and the tries go on at a second's pace without telling the waiters.
      yield* start.pipe(within(10, "the start"))
      yield* until("three tries", () => tries >= 3, 10)
      expect(restarts).toBe(0)
    })
  )

  it.scopedLive("two streams of one channel share its LISTEN: the first to end leaves the other listening", () =>
    Effect.gen(function* () {
      const { sql, listen } = yield* database
      const heard: Array<string> = []
      const first = yield* listen("shared").pipe(Stream.runDrain, Effect.fork)
      yield* listen("shared").pipe(
        Stream.runForEach((payload) => Effect.sync(() => heard.push(payload))),
        Effect.forkScoped
      )
      /** Notifies `payload` until it is heard (LISTEN comes up a moment after the streams start). */
      const heardOf = (payload: string) =>
        sql`SELECT pg_notify('shared', ${payload})`.pipe(
          Effect.zipRight(Effect.sleep("50 millis")),
          Effect.repeat({ until: () => heard.includes(payload) }),
          within(15, `the notification ${payload}`)
        )
      yield* heardOf("before")
      yield* Fiber.interrupt(first)
      yield* heardOf("after")
    })
  )
})
