/**
 * The task queue as a projection of the log: which jobs a session's state implies, what a decision changes in them,
 * and the rebuild that puts a session's jobs back from its log.
 *
 * A job exists for every task whose current attempt is in flight (`Planner.hasJob`: dispatched or running), with the
 * attempt's kind and run time (`Planner.jobRunAt`: a retry's time, or 0). Every other task has none: the writer
 * completes an attempt's job in the same transaction as the event that ended it. The writer keeps the queue equal to
 * `jobsFromState` live (with `jobChanges` after each decision); `rebuild` makes it so from the log, and a property test
 * (test/infra/Jobs.property.test.ts) checks that the two agree after random command sequences.
 *
 * The payload is small and a function of the task alone: the worker builds the executor's `TaskContext` (the request,
 * the rolling context, the dependencies' results) from the session's state when it starts the job, so a plan of
 * 2,000 tasks does not store its request 2,000 times.
 */
import { Effect, Either } from "effect"
import type { PlannerEvent } from "../domain/Events.js"
import * as Planner from "../domain/Planner.js"
import type { TaskState } from "../domain/Task.js"
import { type CorruptEvent, type ReadError, unlessUnreadable } from "./EventStore.js"
import { PlannerStore } from "./PlannerStore.js"
import { type Job, type JobKey, jobKeyString, type ListedJob, TaskQueue, type TaskQueueError } from "./TaskQueue.js"

/** What a job carries for the executor and for people reading the queue (`planner doctor`). */
export interface JobPayload {
  readonly description: string
}

/** The payload of a task's job. */
export const jobPayload = (task: TaskState): JobPayload => ({ description: task.description })

/** The job of a task's current attempt (whether it should exist is `Planner.hasJob`). */
export const jobOf = (sessionId: string, task: TaskState): Job => ({
  sessionId,
  taskId: task.id,
  attempt: task.attempt,
  kind: task.kind,
  runAt: Planner.jobRunAt(task),
  payload: jobPayload(task)
})

/** The jobs a session's state implies, in task order: one per task dispatched or running; none once the plan ended. */
export const jobsFromState = (sessionId: string, state: Planner.PlannerState): ReadonlyArray<Job> =>
  state.status === "Running" ? state.tasks.filter(Planner.hasJob).map((task) => jobOf(sessionId, task)) : []

/** What one decision changes in a session's jobs: the ones to enqueue, the ones whose attempt ended. */
export interface JobChanges {
  readonly enqueue: ReadonlyArray<Job>
  readonly complete: ReadonlyArray<JobKey>
}

const noChanges: JobChanges = { enqueue: [], complete: [] }

/**
 * The changes to a session's jobs from `before` to `after`, the states around a decision's `events`. Only the tasks
 * the events name are compared (a decision costs what it touched); an event about no task in particular (a plan, its
 * end, a compaction) compares every task. Applying them (`enqueue`, then `complete`) to a queue equal to
 * `jobsFromState(before)` makes it equal to `jobsFromState(after)`.
 */
export const jobChanges = (
  sessionId: string,
  before: Planner.PlannerState,
  after: Planner.PlannerState,
  events: ReadonlyArray<PlannerEvent>
): JobChanges => {
  if (events.length === 0) return noChanges
  let touched: Iterable<number>
  if (events.every((event) => "taskId" in event)) {
    touched = new Set(events.map((event) => ("taskId" in event ? event.taskId : 0)))
  } else {
    touched = after.tasks.map((task) => task.id)
  }
  const enqueue: Array<Job> = []
  const complete: Array<JobKey> = []
  for (const id of touched) {
    const was = Planner.task(before, id)
    const now = Planner.task(after, id)
    const had = was !== undefined && Planner.hasJob(was) ? was : undefined
    const has = now !== undefined && Planner.hasJob(now) ? now : undefined
    if (had !== undefined && had.attempt === has?.attempt) continue
    if (had !== undefined) complete.push({ sessionId, taskId: had.id, attempt: had.attempt })
    if (has !== undefined) enqueue.push(jobOf(sessionId, has))
  }
  return enqueue.length === 0 && complete.length === 0 ? noChanges : { enqueue, complete }
}

/** Applies a decision's changes to the queue (inside the append's transaction on the SQL layers). */
export const applyChanges = (changes: JobChanges): Effect.Effect<void, TaskQueueError, TaskQueue> =>
  changes.enqueue.length === 0 && changes.complete.length === 0
    ? Effect.void
    : Effect.flatMap(TaskQueue, (queue) =>
        Effect.zipRight(
          queue.enqueue(changes.enqueue),
          changes.complete.length === 0 ? Effect.void : queue.complete(changes.complete)
        )
      )

