/**
 * A worker: takes jobs from the task queue, runs each through the executor registry and reports its outcome through
 * the writer. Any number of workers, in one process or on many machines, serve the same store: the queue gives each
 * job to one taker at a time. A worker reads only its jobs: it follows no session and folds no event.
 *
 * Its pieces, each with one job:
 * - the take loop (here): up to `concurrency` attempts at a time, woken by the queue (`awaitWork`) when a job may be
 *   waiting; no timers of its own (a retry's backoff is its job's `runAt`). It takes only after such a wake-up (a
 *   freed slot alone does not make it ask a queue that last said it had nothing). A take that fails is tried again
 *   after a backoff (`takeRetryMs`): a store away for a while (restarted, failed over) does not end a worker serving
 *   every session (the worker of one run gives up after `runTakeTries`);
 * - the hand-off (here): while it has a free slot, the writer of this process gives it the jobs it dispatches, already
 *   claimed for it in the dispatch's transaction (`PlannerService.handOffTo`), so a one-process run takes nothing;
 * - `worker/AttemptRunner`: one job, from its start (recorded as `TaskClaimed`, before the executor runs or, in a
 *   long-lived worker, with the outcome) to its outcome;
 * - `worker/LeaseKeeper`: one `extendLeases` per interval for all the worker's jobs; it stops attempts the worker no
 *   longer holds;
 * - `worker/CompactionTrigger`: folds results into the summary when the rolling context is over budget;
 * - `worker/DeadWorkerSweep`: takes back the jobs of this host's workers whose process is gone;
 * - `worker/QueueUpkeep`: lets the queue reclaim what ended jobs left behind (a vacuum of PostgreSQL's job table);
 * - `worker/SessionWriter` (PostgreSQL, serving every session): records the outcomes other workers report for the
 *   sessions this worker writes; the outcomes of a session another worker writes go to it as reports;
 * - `worker/LeftReports` (PostgreSQL, serving one session): records the reports of its session that nobody records.
 *
 * On interruption (SIGINT/SIGTERM in the CLI) it gives back the jobs and tasks it holds, so others pick them up at
 * once.
 */
import { Cause, Duration, Effect, Fiber, FiberSet, Queue } from "effect"
import * as Planner from "../domain/Planner.js"
import { type NodeKind, nodeKinds } from "../domain/Task.js"
import type { ReadError } from "../infra/EventStore.js"
import { ExecutorRegistry } from "../infra/Executor.js"
import { type AlongsideTake, jobKeyString, type TakenJob, type TaskQueueError } from "../infra/TaskQueue.js"
import * as Tokenizer from "../infra/Tokenizer.js"
import { withEventLoopTurns } from "./EventLoop.js"
import { gatherBound } from "./Linger.js"
import { PlannerService } from "./PlannerService.js"
import * as AttemptRunner from "./worker/AttemptRunner.js"
import * as Cohorts from "./worker/Cohorts.js"
import { sweepDeadWorkers } from "./worker/DeadWorkerSweep.js"
import { keepLeases, renewalInterval } from "./worker/LeaseKeeper.js"
import * as LeftReports from "./worker/LeftReports.js"
import { makeActivity, paced } from "./worker/Pacing.js"
import { keepQueueTidy } from "./worker/QueueUpkeep.js"
import * as SessionWriter from "./worker/SessionWriter.js"
import * as StartedAttempts from "./worker/StartedAttempts.js"
import { makeWorkerId } from "./worker/WorkerIdentity.js"

export type { AttemptReport } from "./worker/AttemptRunner.js"
export { taskContext } from "./worker/AttemptRunner.js"
export { isDeadLocalWorker, makeWorkerId } from "./worker/WorkerIdentity.js"

