/**
 * The in-memory `TaskQueue`, for tests and one-process embedding. It keeps the SQL layers' semantics: payloads are
 * stored as JSON text (so what comes back is what a database would give), leases are fields of the job compared with
 * the `Clock`, a completed job is gone, and `awaitWork` is
 * woken in-process by every enqueue and release, or by the time the next job falls due.
 *
 * The storage is a separate value so that two queue instances can share it, as two processes share a database.
 */
import { Clock, Duration, Effect, Layer } from "effect"
import type { NodeKind } from "../domain/Task.js"
import { makeWakeUp, type WakeUp } from "./internal/eventStore.js"
import {
  checkSession,
  type EnqueueOptions,
  type Job,
  type JobKey,
  jobKeyString,
  type ListedJob,
  type TakenJob,
  type TakeOptions,
  TaskQueue,
  TaskQueueError,
  type TaskQueueService,
  type WorkerAnnouncement,
  type WorkerRegistry
} from "./TaskQueue.js"
import { hotFn } from "./Tracing.js"

/** One job as stored. Mutable: every change happens inside one `Effect.sync`, so no other fiber sees it half done. */
interface Row {
  /** Insertion order, the tie-break after `runAt`. */
  readonly id: number
  readonly sessionId: string
  readonly taskId: number
  readonly attempt: number
  readonly kind: NodeKind
  runAt: number
  payload: string
  workerId: string | undefined
  leaseExpiresAt: number | undefined
  takes: number
}

export interface MemoryTaskQueueStorage {
  /** Job key text -> row: the unfinished jobs. */
  readonly rows: Map<string, Row>
  /** The workers' announcements, by worker id (see `TaskQueueService.workers`). */
  readonly workers: Map<string, WorkerAnnouncement>
  readonly wakeUp: WakeUp
  nextId: number
}

export const makeStorage: Effect.Effect<MemoryTaskQueueStorage> = Effect.map(makeWakeUp, (wakeUp) => ({
  rows: new Map(),
  workers: new Map(),
  wakeUp,
  nextId: 1
}))

const encodePayload = (operation: string, job: Job): Effect.Effect<string, TaskQueueError> =>
  Effect.try({
    try: () => {
      const text = JSON.stringify(job.payload ?? null)
      if (text === undefined) throw new Error("it is not JSON")
      return text
    },
    catch: (cause) =>
      new TaskQueueError({
        operation,
        reason: `the payload of job ${jobKeyString(job)} cannot be stored as JSON (${String(cause)}); pass plain data`
      })
  })

const isTakeable = (row: Row, now: number): boolean =>
  row.runAt <= now && (row.leaseExpiresAt === undefined || row.leaseExpiresAt <= now)

/** When an unfinished row becomes takeable: at its `runAt`, or when its live lease runs out. */
const takeableAt = (row: Row): number => Math.max(row.runAt, row.leaseExpiresAt ?? 0)

const listed = (row: Row): ListedJob => ({
  sessionId: row.sessionId,
  taskId: row.taskId,
  attempt: row.attempt,
  kind: row.kind,
  runAt: row.runAt,
  payload: JSON.parse(row.payload),
  ...(row.workerId === undefined ? {} : { workerId: row.workerId }),
  ...(row.leaseExpiresAt === undefined ? {} : { leaseExpiresAt: row.leaseExpiresAt })
})

const byKey = (a: Row, b: Row): number =>
  a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : a.taskId - b.taskId || a.attempt - b.attempt

