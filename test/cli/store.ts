/**
 * Reads what the CLI recorded straight from its SQLite file, in the test process: cheaper than another `planner`
 * process when a test only needs to check the stored log (the commands that read it are tested on their own).
 */
import * as path from "node:path"
import { Context, Effect, Layer } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Planner from "../../src/domain/Planner.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { TaskQueue } from "../../src/infra/TaskQueue.js"

/** The default store of a working folder. */
export const defaultDb = (cwd: string) => path.join(cwd, ".planner", "planner.db")

const withStore = <A, E>(filename: string, use: (store: PlannerStore.PlannerStoreService) => Effect.Effect<A, E>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const context = yield* Layer.build(PlannerStore.layer.pipe(Layer.provide(SqliteEventStore.layer({ filename }))))
        return yield* use(Context.get(context, PlannerStore.PlannerStore))
      })
    )
  )

/** A session's stored events and the state they fold to. */
export const readSession = (filename: string, sessionId: string) =>
  withStore(filename, (store) =>
    Effect.map(store.load(sessionId), (records) => ({
      records,
      types: records.map((record) => record.event._tag),
      state: Planner.fold(records.map((record) => record.event))
    }))
  )

/** The ids of the sessions in a store, newest first. */
export const sessionIds = (filename: string) =>
  withStore(filename, (store) =>
    Effect.map(store.sessions, (sessions) => sessions.map((session) => session.aggregateId))
  )

/** Runs `use` with the writer and the task queue over the SQLite file, in this process. */
export const withService = <A>(
  filename: string,
  use: (service: PlannerService.PlannerServiceShape, queue: Context.Tag.Service<TaskQueue>) => Effect.Effect<A, unknown>
) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const context = yield* Layer.build(
          PlannerService.layer().pipe(
            Layer.provideMerge(PlannerStore.layer),
            Layer.provideMerge(SqliteEventStore.layer({ filename }))
          )
        )
        return yield* use(Context.get(context, PlannerService.PlannerService), Context.get(context, TaskQueue))
      })
    )
  )
