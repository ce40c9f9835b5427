/**
 * The sessions this worker writes (PostgreSQL, a worker serving every session; see `TaskQueue.OutcomeReports`): one
 * worker per session records the outcomes the others report into their jobs' rows, so that several worker processes
 * on one plan do not each append their own outcomes, racing each other and catching up on what the others wrote.
 *
 * - A worker whose report found the session without a live writer (`vacant`), or whose sweep found reports nobody
 *   records (a writer's lease ran out, or its process on this host is gone), claims the session's writer row. Once
 *   it writes the session, it LISTENs for reports on its own channel (active before it looks, so none is missed;
 *   a report notifies only its session's writer), and its own outcomes go straight to the log (`writes`).
 * - One fiber records what is reported, session by session, in batches (`record`: one append, which completes their
 *   jobs in its transaction). A report's notification carries the report when it fits, so the writer records it
 *   without reading it back; what it must read (after it claims a session, after a notification too large to carry
 *   the report, after a failure, when the sweep finds a report left) it reads with `pending`.
 * - One `extendWriter` per lease interval renews its leases on all the sessions it writes; a session whose row is no
 *   longer its own (its lease ran out and another worker claimed it) is dropped.
 * - A session whose recording fails rests, tried again after a backoff of its own (1 s doubling up to 30 s), while
 *   the fiber goes on recording the other sessions.
 * - It stops writing a session once the session has ended (whoever recorded the end), and gives up every session when
 *   the worker stops, so the next report elects another writer at once.
 *
 * Two writers for a moment (a lease that ran out while its holder still wrote) cost a conflict, not a wrong log: the
 * writer appends at the session's sequence like every other append, and the planner accepts one outcome per attempt.
 */
import { Clock, Duration, Effect, FiberSet, Queue, type Scope } from "effect"
import { jobKeyString, type OutcomeReports, type PendingReport, type TaskQueueError } from "../../infra/TaskQueue.js"
import { renewalInterval } from "./LeaseKeeper.js"
import { paced } from "./Pacing.js"
import { isDeadLocalWorker } from "./WorkerIdentity.js"

export interface SessionWriter {
  /** Whether this worker writes the session: its own outcomes then go straight to the log. */
  readonly writes: (sessionId: string) => boolean
  /** A report of this worker found the session with no live writer: become it, unless another worker just did. */
  readonly vacant: (sessionId: string) => Effect.Effect<void>
  /**
   * This worker recorded the session's end itself (its own outcome, which went straight to the log): it writes the
   * session no more, and its row goes rather than being renewed for as long as the worker runs.
   */
  readonly ended: (sessionId: string) => Effect.Effect<void>
}

export interface SessionWriterOptions {
  readonly reports: OutcomeReports
  readonly workerId: string
  /** The writer's lease; renewed every third of it. */
  readonly leaseMs: number
  /** How often to look for reports nobody records. */
  readonly sweepInterval: Duration.DurationInput
  /**
   * The longest wait between two looks while they find nothing, this worker writes no session and it is idle (see
   * `Pacing`); default `sweepInterval`, a look every interval whatever it finds.
   */
  readonly quietInterval?: Duration.DurationInput
  /** Whether the worker was busy since the last call (see `Pacing.Activity`); default never. */
  readonly busy?: () => boolean
  /** Reports recorded per append (each completes its job in the append's own statement up to a bound). */
  readonly batch?: number
  /** Whether the session is over (nothing more to write); false when that cannot be known now. */
  readonly isOver: (sessionId: string) => Effect.Effect<boolean>
  /** Records a batch of one session's reports in the log; `ended`: the session is over, nothing more to write. */
  readonly record: (
    sessionId: string,
    reports: ReadonlyArray<PendingReport>
  ) => Effect.Effect<{ readonly ended: boolean }, { readonly message: string }>
}

/** Reports recorded per append by default, by a session's writer and by the run of one session (`LeftReports`). */
export const reportsPerAppend = 16

/**
 * Reads a session's stored reports back and records them (`record`: whether to go on, false once the session is
 * over), batch after batch while batches come back full: fewer than a batch was all of them when it read, and a report
 * stored since notifies its writer. A report still there after its batch was recorded is not going away by looking
 * again at once: it is left for the next look (the sweep's), rather than spun on. Whether nothing was stored at all.
 */
export const recordStored = <E>(
  reports: Pick<OutcomeReports, "pending">,
  sessionId: string,
  batch: number,
  record: (waiting: ReadonlyArray<PendingReport>) => Effect.Effect<boolean, E>
): Effect.Effect<boolean, E | TaskQueueError> =>
  Effect.gen(function* () {
    let recorded = new Set<string>()
    for (let reads = 0; ; reads++) {
      const waiting = yield* reports.pending(sessionId, batch)
      if (waiting.length === 0) return reads === 0
      const keys = waiting.map((report) => jobKeyString(report.key))
      if (keys.some((key) => recorded.has(key))) {
        yield* Effect.logWarning(
          `reports of session ${sessionId} were still there after being recorded; trying again later`
        )
        return false
      }
      recorded = new Set(keys)
      if (!(yield* record(waiting)) || waiting.length < batch) return false
    }
  })