export const make = (storage: MemoryTaskQueueStorage): TaskQueueService => {
  const { rows, wakeUp } = storage

  const insert = (job: Job, payload: string, takenBy?: EnqueueOptions["takenBy"]): void => {
    rows.set(jobKeyString(job), {
      id: storage.nextId++,
      sessionId: job.sessionId,
      taskId: job.taskId,
      attempt: job.attempt,
      kind: job.kind,
      runAt: job.runAt,
      payload,
      workerId: takenBy?.workerId,
      leaseExpiresAt: takenBy?.leaseExpiresAt,
      takes: takenBy === undefined ? 0 : 1
    })
  }

  const encodeAll = (operation: string, jobs: ReadonlyArray<Job>) =>
    Effect.forEach(jobs, (job) => Effect.map(encodePayload(operation, job), (payload) => [job, payload] as const))

  const enqueue = hotFn("MemoryTaskQueue.enqueue")(function* (jobs: ReadonlyArray<Job>, options?: EnqueueOptions) {
    const encoded = yield* encodeAll("enqueue", jobs)
    const takenBy = options?.takenBy
    yield* Effect.sync(() => {
      for (const [job, payload] of encoded) if (!rows.has(jobKeyString(job))) insert(job, payload, takenBy)
    })
    // Jobs handed to a worker wake nobody: nobody else may take them while the lease lasts.
    if (encoded.length > 0 && takenBy === undefined) yield* wakeUp.signal
  })

  const matching = (kinds: ReadonlyArray<NodeKind> | undefined, sessionId?: string) => (row: Row) =>
    (kinds === undefined || kinds.includes(row.kind)) && (sessionId === undefined || row.sessionId === sessionId)

  const take = hotFn("MemoryTaskQueue.take")(function* (options: TakeOptions) {
    const now = yield* Clock.currentTimeMillis
    return yield* Effect.sync((): ReadonlyArray<TakenJob> => {
      if (options.limit <= 0) return []
      const matches = matching(options.kinds, options.sessionId)
      const due: Array<Row> = []
      for (const row of rows.values()) if (isTakeable(row, now) && matches(row)) due.push(row)
      due.sort((a, b) => a.runAt - b.runAt || a.id - b.id)
      return due.slice(0, options.limit).map((row) => {
        row.workerId = options.workerId
        row.leaseExpiresAt = now + options.leaseMs
        row.takes += 1
        return {
          ...listed(row),
          workerId: options.workerId,
          leaseExpiresAt: row.leaseExpiresAt,
          takes: row.takes
        }
      })
    })
  })

  const extendLeases = hotFn("MemoryTaskQueue.extendLeases")(function* (workerId: string, leaseMs: number) {
    const now = yield* Clock.currentTimeMillis
    return yield* Effect.sync(() => {
      let count = 0
      for (const row of rows.values()) {
        // A lease that already ran out is not this worker's any more: another taker may have the job.
        if (row.workerId === workerId && (row.leaseExpiresAt ?? 0) > now) {
          row.leaseExpiresAt = now + leaseMs
          count++
        }
      }
      return count
    })
  })

  const heldBy = (workerId: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() =>
        [...rows.values()]
          .filter((row) => row.workerId === workerId && (row.leaseExpiresAt ?? 0) > now)
          .sort(byKey)
          .map((row): JobKey => ({ sessionId: row.sessionId, taskId: row.taskId, attempt: row.attempt }))
      )
    )

  const holders = (sessionId?: string) =>
    Effect.sync(() => {
      const named = new Set<string>()
      for (const row of rows.values()) {
        if (row.workerId !== undefined && (sessionId === undefined || row.sessionId === sessionId)) {
          named.add(row.workerId)
        }
      }
      return [...named].sort()
    })

  const complete = (keys: JobKey | ReadonlyArray<JobKey>) =>
    Effect.sync(() => {
      for (const key of Array.isArray(keys) ? keys : [keys]) rows.delete(jobKeyString(key))
    }).pipe(Effect.withSpan("MemoryTaskQueue.complete"))

  const release = (key: JobKey, workerId: string) =>
    Effect.sync(() => {
      const row = rows.get(jobKeyString(key))
      if (row === undefined || row.workerId !== workerId) return false
      row.workerId = undefined
      row.leaseExpiresAt = undefined
      // A job given back is not a take whose lease ran out (see `TakenJob.takes`).
      row.takes = Math.max(0, row.takes - 1)
      return true
    }).pipe(
      Effect.flatMap((released) => (released ? wakeUp.signal : Effect.void)),
      Effect.withSpan("MemoryTaskQueue.release")
    )

  const lapse = (key: JobKey, workerId: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        const row = rows.get(jobKeyString(key))
        if (row === undefined || row.workerId !== workerId || (row.leaseExpiresAt ?? 0) <= now) return false
        // Its take still counts: the next take finds the attempt lost, as a lease that ran out would have.
        row.leaseExpiresAt = now
        return true
      })
    ).pipe(
      Effect.flatMap((lapsed) => (lapsed ? wakeUp.signal : Effect.void)),
      Effect.withSpan("MemoryTaskQueue.lapse")
    )

  const remove = (sessionId: string, taskIds?: ReadonlyArray<number>) =>
    Effect.sync(() => {
      for (const [key, row] of rows) {
        if (row.sessionId === sessionId && (taskIds === undefined || taskIds.includes(row.taskId))) {
          rows.delete(key)
        }
      }
    }).pipe(Effect.withSpan("MemoryTaskQueue.remove"))

  const awaitWork = (kinds?: ReadonlyArray<NodeKind>, sessionId?: string) =>
    Effect.gen(function* () {
      // The wake-up is taken before looking, so an enqueue between the look and the wait is not missed.
      const woken = yield* wakeUp.next
      const now = yield* Clock.currentTimeMillis
      const matches = matching(kinds, sessionId)
      let next = Number.POSITIVE_INFINITY
      for (const row of rows.values()) {
        if (!matches(row)) continue
        next = Math.min(next, takeableAt(row))
      }
      if (next <= now) return
      if (next === Number.POSITIVE_INFINITY) return yield* woken
      yield* Effect.raceFirst(woken, Effect.sleep(Duration.millis(next - now)))
    }).pipe(Effect.withSpan("MemoryTaskQueue.awaitWork"))

  const list = (sessionId?: string) =>
    Effect.sync(() => {
      const result: Array<Row> = []
      for (const row of rows.values()) {
        if (sessionId === undefined || row.sessionId === sessionId) result.push(row)
      }
      return result.sort(byKey).map(listed)
    })

  const replace = Effect.fn("MemoryTaskQueue.replace")(function* (sessionId: string, jobs: ReadonlyArray<Job>) {
    yield* checkSession(sessionId, jobs)
    const encoded = yield* encodeAll("replace", jobs)
    yield* Effect.sync(() => {
      const wanted = new Set(encoded.map(([job]) => jobKeyString(job)))
      for (const [key, row] of rows) {
        if (row.sessionId === sessionId && !wanted.has(key)) rows.delete(key)
      }
      for (const [job, payload] of encoded) {
        const row = rows.get(jobKeyString(job))
        if (row === undefined) {
          insert(job, payload)
        } else if (row.runAt !== job.runAt || row.payload !== payload) {
          // The log is the record: an attempt it has unfinished is unfinished, with the log's runAt and payload. A
          // worker holding it keeps its lease, and its outcome still goes through the writer.
          row.runAt = job.runAt
          row.payload = payload
        }
      }
    })
    yield* wakeUp.signal
  })

  const workers: WorkerRegistry = {
    announce: (announcement) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        storage.workers.set(announcement.workerId, announcement)
        for (const [workerId, announced] of storage.workers) {
          if (announced.expiresAt <= now) storage.workers.delete(workerId)
        }
      }),
    withdraw: (workerId) => Effect.sync(() => void storage.workers.delete(workerId)),
    live: (now) =>
      Effect.sync(() =>
        [...storage.workers.values()]
          .filter((announcement) => announcement.expiresAt > now)
          .sort((a, b) => (a.workerId < b.workerId ? -1 : a.workerId > b.workerId ? 1 : 0))
      )
  }

  return {
    enqueue,
    take,
    extendLeases,
    heldBy,
    holders,
    complete,
    release,
    lapse,
    remove,
    awaitWork,
    list,
    replace,
    workers
  }
}

/** A memory queue over the given storage (share one storage between two queues to model two processes). */
export const layerWith = (storage: MemoryTaskQueueStorage): Layer.Layer<TaskQueue> =>
  Layer.succeed(TaskQueue, make(storage))

/** A fresh, empty memory queue. */
export const layer: Layer.Layer<TaskQueue> = Layer.effect(TaskQueue, Effect.map(makeStorage, make))

/** For callers that build the service themselves. */
export const makeFresh: Effect.Effect<TaskQueueService> = Effect.map(makeStorage, make)