/** The most ended attempts a worker remembers starting (see `worker/StartedAttempts`): a bound on memory only. */
const endedRemembered = 250_000

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
  /**
   * How long a job taken stays this worker's without its lease being renewed: when the worker dies, its jobs go to
   * another worker this long after its last renewal. Default 60 seconds; renewed every third of it.
   */
  readonly leaseMs?: number
  /**
   * How often to look in the queue for jobs held by workers of this host whose process is gone (they are taken back
   * at once rather than when their leases run out), and, serving every session on PostgreSQL, for reports nobody
   * records. Default 1 second. While a look finds nothing to watch and the worker is idle, the next is later, the wait
   * doubling up to 8 times this (see `worker/Pacing`). Also how often a busy worker lets the queue reclaim what ended
   * jobs left behind (see `worker/QueueUpkeep`).
   */
  readonly livenessCheckInterval?: Duration.DurationInput
  /** Told about each attempt this worker starts and finishes (`planner worker` prints them). */
  readonly onAttempt?: (report: AttemptRunner.AttemptReport) => Effect.Effect<void>
  /**
   * Load the tokenizer the context budget is counted with as soon as the worker serves, not at the first context over
   * the budget (see `Tokenizer.warmUp`). Default: when it serves every session (a long-lived worker); a run of one
   * session loads it only if it needs it.
   */
  readonly warmTokenizer?: boolean
  /**
   * How long an outcome may wait, in milliseconds, for the outcomes of this worker's attempts of the same session that
   * started at most this long before or after it, so that they are recorded in one append and their slots are filled
   * together again (see `worker/Cohorts`). Default 5, at most 1000; 0 records each outcome as it comes. Attempts
   * started that far apart of a short one are waited for however long they run, up to this. The session writer's wait
   * is also bounded by its own `PlannerServiceOptions.gatherMs` (5 by default): raise both to wait longer.
   */
  readonly gatherMs?: number
}

/** How long the take loop waits after its `failures`-th failed take in a row: 250 ms, doubling up to 8 s. */
export const takeRetryMs = (failures: number): number => Math.min(8_000, 250 * 2 ** Math.max(0, failures - 1))

/** How many failed takes in a row the worker of one run tries again (about 4 s in all) before it fails the run. */
export const runTakeTries = 5

/** Why a worker stopped: the queue or the store could not be used at all. */
export type WorkerError = ReadError | TaskQueueError

