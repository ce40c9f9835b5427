/**
 * Running plans: the programmatic API behind the CLI and the dashboard.
 *
 * - `start` plans a request (with the LLM when one is configured, else the parser) and records `Initialize`.
 * - `run` drives one session in this process: a worker serving it, progress as it happens, until the plan ends or
 *   waits for answers nobody here can give. `resume` is the same for a session that stopped or crashed: its log says
 *   where it was, a task whose worker died is retried, and retries fall due at the times recorded.
 * - `answer`, `cancel`, `observe` (progress as a `Stream`), `state` and `stateAt` (time travel).
 */
import { randomUUID } from "node:crypto"
import { Cause, Chunk, Clock, Effect, Option, Queue, Schema, Stream } from "effect"
import * as Budget from "../domain/Budget.js"
import { Cancel, ClarificationProvided, Continue, HandleExecutorEvent, Initialize } from "../domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../domain/Config.js"
import type { PlannerEvent } from "../domain/Events.js"
import * as Planner from "../domain/Planner.js"
import { childSessionId } from "../domain/SubPlans.js"
import type { Attachment, TaskState } from "../domain/Task.js"
import type { ReadError } from "../infra/EventStore.js"
import { PlannerStore } from "../infra/PlannerStore.js"
import * as AppBudget from "./Budget.js"
import { withEventLoopTurns } from "./EventLoop.js"
import * as HeldAttempts from "./HeldAttempts.js"
import { PlannerService } from "./PlannerService.js"
import { planRequest } from "./Planning.js"
import * as Replan from "./Replan.js"
import * as SessionFollower from "./SessionFollower.js"
import * as Worker from "./Worker.js"

/** A new session id: sortable by creation time, short enough to type. */
export const newSessionId = (now: number): string =>
  `${new Date(now).toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-")}-${randomUUID().slice(0, 6)}`

export interface StartOptions {
  readonly attachments?: ReadonlyArray<Attachment>
  readonly config?: Partial<PlannerConfig>
  readonly sessionId?: string
  /** The executor the session runs with, as the user named it: recorded in the plan's event. */
  readonly executor?: string
}

/** Plans `request` and records the plan as a new session. */
export const start = (request: string, options: StartOptions = {}) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const at = yield* Clock.currentTimeMillis
    const config: PlannerConfig = { ...defaultConfig, ...options.config }
    // #16: the plan call is checked against the budget (priced from PLANNER_LLM_PRICES) and its usage recorded.
    const plan = yield* planRequest(request, options.attachments ?? [], {
      systemPrompt: config.systemPrompt,
      budget: Budget.fromLimits(config),
      prices: yield* AppBudget.pricesOrWarn
    })
    const sessionId = options.sessionId ?? newSessionId(at)
    const handled = yield* service.execute(
      sessionId,
      new Initialize({
        request,
        attachments: options.attachments ?? [],
        tasks: plan.tasks,
        source: plan.source,
        ...(options.executor === undefined ? {} : { executor: options.executor }),
        config,
        ...(plan.usage === undefined || plan.usage.length === 0 ? {} : { usage: plan.usage }),
        // The steps the LLM marked as sub-plans run as child sessions, as `planner run` runs them.
        ...(plan.subPlans === undefined || plan.subPlans.length === 0
          ? {}
          : { expand: plan.subPlans.map((taskId) => ({ taskId, childSessionId: childSessionId(sessionId, taskId) })) }),
        at
      }),
      { correlationId: sessionId }
    )
    return { sessionId, state: handled.state }
  }).pipe(Effect.withSpan("Runner.start"))

/** Records a person's answer to a task's question; the task is dispatched again with it. */
export const answer = (sessionId: string, taskId: number, text: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const at = yield* Clock.currentTimeMillis
    return yield* service.execute(
      sessionId,
      new HandleExecutorEvent({ event: new ClarificationProvided({ taskId, answer: text }), at })
    )
  }).pipe(Effect.withSpan("Runner.answer", { attributes: { sessionId, taskId } }))

export const cancel = (sessionId: string, reason = "cancelled by the user") =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const at = yield* Clock.currentTimeMillis
    return yield* service.execute(sessionId, new Cancel({ reason, at }))
  }).pipe(Effect.withSpan("Runner.cancel", { attributes: { sessionId } }))

