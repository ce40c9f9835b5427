import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Context,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Option,
  Redacted,
  Schedule,
  Stream
} from "effect"
import pg from "pg"
import { EventStore, EventStoreError, SequenceConflict, type StoredEvent } from "../../src/infra/EventStore.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import {
  eventStoreContract,
  newEvent,
  type SqlTarget,
  sqlEventStoreContract,
  within,
  withStore
} from "./EventStoreContract.js"
import { endListening, freshPgDatabase, migrationIds, pgStoreRecordingPrepared } from "./fixtures/databases.js"

const target: SqlTarget<string> = {
  freshDatabase: freshPgDatabase,
  // Rare polling: live delivery in these tests must come from the in-process wake-up or from NOTIFY.
  layer: (url, options) =>
    PgEventStore.layer({ url: Redacted.make(url), pollInterval: options?.pollInterval ?? "1 minute" })
}

eventStoreContract("PgEventStore", target)
sqlEventStoreContract("PgEventStore", target)

const storeOn = (url: string) =>
  Effect.map(Layer.build(target.layer(url)), (context) => ({
    store: Context.get(context, EventStore),
    sql: Context.get(context, SqlClient.SqlClient)
  }))

describe("PgEventStore", () => {
  it.live(
    "a first subscription starts once LISTEN is active: an append from elsewhere while it comes up is not left to the poll",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const { store: elsewhere } = yield* storeOn(url)
          // LISTEN that takes 300 ms to come up, on a client of its own; the store polls once a minute.
          const listener = Context.get(
            yield* Layer.build(PgClient.layer({ url: Redacted.make(url) })),
            PgClient.PgClient
          )
          const here = Context.get(
            yield* Layer.build(
              PgEventStore.layer({
                url: Redacted.make(url),
                pollInterval: "1 minute",
                listen: (channel) => Stream.unwrap(Effect.as(Effect.sleep("300 millis"), listener.listen(channel)))
              })
            ),
            EventStore
          )
          const first = yield* Effect.fork(
            here.subscribe({ streamId: "s" }).pipe(Stream.take(1), Stream.runCollect, within(10, "the event"))
          )
          // Another process appends while this one's LISTEN is still coming up: its notification reaches nobody here.
          yield* Effect.sleep("50 millis")
          yield* elsewhere.append("s", "a", [newEvent("Appended", {})], "no-stream")
          const received = yield* Fiber.join(first)
          expect([...received].map((event) => event.type)).toEqual(["Appended"])
        })
      )
  )

  it.live(
    "a subscriber whose LISTEN connection the server ends hears other processes' appends again in seconds, not at its poll",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const { store: elsewhere, sql } = yield* storeOn(url)
          // Polls once a minute: what it receives within seconds came through LISTEN.
          const here = Context.get(
            yield* Layer.build(PgEventStore.layer({ url: Redacted.make(url), pollInterval: "1 minute" })),
            EventStore
          )
          const received: Array<string> = []
          yield* here.subscribe({ streamId: "s" }).pipe(
            Stream.runForEach((event) => Effect.sync(() => received.push(event.aggregateId))),
            Effect.forkScoped
          )
          const arrives = (aggregateId: string) =>
            Effect.gen(function* () {
              yield* elsewhere.append("s", aggregateId, [newEvent("Appended", {})], "no-stream")
              yield* Effect.sync(() => received.includes(aggregateId)).pipe(
                Effect.repeat({ until: (seen) => seen, schedule: Schedule.spaced("20 millis") }),
                within(10, `the append of ${aggregateId}`)
              )
            })
          yield* arrives("before")
          // The server ends every LISTEN connection of the database (a restart, an administrator, a network cut).
          expect(yield* endListening(sql)).toBeGreaterThan(0)
          // LISTEN comes back on a new connection a second later. What was appended meanwhile notified nobody here: once
          // LISTEN is back, the subscribers look for themselves...
          yield* arrives("after")
          // ...and later appends arrive through LISTEN again.
          yield* arrives("later")
          expect(received).toEqual(["before", "after", "later"])
        })
      )
  )

  it.live("the ordering trap is real here: without a lock, a lower position can commit after a higher one", () =>
    withStore(target, (_, __, context) =>
      Effect.gen(function* () {
        const sql = Context.get(context, SqlClient.SqlClient)
        const insert = (aggregateId: string) =>
          sql<{
            position: string
          }>`INSERT INTO events (stream_id, event_type, aggregate_id, sequence, event_version, data, metadata)
            VALUES ('raw', 'Raw', ${aggregateId}, 1, '1', '{}', '{"eventId": "x"}') RETURNING position`
        const inserted = yield* Deferred.make<number>()
        const release = yield* Deferred.make<void>()
        const slow = yield* sql
          .withTransaction(
            insert("slow").pipe(
              Effect.tap((rows) => Deferred.succeed(inserted, Number(rows[0]?.position))),
              Effect.zipRight(Deferred.await(release))
            )
          )
          .pipe(Effect.fork)
        const lower = yield* Deferred.await(inserted)
        const [fast] = yield* insert("fast")
        const higher = Number(fast?.position)
        expect(higher).toBeGreaterThan(lower)
        // A reader now sees the higher position but not the lower one: it would move past it for good.
        const visible = yield* sql<{ position: string }>`SELECT position FROM events ORDER BY position`
        expect(visible.map((row) => Number(row.position))).toEqual([higher])
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(slow)
      })
    )
  )

  it.live(
    "appends to other sessions do not wait for an open append; subscribers and the head stop short of it until it commits",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const { store, sql } = yield* storeOn(url)
          // Another store instance follows too: it learns of the appends only from NOTIFY and the table.
          const other = yield* storeOn(url)
          yield* store.append("s", "first", [newEvent("First", {})], 0)
          const follow = (follower: typeof store) =>
            Effect.gen(function* () {
              const seen: Array<StoredEvent> = []
              const caughtUp = yield* Deferred.make<void>()
              const fiber = yield* follower.subscribe({ streamId: "s" }).pipe(
                Stream.tap((event) => Effect.sync(() => seen.push(event))),
                Stream.tap(() => Deferred.succeed(caughtUp, undefined)),
                Stream.take(5),
                Stream.runCollect,
                Effect.fork
              )
              yield* Deferred.await(caughtUp).pipe(within(10, "a follower's first event"))
              return { seen, fiber }
            })
          const here = yield* follow(store)
          const there = yield* follow(other.store)

          // An append whose transaction stays open after it drew its position (as a slow handler's would).
          const appended = yield* Deferred.make<number>()
          const release = yield* Deferred.make<void>()
          const slow = yield* sql
            .withTransaction(
              store.append("s", "slow", [newEvent("Slow", {})], 0).pipe(
                Effect.tap((result) => Deferred.succeed(appended, result.positions[0] ?? -1)),
                Effect.zipRight(Deferred.await(release))
              )
            )
            .pipe(Effect.fork)
          const slowPosition = yield* Deferred.await(appended).pipe(within(10, "the open append's position"))
          // Three appends to other sessions, from both instances, commit while it is open (one store-wide lock
          // would hold them until it commits, and this would time out).
          const later = yield* Effect.all(
            [
              store.append("s", "b", [newEvent("Later", {})], 0),
              other.store.append("s", "c", [newEvent("Later", {})], 0),
              store.append("s", "d", [newEvent("Later", {})], 0)
            ],
            { concurrency: "unbounded" }
          ).pipe(within(10, "the appends to other sessions"))
          const laterPositions = later.flatMap((result) => result.positions)
          for (const position of laterPositions) expect(position).toBeGreaterThan(slowPosition)
          // A snapshot read shows them; nothing that follows may pass the open append's position.
          expect(yield* store.load({ streamId: "s" })).toHaveLength(4)
          expect(yield* store.headPosition).toBe(slowPosition - 1)
          expect(yield* other.store.headPosition).toBe(slowPosition - 1)
          yield* Effect.sleep("300 millis")
          expect(here.seen.map((event) => event.type)).toEqual(["First"])
          expect(there.seen.map((event) => event.type)).toEqual(["First"])

          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(slow)
          const stored = yield* store.load({ streamId: "s" })
          for (const follower of [here, there]) {
            const received = Array.from(yield* Fiber.join(follower.fiber).pipe(within(10, "a follower's five events")))
            expect(received.map((event) => event.type)).toEqual(["First", "Slow", "Later", "Later", "Later"])
            expect(received).toEqual(stored)
          }
          expect(yield* store.headPosition).toBe(Math.max(...laterPositions))
          expect(yield* other.store.headPosition).toBe(Math.max(...laterPositions))
        })
      )
  )

  it.live("a position lost to a rolled-back append holds no subscriber back, here or in another instance", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const { store } = yield* storeOn(url)
        const other = yield* storeOn(url)
        const first = yield* store.append("s", "a", [newEvent("Kept", {})], 0)
        let lost = -1
        const refused = yield* store
          .append("s", "b", [newEvent("RolledBack", {})], 0, (result) =>
            Effect.sync(() => {
              lost = result.positions[0] ?? -1
            }).pipe(Effect.zipRight(Effect.fail(new EventStoreError({ operation: "test", reason: "roll back" }))))
          )
          .pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "EventStoreError", reason: "roll back" })
        expect(lost).toBe((first.positions[0] ?? 0) + 1)
        const after = yield* other.store.append("s", "c", [newEvent("Kept", {})], 0)
        expect(after.positions[0]).toBe(lost + 1)
        // Both instances hand out both kept events (the other one polls once a minute: the gap must not wait for that).
        for (const follower of [store, other.store]) {
          const received = yield* follower
            .subscribe({ streamId: "s" })
            .pipe(Stream.take(2), Stream.runCollect, within(10))
          expect(Array.from(received).map((event) => event.position)).toEqual([first.positions[0], after.positions[0]])
          expect(yield* follower.headPosition).toBe(after.positions[0])
        }
      })
    )
  )

  it.live(
    "an append whose connection is lost mid-transaction fails with a store error, not a defect, and stores nothing",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const { store, sql } = yield* storeOn(url)
          // The alongside ends its own connection inside the append's transaction: its statement fails, and so does the
          // ROLLBACK after it, which `@effect/sql` would make a defect that no caller's error handling sees.
          const exit = yield* store
            .append("s", "a", [newEvent("Lost", {})], 0, () =>
              sql`SELECT pg_terminate_backend(pg_backend_pid())`.pipe(
                Effect.asVoid,
                Effect.mapError((error) => new EventStoreError({ operation: "test", reason: error.message }))
              )
            )
            .pipe(Effect.exit)
          expect(Exit.isFailure(exit) && !Cause.isDie(exit.cause)).toBe(true)
          expect(Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()).toMatchObject(
            Option.some({ _tag: "EventStoreError" })
          )
          expect(yield* store.load({ streamId: "s", aggregateId: "a" })).toEqual([])
          // The store goes on with a fresh connection.
          const next = yield* store.append("s", "a", [newEvent("Kept", {})], 0)
          expect(next.lastSequence).toBe(1)
        })
      )
  )

  it.live("concurrent writers on two instances, some rolled back, some held open: a third delivers all, in order", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const writers = [yield* storeOn(url), yield* storeOn(url)]
        const reader = yield* storeOn(url)
        const appends = 120
        const received: Array<StoredEvent> = []
        const subscriber = yield* reader.store.subscribe({}).pipe(
          Stream.runForEach((event) => Effect.sync(() => received.push(event))),
          Effect.fork
        )
        // Each append goes to one of a few sessions at whatever sequence it reads; one in five rolls back, one in
        // five holds its transaction open for a while after drawing its position.
        const one = (index: number) => {
          const writer = writers[index % 2] as (typeof writers)[number]
          const aggregateId = `session-${index % 7}`
          const alongside =
            index % 5 === 0
              ? () => Effect.fail(new EventStoreError({ operation: "test", reason: "roll back" }))
              : index % 5 === 1
                ? () => Effect.sleep(`${(index * 7) % 40} millis`)
                : undefined
          return Effect.flatMap(writer.store.lastSequence("s", aggregateId), (last) =>
            writer.store.append("s", aggregateId, [newEvent("E", { index })], last, alongside)
          ).pipe(Effect.either)
        }
        yield* Effect.forEach(
          Array.from({ length: appends }, (_, index) => index),
          one,
          { concurrency: 12 }
        )
        const stored = yield* reader.store.load({ streamId: "s" })
        // Enough committed for the order to mean something. How many is up to timing: a fifth roll back, and appends
        // that read the same sequence of a session race (one run of the full suite had exactly half committed).
        expect(stored.length).toBeGreaterThan(appends / 4)
        // (Without the high-water mark the reader skips events committed late, and this times out.)
        yield* Effect.sleep("20 millis").pipe(
          Effect.repeat({ while: () => received.length < stored.length }),
          within(20)
        )
        yield* Fiber.interrupt(subscriber)
        // Every committed event exactly once, in position order: nothing skipped, nothing twice.
        expect(received.map((event) => event.position)).toEqual(stored.map((event) => event.position))
        expect(received).toEqual(stored)
      })
    )
  )

  it.live(
    "an append that waited behind another to the same aggregate at the same sequence is refused as a conflict",
    () =>
      withStore(target, (store, _, context) =>
        Effect.gen(function* () {
          const sql = Context.get(context, SqlClient.SqlClient)
          // The first append holds the lock in an open transaction. The second is a statement of its own, whose
          // snapshot is taken before the first commits: it must still be refused, with where the aggregate really is.
          const appended = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const first = yield* sql
            .withTransaction(
              store
                .append("s", "contested", [newEvent("First", {})], 0)
                .pipe(Effect.zipRight(Deferred.succeed(appended, undefined)), Effect.zipRight(Deferred.await(release)))
            )
            .pipe(Effect.fork)
          yield* Deferred.await(appended).pipe(within(10))
          const second = yield* store
            .append("s", "contested", [newEvent("Second", {})], 0)
            .pipe(Effect.flip, Effect.fork)
          yield* Effect.sleep("300 millis")
          expect(yield* Fiber.poll(second)).toEqual(Option.none())
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(first)
          const refused = yield* Fiber.join(second).pipe(within(10))
          expect(refused._tag).toBe("SequenceConflict")
          expect(refused).toMatchObject({ expected: 0, actual: 1 })
          expect((yield* store.load({ streamId: "s", aggregateId: "contested" })).map((event) => event.type)).toEqual([
            "First"
          ])
        })
      )
  )

  it.live("the unique constraint is the final guard: a writer that bypasses the store's lock still conflicts", () =>
    withStore(target, (store, _, context) =>
      Effect.gen(function* () {
        const sql = Context.get(context, SqlClient.SqlClient)
        yield* store.append("s", "agg", [newEvent("A", {})], 0)
        const inserted = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const rogue = yield* sql
          .withTransaction(
            sql`INSERT INTO events (stream_id, event_type, aggregate_id, sequence, event_version, data, metadata)
                VALUES ('s', 'Rogue', 'agg', 2, '1', '{}', '{"eventId": "rogue"}')`.pipe(
              Effect.zipRight(Deferred.succeed(inserted, undefined)),
              Effect.zipRight(Deferred.await(release))
            )
          )
          .pipe(Effect.fork)
        yield* Deferred.await(inserted)
        // The rogue row is not committed, so the expected-sequence check passes; the insert then waits on the index.
        const append = yield* Effect.fork(Effect.either(store.append("s", "agg", [newEvent("B", {})], 1)))
        yield* Effect.sleep("300 millis")
        expect(yield* Fiber.poll(append)).toEqual(Option.none())
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(rogue)
        const outcome = yield* Fiber.join(append).pipe(within(10))
        expect(outcome).toEqual(
          Either.left(new SequenceConflict({ streamId: "s", aggregateId: "agg", expected: 1, actual: 2 }))
        )
      })
    )
  )

  it.live("another store instance's subscriber is woken by NOTIFY, not by polling", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const writer = yield* storeOn(url)
        const reader = yield* storeOn(url)
        const received = yield* Deferred.make<ReadonlyArray<StoredEvent>>()
        const subscriber = yield* reader.store.subscribe({ streamId: "s" }).pipe(
          Stream.filter((event) => event.type === "Real"),
          Stream.take(3),
          Stream.runCollect,
          Effect.flatMap((events) => Deferred.succeed(received, Array.from(events))),
          Effect.fork
        )
        // LISTEN starts with the first subscription; ping until the reader hears one that it can only have heard live.
        // The first pings it gets may come from its first read (a loaded machine starts it late), so it is listening
        // once it gets a ping sent after it had got one.
        const heardPings: Array<number> = []
        const listener = yield* reader.store.subscribe({ streamId: "ping" }).pipe(
          Stream.runForEach((event) => Effect.sync(() => heardPings.push((event.data as { n: number }).n))),
          Effect.fork
        )
        let pings = 0
        let liveFrom = Number.POSITIVE_INFINITY
        const heardLive = () => heardPings.some((n) => n >= liveFrom)
        while (pings < 200) {
          if (liveFrom === Number.POSITIVE_INFINITY && heardPings.length > 0) liveFrom = pings
          if (heardLive()) break
          yield* writer.store.append("ping", "p", [newEvent("Ping", { n: pings })], pings)
          pings += 1
          yield* Effect.sleep("50 millis")
        }
        expect(heardLive()).toBe(true)
        yield* Fiber.interrupt(listener)
        for (const aggregateId of ["a", "b", "c"]) {
          yield* writer.store.append("s", aggregateId, [newEvent("Real", { aggregateId })], 0)
        }
        // The reader polls once a minute: these can only arrive through NOTIFY.
        const events = yield* Deferred.await(received).pipe(within(10))
        expect(events.map((event) => event.aggregateId)).toEqual(["a", "b", "c"])
        yield* Fiber.join(subscriber)
      })
    )
  )

  it.live(
    "appends at a known sequence run as the prepared statement; at any sequence or in a transaction they do not",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const url = yield* freshPgDatabase
          const { names, layer } = yield* pgStoreRecordingPrepared(url)
          const context = yield* Layer.build(layer)
          const store = Context.get(context, EventStore)
          const sql = Context.get(context, SqlClient.SqlClient)
          yield* store.append("s", "a", [newEvent("One", {})], 0)
          yield* store.append("s", "a", [newEvent("Two", {}), newEvent("Three", {})], 1)
          expect(names).toEqual(["event_store_append_1_checked_standalone", "event_store_append_2_checked_standalone"])
          yield* store.append("s", "a", [newEvent("Four", {})], "any")
          yield* sql.withTransaction(store.append("s", "a", [newEvent("Five", {})], 4))
          expect(names).toHaveLength(2)
          // A refused prepared append writes nothing and reports where the aggregate is.
          const refused = yield* store.append("s", "a", [newEvent("Late", {})], 3).pipe(Effect.flip)
          expect(refused).toMatchObject({ _tag: "SequenceConflict", expected: 3, actual: 5 })
          const loaded = yield* store.load({ streamId: "s", aggregateId: "a" })
          expect(loaded.map((event) => [event.type, event.sequence])).toEqual([
            ["One", 1],
            ["Two", 2],
            ["Three", 3],
            ["Four", 4],
            ["Five", 5]
          ])
        })
      )
  )

  it.live("an append's notification carries its rows; one too large for a notification carries its last position", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const { store, sql } = yield* storeOn(url)
        const listener = new pg.Client({ connectionString: url })
        yield* Effect.acquireRelease(
          Effect.promise(() => listener.connect()),
          () => Effect.promise(() => listener.end())
        )
        const payloads: Array<string> = []
        listener.on("notification", (message) => payloads.push(message.payload ?? ""))
        yield* Effect.promise(() => listener.query("LISTEN event_store_appended"))

        // One statement (a known sequence, no transaction), the transaction way, and one too large to carry.
        const single = yield* store.append("s", "single", [newEvent("Single", { n: 1 })], 0)
        const inTransaction = yield* sql.withTransaction(
          store.append("s", "in-transaction", [newEvent("First", { n: 2 }), newEvent("Second", { n: 3 })], 0)
        )
        const large = yield* store.append("s", "large", [newEvent("Large", { text: "x".repeat(10_000) })], 0)
        while (payloads.length < 3) yield* Effect.sleep("20 millis").pipe(within(10))

        const rows = (payload: string | undefined) =>
          (JSON.parse(payload ?? "") as Array<Record<string, unknown>>).map((row) => ({
            ...row,
            d: JSON.parse(String(row.d)),
            m: JSON.parse(String(row.m))
          }))
        const stored = yield* store.load({ streamId: "s" })
        const expected = (position: number | undefined) => {
          const event = stored.find((candidate) => candidate.position === position)
          return {
            p: event?.position,
            s: "s",
            a: event?.aggregateId,
            q: event?.sequence,
            t: event?.type,
            v: "1",
            d: event?.data,
            m: event?.metadata,
            c: event?.createdAt
          }
        }
        expect(rows(payloads[0])).toEqual([expected(single.positions[0])])
        expect(rows(payloads[1])).toEqual(inTransaction.positions.map(expected))
        expect(payloads[2]).toBe(String(large.positions[0]))
      })
    )
  )

  it.live("two store instances starting at once on a new database migrate it once", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const [first, second] = yield* Effect.all([storeOn(url), storeOn(url)], { concurrency: "unbounded" })
        yield* first.store.append("s", "a", [newEvent("A", {})], 0)
        expect(yield* second.store.load({ streamId: "s" })).toHaveLength(1)
        const migrations = yield* first.sql<{ migration_id: number }>`SELECT migration_id FROM event_store_migrations`
        expect(migrations.map((row) => row.migration_id)).toEqual(migrationIds)
      })
    )
  )

  it.live("layerConfig reads the URL from PLANNER_DATABASE_URL, and fails clearly without it", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const url = yield* freshPgDatabase
        const configured = PgEventStore.layerConfig().pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["PLANNER_DATABASE_URL", url]]))))
        )
        const store = Context.get(yield* Layer.build(configured), EventStore)
        yield* store.append("s", "a", [newEvent("A", {})], 0)
        expect(yield* store.lastSequence("s", "a")).toBe(1)

        const missing = PgEventStore.layerConfig().pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))
        )
        const error = yield* Effect.flip(Effect.scoped(Layer.build(missing)))
        expect(String(error)).toContain("PLANNER_DATABASE_URL")
      })
    )
  )
})
