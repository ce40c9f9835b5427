/**
 * A worker: subscribes to the store, claims dispatched tasks of the kinds it serves, runs them through the executor
 * registry and reports their outcomes. Any number of workers, in one process or on many machines, can serve the same
 * store: a claim is an append at the sequence the worker saw, so exactly one worker wins each attempt.
 *
 * A worker also keeps plans moving without outside help:
 * - durable timers: a retry falls due, or a lease runs out, at a time recorded in an event; the worker sleeps until
 *   the earliest such time of the sessions it follows and then sends `Continue` (idempotent, so several workers doing
 *   it is harmless);
 * - compaction: after a completion, when the rolling context is over the plan's token budget, it asks the
 *   `Compactor` and records `ContextCompacted`;
 * - crash recovery: a task held by a worker of this machine whose process no longer exists is abandoned as soon as
 *   that is noticed (when a session is first seen, then every `livenessCheckInterval`) instead of waiting for its
 *   lease to run out;
 * - store outages: a claim, an outcome or a timer that the store refused (it could not be reached, or too many other
 *   writers got in first) is tried again later; none is dropped, so no task is left dispatched with nobody to take it.
 *
 * On interruption (SIGINT/SIGTERM in the CLI) it releases the tasks it holds, so others pick them up at once.
 */
import { randomUUID } from "node:crypto"
import * as os from "node:os"
import { Cause, Clock, Duration, Effect, Fiber, FiberSet, Option, Queue, Schedule, Stream } from "effect"
import {
  AbandonTask,
  ClaimTask,
  CompactContext,
  Continue,
  ExtendLease,
  HandleExecutorEvent,
  NeedsClarification,
  ReleaseTask,
  TaskCompleted,
  TaskFailed
} from "../domain/Commands.js"
import type { PlannerEvent } from "../domain/Events.js"
import * as Planner from "../domain/Planner.js"
import { type NodeKind, nodeKinds, type TaskState } from "../domain/Task.js"
import { AttachmentChecker } from "../infra/AttachmentChecker.js"
import { Compactor } from "../infra/Compactor.js"
import { EventStore, type EventStoreError, type ReadError } from "../infra/EventStore.js"
import { ExecutorRegistry, Outcome, type TaskContext } from "../infra/Executor.js"
import { type PlannerEventRecord, PlannerStore } from "../infra/PlannerStore.js"
import * as Tokenizer from "../infra/Tokenizer.js"
import { hotSpan, hotSpanWith } from "../infra/Tracing.js"
import { type Handled, type HandleError, PlannerService } from "./PlannerService.js"

export interface WorkerOptions {
  /** Unique per worker; defaults to `host/pid/random`, which lets a later process on this host see it died. */
  readonly workerId?: string
  /** The kinds this worker serves; default every kind the executor registry has an executor for. */
  readonly kinds?: ReadonlyArray<NodeKind>
  /** How many tasks it runs at once. Default 4. */
  readonly concurrency?: number
  /** Serve only this session (the CLI's `run`); default every session. */
  readonly sessionId?: string
  /** Where tasks' relative paths point. Default the process's working directory. */
  readonly workingDirectory?: string
  /** Whether to check attachments before running a task. Default true. */
  readonly checkAttachments?: boolean
  /** How often to look for tasks held by workers of this host whose process is gone. Default 1 second. */
  readonly livenessCheckInterval?: Duration.DurationInput
  /**
   * Serving one session: the state to start from instead of loading it, and the global position its later events are
   * read after (taken before the state was). `Runner.run` passes the state it began from, so that every later event
   * reaches `onEvent`.
   */
  readonly from?: { readonly state: Planner.PlannerState; readonly afterPosition: number }
  /**
   * Called with each event of the sessions followed, in order, and the session's state right after it: `Runner.run`
   * reports progress from the worker's own view instead of following the session a second time.
   */
  readonly onEvent?: (record: PlannerEventRecord, state: Planner.PlannerState) => Effect.Effect<void>
}

/** Why a worker stopped: the store could not be read (after the subscription's own retries). */
export type WorkerError = ReadError | EventStoreError

