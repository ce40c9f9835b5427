/**
 * The long-lived processes keep the memory index live (#17): `planner worker` and `planner serve --worker`, as real
 * processes of the built CLI over a SQLite file, run the durable consumer, so a task's record is in the index while its
 * plan still runs (the second task waits for an answer), and the session's record once it ends. This test never
 * catches the index up itself: it only reads the index's table, so what it sees was written by the process.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, expect, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as Runner from "../../src/app/Runner.js"
import type { MemoryRecord } from "../../src/domain/Memory.js"
import * as EchoExecutor from "../../src/infra/EchoExecutor.js"
import { EventStore } from "../../src/infra/EventStore.js"
import { MemoryIndex } from "../../src/infra/MemoryIndex.js"
import * as MemoryIndexSql from "../../src/infra/MemoryIndexSql.js"
import { consumerName } from "../../src/infra/MemoryProjection.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { plannerRuntime } from "../app/fixtures/runtime.js"
import { ensureBuilt, startCli, tempFolder } from "../cli/cli.js"
import { startPlan, task } from "../dashboard/fixtures.js"
import { eventually } from "./MemoryIndexContract.js"

const script = {
  rules: [{ match: "Deploy", outcomes: [{ ask: "Staging or production?" }, { complete: "Deployed to {answer}" }] }],
  default: { complete: "done: {description}" }
}

const plan = [task(1, "ToolCall", "Build the release bundle"), task(2, "Processing", "Deploy the release bundle", [1])]

const describeRecord = (record: MemoryRecord) =>
  record._tag === "Task" ? `${record.sessionId}#${record.taskId}` : record.sessionId

/** `planner ARGS` in its own process until the scope closes, once it printed `ready`. */
const longLived = (args: ReadonlyArray<string>, cwd: string, ready: RegExp) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const running = startCli(args, { cwd, timeoutMs: 200_000 })
      await running.waitFor(ready, 60_000)
      return running
    }),
    (running) =>
      Effect.promise(async () => {
        running.child.kill("SIGTERM")
        await running.result
      })
  )

const processes: ReadonlyArray<readonly [string, (db: string, executor: string) => ReadonlyArray<string>, RegExp]> = [
  [
    "planner worker",
    (db, executor) => ["worker", "--db", db, "--executor", executor, "--no-check-links"],
    /Worker \S+ serving/
  ],
  [
    "planner serve --worker",
    (db, executor) => ["serve", "--port", "0", "--worker", "--db", db, "--executor", executor, "--no-check-links"],
    /Dashboard: http/
  ]
]

beforeAll(() => ensureBuilt(), 300_000)

layer(Layer.empty, { excludeTestServices: true })("the index kept live by long-lived processes", (it) => {
  for (const [name, args, ready] of processes) {
    it.scoped(
      `${name}: a task's record arrives while its plan runs, the session's when it ends`,
      () =>
        Effect.gen(function* () {
          const folder = tempFolder("planner-memory-live-")
          const db = path.join(folder, "planner.db")
          const scriptFile = path.join(folder, "script.json")
          fs.writeFileSync(scriptFile, JSON.stringify(script))
          // This process only starts the plan and answers; the other one runs the tasks and the consumer.
          const services = yield* Layer.build(
            Layer.merge(
              plannerRuntime(SqliteEventStore.layer({ filename: db }), EchoExecutor.echo),
              MemoryIndexSql.layer().pipe(Layer.provideMerge(SqliteEventStore.layer({ filename: db })))
            )
          )
          yield* longLived(args(db, `script:${scriptFile}`), folder, ready)
          const sessionId = yield* startPlan("Build the release bundle, then deploy it.", plan).pipe(
            Effect.provide(services)
          )
          const index = yield* Effect.provide(MemoryIndex, services)
          const records = Effect.map(index.all, (all) => all.map(describeRecord))

          // Task 1 ended and task 2 waits for an answer: task 1's record is there, the session's is not.
          yield* eventually(
            Effect.map(Effect.provide(Runner.existing(sessionId), services), (state) =>
              state.tasks.find((one) => one.id === 2)?.status === "NeedsClarification" ? state : undefined
            ),
            120
          )
          const first = yield* eventually(
            Effect.map(records, (keys) => (keys.includes(`${sessionId}#1`) ? keys : undefined)),
            120
          )
          expect(first).toEqual([`${sessionId}#1`])
          expect((yield* Effect.provide(Runner.existing(sessionId), services)).status).not.toBe("Succeeded")
          // Written by the process's consumer, which saved its position.
          const checkpoint = yield* Effect.provide(
            Effect.flatMap(EventStore, (store) => store.checkpoint(consumerName)),
            services
          )
          expect(Option.isSome(checkpoint)).toBe(true)

          yield* Effect.provide(Runner.answer(sessionId, 2, "production"), services)
          const all = yield* eventually(
            Effect.map(records, (keys) => (keys.includes(sessionId) ? keys : undefined)),
            120
          )
          expect(all).toEqual([sessionId, `${sessionId}#1`, `${sessionId}#2`])
          const found = yield* index.search({ text: "deploying the bundle", kind: "task" })
          expect(found.map((hit) => describeRecord(hit.record))[0]).toBe(`${sessionId}#2`)
        }),
      200_000
    )
  }
})
