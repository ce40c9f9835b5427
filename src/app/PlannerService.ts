/**
 * The writer: the one module that appends planner events. One command, end to end: take the session's state (cached;
 * caught up from the store when it may be behind), `decide`, append the events at the sequence the decision was made
 * on, and when another writer got there first, catch up and decide again. The CLI, the server, the workers, fork and
 * the tests all record what happens through it.
 *
 * Dispatch is atomic with the log: the jobs of the attempts an append dispatches go into the task queue, and the jobs
 * of the attempts it ends are completed, in the append's own transaction (`EventStore.append`'s `alongside`). So the
 * queue always holds exactly the jobs the log implies (`Jobs.jobsFromState`): never a dispatched task without its job, nor a job
 * without its event.
 *
 * Hand-off: a worker of this process with a free slot registers itself (`handOffTo`). When a decision dispatches a task
 * such a worker serves, the writer claims the attempt for it in the same append (`TaskClaimed`, decided like the
 * worker's own `ClaimTask`) and enqueues the job already taken by it (`TaskQueue.enqueue`'s `takenBy`), then gives the
 * worker the job and the state after the append. A dispatched task in a one-process run thus costs no take, no
 * claim append and no wake-up: one transaction records the outcome, the next dispatch and its claim. The log says who
 * ran each attempt and when exactly as before, and the queue still equals its projection of the log (leases aside).
 * When the append fails, nothing was handed; when the worker can no longer start the job, it goes back to the queue.
 *
 * Causation: every event records what caused it. A worker's command names the event that led to it (a claim, the
 * task's dispatch; an outcome, the attempt's claim), found by the writer itself in the session it keeps; a command of
 * a person or a program (a request, an answer, a cancel) names the first event it produced, so every chain ends at an
 * event of the log.
 */
import { randomUUID } from "node:crypto"
import {
  Cause,
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FiberId,
  identity,
  Layer,
  Option,
  Random,
  type Scope
} from "effect"
import { ClaimTask, type PlannerCommand } from "../domain/Commands.js"
import type { PlannerError } from "../domain/Errors.js"
import { type EncodedEvent, encodeEvent, type PlannerEvent } from "../domain/Events.js"
import * as Planner from "../domain/Planner.js"
import type { NodeKind } from "../domain/Task.js"
import {
  type AppendAlongside,
  EventStore,
  EventStoreError,
  type NewEvent,
  type ReadError,
  type SequenceConflict
} from "../infra/EventStore.js"
import * as Jobs from "../infra/Jobs.js"
import * as MemoryTaskQueue from "../infra/MemoryTaskQueue.js"
import {
  type PlannerAppendMetadata,
  type PlannerEventRecord,
  PlannerStore,
  plannerStreamId
} from "../infra/PlannerStore.js"
import {
  type AlongsideTake,
  type Job,
  type JobKey,
  type TakenJob,
  TaskQueue,
  type TaskQueueError,
  type TaskQueueService
} from "../infra/TaskQueue.js"
import { hotSpanWith } from "../infra/Tracing.js"
import * as AppBudget from "./Budget.js"
import { gatherBound, linger } from "./Linger.js"

export interface Handled {
  /** The events the command produced; empty when it changed nothing (an idempotent repeat). */
  readonly events: ReadonlyArray<PlannerEvent>
  /** The ids the events were stored with, in the same order: what a command they lead to names as its cause. */
  readonly eventIds: ReadonlyArray<string>
  /** The session after the command. `state.version` is its last sequence. */
  readonly state: Planner.PlannerState
}

export interface Tracing {
  /** Ties together everything one request caused; defaults to the session id. */
  readonly correlationId?: string
  /**
   * The id of the event that led to the command. Omitted: the writer finds it (a worker's command about an attempt
   * names the attempt's claim or dispatch), or else the command is its own cause and names its first event.
   */
  readonly causationId?: string
  /** Free-form metadata recorded with each event (for example the executor, which older readers find there). */
  readonly extra?: Readonly<Record<string, unknown>>
  /**
   * Called once, synchronously, when the command's events have been recorded, whether or not its caller is still
   * there to be told: a caller interrupted after its command went in (its run ended meanwhile, a signal) learns from
   * this what was recorded, so that whatever must follow a record (a sub-plan's outcome reaching its parent) is not
   * lost with the caller. Not called for a refusal or a command that recorded nothing.
   */
  readonly onRecorded?: (handled: Handled) => void
  /**
   * PostgreSQL: jobs to take for the worker whose outcome this command records, in the outcome's own statement (see
   * `TaskQueue.completeAlongside`), so that the worker's next attempt costs no take of its own. Served when the append
   * ends attempts and dispatches none, and only the first of a batch; `take.taken` is not called otherwise.
   */
  readonly take?: AlongsideTake
  /**
   * Whether more commands for the same append are on their way: a worker's outcomes of attempts it started together,
   * due about together. While a command of the batch says so, the session's turn waits for them, up to
   * `PlannerServiceOptions.gatherMs`, so that they are recorded in one append, whose take then fills their slots
   * together again (see `gather`). Given (even as `() => false`), the command may wait in a gathering batch; a command
   * without it ends the wait when it comes: it may be what an awaited attempt needs recorded before its outcome (its
   * start, a model call's usage), or somebody waiting.
   */
  readonly awaiting?: () => boolean
}

export type HandleError = PlannerError | ReadError | SequenceConflict