/** One step of a session's progress: an event as stored, and the session right after it. */
export type Progress = SessionFollower.Progress

/**
 * A session's progress: its history, then its events as they happen, each with the state after it. Ends after the
 * event that finishes the plan.
 */
export const observe = (sessionId: string, options: { readonly afterSequence?: number } = {}) =>
  Stream.unwrap(
    Effect.gen(function* () {
      const store = yield* PlannerStore
      return Stream.pipeThroughChannel(
        store.subscribe({ sessionId }),
        SessionFollower.progressAfter(options.afterSequence ?? 0)(Planner.initialState)
      )
    })
  )

/** A run's worker options: the session is the run's own. */
export interface RunOptions extends Omit<Worker.WorkerOptions, "sessionId"> {
  /** Called for each step of progress, in order (the CLI prints them). */
  readonly onProgress?: (progress: Progress) => Effect.Effect<void>
  /**
   * Asked for the answer to a pending question. `None` means nobody here can answer: when every remaining task
   * waits for an answer, `run` returns the waiting state. Without it, `run` returns as soon as it is waiting.
   */
  readonly onClarification?: (task: TaskState, question: string) => Effect.Effect<Option.Option<string>>
  /** Serve the session with a worker in this process. Default true; false to only watch remote workers. */
  readonly localWorker?: boolean
}

/** The local worker or the progress subscription failed: the run fails with it. */
interface Broken {
  readonly _tag: "Broken"
  readonly cause: Cause.Cause<Worker.WorkerError | ReadError>
}

/** How a run ended: the plan finished, or it waits for answers. */
export interface RunResult {
  readonly sessionId: string
  readonly state: Planner.PlannerState
  readonly waiting: boolean
}

/** There is no session with that id in the store. */
export class UnknownSession extends Schema.TaggedError<UnknownSession>()("UnknownSession", {
  sessionId: Schema.String
}) {
  override get message() {
    return `There is no session ${this.sessionId} in this store: list sessions with \`planner sessions\`, or check --db.`
  }
}

/** The session's state, failing with `UnknownSession` when it has no events. */
export const existing = (sessionId: string) =>
  Effect.flatMap(PlannerService, (service) => service.state(sessionId)).pipe(
    Effect.filterOrFail(
      (state) => state.status !== "NotStarted",
      () => new UnknownSession({ sessionId })
    )
  )

