/**
 * The task queue is a projection of the log. Over random plans and command sequences (the planner property tests'
 * generators), a queue kept live the way the writer keeps it (each decision's events appended, `jobChanges` applied,
 * workers taking jobs in between) always holds exactly the jobs `jobsFromState` implies, and rebuilding from the log
 * (`Jobs.rebuild`, through the real store) finds nothing to change and gives a fresh queue the same jobs.
 *
 * Memory for many runs, SQLite (real files) for fewer: the rebuild goes through `PlannerStore` and `replace` on each.
 */
import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, type Scope } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import { Initialize, type PlannerCommand } from "../../src/domain/Commands.js"
import type { PlannerConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import { nodeKinds, type TaskPlan } from "../../src/domain/Task.js"
import type { EventStore } from "../../src/infra/EventStore.js"
import * as Jobs from "../../src/infra/Jobs.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryTaskQueue from "../../src/infra/MemoryTaskQueue.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import * as SqlTaskQueue from "../../src/infra/SqlTaskQueue.js"
import { type Job, type ListedJob, TaskQueue } from "../../src/infra/TaskQueue.js"
import { configArb, type Intent, intentsArb, planArb, resolve, T0 } from "../domain/plannerArbitraries.js"
import { freshSqliteFile } from "./fixtures/databases.js"

/** A job without its holder: what the log decides. */
const decided = (job: Job | ListedJob): Job => ({
  sessionId: job.sessionId,
  taskId: job.taskId,
  attempt: job.attempt,
  kind: job.kind,
  runAt: job.runAt,
  payload: job.payload
})

type Services = PlannerStore.PlannerStore | TaskQueue | EventStore

/** Runs the commands the way the writer does, checking the queue against the projection after every decision. */
const runLive = (plan: ReadonlyArray<TaskPlan>, config: PlannerConfig, intents: ReadonlyArray<Intent>) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore.PlannerStore
    const queue = yield* TaskQueue
    const sessionId = `s-${randomUUID()}`
    let live = Planner.initialState
    let at = T0
    let takes = 0
    const apply = (command: PlannerCommand) =>
      Effect.gen(function* () {
        const outcome = Planner.decideEither(live, command)
        if (Either.isLeft(outcome) || outcome.right.length === 0) return
        const before = live
        live = Planner.fold(outcome.right, live)
        yield* store.append(sessionId, outcome.right, before.version)
        yield* Jobs.applyChanges(Jobs.jobChanges(sessionId, before, live, outcome.right))
        expect((yield* queue.list(sessionId)).map(decided)).toEqual(Jobs.jobsFromState(sessionId, live))
      })
    yield* apply(new Initialize({ request: "generated", tasks: plan, config, at }))
    for (const intent of intents) {
      at += intent._tag === "continue" ? intent.advance : 1
      const command = resolve(live, intent, at)
      if (command !== undefined) yield* apply(command)
      // A worker takes a job now and then, so that the rebuild meets jobs under leases. (The runs' times are in the
      // past of the real clock, so every job is due.)
      if (intent._tag === "claim") {
        takes += (yield* queue.take({ workerId: `w${takes % 2}`, sessionId, limit: 1, leaseMs: 3_600_000 })).length
      }
    }
    return { sessionId, live }
  })

/** The same commands through the writer itself (`PlannerService`), which keeps the queue in its append transactions. */
const runThroughWriter = (plan: ReadonlyArray<TaskPlan>, config: PlannerConfig, intents: ReadonlyArray<Intent>) =>
  Effect.gen(function* () {
    const service = yield* PlannerService.PlannerService
    const queue = yield* TaskQueue
    const sessionId = `s-${randomUUID()}`
    let live = Planner.initialState
    let at = T0
    // A worker of this process with 0, 1 or 2 free slots (by the case), so that some dispatches are handed over:
    // claimed in their own append and enqueued already taken (`PlannerService.handOffTo`).
    const slots = { free: intents.length % 3 }
    yield* service.handOffTo({
      workerId: "local",
      kinds: nodeKinds,
      sessionId,
      leaseMs: 60_000,
      free: () => slots.free,
      accept: () => {
        slots.free -= 1
        return true
      }
    })
    const apply = (command: PlannerCommand) =>
      Effect.gen(function* () {
        // A refusal changes nothing; the test's own commands include impossible ones on purpose. The state is the
        // writer's own, which holds the claims of jobs handed over besides the command's events.
        yield* Effect.either(service.execute(sessionId, command))
        live = yield* service.state(sessionId)
        expect((yield* queue.list(sessionId)).map(decided)).toEqual(Jobs.jobsFromState(sessionId, live))
      })
    yield* apply(new Initialize({ request: "generated", tasks: plan, config, at }))
    for (const intent of intents) {
      at += intent._tag === "continue" ? intent.advance : 1
      const command = resolve(live, intent, at)
      if (command !== undefined) yield* apply(command)
    }
    return { sessionId, live }
  })