/** A worker id that names this host and process, so a later process can tell when it is gone. */
export const makeWorkerId = (): string => `${os.hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`

/** True when `workerId` names a process of this host that no longer exists. */
export const isDeadLocalWorker = (workerId: string): boolean => {
  const [host, pidText] = workerId.split("/")
  const pid = Number(pidText)
  if (host !== os.hostname() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}

interface Candidate {
  readonly sessionId: string
  readonly taskId: number
  readonly attempt: number
  readonly causationId: string | undefined
  /** How many claims of this attempt the store refused so far (not counting lost races). */
  readonly refusals?: number
}

/** The wait before trying a refused claim again: 100 ms, doubling, at most 5 s. */
const claimRetryDelay = (refusals: number) => Duration.millis(Math.min(5_000, 100 * 2 ** Math.max(0, refusals - 1)))

/** What a heartbeat made of the lease: lost, or extended until (undefined: the store did not answer). */
type Beat = { readonly lost: string } | { readonly expiresAt: number | undefined }

/** Recording an outcome the store refused: tried again until it is recorded or the lease is lost. */
const reportRetry = Schedule.exponential(Duration.millis(100)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(2))),
  Schedule.jittered
)

/** A timer whose `Continue` the store refused is tried again after this. */
const timerRetryDelay = Duration.seconds(1)

/** Names one attempt of one task of one session. */
const attemptKey = (sessionId: string, taskId: number, attempt: number) => `${sessionId}#${taskId}#${attempt}`

/** Refusals that mean "somebody else has it, or it is no longer wanted": skip quietly. */
const lostRace = (error: { readonly _tag: string }) =>
  error._tag === "TaskAlreadyClaimed" ||
  error._tag === "StaleAttempt" ||
  error._tag === "InvalidTransition" ||
  error._tag === "SessionFinished"

/** A completed task's entry in the rolling context. */
const entryText = (task: TaskState) => `Task ${task.id} (${task.description}): ${task.result ?? ""}`

/** Everything an executor gets for one attempt, and nothing more. */
export const taskContext = (
  state: Planner.PlannerState,
  task: TaskState,
  sessionId: string,
  workingDirectory: string
): TaskContext => {
  const dependencies = new Set(task.dependsOn)
  const recent = Planner.rollingTasks(state).filter((other) => !dependencies.has(other.id) && other.id !== task.id)
  const contextSummary = [state.contextSummary, ...recent.map(entryText)].filter((part) => part.length > 0).join("\n")
  return {
    sessionId,
    taskId: task.id,
    kind: task.kind,
    description: task.description,
    attachments: task.attachments,
    attempt: task.attempt,
    clarifications: task.clarifications,
    request: state.request,
    requestAttachments: state.attachments,
    contextSummary,
    dependencyResults: task.dependsOn.flatMap((id) => {
      const dependency = Planner.task(state, id)
      return dependency?.status === "Completed"
        ? [{ taskId: id, description: dependency.description, result: dependency.result ?? "" }]
        : []
    }),
    idempotencyKey: `${sessionId}/${task.id}/${task.attempt}`,
    workingDirectory
  }
}