export const make = (options: SessionWriterOptions): Effect.Effect<SessionWriter, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { reports, workerId, leaseMs } = options
    const batch = Math.max(1, options.batch ?? reportsPerAppend)
    const written = new Set<string>()
    /** Sessions that may have reports waiting. */
    const dirty = new Set<string>()
    /** By session: reports their notifications carried, not recorded yet (by job key). */
    const heard = new Map<string, Map<string, PendingReport>>()
    /** Sessions whose reports must be read back (`pending`): claimed, swept, or notified without the report. */
    const unread = new Set<string>()
    /**
     * By session: how many times in a row recording its reports failed. A session that fails rests (its recording is
     * tried again after a backoff, 1 s doubling up to 30 s), so that a session whose log cannot be written or read
     * (a corrupt event, say) does not hold up the other sessions this worker writes.
     */
    const failures = new Map<string, number>()
    /** By session: the rest it is in, numbered, so that the timer of a rest that was ended (forgotten) ends no other. */
    const resting = new Map<string, number>()
    let rests = 0
    const wake = yield* Queue.sliding<void>(1)
    // Stopping: every session goes to the next worker that reports, at once rather than when the leases run out.
    // Added before the fibers below start, so that it runs after they have stopped: a claim they were making goes too.
    let stopped = false
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        stopped = true
        const mine = [...written]
        for (const sessionId of mine) forget(sessionId)
        return Effect.ignoreLogged(reports.releaseWriter(workerId, mine))
      })
    )

    const fibers = yield* FiberSet.make<void, never>()

    const look = (sessionId: string) => {
      dirty.add(sessionId)
      Queue.unsafeOffer(wake, undefined)
    }
    const readBack = (sessionId: string) => {
      unread.add(sessionId)
      look(sessionId)
    }
    const forget = (sessionId: string) => {
      written.delete(sessionId)
      heard.delete(sessionId)
      unread.delete(sessionId)
      failures.delete(sessionId)
      resting.delete(sessionId)
    }
    /**
     * The session is over: written no more, and its row goes. Uninterruptible: a stop between the two would leave a row
     * the stopping worker no longer knows to give up. A row that cannot be deleted runs out with its lease.
     */
    const giveUp = (sessionId: string): Effect.Effect<void> =>
      Effect.uninterruptible(
        Effect.suspend(() => {
          forget(sessionId)
          return Effect.catchAll(reports.releaseWriter(workerId, [sessionId]), (error) =>
            Effect.logWarning(`could not give up writing session ${sessionId}: ${error.message}`)
          )
        })
      )
    /**
     * LISTEN for reports of the sessions this worker writes (on its own channel): started with the first session it
     * writes, active before anybody relies on it.
     */
    const startListening = yield* reports.listen(
      workerId,
      (sessionId, report) => {
        if (!written.has(sessionId)) return
        if (report === undefined) return readBack(sessionId)
        let reportsOf = heard.get(sessionId)
        if (reportsOf === undefined) {
          reportsOf = new Map()
          heard.set(sessionId, reportsOf)
        }
        reportsOf.set(jobKeyString(report.key), report)
        look(sessionId)
      },
      () => {
        // Listening again after it was lost: what was reported meanwhile notified nobody, so each session reads back.
        for (const sessionId of written) readBack(sessionId)
      }
    )

    /** Claims the session's writer row; on success, listens, then looks for what waits. */
    const claim = (sessionId: string, replacing?: string) =>
      Effect.gen(function* () {
        if (written.has(sessionId)) return readBack(sessionId)
        if (stopped) return
        // Uninterruptible from the claim to its note in `written`: a claim cut short after it committed would leave a
        // row the stopping worker does not know to give up, live for a lease with nobody recording.
        const won = yield* Effect.uninterruptible(
          Effect.flatMap(reports.claimWriter(sessionId, workerId, leaseMs, replacing), (claimed) => {
            if (!claimed) return Effect.succeed(false)
            // Stopped meanwhile (an attempt's report, as the worker stops): the session goes to the next worker at once.
            if (stopped) return Effect.as(reports.releaseWriter(workerId, [sessionId]), false)
            // Its own outcomes go to the log from now on; what others report is read once LISTEN is active.
            written.add(sessionId)
            return Effect.succeed(true)
          })
        )
        if (!won) return
        yield* Effect.logDebug(`worker ${workerId} writes session ${sessionId}`)
        yield* startListening
        readBack(sessionId)
      }).pipe(
        Effect.catchAll((error) =>
          Effect.logWarning(`could not become the writer of session ${sessionId}: ${error.message}`)
        )
      )

    /** Records a batch; false once the session is over (it is then written no more). */
    const recordBatch = (sessionId: string, waiting: ReadonlyArray<PendingReport>) =>
      Effect.gen(function* () {
        const { ended } = yield* options.record(sessionId, waiting)
        if (ended) yield* giveUp(sessionId)
        return !ended
      })

    /**
     * Records what the session's notifications carried, then, when it must, what the store has: batch after batch,
     * while batches come back full (fewer than a batch was all of them when it read; a report stored since notifies
     * this writer). Stops writing the session once it is over.
     */
    const recordAll = (sessionId: string): Effect.Effect<void> =>
      Effect.gen(function* () {
        for (;;) {
          const inHand = heard.get(sessionId)
          if (inHand === undefined || inHand.size === 0) break
          const waiting = [...inHand.values()].slice(0, batch)
          for (const report of waiting) inHand.delete(jobKeyString(report.key))
          if (!(yield* recordBatch(sessionId, waiting))) return
        }
        if (!unread.delete(sessionId)) return
        const none = yield* recordStored(reports, sessionId, batch, (waiting) => {
          for (const report of waiting) heard.get(sessionId)?.delete(jobKeyString(report.key))
          return recordBatch(sessionId, waiting)
        })
        // Nothing to record (a claim or a sweep that came late): a session that is over is not kept, renewed for as
        // long as this worker runs.
        if (none && (yield* options.isOver(sessionId))) yield* giveUp(sessionId)
      }).pipe(
        Effect.zipRight(Effect.sync(() => failures.delete(sessionId))),
        Effect.catchAll((error) => {
          const message = `recording the reported outcomes of session ${sessionId} failed (${error.message})`
          // Written no more meanwhile (it ended, or its lease went to another worker): nothing to try again here.
          if (!written.has(sessionId)) return Effect.logWarning(message)
          const failed = (failures.get(sessionId) ?? 0) + 1
          failures.set(sessionId, failed)
          const rest = ++rests
          resting.set(sessionId, rest)
          const wait = Duration.millis(Math.min(30_000, 1_000 * 2 ** (failed - 1)))
          return Effect.logWarning(`${message}; trying again in ${Duration.format(wait)}`).pipe(
            Effect.zipRight(
              FiberSet.run(
                fibers,
                Effect.delay(
                  Effect.sync(() => {
                    if (resting.get(sessionId) !== rest) return
                    resting.delete(sessionId)
                    // What was taken in hand went with the failed batch: the store still has it.
                    readBack(sessionId)
                  }),
                  wait
                )
              )
            ),
            Effect.asVoid
          )
        })
      )

    yield* FiberSet.run(
      fibers,
      Effect.forever(
        Effect.gen(function* () {
          yield* Queue.take(wake)
          while (dirty.size > 0) {
            const sessions = [...dirty]
            dirty.clear()
            // A resting session is looked at again when its rest ends (it reads back whatever came meanwhile).
            for (const sessionId of sessions) {
              if (written.has(sessionId) && !resting.has(sessionId)) yield* recordAll(sessionId)
            }
          }
        })
      )
    )

    // The writer's leases: one statement per interval for every session it writes.
    yield* FiberSet.run(
      fibers,
      Effect.forever(
        Effect.zipRight(
          Effect.sleep(renewalInterval(leaseMs)),
          Effect.suspend(() => {
            const mine = [...written]
            if (mine.length === 0) return Effect.void
            return reports.extendWriter(workerId, mine, leaseMs).pipe(
              Effect.flatMap((kept) =>
                Effect.sync(() => {
                  const still = new Set(kept)
                  for (const sessionId of mine) if (!still.has(sessionId)) forget(sessionId)
                })
              ),
              Effect.catchAll((error) => Effect.logWarning(`could not extend the writer's leases: ${error.message}`))
            )
          })
        )
      )
    )

    // Reports nobody records: their writer's lease ran out, or it is a process of this host that is gone (replaced at
    // once rather than when its lease runs out). A report older than a sweep interval whose writer is this worker is
    // looked for again, in case its notification was lost.
    // The look keeps its pace while it finds reports, while this worker writes a session (its safety net for lost
    // notifications) and while it works (its reports may go to a writer that dies); otherwise it slows down.
    const sweepMs = Duration.toMillis(Duration.decode(options.sweepInterval))
    const sweep = Effect.flatMap(Clock.currentTimeMillis, (now) => reports.unrecorded(now - sweepMs)).pipe(
      Effect.flatMap((sessions) =>
        Effect.forEach(
          sessions,
          ({ sessionId, writer }) =>
            writer === undefined || writer === workerId
              ? claim(sessionId)
              : isDeadLocalWorker(writer)
                ? claim(sessionId, writer)
                : Effect.void,
          { discard: true }
        ).pipe(Effect.as(sessions.length > 0 || written.size > 0))
      ),
      Effect.catchAll((error) =>
        Effect.as(Effect.logWarning(`could not look for unrecorded reports: ${error.message}`), true)
      )
    )
    yield* FiberSet.run(
      fibers,
      paced({
        interval: options.sweepInterval,
        quiet: options.quietInterval ?? options.sweepInterval,
        check: sweep,
        busy: options.busy ?? (() => false)
      })
    )

    return {
      writes: (sessionId) => written.has(sessionId),
      vacant: claim,
      ended: (sessionId) => (written.has(sessionId) ? giveUp(sessionId) : Effect.void)
    }
  })