export const run = (options: WorkerOptions = {}) => {
  const workerId = options.workerId ?? makeWorkerId()
  return Effect.gen(function* () {
    const service = yield* PlannerService
    const registry = yield* ExecutorRegistry
    const queue = service.queue
    const kinds = (options.kinds ?? nodeKinds).filter((kind) => registry.executorFor(kind) !== undefined)
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const clock = yield* Effect.clock
    const leaseMs = Math.max(100, options.leaseMs ?? 60_000)
    const livenessCheckInterval = options.livenessCheckInterval ?? Duration.seconds(1)
    /** The longest wait between two looks that find nothing, in an idle worker (see `worker/Pacing`). */
    const quietInterval = Duration.times(livenessCheckInterval, 8)
    /** Each attempt started or ended here: the periodic looks keep their pace while the worker is busy. */
    const activity = makeActivity()
    const sessionId = options.sessionId
    /** Wakes the take loop: a slot freed up, or the queue may have work. */
    const freed = yield* Queue.sliding<void>(1)
    /**
     * Whether the queue may hold a job for this worker: true at the start and after each wake-up of `awaitWork`, false
     * once a take came back with fewer jobs than it asked for. A freed slot alone leads to a take only while it is
     * true: in a one-process run the next job is usually handed over already, and a take that finds nothing is a
     * write transaction all the same.
     */
    let maybeWork = true
    /** Whether the worker is all set up: from then on an outcome may take its worker's next jobs (`takeNext`). */
    let serving = false
    /** Told that a take came back short, so that the waker waits for the queue's next wake-up (see below). */
    const looked = yield* Queue.sliding<void>(1)
    /** A take (its own, or one with an outcome) came back short: the queue has nothing more for this worker now. */
    const tookShort = () => {
      maybeWork = false
      Queue.unsafeOffer(looked, undefined)
    }
    /** The attempts running here, by job key; `dropped` ones stop without giving their task back. */
    const running = new Map<string, { readonly job: TakenJob; fiber: Fiber.RuntimeFiber<void> | undefined }>()
    const dropped = new Set<string>()
    /** Jobs an outcome's statement took for this worker as it stopped (its reports' group, or an append, under way). */
    const takenWhileStopping: Array<TakenJob> = []
    let closed = false
    // What it serves, for `planner show` and `sessions` to tell a session nobody will serve from one waiting its turn.
    const announcements = queue.workers
    if (announcements !== undefined) {
      const announce = Effect.suspend(() =>
        announcements.announce({
          workerId,
          kinds,
          ...(sessionId === undefined ? {} : { sessionId }),
          expiresAt: clock.unsafeCurrentTimeMillis() + leaseMs
        })
      ).pipe(Effect.catchAll((error) => Effect.logDebug(`could not announce worker ${workerId}: ${error.message}`)))
      yield* announce
      // A daemon, its end the finalizer's below: forked from the worker's own fiber, it seemed to cost the workers
      // 0.08-0.17 ms of CPU per task in the scale benchmark (docs/performance.md), for no reason found.
      const renewing = yield* Effect.forkDaemon(
        Effect.forever(Effect.zipRight(Effect.sleep(renewalInterval(leaseMs)), announce))
      )
      // Stopped renewing first, so that no renewal comes after the withdrawal. Added before the worker's other
      // finalizers, it runs after them all: the jobs it holds are given back first, its stop not held up by this.
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(Fiber.interrupt(renewing), Effect.ignore(announcements.withdraw(workerId)))
      )
    }
    // What the worker still holds once everything else has stopped goes back to the queue, and the stop ends with it
    // back (given back on a fiber of its own, it could still be on the way as the process exits, and stay this worker's
    // until its lease ran out). Added before everything that may take jobs, so that it runs after all of it:
    // - an attempt still running here never ran: its fiber, due to start on the next turn, was interrupted first, and
    //   then runs nothing, not even its finalizers. The same attempt runs elsewhere: its next taker's claim is accepted
    //   even over one this worker has on record (a job handed over with its claim);
    // - the jobs taken with an outcome as the worker stopped.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        const held = [...[...running.values()].map(({ job }) => job), ...takenWhileStopping.splice(0)]
        // One the store does not take back is said so (`planner worker` then does not claim to have given it all back).
        return Effect.forEach(
          held,
          AttemptRunner.releaseOrTell(queue, workerId, options.onAttempt ?? (() => Effect.void)),
          { discard: true }
        )
      })
    )
    const giveBackTaken = (job: TakenJob) => {
      if (closed) Effect.runFork(Effect.ignoreLogged(queue.release(job, workerId)))
      else takenWhileStopping.push(job)
    }
    /** Attempts started together, whose outcomes the writer waits a moment to record together (`worker/Cohorts`). */
    const gatherMs = gatherBound(options.gatherMs)
    const cohorts = Cohorts.make(gatherMs)
    /** The jobs to take with outcomes of this worker, for the slots that `freeing` of them free (see `AttemptRunner`). */
    const takeNext = (freeing = 1): AlongsideTake | undefined => {
      // Not before the worker is all set up (a job handed over during its registration may report that early).
      if (!serving || stopping) return undefined
      // The slots of the attempts reporting free once their outcomes are in.
      const limit = concurrency - running.size - handOff.reserved() + freeing
      if (limit <= 0) return undefined
      return {
        options: { workerId, kinds, limit, leaseMs, ...(sessionId === undefined ? {} : { sessionId }) },
        now: clock.unsafeCurrentTimeMillis(),
        taken: (jobs) => {
          if (jobs.length < limit) tookShort()
          for (const job of jobs) {
            if (stopping) giveBackTaken(job)
            else startNow(job)
          }
        },
        // Several of its outcomes recorded in one append (they came while another was out): a slot for each.
        forOutcomes: takeNext
      }
    }
    const runJob = yield* AttemptRunner.make({
      workerId,
      workingDirectory: options.workingDirectory ?? process.cwd(),
      checkAttachments: options.checkAttachments ?? true,
      // A worker serving every session lives long: each attempt is then its own trace rather than a child of
      // whatever span started the worker. A worker serving one session (`Runner.run`) stays inside that run's trace.
      rootSpans: sessionId === undefined,
      startsWithOutcomes: sessionId === undefined,
      onReport: options.onAttempt,
      writer: (): SessionWriter.SessionWriter | undefined => sessionWriter,
      takeNext,
      awaiting: cohorts.reporting,
      gatherMs
    })
    yield* Effect.annotateLogsScoped({ workerId })
    // A worker serving every session on PostgreSQL reports the outcomes of sessions another worker writes, and writes
    // the sessions whose writer it became (see `worker/SessionWriter`). A run of one session writes it itself.
    const reports = sessionId === undefined ? queue.reports : undefined
    const sessionWriter: SessionWriter.SessionWriter | undefined =
      reports === undefined
        ? undefined
        : yield* SessionWriter.make({
            reports,
            workerId,
            leaseMs,
            sweepInterval: livenessCheckInterval,
            quietInterval,
            busy: activity.since(),
            record: runJob.recordReports,
            isOver: (id) =>
              service.state(id).pipe(
                Effect.map(Planner.isFinished),
                Effect.orElseSucceed(() => false)
              )
          })

    const fibers = yield* FiberSet.make<void, never>()

    /** The attempts this worker started, for the lease keeper (see `worker/StartedAttempts`). */
    const started = StartedAttempts.make({
      // Past the keeper's decision (two leases and a beat after an attempt ends), with room to spare.
      keepMs: 4 * leaseMs,
      floor: 10_000,
      cap: endedRemembered,
      now: () => clock.unsafeCurrentTimeMillis()
    })
    yield* FiberSet.run(
      fibers,
      keepLeases({
        queue,
        workerId,
        leaseMs,
        held: () =>
          [...running.entries()].map(([key, { job, fiber }]) => ({
            key: job,
            drop: Effect.suspend(() => {
              dropped.add(key)
              return fiber === undefined ? Effect.void : Fiber.interruptFork(fiber)
            })
          })),
        startedHere: started.has
      })
    )
    yield* sweepDeadWorkers(sessionId)
    // Paced by what it finds alone: this worker's own work does not make another process of its host die.
    yield* FiberSet.run(
      fibers,
      paced({
        interval: livenessCheckInterval,
        quiet: quietInterval,
        check: Effect.map(sweepDeadWorkers(sessionId), (swept) => swept.watching),
        busy: () => false
      })
    )
    yield* FiberSet.run(fibers, keepQueueTidy(queue, livenessCheckInterval, activity.since()))
    // A run of one session writes it itself: on PostgreSQL it also records what workers serving every session reported
    // for it and nobody records (see `worker/LeftReports`), first at once, then paced like the sweeps.
    if (sessionId !== undefined && queue.reports !== undefined) {
      const look = LeftReports.recordLeft({
        reports: queue.reports,
        sessionId,
        interval: livenessCheckInterval,
        record: runJob.recordReports
      })
      yield* FiberSet.run(
        fibers,
        Effect.zipRight(
          look,
          paced({ interval: livenessCheckInterval, quiet: quietInterval, check: look, busy: activity.since() })
        )
      )
    }

    const runFork = yield* FiberSet.runtime(fibers)()
    /**
     * Starts an attempt. Synchronous: the writer's hand-off calls it from its own fiber, and the attempt then starts
     * on the scheduler's next turn rather than inside the writer's step.
     */
    const startNow = (job: TakenJob, claimed?: Planner.PlannerState) => {
      const key = jobKeyString(job)
      // A job of ours handed back to us (our lease ran out while we still ran it): the attempt is still running.
      if (running.has(key)) return
      started.started(key)
      cohorts.started(job, clock.unsafeCurrentTimeMillis())
      activity.touch()
      // In the map before the fiber exists, so that the fiber's end always finds it there to remove.
      const entry: { readonly job: TakenJob; fiber: Fiber.RuntimeFiber<void> | undefined } = { job, fiber: undefined }
      running.set(key, entry)
      entry.fiber = runFork(
        runJob
          .run(job, () => dropped.has(key), claimed)
          .pipe(
            Effect.ensuring(
              Effect.sync(() => {
                activity.touch()
                running.delete(key)
                dropped.delete(key)
                cohorts.ended(job)
                started.ended(key)
                // The take loop wants a freed slot only while the queue may have work: otherwise it waits for the
                // queue's wake-up, which wakes it too, and a wake-up per attempt (every task of a one-process run,
                // whose jobs come by hand-off) would only send it back to waiting.
                if (maybeWork) Queue.unsafeOffer(freed, undefined)
              })
            )
          ),
        { immediate: false }
      )
    }

    let stopping = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopping = true
      })
    )
    const handOff = yield* service.handOffTo({
      workerId,
      kinds,
      sessionId,
      leaseMs,
      free: () => (stopping ? 0 : concurrency - running.size),
      accept: (job, state) => {
        if (stopping) return false
        startNow(job, state)
        return true
      }
    })

    yield* Effect.logDebug(`worker ${workerId} serving ${kinds.join(", ")}`)
    if (options.warmTokenizer ?? sessionId === undefined) {
      yield* FiberSet.run(
        fibers,
        Effect.zipRight(
          Effect.yieldNow(),
          Effect.sync(() => Tokenizer.warmUp())
        )
      )
    }
    // The queue's wake-ups come from a fiber of their own, never interrupted midway: interrupting a statement of the
    // queue (PostgreSQL) costs a cancel request and, under load, connections. After each wake-up it waits until a
    // take has come back short (the queue has nothing more for this worker now), so a queue that has work only for
    // others does not make it spin, and while takes come back full it asks the queue nothing (`awaitWork` first asks
    // when the next job falls due: a statement per take, needless while there are jobs to take).
    yield* FiberSet.run(
      fibers,
      Effect.forever(
        queue.awaitWork(kinds, sessionId).pipe(
          // Any failure, an interruption of somebody else's that the wait inherited included (a shared start cut short:
          // the #16 hang), must not leave the take loop without its waker. When this worker itself is being stopped,
          // the sleep below is where that interruption lands.
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Cause.isInterruptedOnly(cause)
                ? Effect.logDebug("waiting for work was interrupted", cause)
                : Effect.logWarning(
                    `waiting for work failed (${Cause.pretty(cause).split("\n")[0] ?? "unknown"}); waiting again in a second`
                  ),
              Effect.sleep(Duration.seconds(1))
            )
          ),
          Effect.zipRight(
            Effect.sync(() => {
              maybeWork = true
            })
          ),
          Effect.zipRight(Queue.offer(freed, undefined)),
          Effect.zipRight(Queue.take(looked))
        )
      )
    )
    serving = true
    /** Takes that failed in a row: the store is away (restarted, failed over, cut off). */
    let failedTakes = 0
    // The take loop: as many jobs as there are free slots (less the jobs on their way to it by hand-off) while the
    // queue may have some; otherwise wait for a slot to free up or for the queue to say something may be waiting.
    for (;;) {
      const free = concurrency - running.size - handOff.reserved()
      if (free <= 0 || !maybeWork) {
        yield* Queue.take(freed)
        continue
      }
      // Taken and started in one step: a take cut off by the worker's stop after it committed would leave its jobs
      // this worker's, run by nobody, until their leases ran out. Started, they are given back as the worker stops.
      const took = yield* Effect.uninterruptible(
        Effect.flatMap(
          queue.take({ workerId, kinds, limit: free, leaseMs, ...(sessionId === undefined ? {} : { sessionId }) }),
          (jobs) =>
            Effect.sync(() => {
              // Before telling the waiter: a wake-up after this look sets it again.
              if (jobs.length < free) tookShort()
              for (const job of jobs) startNow(job)
            })
        )
      ).pipe(Effect.either)
      // A store that is away for a while (a restart, a fail-over, a cut cable) does not end a worker serving every
      // session: it tries again, less and less often, while its attempts under way keep trying to record their
      // outcomes. The worker of one run tries for a few seconds, as the run's own reads do, and then ends the run,
      // which says how to go on: it would otherwise wait on a store that is broken for good (a full disk) for ever.
      if (took._tag === "Left") {
        failedTakes += 1
        if (sessionId !== undefined && failedTakes >= runTakeTries) return yield* took.left
        const waitMs = takeRetryMs(failedTakes)
        yield* Effect.logWarning(`could not take jobs (${took.left.message}); trying again in ${waitMs / 1_000} s`)
        yield* Effect.sleep(Duration.millis(waitMs))
        continue
      }
      if (failedTakes > 0) {
        yield* Effect.logWarning(`taking jobs again: the task queue answered after ${failedTakes} failed takes`)
        failedTakes = 0
      }
    }
  }).pipe(Effect.scoped, withEventLoopTurns(), (worker) =>
    // Serving one session, the worker is a part of that run's trace. Serving all of them, it runs for days: a span
    // around it would never end, so what it does (each attempt) is traced on its own instead.
    options.sessionId === undefined
      ? worker
      : Effect.withSpan(worker, "Worker.run", { attributes: { workerId, sessionId: options.sessionId } })
  )
}