// --- The rebuild ----------------------------------------------------------------------------------------------------

/** How a session's jobs in the queue differ from what its log implies. */
export interface JobDrift {
  readonly sessionId: string
  /** Implied by the log, missing from the queue (or there with another kind, run time or payload). */
  readonly missing: ReadonlyArray<Job>
  /** In the queue, not implied by the log. */
  readonly stray: ReadonlyArray<ListedJob>
}

const sameJob = (a: Job, b: Job): boolean =>
  a.kind === b.kind && a.runAt === b.runAt && JSON.stringify(a.payload) === JSON.stringify(b.payload)

/** Compares what the log implies with what the queue holds (leases aside). */
export const drift = (sessionId: string, implied: ReadonlyArray<Job>, queued: ReadonlyArray<ListedJob>): JobDrift => {
  const held = new Map(queued.map((job) => [jobKeyString(job), job]))
  const wanted = new Set(implied.map(jobKeyString))
  return {
    sessionId,
    missing: implied.filter((job) => {
      const there = held.get(jobKeyString(job))
      return there === undefined || !sameJob(job, there)
    }),
    stray: queued.filter((job) => !wanted.has(jobKeyString(job)))
  }
}

export const hasDrift = (found: JobDrift): boolean => found.missing.length > 0 || found.stray.length > 0

/** The state of a session folded from its whole log. */
const stateFromLog = (sessionId: string) =>
  Effect.flatMap(PlannerStore, (store) =>
    Effect.map(store.load(sessionId), (records) => Planner.fold(records.map((record) => record.event)))
  )

/** How a session's jobs differ from its log, without changing anything. */
export const check = Effect.fn("Jobs.check")(function* (sessionId: string) {
  const queue = yield* TaskQueue
  const state = yield* stateFromLog(sessionId)
  return drift(sessionId, jobsFromState(sessionId, state), yield* queue.list(sessionId))
})

/**
 * Puts a session's jobs back as its log has them: `replace` keeps the leases of the jobs it keeps, reopens an attempt
 * the log has unfinished, drops jobs of attempts the log has ended. Returns what differed before.
 */
export const rebuild = Effect.fn("Jobs.rebuild")(function* (sessionId: string) {
  const queue = yield* TaskQueue
  const state = yield* stateFromLog(sessionId)
  const implied = jobsFromState(sessionId, state)
  const found = drift(sessionId, implied, yield* queue.list(sessionId))
  if (hasDrift(found)) yield* queue.replace(sessionId, implied)
  return found
})

/** Every session the log or the queue names: those of the log, and those only the queue still has (removed). */
const allSessions = Effect.gen(function* () {
  const store = yield* PlannerStore
  const queue = yield* TaskQueue
  const sessions = new Set((yield* store.sessions).map((session) => session.aggregateId))
  for (const job of yield* queue.list()) sessions.add(job.sessionId)
  return sessions
})

/** A pass over every session: those whose jobs differed from their log, and those whose log cannot be read. */
export interface StoreDrift {
  readonly drifted: ReadonlyArray<JobDrift>
  /**
   * Sessions left alone because an event of their log does not decode: their jobs cannot be derived from it. The rest
   * of the store is still checked (or rebuilt); the error names the event, for a restore or a fork before it.
   */
  readonly unreadable: ReadonlyArray<CorruptEvent>
}

/** `each` over every session (see `allSessions`); see `StoreDrift`. */
const driftedSessions = (
  each: (sessionId: string) => Effect.Effect<JobDrift, ReadError | TaskQueueError, PlannerStore | TaskQueue>
) =>
  Effect.gen(function* () {
    const drifted: Array<JobDrift> = []
    const unreadable: Array<CorruptEvent> = []
    for (const sessionId of yield* allSessions) {
      const found = yield* unlessUnreadable(each(sessionId))
      if (Either.isLeft(found)) unreadable.push(found.left)
      else if (hasDrift(found.right)) drifted.push(found.right)
    }
    const result: StoreDrift = { drifted, unreadable }
    return result
  })

/** Checks every session's jobs against its log (see `check`), changing nothing. */
export const checkAll: Effect.Effect<StoreDrift, ReadError | TaskQueueError, PlannerStore | TaskQueue> =
  driftedSessions(check).pipe(Effect.withSpan("Jobs.checkAll"))

/**
 * Rebuilds every session's jobs: those of every session in the log, and those of sessions the queue names but the
 * log does not have (removed). A session whose log cannot be read keeps its jobs as they are.
 */
export const rebuildAll: Effect.Effect<StoreDrift, ReadError | TaskQueueError, PlannerStore | TaskQueue> =
  driftedSessions(rebuild).pipe(Effect.withSpan("Jobs.rebuildAll"))
