import * as fs from "node:fs"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import { Chunk, Context, Deferred, Effect, Fiber, Layer, Option, Stream } from "effect"
import { EventStore, EventStoreError } from "../../src/infra/EventStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { eventStoreContract, newEvent, type SqlTarget, sqlEventStoreContract } from "./EventStoreContract.js"
import { freshSqliteFile, migrationIds } from "./fixtures/databases.js"

const target: SqlTarget<string> = {
  freshDatabase: freshSqliteFile,
  // Rare polling: every writer in these tests is in this process, so live delivery must come from the wake-up.
  layer: (filename, options) => SqliteEventStore.layer({ filename, pollInterval: options?.pollInterval ?? "1 minute" })
}

eventStoreContract("SqliteEventStore", target)
sqlEventStoreContract("SqliteEventStore", target)

describe("SqliteEventStore", () => {
  it.live("opens files in WAL mode and migrates them once", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        for (const run of [1, 2]) {
          yield* Effect.scoped(
            Effect.gen(function* () {
              const context = yield* Layer.build(SqliteEventStore.layer({ filename }))
              const sql = Context.get(context, SqlClient.SqlClient)
              const [mode] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
              expect(mode?.journal_mode).toBe("wal")
              const migrations = yield* sql<{ migration_id: number }>`SELECT migration_id FROM event_store_migrations`
              expect(migrations.map((row) => row.migration_id)).toEqual(migrationIds)
              const store = Context.get(context, EventStore)
              yield* store.append("s", "a", [newEvent("Run", { run })], run - 1)
            })
          )
        }
      })
    )
  )

  it.live("syncs commits to disk as configured: at checkpoints by default, at every commit with full", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        const synchronous = (config: Omit<SqliteEventStore.SqliteEventStoreConfig, "filename">) =>
          Effect.scoped(
            Effect.gen(function* () {
              const sql = Context.get(
                yield* Layer.build(SqliteEventStore.layer({ filename, ...config })),
                SqlClient.SqlClient
              )
              const [row] = yield* sql<{ synchronous: number }>`PRAGMA synchronous`
              return row?.synchronous
            })
          )
        // NORMAL by default (as better-sqlite3 is built to use in WAL mode), on the open that creates the file too.
        expect(yield* synchronous({})).toBe(1)
        expect(yield* synchronous({})).toBe(1)
        expect(yield* synchronous({ synchronous: "full" })).toBe(2)
        expect(yield* synchronous({ synchronous: "normal" })).toBe(1)
        // Without WAL, NORMAL could corrupt the file on a power failure: every commit is synced whatever is asked.
        const other = yield* freshSqliteFile
        const rollback = Context.get(
          yield* Layer.build(SqliteEventStore.layer({ filename: other, disableWAL: true, synchronous: "normal" })),
          SqlClient.SqlClient
        )
        const [row] = yield* rollback<{ synchronous: number }>`PRAGMA synchronous`
        expect(row?.synchronous).toBe(2)
      })
    )
  )

  it.live("readonly: reads the file as it is, writes nothing, and refuses a file that still needs a migration", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        yield* Effect.scoped(
          Effect.flatMap(Layer.build(SqliteEventStore.layer({ filename })), (context) =>
            Context.get(context, EventStore).append("s", "a", [newEvent("A", { n: 1 })], 0)
          )
        )
        const bytes = () => new Uint8Array(fs.readFileSync(filename))
        const before = bytes()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const store = Context.get(
              yield* Layer.build(SqliteEventStore.layer({ filename, readonly: true })),
              EventStore
            )
            expect((yield* store.load({ streamId: "s" })).map((event) => event.data)).toEqual([{ n: 1 }])
            const refused = yield* Effect.flip(store.append("s", "a", [newEvent("B", {})], 1))
            expect(refused.message).toMatch(/readonly database/)
          })
        )
        expect(bytes()).toEqual(before)

        // A file from before the last migration: a read-only open cannot upgrade it, and says so.
        const old = new Sqlite(filename)
        old
          .prepare(
            "DELETE FROM event_store_migrations WHERE migration_id = (SELECT max(migration_id) FROM event_store_migrations)"
          )
          .run()
        old.close()
        const stale = yield* Effect.flip(
          Effect.scoped(Layer.build(SqliteEventStore.layer({ filename, readonly: true })))
        )
        expect(stale).toBeInstanceOf(EventStoreError)
        expect(stale.message).toContain("must be upgraded, which a read-only open cannot do")
      })
    )
  )

  it.live(
    "opening a new file that another connection is writing in rollback mode waits for it, then switches to WAL",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const filename = yield* freshSqliteFile
          // Another process's connection, before the file was ever switched to WAL, in the middle of a write. Switching
          // now would deadlock, so SQLite answers SQLITE_BUSY at once instead of waiting its busy timeout.
          const other = yield* Effect.acquireRelease(
            Effect.sync(() => new Sqlite(filename)),
            (db) => Effect.sync(() => db.close())
          )
          other.exec("CREATE TABLE other_work (n INTEGER); BEGIN IMMEDIATE; INSERT INTO other_work VALUES (1)")
          const opening = yield* Effect.fork(Layer.build(SqliteEventStore.layer({ filename })))
          yield* Effect.sleep("300 millis")
          expect(opening.unsafePoll()).toBeNull()
          other.exec("COMMIT")
          const context = yield* Fiber.join(opening).pipe(Effect.timeout("30 seconds"))
          const sql = Context.get(context, SqlClient.SqlClient)
          const [mode] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
          expect(mode?.journal_mode).toBe("wal")
          const store = Context.get(context, EventStore)
          yield* store.append("s", "a", [newEvent("Opened", {})], 0)
        })
      )
  )

  it.live("works on :memory:", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const store = Context.get(yield* Layer.build(SqliteEventStore.layer({ filename: ":memory:" })), EventStore)
        yield* store.append("s", "a", [newEvent("A", {}), newEvent("B", {})], 0)
        expect((yield* store.load({ streamId: "s" })).map((event) => event.type)).toEqual(["A", "B"])
      })
    )
  )

  it.live("a file that cannot be opened is an EventStoreError, not a crash", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Effect.scoped(Layer.build(SqliteEventStore.layer({ filename: "/nonexistent-folder/events.db" })))
      )
      expect(error).toBeInstanceOf(EventStoreError)
      expect(error.message).toContain("/nonexistent-folder/events.db")
    })
  )

  it.live("an append waits for another fiber's open transaction and never lands inside it", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        const context = yield* Layer.build(SqliteEventStore.layer({ filename }))
        const sql = Context.get(context, SqlClient.SqlClient)
        const store = Context.get(context, EventStore)
        const inside = yield* Deferred.make<void>()
        const finish = yield* Deferred.make<void>()
        // A transaction that writes, then waits while the append below is tried, then rolls back.
        const transaction = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO event_checkpoints (consumer, position, updated_at) VALUES ('doomed', 1, 0)`
              yield* Deferred.succeed(inside, undefined)
              yield* Deferred.await(finish)
              return yield* Effect.fail("roll back" as const)
            })
          )
          .pipe(Effect.flip, Effect.fork)
        yield* Deferred.await(inside)
        const append = yield* Effect.fork(store.append("s", "a", [newEvent("Kept", {})], 0))
        yield* Effect.sleep("50 millis")
        expect(yield* Fiber.poll(append)).toEqual(Option.none())
        yield* Deferred.succeed(finish, undefined)
        expect(yield* Fiber.join(transaction)).toBe("roll back")
        expect((yield* Fiber.join(append)).lastSequence).toBe(1)
        // The rollback took the transaction's own write and nothing else.
        expect((yield* store.load({ streamId: "s" })).map((event) => event.type)).toEqual(["Kept"])
        expect(yield* sql`SELECT consumer FROM event_checkpoints`).toEqual([])
      })
    )
  )

  it.live("a subscriber never sees an append made inside a transaction that rolled back", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        const context = yield* Layer.build(SqliteEventStore.layer({ filename, pollInterval: "1 minute" }))
        const sql = Context.get(context, SqlClient.SqlClient)
        const store = Context.get(context, EventStore)
        const received = yield* Effect.fork(Stream.runCollect(Stream.take(store.subscribe({ streamId: "s" }), 1)))
        yield* Effect.sleep("20 millis")
        // The append succeeds inside the transaction, which then rolls back: the event never existed.
        yield* sql
          .withTransaction(
            Effect.zipRight(store.append("s", "a", [newEvent("RolledBack", {})], 0), Effect.fail("undo"))
          )
          .pipe(Effect.flip)
        // Time for the subscriber to look, woken by that append, before anything else is written.
        yield* Effect.sleep("100 millis")
        yield* store.append("s", "a", [newEvent("Kept", {})], 0)
        const events = yield* Fiber.join(received).pipe(Effect.timeout("10 seconds"))
        expect(Chunk.toReadonlyArray(events).map((event) => event.type)).toEqual(["Kept"])
      })
    )
  )
})