const checkRebuild = (sessionId: string, live: Planner.PlannerState, clearQueue: Effect.Effect<void, unknown, never>) =>
  Effect.gen(function* () {
    const queue = yield* TaskQueue
    const before = yield* queue.list(sessionId)
    // The live queue is already the log's projection: the rebuild changes nothing, leases included.
    const found = yield* Jobs.rebuild(sessionId)
    expect(found).toEqual({ sessionId, missing: [], stray: [] })
    expect(yield* queue.list(sessionId)).toEqual(before)
    // A queue that lost everything gets the same jobs back from the log alone.
    yield* clearQueue
    expect(yield* queue.list(sessionId)).toEqual([])
    const rebuilt = yield* Jobs.rebuild(sessionId)
    expect(rebuilt.missing).toEqual(Jobs.jobsFromState(sessionId, live))
    expect((yield* queue.list(sessionId)).map(decided)).toEqual(before.map(decided))
    expect(Jobs.hasDrift(yield* Jobs.check(sessionId))).toBe(false)
  })

const property =
  <E>(
    layer: Effect.Effect<
      { readonly context: Context.Context<Services>; readonly clear: Effect.Effect<void, unknown> },
      E,
      Scope.Scope
    >
  ) =>
  ([plan, config, intents]: readonly [ReadonlyArray<TaskPlan>, PlannerConfig, ReadonlyArray<Intent>]) =>
    Effect.scoped(
      Effect.gen(function* () {
        const { context, clear } = yield* layer
        yield* Effect.gen(function* () {
          const { sessionId, live } = yield* runLive(plan, config, intents)
          yield* checkRebuild(sessionId, live, clear)
        }).pipe(Effect.provide(context))
      })
    )

const memory = Effect.gen(function* () {
  const storage = yield* MemoryTaskQueue.makeStorage
  const context = yield* Layer.build(
    Layer.merge(PlannerStore.layer, MemoryTaskQueue.layerWith(storage)).pipe(
      Layer.provideMerge(MemoryEventStore.layer())
    )
  )
  return { context, clear: Effect.sync(() => storage.rows.clear()) }
})

const sqlite = Effect.gen(function* () {
  const filename = yield* freshSqliteFile
  const context = yield* Layer.build(
    Layer.merge(PlannerStore.layer, SqlTaskQueue.layer()).pipe(Layer.provideMerge(SqliteEventStore.layer({ filename })))
  )
  const sql = Context.get(context, SqlClient.SqlClient)
  return {
    context: context as Context.Context<Services>,
    clear: Effect.asVoid(sql`DELETE FROM planner_jobs`)
  }
})

const throughWriter =
  <E>(
    layer: Effect.Effect<
      { readonly context: Context.Context<Services>; readonly clear: Effect.Effect<void, unknown> },
      E,
      Scope.Scope
    >
  ) =>
  ([plan, config, intents]: readonly [ReadonlyArray<TaskPlan>, PlannerConfig, ReadonlyArray<Intent>]) =>
    Effect.scoped(
      Effect.gen(function* () {
        const { context, clear } = yield* layer
        const writer = yield* Layer.build(PlannerService.layer()).pipe(Effect.provide(context))
        yield* Effect.gen(function* () {
          const { sessionId, live } = yield* runThroughWriter(plan, config, intents)
          yield* checkRebuild(sessionId, live, clear)
        }).pipe(Effect.provide(Context.merge(context, writer)))
      })
    )

describe("the task queue as a projection of the log", () => {
  it.live.prop(
    "memory, through the writer: the queue equals jobsFromState after every command, and equals its rebuild",
    [planArb, configArb, intentsArb(60)],
    throughWriter(memory),
    { fastCheck: { numRuns: 100 } }
  )

  it.live.prop(
    "SQLite, through the writer: the queue equals jobsFromState after every command, and equals its rebuild",
    [planArb, configArb, intentsArb(30)],
    throughWriter(sqlite),
    { timeout: 120_000, fastCheck: { numRuns: 15 } }
  )

  it.live.prop(
    "memory: the live queue equals jobsFromState after every decision, and equals its rebuild from the log",
    [planArb, configArb, intentsArb(60)],
    property(memory),
    { fastCheck: { numRuns: 200 } }
  )

  it.live.prop(
    "SQLite: the live queue equals jobsFromState after every decision, and equals its rebuild from the log",
    [planArb, configArb, intentsArb(40)],
    property(sqlite),
    { timeout: 120_000, fastCheck: { numRuns: 25 } }
  )
})