/** Drives a session until its plan ends or it waits for answers nobody here can give. */
export const run = (sessionId: string, options: RunOptions = {}) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    // The session's stream is followed from a position taken before its state was read: nothing falls between.
    const from = yield* SessionFollower.startingPoint(existing(sessionId))
    const initial = from.state
    // The local worker and the progress subscription run beside the loop below. When either fails (the store cannot
    // be read, the log holds an event that no longer decodes), the run fails with that error: waiting on would wait
    // for progress that can never come.
    // Progress, "a question got no answer" and such a failure all arrive in one queue, so the loop below re-checks
    // whenever any of them happens.
    const signals = yield* Queue.unbounded<Progress | "unanswered" | Broken>()
    const failRunOnError = <A, E extends Worker.WorkerError | ReadError, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.catchAllCause(effect, (cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.void : Queue.offer(signals, { _tag: "Broken", cause })
      )
    // Progress comes from the session's own stream, a chunk at a time: the run looks at the state once per chunk.
    yield* SessionFollower.follow(sessionId, from).pipe(
      Stream.runForEachChunk((steps) => (Chunk.isEmpty(steps) ? Effect.void : Queue.offerAll(signals, steps))),
      failRunOnError,
      Effect.forkScoped
    )
    if (!Planner.isFinished(initial)) {
      // The queue holds the jobs the log implies; a log from before the queue existed, or a queue that lost them (an
      // in-memory one of a process that ended), gets them back.
      yield* service.rebuildJobs(sessionId)
      // Dispatch what an older log left waiting to retry.
      yield* service.execute(sessionId, new Continue({ at: yield* Clock.currentTimeMillis }))
    }
    const localWorker = options.localWorker ?? true
    const {
      onProgress: _onProgress,
      onClarification: _onClarification,
      localWorker: _localWorker,
      ...workerOptions
    } = options
    if (localWorker) yield* Effect.forkScoped(failRunOnError(Worker.run({ ...workerOptions, sessionId })))
    // Replans pending in the log (`--on-failure replan`) are settled here, also those a crash left pending.
    const settleReplans = yield* Replan.makeSettler
    yield* settleReplans(sessionId, initial)
    const asked = new Set<string>()
    let open = 0
    const askPending = (state: Planner.PlannerState) =>
      Effect.gen(function* () {
        if (options.onClarification === undefined) return
        for (const task of state.tasks) {
          const pending = task.clarifications.at(-1)
          const id = `${task.id}:${task.clarifications.length}`
          if (task.status !== "NeedsClarification" || pending === undefined || pending.answer !== undefined) continue
          if (asked.has(id)) continue
          asked.add(id)
          open += 1
          const ask = options.onClarification(task, pending.question).pipe(
            Effect.flatMap(
              Option.match({
                onNone: () => Queue.offer(signals, "unanswered"),
                onSome: (text) =>
                  answer(sessionId, task.id, text).pipe(
                    Effect.zipRight(Effect.sync(() => (open -= 1))),
                    Effect.catchAll((error) =>
                      Effect.logWarning(`the answer to task ${task.id} was not recorded: ${error.message}`).pipe(
                        Effect.zipRight(Queue.offer(signals, "unanswered"))
                      )
                    )
                  )
              })
            )
          )
          yield* Effect.forkScoped(ask)
        }
      })

    let state = initial
    yield* askPending(state)
    while (!Planner.isFinished(state)) {
      // Waiting, and nobody here is still being asked: stop and say so.
      if (Planner.isWaiting(state) && open === 0) return { sessionId, state, waiting: true } satisfies RunResult
      // Everything that happened since the last look, at once: the state is looked at once per batch, not per event.
      const batch = [yield* Queue.take(signals), ...(yield* Queue.takeAll(signals))]
      let asking = false
      for (const signal of batch) {
        if (signal === "unanswered") {
          open -= 1
          continue
        }
        if ("_tag" in signal) return yield* Effect.failCause(signal.cause)
        state = signal.state
        if (options.onProgress !== undefined) yield* options.onProgress(signal)
        if (signal.record.event._tag === "ClarificationRequested") asking = true
        if (Planner.isFinished(state)) break
      }
      if (asking) yield* askPending(state)
      if (Planner.pendingReplans(state).length > 0) yield* settleReplans(sessionId, state)
    }
    return { sessionId, state, waiting: false } satisfies RunResult
  }).pipe(
    Effect.scoped,
    // Tasks that complete at once (an in-process executor, SQLite answering synchronously) must not keep Node from
    // its event loop, its timers and its signals for the whole run: see `EventLoop`.
    withEventLoopTurns(),
    Effect.withSpan("Runner.run", { attributes: { sessionId } })
  )

/** Continues a session that stopped: paused for answers, interrupted, or crashed. */
export const resume = run

/** Whether a live process serves a session, as its jobs in the task queue tell. */
export interface Liveness {
  /** Some worker holds a job of the session under a lease that has not run out. */
  readonly served: boolean
  /** The workers holding its jobs under live leases. */
  readonly workers: ReadonlyArray<string>
  /** Jobs of the session not yet finished: held, or waiting to be taken. */
  readonly jobs: number
  /** Of those, jobs waiting with no live holder (takeable now, or at their `runAt`). */
  readonly waiting: number
}

/**
 * Whether a live worker serves the session: a worker holds one of its jobs under a lease it keeps renewing. A session
 * whose runner was killed has jobs with no live holder (or none at all): it is not served, however "Running" its log
 * says it is.
 */
export const liveness = (sessionId: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const now = yield* Clock.currentTimeMillis
    const jobs = yield* service.queue.list(sessionId)
    const held = HeldAttempts.heldAttempts(jobs, now)
    const workers = [...new Set(held.map((attempt) => attempt.workerId))]
    return {
      served: workers.length > 0,
      workers,
      jobs: jobs.length,
      waiting: jobs.length - held.length
    } satisfies Liveness
  }).pipe(Effect.withSpan("Runner.liveness", { attributes: { sessionId } }))

/** The events of a session, for history listings. */
export const history = (sessionId: string) => Effect.flatMap(PlannerStore, (store) => store.load(sessionId))

/** The event types that move a plan, for progress filters. */
export type { PlannerEvent }