/** A worker of this process that takes freshly dispatched jobs from the writer's hand (see the module comment). */
export interface LocalWorker {
  readonly workerId: string
  /** The kinds it serves. */
  readonly kinds: ReadonlyArray<NodeKind>
  /** Only jobs of this session; undefined: every session. */
  readonly sessionId: string | undefined
  /** The lease a job handed to it gets in the queue, from the hand-off. */
  readonly leaseMs: number
  /** How many more attempts it can start now (jobs handed but not yet given to it are counted by the writer). */
  readonly free: () => number
  /**
   * Starts a job handed to it, whose attempt `state` has claimed for it (synchronously, in the writer's fiber). False
   * when it no longer can (it is stopping): the job then goes back to the queue.
   */
  readonly accept: (job: TakenJob, state: Planner.PlannerState) => boolean
}

/** A local worker's registration: how many jobs are on their way to it (reserved in an append not yet committed). */
export interface HandOffRegistration {
  readonly reserved: () => number
}

export interface PlannerServiceShape {
  /**
   * Handles one command. `command` may be a function of the current state, for commands whose content depends on it
   * (a claim names the attempt it claims); it is called again on each retry.
   */
  readonly execute: (
    sessionId: string,
    command: PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand),
    tracing?: Tracing
  ) => Effect.Effect<Handled, HandleError>
  /**
   * Handles several commands of one session together: decided in turn, each on the state the previous ones left, and
   * recorded in one append (a worker's start of an attempt and its outcome). Each command succeeds or is refused on
   * its own, in the same order; a store failure fails them all, as nothing was recorded.
   */
  readonly executeAll: (
    sessionId: string,
    commands: ReadonlyArray<PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand)>,
    tracing?: Tracing
  ) => Effect.Effect<ReadonlyArray<Either.Either<Handled, HandleError>>, ReadError | SequenceConflict>
  /** The session's current state, read through the cache. */
  readonly state: (sessionId: string) => Effect.Effect<Planner.PlannerState, ReadError>
  /**
   * Whether another process has written the session lately (in the last `sharedForMs`): this process found its cached
   * state behind the store. A worker then records an attempt's start with its outcome, one append per attempt, rather
   * than racing the other writers with two.
   */
  readonly writtenElsewhere: (sessionId: string) => boolean
  /**
   * The session's state as this process knows it when `enough` says it will do (a worker starting a job of an attempt
   * its cached state has already dispatched reads nothing), else caught up from the store like `state`.
   */
  readonly stateKnowing: (
    sessionId: string,
    enough: (state: Planner.PlannerState) => boolean
  ) => Effect.Effect<Planner.PlannerState, ReadError>
  /** The session as it was right after event `sequence`, folded from the log (time travel). */
  readonly stateAt: (sessionId: string, sequence: number) => Effect.Effect<Planner.PlannerState, ReadError>
  /**
   * Starts session `into` as a fork of another: `source` (that session's first events, as read) is copied, then
   * `SessionForked` records where they came from, and the attempts running at that point are given up so they run
   * again (`Planner.forkEvents`); the jobs the new session implies are enqueued in the same transaction. Each copy
   * keeps its source's metadata `extra` and gets `forkedFrom` in it; causation ids are mapped onto the copies, so
   * every chain stays inside the new session's log.
   */
  readonly fork: (
    into: string,
    source: ReadonlyArray<PlannerEventRecord>,
    origin: { readonly fromSessionId: string; readonly atSequence: number; readonly reason?: string }
  ) => Effect.Effect<Handled, HandleError>
  /** The task queue the writer keeps in step with the log; workers take their jobs from it. */
  readonly queue: TaskQueueService
  /**
   * Puts back the jobs the session's log implies that the queue lacks (a queue lost or damaged, an in-memory queue of
   * a process that ended, a log written before the queue existed). True when it had to.
   */
  readonly rebuildJobs: (sessionId: string) => Effect.Effect<boolean, ReadError | TaskQueueError>
  /** Hands freshly dispatched jobs to this worker of this process while the scope lasts (see the module comment). */
  readonly handOffTo: (worker: LocalWorker) => Effect.Effect<HandOffRegistration, never, Scope.Scope>
}

export class PlannerService extends Context.Tag("event-sourced-planner/PlannerService")<
  PlannerService,
  PlannerServiceShape
>() {}

export interface PlannerServiceOptions {
  /** How many sessions' states to keep in memory. */
  readonly cacheSize?: number
  /** How many times to decide again after losing a race. */
  readonly maxConflictRetries?: number
  /** How long a session counts as written by another process after this one last found that (see `writtenElsewhere`). Default 5 seconds. */
  readonly sharedForMs?: number
  /**
   * The longest a session's turn waits for commands a batch says are on their way (`Tracing.awaiting`) before it
   * records what it has. Default 5 ms, at most 1000; 0 waits for nothing.
   */
  readonly gatherMs?: number
}

/** What led to an attempt's commands: the ids of its dispatch and of its latest claim. */
interface AttemptCauses {
  dispatched?: string
  claimed?: string
}

/** The cause the writer finds for a worker's command about an attempt; undefined: the command is its own cause. */
const causeOf = (
  command: PlannerCommand,
  causes: ReadonlyMap<number, AttemptCauses> | undefined,
  /** Claims decided earlier in the same batch (a worker's start recorded with its outcome), by task. */
  claimedInBatch: ReadonlyMap<number, string>
): string | undefined => {
  const ofAttempt = (taskId: number) => {
    const known = causes?.get(taskId)
    return claimedInBatch.get(taskId) ?? known?.claimed ?? known?.dispatched
  }
  switch (command._tag) {
    case "ClaimTask":
      return causes?.get(command.taskId)?.dispatched
    case "ExtendLease":
    case "ReleaseTask":
    case "AbandonTask":
      return ofAttempt(command.taskId)
    case "HandleExecutorEvent":
      return command.event._tag === "ClarificationProvided" ? undefined : ofAttempt(command.event.taskId)
    default:
      return undefined
  }
}

