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
 * - crash recovery: a task held by a worker of this machine whose process no longer exists is abandoned at once
 *   instead of waiting for its lease to run out.
 *
 * On interruption (SIGINT/SIGTERM in the CLI) it releases the tasks it holds, so others pick them up at once.
 */
import { randomUUID } from "node:crypto"
import * as os from "node:os"
import { Cause, Clock, Duration, Effect, Fiber, FiberSet, Option, Queue, Stream } from "effect"
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
import { EventStore } from "../infra/EventStore.js"
import { ExecutorRegistry, Outcome, type TaskContext } from "../infra/Executor.js"
import { type PlannerEventRecord, PlannerStore } from "../infra/PlannerStore.js"
import * as Tokenizer from "../infra/Tokenizer.js"
import { PlannerService } from "./PlannerService.js"

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
}

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
}

const key = (sessionId: string, taskId: number) => `${sessionId}#${taskId}`

/** Refusals that mean "somebody else has it, or it is no longer wanted": skip quietly. */
const lostRace = (error: { readonly _tag: string }) =>
  error._tag === "TaskAlreadyClaimed" ||
  error._tag === "StaleAttempt" ||
  error._tag === "InvalidTransition" ||
  error._tag === "SessionFinished"

/** Everything an executor gets for one attempt, and nothing more. */
export const taskContext = (
  state: Planner.PlannerState,
  task: TaskState,
  sessionId: string,
  workingDirectory: string
): TaskContext => {
  const dependencies = new Set(task.dependsOn)
  const recent = state.tasks.filter(
    (other) => other.status === "Completed" && !other.compacted && !dependencies.has(other.id) && other.id !== task.id
  )
  const contextSummary = [
    state.contextSummary,
    ...recent.map((other) => `Task ${other.id} (${other.description}): ${other.result ?? ""}`)
  ]
    .filter((part) => part.length > 0)
    .join("\n")
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

/** The rolling context's entries: completed results not yet folded into the summary, in task order. */
const uncompacted = (state: Planner.PlannerState) =>
  state.tasks
    .filter((task) => task.status === "Completed" && !task.compacted)
    .map((task) => ({ taskId: task.id, text: `Task ${task.id} (${task.description}): ${task.result ?? ""}` }))

export const run = (options: WorkerOptions = {}) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const store = yield* PlannerStore
    const events = yield* EventStore
    const registry = yield* ExecutorRegistry
    const checker = yield* AttachmentChecker
    const compactor = yield* Compactor
    const counter = Tokenizer.fallback

    const workerId = options.workerId ?? makeWorkerId()
    const kinds = new Set((options.kinds ?? nodeKinds).filter((kind) => registry.executorFor(kind) !== undefined))
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const workingDirectory = options.workingDirectory ?? process.cwd()
    const checkAttachments = options.checkAttachments ?? true
    const now = Clock.currentTimeMillis

    /**
     * Running sessions this worker follows. Only the subscription (and the first load) writes here, never the results
     * of the worker's own commands: every event must pass through `react` exactly once, in order.
     */
    const sessions = new Map<string, Planner.PlannerState>()
    /** Attempts running here, to interrupt when their task is cancelled. */
    const running = new Map<string, Fiber.RuntimeFiber<void, unknown>>()
    const cancelled = new Set<string>()
    const candidates = yield* Queue.unbounded<Candidate>()
    const poke = yield* Queue.sliding<void>(1)
    const fibers = yield* FiberSet.make()

    yield* Effect.annotateLogsScoped({ workerId })

    const follow = (sessionId: string, state: Planner.PlannerState) => {
      if (Planner.isFinished(state)) sessions.delete(sessionId)
      else sessions.set(sessionId, state)
    }

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
          const holder = task.lease?.workerId
          if (task.status === "Running" && holder !== undefined && isDeadLocalWorker(holder)) {
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
              .pipe(Effect.catchIf(lostRace, () => Effect.void))
          }
        }
        yield* Queue.offer(poke, undefined)
      })

    /** Applies one stored event to the followed state, reloading when the worker missed some. */
    const observe = (record: PlannerEventRecord) =>
      Effect.gen(function* () {
        const known = sessions.get(record.sessionId)
        if (known === undefined && record.sequence !== 1) {
          // A session the worker did not follow yet (it finished before, or began before the worker started).
          if (record.event._tag !== "TaskDispatched") return
          const state = yield* service.state(record.sessionId)
          return yield* adopt(record.sessionId, state)
        }
        const before = known ?? Planner.initialState
        if (record.sequence <= before.version) return
        const after =
          record.sequence === before.version + 1
            ? Planner.evolve(before, record.event)
            : yield* service.state(record.sessionId)
        follow(record.sessionId, after)
        yield* react(record, record.event, after)
        yield* Queue.offer(poke, undefined)
      })

    const react = (record: PlannerEventRecord, event: PlannerEvent, state: Planner.PlannerState) =>
      Effect.gen(function* () {
        switch (event._tag) {
          case "TaskDispatched":
            if (kinds.has(event.kind)) {
              yield* Queue.offer(candidates, {
                sessionId: record.sessionId,
                taskId: event.taskId,
                attempt: event.attempt,
                causationId: record.metadata.eventId
              })
            }
            return
          case "TaskStatusUpdated":
            if (event.status === "Cancelled") yield* stop(key(record.sessionId, event.taskId))
            return
          case "PlanningCompleted":
            for (const task of state.tasks) yield* stop(key(record.sessionId, task.id))
            return
          default:
            return
        }
      })

    /** Interrupts an attempt running here because the planner no longer wants it. */
    const stop = (taskKey: string) =>
      Effect.gen(function* () {
        const fiber = running.get(taskKey)
        if (fiber === undefined) return
        cancelled.add(taskKey)
        yield* Fiber.interruptFork(fiber)
      })

    /** Claims an attempt and, if this worker wins it, runs it to an outcome. */
    const work = (candidate: Candidate) =>
      Effect.gen(function* () {
        // The followed state is never ahead of the store: when it already shows the attempt taken (by another
        // worker) or gone, a claim could only be refused, so skip it without touching the store. Under competition
        // this spares most losing claims, which would otherwise contend with everybody's appends.
        const followed = sessions.get(candidate.sessionId)
        const seen = followed === undefined ? undefined : Planner.task(followed, candidate.taskId)
        if (followed !== undefined && (seen?.status !== "Dispatched" || seen.attempt !== candidate.attempt)) return
        const at = yield* now
        const tracing = candidate.causationId === undefined ? {} : { causationId: candidate.causationId }
        const claimed = yield* service
          .execute(
            candidate.sessionId,
            new ClaimTask({ taskId: candidate.taskId, attempt: candidate.attempt, workerId, at }),
            tracing
          )
          .pipe(
            Effect.map(Option.some),
            Effect.catchIf(lostRace, () => Effect.succeedNone)
          )
        if (Option.isNone(claimed)) return
        const state = claimed.value.state
        const task = Planner.task(state, candidate.taskId)
        if (task === undefined || task.status !== "Running" || task.lease?.workerId !== workerId) return
        const taskKey = key(candidate.sessionId, task.id)
        const fiber = yield* Effect.fork(attempt(candidate.sessionId, state, task, tracing))
        running.set(taskKey, fiber)
        yield* Fiber.join(fiber).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              running.delete(taskKey)
              cancelled.delete(taskKey)
            })
          )
        )
      }).pipe(
        // A store that cannot be reached mid-attempt must not stop the worker: the attempt's lease runs out and the
        // task is retried, by this worker or another.
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.void
            : Effect.logError(`task ${candidate.taskId} of session ${candidate.sessionId} was left to its lease`, cause)
        ),
        Effect.withSpan("Worker.work", { attributes: { sessionId: candidate.sessionId, taskId: candidate.taskId } })
      )

    /** One attempt: check attachments, execute under a renewed lease, report the outcome. */
    const attempt = (
      sessionId: string,
      state: Planner.PlannerState,
      task: TaskState,
      tracing: { causationId?: string }
    ) =>
      Effect.gen(function* () {
        const taskKey = key(sessionId, task.id)
        const context = taskContext(state, task, sessionId, workingDirectory)
        const problem = checkAttachments
          ? yield* checker.firstProblem(task.attachments, workingDirectory)
          : Option.none()
        const outcome = Option.isSome(problem)
          ? Option.some(Outcome.NeedsClarification({ question: problem.value.question }))
          : yield* execute(sessionId, state, task, context)
        if (Option.isNone(outcome)) return
        const at = yield* now
        const report = (event: HandleExecutorEvent["event"]) =>
          service
            .execute(sessionId, new HandleExecutorEvent({ event, at }), tracing)
            .pipe(
              Effect.catchIf(lostRace, (error) =>
                Effect.logDebug(`outcome of ${taskKey} attempt ${task.attempt} discarded: ${error.message}`)
              )
            )
        yield* Outcome.$match(outcome.value, {
          Completed: ({ result }) =>
            report(new TaskCompleted({ taskId: task.id, attempt: task.attempt, result })).pipe(
              Effect.zipRight(compactIfOverBudget(sessionId))
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
        Effect.onInterrupt(() =>
          // Interrupted because the planner cancelled it: nothing to say. Interrupted because this worker is
          // stopping: give the task back so another worker takes it now rather than after the lease.
          cancelled.has(key(sessionId, task.id))
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

    /** Runs the executor while a heartbeat keeps the lease; stops it if the lease is lost. Never fails. */
    const execute = (sessionId: string, state: Planner.PlannerState, task: TaskState, context: TaskContext) =>
      Effect.gen(function* () {
        const executor = registry.executorFor(task.kind)
        if (executor === undefined) {
          return Option.some(Outcome.Failed({ error: `no executor serves ${task.kind} tasks here`, retryable: true }))
        }
        const every = Duration.millis(Math.max(50, Math.floor(state.config.leaseMs / 3)))
        // The heartbeat ends only when the planner refuses to extend the lease: the task was cancelled, or the lease
        // expired and another worker took the task. A store that cannot be reached is retried on the next beat.
        const heartbeat = Effect.gen(function* () {
          yield* Effect.sleep(every)
          const at = yield* now
          yield* service
            .execute(sessionId, new ExtendLease({ taskId: task.id, attempt: task.attempt, workerId, at }))
            .pipe(
              Effect.catchIf(
                (error) => !lostRace(error),
                (error) => Effect.logWarning(`could not extend the lease on task ${task.id}: ${error.message}`)
              )
            )
        }).pipe(
          Effect.forever,
          Effect.catchAll((error) =>
            Effect.logWarning(
              `lost the lease on task ${task.id} attempt ${task.attempt} (${error.message}); stopped it`
            )
          ),
          Effect.as(Option.none<Outcome>())
        )
        const outcome = yield* executor.execute(context).pipe(
          Effect.withSpan("Executor.execute", {
            attributes: { executor: executor.name, sessionId, taskId: task.id, attempt: task.attempt }
          }),
          Effect.catchAllCause((cause) =>
            Effect.succeed(
              Outcome.Failed({
                error: `the ${executor.name} executor crashed: ${Cause.pretty(cause)}`,
                retryable: true
              })
            )
          ),
          Effect.map(Option.some),
          Effect.raceFirst(heartbeat)
        )
        return outcome
      })

    /** Folds completed results into the summary when the rolling context is over the plan's budget. */
    const compactIfOverBudget = (sessionId: string) =>
      Effect.gen(function* () {
        const state = yield* service.state(sessionId)
        if (state.status !== "Running") return
        const entries = uncompacted(state)
        const { tokenBudget, profile, systemPrompt } = state.config
        const used =
          counter.count(state.contextSummary) + entries.reduce((sum, entry) => sum + counter.count(entry.text), 0)
        if (used <= tokenBudget || entries.length === 0) return
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
        Effect.withSpan("Worker.compact", { attributes: { sessionId } })
      )

    /** Sends `Continue` to every followed session whose next timer is due, then sleeps until the next one. */
    const timers = Effect.gen(function* () {
      while (true) {
        const at = yield* now
        let next: number | undefined
        for (const [sessionId, state] of [...sessions]) {
          const wake = Planner.nextWakeUp(state)
          if (wake === undefined) continue
          if (wake <= at) {
            yield* service
              .execute(sessionId, new Continue({ at }))
              .pipe(
                Effect.catchAll((error) =>
                  Effect.logWarning(`could not continue session ${sessionId}: ${error.message}`)
                )
              )
          } else if (next === undefined || wake < next) {
            next = wake
          }
        }
        const sleep = next === undefined ? Effect.never : Effect.sleep(Duration.millis(Math.max(1, next - at)))
        yield* Effect.raceFirst(Queue.take(poke), sleep)
      }
    })

    // Start from a consistent point: everything up to `head` is read by loading sessions, everything after it
    // arrives through the subscription; events seen both ways are applied once (by sequence).
    const head = yield* events.headPosition
    const initial =
      options.sessionId === undefined ? (yield* store.sessions).map((s) => s.aggregateId) : [options.sessionId]
    for (const sessionId of initial) {
      const state = yield* service.state(sessionId)
      yield* adopt(sessionId, state)
    }

    yield* FiberSet.run(fibers, timers)
    yield* FiberSet.run(
      fibers,
      Stream.fromQueue(candidates).pipe(Stream.mapEffect(work, { concurrency, unordered: true }), Stream.runDrain)
    )
    yield* Effect.logInfo(`worker ${workerId} serving ${[...kinds].join(", ")}`)
    const subscription = store
      .subscribe({ afterPosition: head, ...(options.sessionId === undefined ? {} : { sessionId: options.sessionId }) })
      .pipe(Stream.runForEach(observe))
    return yield* Effect.raceFirst(subscription, FiberSet.join(fibers)).pipe(Effect.zipRight(Effect.never))
  }).pipe(Effect.scoped, Effect.withSpan("Worker.run"))