export const run = (options: WorkerOptions = {}) => {
  const workerId = options.workerId ?? makeWorkerId()
  return Effect.gen(function* () {
    const service = yield* PlannerService
    const store = yield* PlannerStore
    const events = yield* EventStore
    const registry = yield* ExecutorRegistry
    const checker = yield* AttachmentChecker
    const compactor = yield* Compactor
    const counter = Tokenizer.memoized(Tokenizer.fallback)
    // The budget is checked after every completion, over every entry of the rolling context. A completed task's
    // state stays the same object until it is compacted, so each entry is counted once, by the task it is made from,
    // without building its text again.
    const entryCounts = new WeakMap<TaskState, number>()
    const entryTokens = (task: TaskState) => {
      let tokens = entryCounts.get(task)
      if (tokens === undefined) {
        tokens = counter.count(entryText(task))
        entryCounts.set(task, tokens)
      }
      return tokens
    }

    const kinds = new Set((options.kinds ?? nodeKinds).filter((kind) => registry.executorFor(kind) !== undefined))
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const workingDirectory = options.workingDirectory ?? process.cwd()
    const checkAttachments = options.checkAttachments ?? true
    const livenessCheckInterval = options.livenessCheckInterval ?? Duration.seconds(1)
    const now = Clock.currentTimeMillis
    const clock = yield* Effect.clock
    // A worker serving every session lives long: each attempt is then its own trace rather than a child of whatever
    // span started the worker. A worker serving one session (`Runner.run`) stays inside that run's trace.
    const rootSpans = options.sessionId === undefined

    /**
     * Running sessions this worker follows. Only the subscription (and the first load) writes here, never the results
     * of the worker's own commands: every event must pass through `react` exactly once, in order.
     */
    const sessions = new Map<string, Planner.PlannerState>()
    /** Attempts running here (by `attemptKey`), to interrupt when the planner no longer wants them. */
    const running = new Map<
      string,
      {
        readonly sessionId: string
        readonly taskId: number
        readonly attempt: number
        readonly fiber: Fiber.RuntimeFiber<void, unknown>
      }
    >()
    /** Attempts interrupted because the planner ended them: they give nothing back. */
    const cancelled = new Set<string>()
    const candidates = yield* Queue.unbounded<Candidate>()
    const poke = yield* Queue.sliding<void>(1)
    /** The sleeping fiber that pokes the timer loop when the earliest timer it knows of is due. */
    let alarm: { readonly at: number; readonly token: object; readonly fiber: Fiber.RuntimeFiber<void> } | undefined
    /**
     * Whether an event sets a timer earlier than the alarm: only then must the timer loop look again. Most events set
     * none, and a claim's lease usually runs out after the alarm already set (leases have one length per plan).
     */
    let earlierTimer = false
    const timerAt = (at: number) => {
      if (alarm === undefined || at < alarm.at) earlierTimer = true
    }
    const fibers = yield* FiberSet.make<void, never>()

    yield* Effect.annotateLogsScoped({ workerId })

    const follow = (sessionId: string, state: Planner.PlannerState) => {
      if (Planner.isFinished(state)) sessions.delete(sessionId)
      else sessions.set(sessionId, state)
    }

    /** Fails the attempt of a task whose holder is a worker of this host whose process is gone. */
    const abandonIfDead = (sessionId: string, task: TaskState) =>
      Effect.gen(function* () {
        const holder = task.lease?.workerId
        if (task.status !== "Running" || holder === undefined || holder === workerId || !isDeadLocalWorker(holder)) {
          return
        }
        const at = yield* now
        yield* service
          .execute(
            sessionId,
            new AbandonTask({
              taskId: task.id,
              attempt: task.attempt,
              workerId: holder,
              reason: `worker ${holder} died while running attempt ${task.attempt} (its process is gone)`,
              at
            })
          )
          .pipe(
            Effect.catchIf(lostRace, () => Effect.void),
            Effect.catchAll((error) =>
              Effect.logWarning(`could not take back task ${task.id} from dead worker ${holder}: ${error.message}`)
            )
          )
      })

    /** Work a session offers when first seen: dispatched attempts to claim, and leases of dead local workers. */
    const adopt = (sessionId: string, state: Planner.PlannerState) =>
      Effect.gen(function* () {
        follow(sessionId, state)
        if (state.status !== "Running") return
        for (const task of state.tasks) {
          if (task.status === "Dispatched" && kinds.has(task.kind)) {
            yield* Queue.offer(candidates, {
              sessionId,
              taskId: task.id,
              attempt: task.attempt,
              causationId: undefined
            })
          }
          yield* abandonIfDead(sessionId, task)
        }
        yield* Queue.offer(poke, undefined)
      })

    /**
     * Looks again, every `livenessCheckInterval`, for tasks held by dead local workers in the sessions followed: a
     * sibling process that crashed while the worker was already following its sessions is noticed here, not only
     * when its lease runs out.
     */
    const livenessChecks = Effect.gen(function* () {
      for (const [sessionId, state] of [...sessions]) {
        // Only running tasks have a holder: the timed ones.
        for (const id of state.index.timed) {
          const task = Planner.task(state, id)
          if (task !== undefined) yield* abandonIfDead(sessionId, task)
        }
      }
    }).pipe(Effect.repeat(Schedule.spaced(livenessCheckInterval)), Effect.asVoid)

    /**
     * Applies one stored event to the followed state, reloading when the worker missed some. Written without a
     * generator, and with nothing to run for most events: the worker sees every event of the sessions it follows.
     */
    const observe = (record: PlannerEventRecord): Effect.Effect<void, ReadError> => {
      const known = sessions.get(record.sessionId)
      if (known === undefined && record.sequence !== 1) {
        // A session the worker did not follow yet (it finished before, or began before the worker started).
        if (record.event._tag !== "TaskDispatched") return Effect.void
        return Effect.flatMap(service.state(record.sessionId), (state) => adopt(record.sessionId, state))
      }
      const before = known ?? Planner.initialState
      if (record.sequence <= before.version) return Effect.void
      if (record.sequence !== before.version + 1) {
        // Events were missed: read them from the store and take each in turn, as if it had come.
        return Effect.flatMap(
          store.load(record.sessionId, { fromSequence: before.version + 1, toSequence: record.sequence }),
          (missed) =>
            Effect.forEach(
              missed,
              (next) =>
                next.sequence === (sessions.get(next.sessionId)?.version ?? 0) + 1
                  ? apply(next)
                  : // Not there after all (it cannot be): take the session as it is now, as when first seen.
                    Effect.flatMap(service.state(next.sessionId), (state) => adopt(next.sessionId, state)),
              { discard: true }
            )
        )
      }
      return apply(record)
    }

    /** The next event of a followed session: folded, reported, and reacted to. */
    const apply = (record: PlannerEventRecord): Effect.Effect<void> => {
      const after = Planner.evolve(sessions.get(record.sessionId) ?? Planner.initialState, record.event)
      follow(record.sessionId, after)
      const reaction = react(record, record.event)
      return options.onEvent === undefined ? reaction : Effect.zipRight(options.onEvent(record, after), reaction)
    }

    const react = (record: PlannerEventRecord, event: PlannerEvent): Effect.Effect<void> => {
      switch (event._tag) {
        case "TaskClaimed":
        case "TaskLeaseExtended":
          timerAt(event.leaseExpiresAt)
          return Effect.void
        case "TaskDispatched":
          return kinds.has(event.kind)
            ? Queue.offer(candidates, {
                sessionId: record.sessionId,
                taskId: event.taskId,
                attempt: event.attempt,
                causationId: record.metadata.eventId
              })
            : Effect.void
        case "TaskStatusUpdated":
          if (event.status === "Cancelled") return stop(record.sessionId, event.taskId)
          return event.status === "Completed" ? Effect.void : stop(record.sessionId, event.taskId, event.attempt)
        // The attempt was taken from this worker (its lease ran out, or it was given back): stop working on it now
        // rather than at the next heartbeat, a third of a lease later, while another worker may run it already.
        case "TaskRetryScheduled":
          timerAt(event.retryAt)
          return stop(record.sessionId, event.taskId, event.attempt)
        case "TaskReleased":
          return stop(record.sessionId, event.taskId, event.attempt)
        case "PlanningCompleted":
          return stop(record.sessionId, undefined)
        default:
          return Effect.void
      }
    }

    /**
     * Interrupts attempts running here because the planner no longer wants them: of `taskId` (only `attempt`, when
     * given), or of every task of the session when `taskId` is undefined.
     */
    const stop = (sessionId: string, taskId: number | undefined, attempt?: number) =>
      Effect.gen(function* () {
        for (const [runningKey, current] of running) {
          if (current.sessionId !== sessionId || (taskId !== undefined && current.taskId !== taskId)) continue
          if (attempt !== undefined && current.attempt !== attempt) continue
          cancelled.add(runningKey)
          yield* Fiber.interruptFork(current.fiber)
        }
      })

    /** Claims an attempt and, if this worker wins it, runs it to an outcome. */
    const work = (candidate: Candidate) =>
      Effect.gen(function* () {
        // The followed state is never ahead of the store: when it already shows the attempt taken (by another
        // worker) or gone, a claim could only be refused, so skip it without touching the store. Under competition
        // this spares most losing claims, which would otherwise contend with everybody's appends.
        const followed = sessions.get(candidate.sessionId)
        const seen = followed === undefined ? undefined : Planner.task(followed, candidate.taskId)
        // (A claim of ours whose answer was lost shows as held by this worker: claiming again picks it up.)
        const claimable =
          seen?.attempt === candidate.attempt &&
          (seen.status === "Dispatched" || (seen.status === "Running" && seen.lease?.workerId === workerId))
        if (followed !== undefined && !claimable) return
        if (running.has(attemptKey(candidate.sessionId, candidate.taskId, candidate.attempt))) return
        const tracing = candidate.causationId === undefined ? {} : { causationId: candidate.causationId }
        const claimed = yield* service
          .execute(
            candidate.sessionId,
            // The lease runs from when the claim is decided, not from when it was asked for: a claim that waited
            // for its turn or lost races for a while would otherwise get a lease already partly or wholly run out.
            () =>
              new ClaimTask({
                taskId: candidate.taskId,
                attempt: candidate.attempt,
                workerId,
                at: clock.unsafeCurrentTimeMillis()
              }),
            tracing
          )
          .pipe(
            Effect.map(Option.some),
            Effect.catchIf(lostRace, () => Effect.succeedNone),
            Effect.catchAll((error) => {
              // Nobody has the task yet and it has no lease that could run out: dropping the claim here would leave
              // it dispatched for good. Try again later, from the queue, without holding a slot meanwhile.
              const refusals = (candidate.refusals ?? 0) + 1
              const delay = claimRetryDelay(refusals)
              return Effect.logWarning(
                `claiming task ${candidate.taskId} of session ${candidate.sessionId} failed (${error.message}); trying again in ${Duration.format(delay)}`
              ).pipe(
                Effect.zipRight(
                  FiberSet.run(
                    fibers,
                    Effect.sleep(delay).pipe(Effect.zipRight(Queue.offer(candidates, { ...candidate, refusals })))
                  )
                ),
                Effect.as(Option.none())
              )
            })
          )
        if (Option.isNone(claimed)) return
        const state = claimed.value.state
        const task = Planner.task(state, candidate.taskId)
        if (task === undefined || task.status !== "Running" || task.lease?.workerId !== workerId) return
        const runningKey = attemptKey(candidate.sessionId, task.id, task.attempt)
        const fiber = yield* Effect.fork(attempt(candidate.sessionId, state, task, tracing))
        // Registered and checked in one step: an event that ends the attempt (a cancellation right after the claim)
        // was either applied to the followed state already, and is seen here, or comes later and finds it registered.
        const stillWanted = yield* Effect.sync(() => {
          running.set(runningKey, { sessionId: candidate.sessionId, taskId: task.id, attempt: task.attempt, fiber })
          const followedNow = sessions.get(candidate.sessionId)
          const seen = followedNow === undefined ? undefined : Planner.task(followedNow, task.id)
          return (
            seen?.attempt === task.attempt &&
            (seen.status === "Dispatched" || (seen.status === "Running" && seen.lease?.workerId === workerId))
          )
        })
        if (!stillWanted) yield* stop(candidate.sessionId, task.id, task.attempt)
        yield* Fiber.join(fiber).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              running.delete(runningKey)
              cancelled.delete(runningKey)
            })
          )
        )
      }).pipe(
        // Whatever else goes wrong, the worker goes on: a claimed attempt's lease runs out and the task is retried,
        // by this worker or another.
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.void
            : Effect.logError(`task ${candidate.taskId} of session ${candidate.sessionId} was left to its lease`, cause)
        ),
        (effect) =>
          hotSpan(effect, "Worker.work", () => ({
            attributes: {
              workerId,
              sessionId: candidate.sessionId,
              taskId: candidate.taskId,
              attempt: candidate.attempt
            },
            kind: "consumer",
            root: rootSpans
          }))
      )

    /**
     * Keeps the lease on an attempt until it is refused (the task was cancelled, or the lease ran out and the task was
     * taken back). Returns then; a store that cannot be reached is retried on the next beat.
     *
     * Each beat comes when two thirds of the lease as recorded are left, so a lease that was recorded late (its
     * claim waited for a slow store) is extended at once instead of a fixed interval after the claim returned.
     */
    const heartbeat = (sessionId: string, task: TaskState, leaseMs: number) =>
      Effect.gen(function* () {
        const third = Math.max(50, Math.floor(leaseMs / 3))
        let expiresAt = task.lease?.expiresAt ?? (yield* now) + leaseMs
        for (;;) {
          const wait = expiresAt - 2 * third - (yield* now)
          yield* Effect.sleep(Duration.millis(Math.max(wait, third / 10)))
          const beat: Beat = yield* service
            .execute(
              sessionId,
              () =>
                new ExtendLease({
                  taskId: task.id,
                  attempt: task.attempt,
                  workerId,
                  at: clock.unsafeCurrentTimeMillis()
                })
            )
            .pipe(
              Effect.map((handled): Beat => ({ expiresAt: Planner.task(handled.state, task.id)?.lease?.expiresAt })),
              Effect.catchAll((error) =>
                lostRace(error)
                  ? Effect.succeed<Beat>({ lost: error.message })
                  : Effect.logWarning(`could not extend the lease on task ${task.id}: ${error.message}`).pipe(
                      Effect.as<Beat>({ expiresAt: undefined })
                    )
              )
            )
          if ("lost" in beat) {
            return yield* Effect.logWarning(
              `lost the lease on task ${task.id} attempt ${task.attempt} (${beat.lost}); stopped it`
            )
          }
          // Not recorded (the store could not be reached): try again a third of a lease later.
          expiresAt = beat.expiresAt ?? (yield* now) + 2 * third
        }
      })

    /**
     * One attempt: check attachments, execute, report the outcome; all under a lease kept by a heartbeat. When the
     * lease is lost the attempt stops wherever it is: somebody else owns the task now.
     */
    const attempt = (
      sessionId: string,
      state: Planner.PlannerState,
      task: TaskState,
      tracing: { causationId?: string }
    ) =>
      Effect.gen(function* () {
        const taskKey = `${sessionId}#${task.id}`
        // When the lease is lost the attempt stops wherever it is, as when the planner cancels it (`stop`): somebody
        // else owns the task now, and nothing is given back.
        const heartbeatFiber = yield* Effect.forkScoped(
          heartbeat(sessionId, task, state.config.leaseMs).pipe(Effect.zipRight(stop(sessionId, task.id, task.attempt)))
        )

        const context = taskContext(state, task, sessionId, workingDirectory)
        const problem = checkAttachments
          ? yield* checker.firstProblem(task.attachments, workingDirectory, task)
          : Option.none()
        const outcome = Option.isSome(problem)
          ? Outcome.NeedsClarification({ question: problem.value.question })
          : yield* execute(sessionId, task, context)

        const at = yield* now
        const report = (event: HandleExecutorEvent["event"]) => {
          // The event was checked when it was made; checking the command around it again (its schema is a union
          // of the event classes) cost 50 µs per outcome, more than deciding it.
          const record = service.execute(sessionId, new HandleExecutorEvent({ event, at }, true), tracing)
          const warn = (error: HandleError) =>
            Effect.logWarning(`recording the outcome of ${taskKey} failed (${error.message}); trying again`)
          // The outcome is tried until it is recorded: dropping it would cost the task an attempt when its lease
          // runs out. A repeat after an append whose answer got lost is recognised by the planner as a no-op. (The
          // retry schedule is only set up after a first failure: it cost more than the rest of the report.)
          return Effect.catchIf(
            record,
            (error) => !lostRace(error),
            (error) => {
              // The retry starts from the failure in hand, so the schedule's first delay comes before the next try.
              let inHand: HandleError | undefined = error
              const again = Effect.suspend(() => {
                const failed = inHand
                inHand = undefined
                return failed === undefined ? record : Effect.fail(failed)
              })
              return Effect.retry(
                Effect.tapError(again, (next) => (lostRace(next) ? Effect.void : warn(next))),
                {
                  schedule: reportRetry,
                  while: (next) => !lostRace(next)
                }
              )
            }
          ).pipe(
            Effect.map(Option.some),
            Effect.catchIf(lostRace, (error) =>
              Effect.logDebug(`outcome of ${taskKey} attempt ${task.attempt} discarded: ${error.message}`).pipe(
                Effect.as(Option.none<Handled>())
              )
            ),
            // Recorded or discarded, the attempt is over: no more heartbeats.
            Effect.zipLeft(Fiber.interrupt(heartbeatFiber))
          )
        }
        yield* Outcome.$match(outcome, {
          Completed: ({ result }) =>
            report(new TaskCompleted({ taskId: task.id, attempt: task.attempt, result })).pipe(
              Effect.flatMap(
                Option.match({
                  onNone: () => Effect.void,
                  onSome: (handled) => compactIfOverBudget(sessionId, handled.state)
                })
              )
            ),
          Failed: ({ error, retryable }) =>
            Effect.gen(function* () {
              const limit = state.config.errorCharLimit
              const compacted = error.length > limit ? yield* compactor.compactError(error, limit) : error
              yield* report(new TaskFailed({ taskId: task.id, attempt: task.attempt, error: compacted, retryable }))
            }),
          NeedsClarification: ({ question }) =>
            report(
              new NeedsClarification({
                taskId: task.id,
                attempt: task.attempt,
                question,
                ...(Option.isSome(problem) ? { attachment: problem.value.attachment } : {})
              })
            )
        })
      }).pipe(
        Effect.scoped,
        Effect.onInterrupt(() =>
          // Interrupted because the planner cancelled it: nothing to say. Interrupted because this worker is
          // stopping: give the task back so another worker takes it now rather than after the lease.
          cancelled.has(attemptKey(sessionId, task.id, task.attempt))
            ? Effect.void
            : Effect.flatMap(now, (at) =>
                service
                  .execute(
                    sessionId,
                    new ReleaseTask({ taskId: task.id, attempt: task.attempt, workerId, at }),
                    tracing
                  )
                  .pipe(Effect.ignoreLogged)
              )
        )
      )

    /** Runs the executor; a defect or an unexpected error becomes a retryable failure. */
    const execute = (sessionId: string, task: TaskState, context: TaskContext): Effect.Effect<Outcome> => {
      const executor = registry.executorFor(task.kind)
      if (executor === undefined) {
        return Effect.succeed(Outcome.Failed({ error: `no executor serves ${task.kind} tasks here`, retryable: true }))
      }
      return executor.execute(context).pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.failCause(cause)
            : Effect.succeed(
                Outcome.Failed({
                  error: `the ${executor.name} executor crashed: ${Cause.pretty(cause)}`,
                  retryable: true
                })
              )
        ),
        (effect) =>
          hotSpanWith(effect, "Executor.execute", () => ({
            executor: executor.name,
            sessionId,
            taskId: task.id,
            attempt: task.attempt,
            idempotencyKey: context.idempotencyKey
          }))
      )
    }

    /** Folds completed results into the summary when the rolling context is over the plan's budget. */
    const compactIfOverBudget = (sessionId: string, state: Planner.PlannerState) =>
      Effect.gen(function* () {
        if (state.status !== "Running") return
        const rolling = Planner.rollingTasks(state)
        const { tokenBudget, profile, systemPrompt } = state.config
        let used = counter.count(state.contextSummary)
        for (const task of rolling) used += entryTokens(task)
        if (used <= tokenBudget || rolling.length === 0) return
        const entries = rolling.map((task) => ({ taskId: task.id, text: entryText(task) }))
        const result = yield* compactor.compact({
          summary: state.contextSummary,
          entries,
          budget: tokenBudget,
          profile,
          systemPrompt
        })
        const at = yield* now
        yield* service
          .execute(
            sessionId,
            new CompactContext({
              maxTokens: tokenBudget,
              summary: result.summary,
              removedTaskIds: result.removedTaskIds,
              at
            })
          )
          .pipe(
            // Another worker may have compacted the same results first.
            Effect.catchTag("InvalidCompaction", () => Effect.void)
          )
      }).pipe(
        Effect.catchAll((error) => Effect.logWarning(`context compaction skipped: ${error.message}`)),
        (effect) => hotSpanWith(effect, "Worker.compact", () => ({ sessionId }))
      )

    /**
     * Sends `Continue` to every followed session whose next timer is due, then waits for the next one or for an
     * event. One sleeping fiber (the alarm) pokes this loop when the earliest timer is due; it is only replaced when
     * an earlier timer appears, not after every event (leases move forward with every heartbeat), and one that goes
     * off early costs a look at the timers.
     */
    const timers = Effect.gen(function* () {
      while (true) {
        const at = yield* now
        let next: number | undefined
        const wakeAt = (time: number) => {
          if (next === undefined || time < next) next = time
        }
        for (const [sessionId, state] of [...sessions]) {
          const wake = Planner.nextWakeUp(state)
          if (wake === undefined) continue
          if (wake > at) {
            wakeAt(wake)
            continue
          }
          const failed = yield* service.execute(sessionId, new Continue({ at })).pipe(
            Effect.as(false),
            Effect.catchAll((error) =>
              Effect.logWarning(`could not continue session ${sessionId}: ${error.message}`).pipe(Effect.as(true))
            )
          )
          // The timer is still due; without a new event to wake this loop it would wait for good.
          if (failed) wakeAt(at + Duration.toMillis(timerRetryDelay))
        }
        if (next !== undefined && (alarm === undefined || next < alarm.at)) {
          if (alarm !== undefined) yield* Fiber.interruptFork(alarm.fiber)
          const wait = Duration.millis(Math.max(1, next - at))
          const token = {}
          // The alarm clears itself when it goes off (a timer may go off a moment early by the clock, and the next
          // look must then set a new one), then pokes.
          const ring = Effect.sync(() => {
            if (alarm?.token === token) alarm = undefined
          }).pipe(Effect.zipRight(Queue.offer(poke, undefined)), Effect.asVoid)
          alarm = { at: next, token, fiber: yield* Effect.fork(Effect.zipRight(Effect.sleep(wait), ring)) }
        }
        yield* Queue.take(poke)
      }
    })

    // Start from a consistent point: everything up to `head` is read by loading sessions, everything after it
    // arrives through the subscription; events seen both ways are applied once (by sequence).
    const from = options.sessionId === undefined ? undefined : options.from
    const head = from?.afterPosition ?? (yield* events.headPosition)
    const initial =
      options.sessionId === undefined ? (yield* store.sessions).map((s) => s.aggregateId) : [options.sessionId]
    for (const sessionId of initial) {
      const state = from?.state ?? (yield* service.state(sessionId))
      yield* adopt(sessionId, state)
    }

    yield* FiberSet.run(fibers, timers)
    yield* FiberSet.run(fibers, livenessChecks)
    // `concurrency` attempts at a time: each of these loops takes the next candidate when its attempt is over.
    for (let slot = 0; slot < concurrency; slot++) {
      yield* FiberSet.run(fibers, Effect.forever(Effect.flatMap(Queue.take(candidates), work)))
    }
    yield* Effect.logDebug(`worker ${workerId} serving ${[...kinds].join(", ")}`)
    const subscription = store
      .subscribe({ afterPosition: head, ...(options.sessionId === undefined ? {} : { sessionId: options.sessionId }) })
      .pipe(
        // A chunk at a time, and the timers looked at once per chunk.
        Stream.runForEachChunk((chunk) =>
          Effect.zipRight(
            Effect.forEach(chunk, observe, { discard: true }),
            Effect.suspend(() => {
              if (!earlierTimer) return Effect.void
              earlierTimer = false
              return Queue.offer(poke, undefined)
            })
          )
        )
      )
    return yield* Effect.raceFirst(subscription, FiberSet.join(fibers)).pipe(Effect.zipRight(Effect.never))
  }).pipe(Effect.scoped, (worker) =>
    // Serving one session, the worker is a part of that run's trace. Serving all of them, it runs for days: a span
    // around it would never end, so what it does (each attempt, each timer) is traced on its own instead.
    options.sessionId === undefined
      ? worker
      : Effect.withSpan(worker, "Worker.run", { attributes: { workerId, sessionId: options.sessionId } })
  )
}
