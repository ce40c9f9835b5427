/**
 * The memory index inside a running process (#17).
 *
 * - `indexLayer`: the index on the store's own database (the `SqlClient` the SQL store layers also provide), else in
 *   memory; with embeddings when `PLANNER_EMBEDDINGS_MODEL` is set. What the short commands (`recall`, `stats`, `run`)
 *   use after catching the index up with the log.
 * - `liveLayer`: the same index, kept live by the durable consumer (`MemoryProjection.run`, with its saved position)
 *   for as long as the layer lives: what the long-lived processes (`planner serve`, `planner worker`) run, so a task's
 *   record is in the index moments after it ends, while its plan still runs, without waiting for the next command.
 *
 * Memory is advice: a consumer that fails (a busy database, an unreachable embeddings endpoint that fails a whole
 * write) is logged and started again from its saved position after a pause; it never stops the server or the worker.
 */
import { SqlClient } from "@effect/sql"
import { Cause, Duration, Effect, Layer, Option, Schedule } from "effect"
import * as Embeddings from "../infra/Embeddings.js"
import type { EventStore } from "../infra/EventStore.js"
import { MemoryIndex, makeMemory } from "../infra/MemoryIndex.js"
import * as MemoryIndexSql from "../infra/MemoryIndexSql.js"
import * as MemoryProjection from "../infra/MemoryProjection.js"

export const indexLayer: Layer.Layer<MemoryIndex, never, never> = Layer.effect(
  MemoryIndex,
  Effect.gen(function* () {
    const embedder = Option.getOrUndefined(
      yield* Embeddings.fromEnvironment.pipe(
        Effect.tapError((error) => Effect.logWarning(`memory: embeddings are off: ${String(error)}`)),
        Effect.orElseSucceed(() => Option.none())
      )
    )
    const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
    return Option.isSome(sql)
      ? yield* Effect.provideService(MemoryIndexSql.make(embedder), SqlClient.SqlClient, sql.value)
      : makeMemory(embedder)
  })
)

/** After a failure, the consumer starts again after 0.5 s, doubling up to 30 s. */
const restartSchedule = Schedule.exponential(Duration.millis(500)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(30)))
)

/** A cause in one line: its error's message, and that of the error under it (a driver's "connection refused"). */
const causeLine = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (!(error instanceof Error)) return String(error)
  const under = error.cause instanceof Error ? `: ${error.cause.message}` : ""
  return `${error.message}${under}`.replace(/\s+/g, " ")
}

/** The durable consumer, forever: restarted from its saved position after any failure. */
export const keepLive: Effect.Effect<never, never, EventStore | MemoryIndex> = MemoryProjection.run.pipe(
  // One line (what failed, and why); the whole cause, stack traces and all, under --verbose.
  Effect.tapErrorCause((cause) =>
    Effect.zipRight(
      Effect.logWarning(`memory: the index consumer stopped and starts again: ${causeLine(cause)}`),
      Effect.logDebug("memory: the index consumer stopped", cause)
    )
  ),
  Effect.retry(restartSchedule),
  Effect.orDie,
  Effect.annotateLogs("consumer", MemoryProjection.consumerName)
)

/** The index, kept live by the durable consumer in a fiber of its own while the layer lives. */
export const liveLayer: Layer.Layer<MemoryIndex, never, EventStore> = Layer.scopedDiscard(
  Effect.forkScoped(keepLive)
).pipe(Layer.provideMerge(indexLayer))