/** Notes the dispatches and claims among `events` (stored under `ids`). */
const noteCauses = (
  causes: Map<number, AttemptCauses>,
  events: ReadonlyArray<PlannerEvent>,
  ids: ReadonlyArray<string | undefined>
) => {
  events.forEach((event, index) => {
    const id = ids[index]
    if (id === undefined) return
    if (event._tag === "TaskDispatched") causes.set(event.taskId, { dispatched: id })
    else if (event._tag === "TaskClaimed") {
      const known = causes.get(event.taskId) ?? {}
      known.claimed = id
      causes.set(event.taskId, known)
    }
  })
}

/** Task ids an event is about. */
const taskIdOf = (event: PlannerEvent): number | undefined => ("taskId" in event ? event.taskId : undefined)

/**
 * How the queue must change for the log to go from `before` to `after`: the jobs of attempts that ended, to complete,
 * and of attempts dispatched, to enqueue. Only the tasks `events` are about can have changed.
 */
const jobChanges = (
  sessionId: string,
  before: Planner.PlannerState,
  after: Planner.PlannerState,
  events: ReadonlyArray<PlannerEvent>
): { readonly ended: ReadonlyArray<JobKey>; readonly dispatched: ReadonlyArray<Job> } => {
  const ended: Array<JobKey> = []
  const dispatched: Array<Job> = []
  const seen = new Set<number>()
  for (const event of events) {
    const id = taskIdOf(event)
    if (id === undefined || seen.has(id)) continue
    seen.add(id)
    const was = Planner.task(before, id)
    const now = Planner.task(after, id)
    const hadJob = was !== undefined && before.status === "Running" && Planner.hasJob(was)
    const hasJob = now !== undefined && after.status === "Running" && Planner.hasJob(now)
    if (hadJob && !(hasJob && now.attempt === was.attempt)) {
      ended.push({ sessionId, taskId: was.id, attempt: was.attempt })
    }
    if (hasJob && !(hadJob && now.attempt === was.attempt)) dispatched.push(Jobs.jobOf(sessionId, now))
  }
  return { ended, dispatched }
}

const queueFailed = (error: TaskQueueError) => new EventStoreError({ operation: "append", reason: error.message })

/** A job claimed for a local worker in an append, given to it once the append has committed. */
interface HandedJob {
  readonly entry: { readonly worker: LocalWorker; reserved: number }
  readonly job: TakenJob
}

/** A command waiting for its session's turn, and where its outcome goes. */
interface Pending {
  readonly command: PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand)
  readonly metadata: PlannerAppendMetadata
  readonly outcome: Deferred.Deferred<Handled, HandleError>
  readonly onRecorded: ((handled: Handled) => void) | undefined
  readonly take: AlongsideTake | undefined
  readonly awaiting: (() => boolean) | undefined
}

/** One session's commands in this process: taken in turn, and in batches. */
interface SessionQueue {
  readonly turn: Effect.Semaphore
  readonly waiting: Array<Pending>
  /** Completed when a command comes in, for a turn that waits for more (see `gather`). */
  arrived: Deferred.Deferred<void> | undefined
}

/** A command's name for traces; one computed from the state is named by what it makes of `state`. */
const commandName = (
  command: PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand),
  state: Planner.PlannerState
): string => {
  if (typeof command !== "function") return command._tag
  try {
    return command(state)._tag
  } catch {
    return "computed"
  }
}

/** The wait before deciding again after conflict number `conflicts`: 2 ms doubling, at most 50 ms, jittered. */
const conflictDelay = (conflicts: number) =>
  Duration.millis(Math.min(50, 2 * 2 ** (conflicts - 1)) * (0.8 + Math.random() * 0.4))

export const make = (options: PlannerServiceOptions = {}) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore
    const events = yield* EventStore
    // The task queue of the store when it has one (SQL stores do, on their own client); otherwise one of this
    // process's own, which serves the workers of this process (the in-memory store).
    const queue = Option.getOrUndefined(yield* Effect.serviceOption(TaskQueue)) ?? (yield* MemoryTaskQueue.makeFresh)
    const cacheSize = options.cacheSize ?? 1_000
    const sharedForMs = options.sharedForMs ?? 5_000
    const clock = yield* Effect.clock
    const maxConflictRetries = options.maxConflictRetries ?? 20
    // Insertion-ordered: re-inserting on use makes the first key the least recently used.
    const cache = new Map<string, Planner.PlannerState>()
    /**
     * By session (kept and dropped with its cached state): when this process last found its cached state behind the
     * store, another process having written it since (`writtenElsewhere`).
     */
    const behindAt = new Map<string, number>()
    /** By session (kept and dropped with its cached state): what led to each task's current attempt. */
    const causes = new Map<string, Map<number, AttemptCauses>>()
    const remember = (sessionId: string, state: Planner.PlannerState) => {
      // Concurrent readers may finish out of order: never replace a newer state with an older one.
      if ((cache.get(sessionId)?.version ?? -1) > state.version) return
      cache.delete(sessionId)
      cache.set(sessionId, state)
      if (cache.size > cacheSize) {
        const oldest = cache.keys().next()
        if (!oldest.done) {
          cache.delete(oldest.value)
          causes.delete(oldest.value)
          behindAt.delete(oldest.value)
        }
      }
    }
    const causesOf = (sessionId: string) => {
      let known = causes.get(sessionId)
      if (known === undefined) {
        known = new Map()
        causes.set(sessionId, known)
      }
      return known
    }
    const noteRecords = (sessionId: string, records: ReadonlyArray<PlannerEventRecord>) =>
      noteCauses(
        causesOf(sessionId),
        records.map((record) => record.event),
        records.map((record) => record.metadata.eventId)
      )

    const writtenElsewhere = (sessionId: string) => {
      const at = behindAt.get(sessionId)
      return at !== undefined && clock.unsafeCurrentTimeMillis() - at < sharedForMs
    }

    /** By session: a read of the log under way for `stateKnowing`, which its other callers wait for. */
    const reading = new Map<string, Effect.Effect<Planner.PlannerState, ReadError>>()

    /** The cached state brought up to date with whatever the store has after it. */
    const current = (sessionId: string): Effect.Effect<Planner.PlannerState, ReadError> =>
      Effect.gen(function* () {
        const cached = cache.get(sessionId)
        // A session read from the start has its causes read with it.
        if (cached === undefined) causes.delete(sessionId)
        const known = cached ?? Planner.initialState
        const newer = yield* store.load(sessionId, { fromSequence: known.version + 1 })
        if (newer.length === 0) return known
        if (cached !== undefined) behindAt.set(sessionId, clock.unsafeCurrentTimeMillis())
        const state = Planner.fold(
          newer.map((record) => record.event),
          known
        )
        if ((cache.get(sessionId)?.version ?? -1) < state.version) noteRecords(sessionId, newer)
        remember(sessionId, state)
        return state
      })

    /** The local workers jobs are handed to, with how many jobs are on their way to each. */
    const localWorkers: Array<{ readonly worker: LocalWorker; reserved: number }> = []

    /**
     * Claims the attempts `events` dispatched for idle local workers, on `working` (the state after `events`): decides
     * each `ClaimTask` like the worker's own, appends its events to `appended`/`appendedEvents`, and reserves the
     * worker's slot. Returns the new state and what to hand over once the append has committed.
     */
    const handOff = (
      sessionId: string,
      working: Planner.PlannerState,
      events: ReadonlyArray<PlannerEvent>,
      appended: Array<NewEvent>,
      appendedEvents: Array<PlannerEvent>
    ): { readonly state: Planner.PlannerState; readonly handed: ReadonlyArray<HandedJob> } => {
      if (working.status !== "Running") return { state: working, handed: [] }
      let state = working
      const handed: Array<HandedJob> = []
      const now = clock.unsafeCurrentTimeMillis()
      const count = events.length
      for (let index = 0; index < count; index++) {
        const event = events[index]
        if (event?._tag !== "TaskDispatched") continue
        const task = Planner.task(state, event.taskId)
        if (task === undefined || task.status !== "Dispatched" || task.attempt !== event.attempt) continue
        // A task that runs as a sub-plan has no job of its own.
        if (!Planner.hasJob(task)) continue
        if (Planner.jobRunAt(task) > now) continue
        const entry = localWorkers.find(
          ({ worker, reserved }) =>
            (worker.sessionId === undefined || worker.sessionId === sessionId) &&
            worker.kinds.includes(task.kind) &&
            worker.free() - reserved > 0
        )
        if (entry === undefined) continue
        const workerId = entry.worker.workerId
        const decided = Planner.decideAndEvolve(
          state,
          new ClaimTask({ taskId: task.id, attempt: task.attempt, workerId, at: now }, true)
        )
        if (Either.isLeft(decided) || decided.right.events.length === 0) continue
        state = decided.right.state
        // `events` are the decision's events, stored as the first `count` of `appended`.
        const dispatch = appended[index]?.metadata
        for (const claimed of decided.right.events) {
          const eventId = randomUUID()
          appended.push({
            ...encodeEvent(claimed),
            // Correlated like its dispatch (a sub-plan's events carry its tree's root), caused by it.
            metadata: {
              correlationId: dispatch?.correlationId ?? sessionId,
              causationId: dispatch?.eventId ?? eventId,
              eventId
            }
          })
          appendedEvents.push(claimed)
        }
        entry.reserved += 1
        handed.push({
          entry,
          job: {
            ...Jobs.jobOf(sessionId, Planner.task(state, task.id) ?? task),
            workerId,
            leaseExpiresAt: now + entry.worker.leaseMs,
            takes: 1
          }
        })
      }
      return { state, handed }
    }

    /**
     * Commands on one session from this process take turns, and whoever has the turn decides every command waiting
     * at that moment, each on the state the previous ones left, and appends all their events at once (a group
     * commit). Only one of several concurrent deciders can win each sequence: letting this process's own fibers race
     * each other only produced conflicts, and under a busy worker (claims, outcomes and heartbeats for many tasks of
     * one plan) most appends failed and were retried. Writers in other processes are still kept apart by the
     * expected sequence.
     */
    const queues = new Map<string, SessionQueue>()

    /**
     * Sessions whose cached state was recently found behind the store (another process appends to them): their next
     * commands catch up first instead of appending at the cached sequence, by how many commands are left to do so.
     */
    const contended = new Map<string, number>()
    const catchUpFirst = 16
    /**
     * For how many conflicts in a row an append gives up at once when another process holds the session's append
     * lock (`whenBusy: "refuse"`): that append will most likely move the sequence on, so waiting for the lock (four
     * round trips on PostgreSQL) would mostly end in a refusal anyway. After that it waits its turn, so that a
     * session written by many processes still lets each of them through.
     */
    const refuseWhenBusyFor = 3
    const gatherMs = gatherBound(options.gatherMs)

    /**
     * Decides a batch and appends its events, deciding again after conflicts. Completes every command's outcome (and
     * calls `settled`) in the step that records them, so an interruption either comes before or finds all done.
     *
     * The batch is first decided on the cached state, without reading the store: in the usual case (this process is
     * the session's only writer, or the others are idle) the cache is current and the append at its sequence
     * succeeds. When another writer got there first, the append is refused with nothing written and the batch is
     * decided again on the caught-up state. A refusal or a no-op decided on the cache is not trusted either: the
     * store may hold what makes the command valid (a task another process dispatched), so it is decided again on the
     * caught-up state before anybody is told.
     */
    const decideAndAppend = (
      sessionId: string,
      batch: ReadonlyArray<Pending>,
      settled: () => void
    ): Effect.Effect<void, HandleError> => {
      // Written without a generator: every command passes through here.
      const attempt = (conflicts: number, trustCache: boolean): Effect.Effect<void, HandleError> => {
        const cached = trustCache ? cache.get(sessionId) : undefined
        return cached !== undefined
          ? decideOn(cached, true, conflicts)
          : Effect.flatMap(current(sessionId), (state) => decideOn(state, false, conflicts))
      }
      const decideOn = (
        state: Planner.PlannerState,
        unverified: boolean,
        conflicts: number
      ): Effect.Effect<void, HandleError> => {
        let working = state
        let allAppend = true
        const decided: Array<Effect.Effect<Handled, PlannerError>> = []
        const appended: Array<NewEvent> = []
        const appendedEvents: Array<PlannerEvent> = []
        const known = causes.get(sessionId)
        const claimedInBatch = new Map<number, string>()
        for (const pending of batch) {
          let outcome: ReturnType<typeof Planner.decideAndEvolve>
          let concrete: PlannerCommand
          let encoded: ReadonlyArray<EncodedEvent>
          try {
            concrete = typeof pending.command === "function" ? pending.command(working) : pending.command
            outcome = Planner.decideAndEvolve(working, concrete)
            // Encoding checks each event against its schema (the decider does not check them as it makes them).
            encoded = Either.isRight(outcome) ? outcome.right.events.map(encodeEvent) : []
          } catch (defect) {
            // A command function that throws, or an event that breaks its schema, is a bug: it fails that caller alone.
            decided.push(Effect.die(defect))
            allAppend = false
            continue
          }
          if (Either.isLeft(outcome)) {
            decided.push(Either.left(outcome.left))
            allAppend = false
            continue
          }
          if (outcome.right.events.length === 0) allAppend = false
          working = outcome.right.state
          const eventIds = outcome.right.events.map(() => randomUUID())
          decided.push(Either.right({ ...outcome.right, eventIds }))
          // The cause the caller named, else the event that led to this command, else its own first event.
          const causationId =
            pending.metadata.causationId ?? causeOf(concrete, known, claimedInBatch) ?? eventIds[0] ?? ""
          outcome.right.events.forEach((event, index) => {
            if (event._tag === "TaskClaimed") claimedInBatch.set(event.taskId, eventIds[index] ?? "")
            const { type, version, data } = encoded[index] ?? encodeEvent(event)
            appended.push({
              type,
              version,
              data,
              metadata: { ...pending.metadata, causationId, eventId: eventIds[index] ?? randomUUID() }
            })
            appendedEvents.push(event)
          })
        }
        if (unverified && !allAppend) return attempt(conflicts, false)
        let handed: ReadonlyArray<HandedJob> = []
        if (appended.length > 0 && localWorkers.length > 0) {
          const decidedEvents = appendedEvents.slice()
          const result = handOff(sessionId, working, decidedEvents, appended, appendedEvents)
          working = result.state
          handed = result.handed
        }
        let delivered = false
        /** Not recorded (or recorded but not handed over): the slots reserved for the handed jobs are free again. */
        const unreserve = () => {
          if (delivered) return
          delivered = true
          for (const { entry } of handed) entry.reserved -= 1
        }
        const settle = Effect.sync(() => {
          try {
            settleNow()
          } finally {
            unreserve()
          }
        })
        const settleNow = () => {
          settled()
          if (appendedEvents.length > 0 && (cache.get(sessionId)?.version ?? -1) < working.version) {
            noteCauses(
              causesOf(sessionId),
              appendedEvents,
              appended.map((event) => event.metadata.eventId)
            )
          }
          remember(sessionId, working)
          batch.forEach((pending, index) => {
            const outcome = decided[index]
            if (outcome === undefined) return
            Deferred.unsafeDone(pending.outcome, outcome)
            // `decided` holds Eithers (and a die for a defect): a recorded command is a Right with events.
            if (pending.onRecorded !== undefined && Either.isEither(outcome) && Either.isRight(outcome)) {
              const handled = outcome.right as Handled
              if (handled.events.length > 0) pending.onRecorded(handled)
            }
          })
          if (handed.length > 0 && !delivered) {
            delivered = true
            for (const { entry, job } of handed) {
              entry.reserved -= 1
              if (!entry.worker.accept(job, working)) refused.push(job)
            }
          }
        }
        /** Handed jobs whose worker could no longer start them: back to the queue for anybody. */
        const refused: Array<TakenJob> = []
        const giveBackRefused = Effect.suspend(() =>
          refused.length === 0
            ? Effect.void
            : Effect.forEach(refused.splice(0), (job) => Effect.ignoreLogged(queue.release(job, job.workerId)), {
                discard: true
              })
        )
        if (appended.length === 0) return settle
        // Not interrupted midway: whether an append that was cut off committed would be unknown, to the callers
        // and to the cache. (On PostgreSQL, interrupting a statement also costs a cancel request elsewhere.)
        // The queue changes with the log, in the append's transaction.
        const changes = jobChanges(sessionId, state, working, appendedEvents)
        // Jobs handed to a local worker go in already taken by it; the others wait in the queue for any worker.
        const handedKeys = new Set(handed.map(({ job }) => `${job.taskId}/${job.attempt}`))
        const open =
          handed.length === 0
            ? changes.dispatched
            : changes.dispatched.filter((job) => !handedKeys.has(`${job.taskId}/${job.attempt}`))
        const effectAlongside: AppendAlongside | undefined =
          changes.ended.length === 0 && changes.dispatched.length === 0
            ? undefined
            : changes.dispatched.length === 0
              ? // Only attempts ended (outcomes): on PostgreSQL the jobs go in the append's own statement when they can,
                // with the next jobs of the worker that reported, when it asked.
                endingAlongside(changes.ended, batchTake(batch))
              : () =>
                  Effect.mapError(
                    Effect.zipRight(
                      Effect.zipRight(
                        changes.ended.length === 0 ? Effect.void : queue.complete(changes.ended),
                        open.length === 0 ? Effect.void : queue.enqueue(open)
                      ),
                      Effect.forEach(
                        handed,
                        ({ job }) =>
                          queue.enqueue([job], {
                            takenBy: { workerId: job.workerId, leaseExpiresAt: job.leaseExpiresAt }
                          }),
                        { discard: true }
                      )
                    ),
                    queueFailed
                  )
        // SQLite: the same changes as statements the store runs at once inside the append's transaction.
        const direct =
          effectAlongside === undefined
            ? undefined
            : queue.changesDirect?.({ ended: changes.ended, dispatched: open, taken: handed.map(({ job }) => job) })
        // (`effectAlongside` is made afresh for this append: giving it its statements changes nobody else's.)
        const alongside =
          effectAlongside === undefined || direct === undefined
            ? effectAlongside
            : Object.assign(effectAlongside, { direct })
        const appendOrConflict = Effect.uninterruptible(
          hotSpanWith(
            Effect.matchCauseEffect(
              events.append(plannerStreamId, sessionId, appended, state.version, alongside, {
                whenBusy: conflicts < refuseWhenBusyFor ? "refuse" : "wait"
              }),
              {
                onSuccess: () => Effect.as(Effect.zipRight(settle, giveBackRefused), undefined),
                // Not recorded: nothing was handed over.
                onFailure: (cause): Effect.Effect<SequenceConflict | undefined, HandleError> => {
                  unreserve()
                  const failure = Cause.failureOption(cause)
                  return Option.isSome(failure) && failure.value._tag === "SequenceConflict"
                    ? Effect.succeed(failure.value)
                    : Effect.failCause(cause)
                }
              }
            ),
            "PlannerService.append",
            () => ({ sessionId, commands: batch.length, events: appended.length })
          )
        )
        return Effect.flatMap(appendOrConflict, (conflict) => {
          if (conflict === undefined) return Effect.void
          // Another process was appending to the session: catch up once its append is in, and decide again.
          if (conflict.busy === true) {
            contended.set(sessionId, catchUpFirst)
            return Effect.zipRight(Effect.sleep(conflictDelay(conflicts + 1)), attempt(conflicts + 1, false))
          }
          // The cache was behind: catch up and decide again at once. Somebody else writes to this session, so catch
          // up first for a while.
          if (unverified) {
            contended.set(sessionId, catchUpFirst)
            return attempt(conflicts, false)
          }
          if (conflicts + 1 > maxConflictRetries) return Effect.fail(conflict)
          return Effect.zipRight(Effect.sleep(conflictDelay(conflicts + 1)), attempt(conflicts + 1, false))
        })
      }
      return Effect.suspend(() => {
        const left = contended.get(sessionId) ?? 0
        if (left > 0) contended.set(sessionId, left - 1)
        else contended.delete(sessionId)
        return attempt(0, left === 0)
      })
    }

    /**
     * What an append of `batch` takes: the jobs of the worker whose outcome comes first in it, a slot for each of that
     * worker's outcomes in the batch (each frees its own). Outcomes that came while an append was out go together in
     * the next; a take for the first alone left the others' slots to takes of their own, a statement each, and the
     * worker's slots out of step, so that its next outcomes came one by one again.
     */
    const batchTake = (batch: ReadonlyArray<Pending>): AlongsideTake | undefined => {
      let first: AlongsideTake | undefined
      let outcomes = 0
      for (const { take } of batch) {
        if (take === undefined) continue
        first ??= take
        if (take.options.workerId === first.options.workerId) outcomes += 1
      }
      // Asked afresh as the append is made (the batch may have waited): the worker's free slots are those of now.
      return first?.forOutcomes === undefined ? first : first.forOutcomes(outcomes)
    }

    /** An append's alongside that completes the jobs of the attempts it ended, as an effect and as a statement. */
    const endingAlongside = (ended: ReadonlyArray<JobKey>, take: AlongsideTake | undefined): AppendAlongside => {
      const statement = queue.completeAlongside?.(ended, take)
      const complete = () => Effect.mapError(queue.complete(ended), queueFailed)
      return statement === undefined ? complete : Object.assign(complete, { statement })
    }

    /**
     * Takes every command waiting for the session and handles them; with the session's turn held. Interrupted before
     * the batch was recorded, it gives the others' commands back to the queue while it still holds the turn, so that
     * whoever takes the turn next finds them there; the caller's own (`own`) are dropped with it.
     */
    const drain = (
      sessionId: string,
      queue: SessionQueue,
      own: ReadonlyArray<Pending>
    ): Effect.Effect<void, HandleError> => {
      // The batch: every command waiting by now.
      const record = Effect.suspend(() => {
        const batch = queue.waiting.splice(0)
        if (batch.length === 0) return Effect.void
        let recorded = false
        // Nothing is left for this session's turn to do: forget the queue. Only the holder of the turn does this,
        // and only with nothing waiting, so a queue made afresh by the next command never overlaps an append.
        const forgetIfIdle = () => {
          if (queue.waiting.length === 0 && queues.get(sessionId) === queue) queues.delete(sessionId)
        }
        return Effect.matchCauseEffect(
          decideAndAppend(sessionId, batch, () => {
            recorded = true
          }),
          {
            onSuccess: () => Effect.sync(forgetIfIdle),
            // A store failure (or a defect) fails every command of the batch: none of them was recorded.
            onFailure: (cause) =>
              Cause.isInterruptedOnly(cause)
                ? Effect.failCause(cause)
                : Effect.sync(() => {
                    recorded = true
                    for (const pending of batch) Deferred.unsafeDone(pending.outcome, Effect.failCause(cause))
                    forgetIfIdle()
                  })
          }
        ).pipe(
          // (A handler of its own: an interrupted fiber skips the failure handlers above.)
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              if (!recorded) queue.waiting.unshift(...batch.filter((pending) => !own.includes(pending)))
            })
          )
        )
      })
      // Waited for with nothing taken: interrupted meanwhile, its caller's commands leave the queue (see `submit`).
      return Effect.suspend(() => (isAwaiting(queue.waiting) ? Effect.zipRight(gather(queue), record) : record))
    }

    /**
     * Whether to wait for more before recording `batch`: a command of it says more are on their way for its append,
     * and every command of it may wait (`Tracing.awaiting`).
     */
    const isAwaiting = (batch: ReadonlyArray<Pending>) => {
      if (gatherMs === 0) return false
      let expects = false
      for (const pending of batch) {
        if (pending.awaiting === undefined) return false
        expects ||= pending.awaiting()
      }
      return expects
    }

    /**
     * Waits, with the session's turn held, until no waiting command says more are on their way, or `gatherMs` have
     * passed (`Linger`). A worker's attempts started together end about together; recorded one by one, each is
     * an append of its own (a transaction, a notification to every follower, a statement of the worker), and the take
     * that comes with each fills one slot, so the slots stay out of step and the next outcomes come one by one again.
     * Gathered, they are one append, and its take fills their slots together. An outcome nothing else is expected with
     * waits for nothing.
     */
    const gather = (queue: SessionQueue): Effect.Effect<void> =>
      Effect.ensuring(
        linger({
          ms: gatherMs,
          clock,
          expects: () => isAwaiting(queue.waiting),
          arrival: () => {
            const arrived = Deferred.unsafeMake<void>(FiberId.none)
            queue.arrived = arrived
            return Deferred.await(arrived)
          }
        }),
        Effect.sync(() => {
          queue.arrived = undefined
        })
      )

    /**
     * Puts `commands` in the session's queue together (so one turn takes them all into one batch) and takes the
     * session's turn; succeeds once they are handled, by this turn or an earlier one that took them along.
     */
    const submit = (
      sessionId: string,
      commands: ReadonlyArray<PlannerCommand | ((state: Planner.PlannerState) => PlannerCommand)>,
      tracing: Tracing
    ): { readonly pendings: ReadonlyArray<Pending>; readonly handled: Effect.Effect<void, HandleError> } => {
      const metadata: PlannerAppendMetadata = {
        correlationId: tracing.correlationId ?? sessionId,
        ...(tracing.causationId === undefined ? {} : { causationId: tracing.causationId }),
        ...(tracing.extra === undefined ? {} : { extra: tracing.extra })
      }
      let queue = queues.get(sessionId)
      if (queue === undefined) {
        queue = { turn: Effect.unsafeMakeSemaphore(1), waiting: [], arrived: undefined }
        queues.set(sessionId, queue)
      }
      const pendings = commands.map(
        (command, index): Pending => ({
          command,
          metadata,
          outcome: Deferred.unsafeMake(FiberId.none),
          onRecorded: tracing.onRecorded,
          // Once per call: its last command's append is the one to take in.
          take: index === commands.length - 1 ? tracing.take : undefined,
          awaiting: tracing.awaiting
        })
      )
      const waiting = queue.waiting
      waiting.push(...pendings)
      if (queue.arrived !== undefined) {
        Deferred.unsafeDone(queue.arrived, Exit.void)
        queue.arrived = undefined
      }
      const handled = queue.turn
        .withPermits(1)(drain(sessionId, queue, pendings))
        .pipe(
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              // Interrupted while waiting for the turn: this caller's commands leave the queue.
              for (const pending of pendings) {
                const index = waiting.indexOf(pending)
                if (index >= 0) waiting.splice(index, 1)
              }
            })
          )
        )
      return { pendings, handled }
    }

    const executeAll: PlannerServiceShape["executeAll"] = (sessionId, commands, tracing = {}) =>
      hotSpanWith(
        Effect.suspend(() => {
          const { pendings, handled } = submit(sessionId, commands, tracing)
          // The turn hands whatever failed it to every command's outcome (see `drain`): the outcomes say it all.
          return Effect.zipRight(
            Effect.catchAll(handled, () => Effect.void),
            Effect.forEach(pendings, (pending) => Effect.either(Deferred.await(pending.outcome)))
          ).pipe(
            Effect.flatMap((outcomes) => {
              // A refusal is each command's own; a store failure failed every command of the batch alike.
              const broken = outcomes.find(
                (outcome): outcome is Either.Left<ReadError | SequenceConflict, Handled> =>
                  Either.isLeft(outcome) &&
                  (outcome.left._tag === "EventStoreError" ||
                    outcome.left._tag === "CorruptEvent" ||
                    outcome.left._tag === "SequenceConflict")
              )
              return broken === undefined ? Effect.succeed(outcomes) : Effect.fail(broken.left)
            })
          )
        }),
        "PlannerService.executeAll",
        () => ({ sessionId, commands: commands.length })
      )

    const execute: PlannerServiceShape["execute"] = (sessionId, command, tracing = {}) =>
      hotSpanWith(
        Effect.suspend(() => {
          const {
            pendings: [pending],
            handled
          } = submit(sessionId, [command], tracing)
          if (pending === undefined) return Effect.dieMessage("a command was submitted without its outcome")
          return handled.pipe(
            // Handled by now: by this caller's turn, or by an earlier one that took it along.
            Effect.zipRight(Deferred.await(pending.outcome)),
            // A child's plan carries its planning call's usage, and that call's hold on the tree's budget.
            typeof command !== "function" && command._tag === "Initialize"
              ? Effect.tap((handled) => AppBudget.recordedWith(command, handled.state.version))
              : identity
          )
        }),
        "PlannerService.execute",
        () => ({ sessionId, command: commandName(command, cache.get(sessionId) ?? Planner.initialState) })
      )

    const rebuildJobs = (sessionId: string) =>
      Effect.gen(function* () {
        const state = yield* current(sessionId)
        const held = new Set((yield* queue.list(sessionId)).map((job) => `${job.taskId}/${job.attempt}`))
        // Only what is missing is put back: a job the queue holds beyond this state may be a dispatch that committed
        // after the state was read, and must stay.
        const missing = Jobs.jobsFromState(sessionId, state).filter((job) => !held.has(`${job.taskId}/${job.attempt}`))
        if (missing.length === 0) return false
        yield* queue.enqueue(missing)
        return true
      }).pipe(Effect.withSpan("PlannerService.rebuildJobs", { attributes: { sessionId } }))

    const fork: PlannerServiceShape["fork"] = (into, source, origin) =>
      Effect.gen(function* () {
        const at = yield* Clock.currentTimeMillis
        const jitter = yield* Random.next
        const reason = origin.reason ?? `forked from ${origin.fromSessionId} at ${origin.atSequence}`
        const forked = Planner.forkEvents(
          source.map((record) => record.event),
          { fromSessionId: origin.fromSessionId, atSequence: origin.atSequence, reason },
          at,
          jitter
        )
        const eventIds = forked.map(() => randomUUID())
        const copiedIds = new Map(source.map((record, index) => [record.metadata.eventId, eventIds[index] ?? ""]))
        const forkedFrom = { sessionId: origin.fromSessionId, sequence: origin.atSequence }
        const ownRoot = eventIds[source.length] ?? ""
        const appended: Array<NewEvent> = forked.map((event, index) => {
          const eventId = eventIds[index] ?? randomUUID()
          const copy = source[index]
          const causationId = copy === undefined ? ownRoot : (copiedIds.get(copy.metadata.causationId ?? "") ?? eventId)
          return {
            ...encodeEvent(event),
            metadata: {
              eventId,
              correlationId: into,
              causationId,
              extra: { ...copy?.metadata.extra, forkedFrom }
            }
          }
        })
        const state = Planner.fold(forked)
        const jobs = Jobs.jobsFromState(into, state)
        yield* events.append(
          plannerStreamId,
          into,
          appended,
          0,
          jobs.length === 0 ? undefined : () => Effect.mapError(queue.enqueue(jobs), queueFailed)
        )
        noteCauses(causesOf(into), forked, eventIds)
        remember(into, state)
        return { events: forked, eventIds, state } satisfies Handled
      }).pipe(Effect.withSpan("PlannerService.fork", { attributes: { into, from: origin.fromSessionId } }))

    const handOffTo: PlannerServiceShape["handOffTo"] = (worker) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const entry = { worker, reserved: 0 }
          localWorkers.push(entry)
          return entry
        }),
        (entry) =>
          Effect.sync(() => {
            const index = localWorkers.indexOf(entry)
            if (index >= 0) localWorkers.splice(index, 1)
          })
      ).pipe(Effect.map((entry): HandOffRegistration => ({ reserved: () => entry.reserved })))

    return {
      execute,
      executeAll,
      writtenElsewhere,
      fork,
      handOffTo,
      queue,
      rebuildJobs,
      state: (sessionId) =>
        current(sessionId).pipe(Effect.withSpan("PlannerService.state", { attributes: { sessionId } })),
      stateKnowing: (sessionId, enough) =>
        Effect.suspend(() => {
          const cached = cache.get(sessionId)
          if (cached !== undefined && enough(cached)) return Effect.succeed(cached)
          // Several attempts of a session new to this process start at once (a take of several jobs): one read and
          // fold of its log serves them all, rather than one each. A state that does not do for a caller (the read
          // began before what it needs was written), or a read cut short, leaves it to read for itself.
          const shared = reading.get(sessionId)
          if (shared !== undefined) {
            return Effect.flatMap(
              Effect.catchAllCause(shared, () => current(sessionId)),
              (state) => (enough(state) ? Effect.succeed(state) : current(sessionId))
            )
          }
          // The read is registered and its completion set up in one uninterruptible step: an interruption between the
          // two would leave the others waiting for a read that never ends.
          return Effect.uninterruptibleMask((restore) => {
            const read = Deferred.unsafeMake<Planner.PlannerState, ReadError>(FiberId.none)
            const awaited = Deferred.await(read)
            reading.set(sessionId, awaited)
            return restore(current(sessionId)).pipe(
              Effect.onExit((exit) => {
                if (reading.get(sessionId) === awaited) reading.delete(sessionId)
                return Deferred.done(read, exit)
              })
            )
          })
        }),
      stateAt: (sessionId, sequence) =>
        store.load(sessionId, { toSequence: sequence }).pipe(
          Effect.map((records) => Planner.fold(records.map((record) => record.event))),
          Effect.withSpan("PlannerService.stateAt", { attributes: { sessionId, sequence } })
        )
    } satisfies PlannerServiceShape
  })

export const layer = (
  options: PlannerServiceOptions = {}
): Layer.Layer<PlannerService, never, PlannerStore | EventStore> => Layer.effect(PlannerService, make(options))
