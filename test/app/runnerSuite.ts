/**
 * End-to-end scenarios for running plans, run unchanged against every event store layer: a real worker, the real
 * script executor, real attachment checks and the heuristic compactor, with real time.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Deferred, Effect, Fiber, type Layer, Option, Ref, Stream } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import { ClaimTask, Initialize } from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import type { EventStore } from "../../src/infra/EventStore.js"
import { type ExecutorService, Outcome } from "../../src/infra/Executor.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { plannerRuntime } from "./fixtures/runtime.js"

/** Fast retries, so scenarios with failures take milliseconds. */
export const fast: Partial<PlannerConfig> = {
  backoff: { initialDelayMs: 20, factor: 2, maxDelayMs: 100 },
  leaseMs: 2_000
}

const script = (json: unknown) =>
  ScriptExecutor.parse(JSON.stringify(json), "test-script.json").pipe(Effect.map(ScriptExecutor.make))

const statuses = (state: Planner.PlannerState) => state.tasks.map((task) => task.status)

/** Starts a session from explicit tasks (an LLM's plan), bypassing the parser. */
const startWith = (tasks: ReadonlyArray<TaskPlan>, config: Partial<PlannerConfig> = {}) =>
  Effect.gen(function* () {
    const service = yield* PlannerService.PlannerService
    const at = yield* Clock.currentTimeMillis
    const sessionId = Runner.newSessionId(at)
    yield* service.execute(
      sessionId,
      new Initialize({ request: "explicit plan", tasks, config: { ...defaultConfig, ...fast, ...config }, at })
    )
    return sessionId
  })

/** A script whose "expiry" task asks how long cookies live, then completes with the answer. */
const asksForExpiry = {
  rules: [
    {
      match: "expiry",
      outcomes: [{ ask: "How long should cookies live?" }, { complete: "expiry set to {answer}" }]
    }
  ],
  default: { complete: "ok" }
}

const independent = (count: number): ReadonlyArray<TaskPlan> =>
  Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    description: `independent step ${index + 1}`,
    kind: "Processing",
    dependsOn: [],
    attachments: []
  }))

export const runnerSuite = (name: string, makeStore: () => Layer.Layer<EventStore, unknown>) => {
  const withScript =
    (json: unknown) =>
    <A, E, R>(body: Effect.Effect<A, E, R>) =>
      Effect.flatMap(script(json), (executor) => Effect.provide(body, plannerRuntime(makeStore(), executor)))

  describe(`running plans on ${name}`, () => {
    it.live("a multi-task plan runs to completion with every result recorded", () =>
      Effect.gen(function* () {
        const { sessionId } = yield* Runner.start("Write the code. Then test it. Finally deploy it.", { config: fast })
        const result = yield* Runner.run(sessionId)
        expect(result.waiting).toBe(false)
        expect(result.state.status).toBe("Succeeded")
        expect(result.state.tasks.map((task) => task.result)).toEqual([
          "did: Write the code",
          "did: test it",
          "did: deploy it"
        ])
        // The log replays to the same state.
        const records = yield* Runner.history(sessionId)
        expect(Planner.fold(records.map((record) => record.event))).toEqual(result.state)
        // One request, one correlation id, on every event.
        expect(new Set(records.map((record) => record.metadata.correlationId))).toEqual(new Set([sessionId]))
      }).pipe(withScript({ rules: [], default: { complete: "did: {description}" } }))
    )

    it.live(
      "observe follows a run from its history into its live events, each with the state after it, and ends with the event that finishes the plan",
      () =>
        Effect.gen(function* () {
          const sessionId = yield* startWith(independent(6))
          // Followed from before the run: the history so far, then what the run records, as it records it.
          const following = yield* Deferred.make<void>()
          const followed = yield* Effect.fork(
            Stream.runCollect(Runner.observe(sessionId).pipe(Stream.tap(() => Deferred.succeed(following, undefined))))
          )
          const after = yield* Effect.fork(Stream.runCollect(Runner.observe(sessionId, { afterSequence: 3 })))
          yield* Deferred.await(following)
          const result = yield* Runner.run(sessionId)
          expect(result.state.status).toBe("Succeeded")
          const records = yield* Runner.history(sessionId)
          const steps = Chunk.toReadonlyArray(yield* Fiber.join(followed))
          expect(steps.map((step) => step.record.sequence)).toEqual(records.map((record) => record.sequence))
          steps.forEach((step, index) => {
            expect(step.state).toEqual(Planner.fold(records.slice(0, index + 1).map((record) => record.event)))
          })
          expect(steps.at(-1)?.record.event._tag).toBe("PlanningCompleted")
          const later = Chunk.toReadonlyArray(yield* Fiber.join(after))
          expect(later.map((step) => step.record.sequence)).toEqual(
            records.filter((record) => record.sequence > 3).map((record) => record.sequence)
          )
          expect(later.at(-1)?.state).toEqual(result.state)
          // Followed after the end: the whole history, and the stream ends; from past the end, nothing, and it ends.
          const replayed = Chunk.toReadonlyArray(yield* Stream.runCollect(Runner.observe(sessionId)))
          expect(replayed.map((step) => step.state)).toEqual(steps.map((step) => step.state))
          const last = records.at(-1)?.sequence ?? 0
          expect(Chunk.size(yield* Stream.runCollect(Runner.observe(sessionId, { afterSequence: last })))).toBe(0)
        }).pipe(withScript({ rules: [], default: { complete: "did: {description}" } }))
    )

    it.live("a failed attempt is retried after its backoff and then succeeds", () =>
      Effect.gen(function* () {
        const { sessionId } = yield* Runner.start("Fetch the data. Then summarise it.", { config: fast })
        const result = yield* Runner.run(sessionId)
        expect(result.state.status).toBe("Succeeded")
        const records = yield* Runner.history(sessionId)
        const retry = records.find((record) => record.event._tag === "TaskRetryScheduled")
        expect(retry?.event._tag === "TaskRetryScheduled" && retry.event.error).toBe("upstream timed out")
        const task = result.state.tasks[0]
        expect([task?.attempt, task?.failures, task?.result]).toEqual([2, 1, "data fetched"])
        // The retry was dispatched at once, its job to run at the time recorded in its event, and no worker started
        // it earlier: the backoff lives in the queue, not in a timer.
        const retryAt = retry?.event._tag === "TaskRetryScheduled" ? retry.event.retryAt : Infinity
        const redispatch = records.find(
          (r) => r.event._tag === "TaskDispatched" && r.event.taskId === 1 && r.event.attempt === 2
        )
        expect(redispatch?.event._tag === "TaskDispatched" && redispatch.event.runAt).toBe(retryAt)
        const restart = records.find(
          (r) => r.event._tag === "TaskClaimed" && r.event.taskId === 1 && r.event.attempt === 2
        )
        expect(restart?.event.at).toBeGreaterThanOrEqual(retryAt)
      }).pipe(
        withScript({
          rules: [
            {
              match: "fetch",
              outcomes: [{ fail: "upstream timed out", retryable: true }, { complete: "data fetched" }]
            }
          ],
          default: { complete: "ok" }
        })
      )
    )

    it.live("a non-retryable failure under the continue policy skips its dependents and runs the rest", () =>
      Effect.gen(function* () {
        const tasks: ReadonlyArray<TaskPlan> = [
          { id: 1, description: "compile the module", kind: "Processing", dependsOn: [], attachments: [] },
          { id: 2, description: "test the module", kind: "Processing", dependsOn: [1], attachments: [] },
          { id: 3, description: "write the changelog", kind: "Processing", dependsOn: [], attachments: [] }
        ]
        const sessionId = yield* startWith(tasks, { onFailure: "continue" })
        const result = yield* Runner.run(sessionId)
        expect(result.state.status).toBe("Failed")
        expect(statuses(result.state)).toEqual(["Failed", "Skipped", "Completed"])
        expect(result.state.summary).toBe("1 of 3 tasks completed; task 1 failed: syntax error on line 3; 1 skipped.")
      }).pipe(
        withScript({
          rules: [{ match: "compile", outcomes: [{ fail: "syntax error on line 3", retryable: false }] }],
          default: { complete: "ok" }
        })
      )
    )

    it.live("a failure under the abort policy cancels everything unfinished", () =>
      Effect.gen(function* () {
        const sessionId = yield* startWith(
          [
            { id: 1, description: "migrate the database", kind: "Processing", dependsOn: [], attachments: [] },
            { id: 2, description: "slow report", kind: "Processing", dependsOn: [], attachments: [] },
            { id: 3, description: "announce", kind: "Processing", dependsOn: [1], attachments: [] }
          ],
          { onFailure: "abort", maxAttempts: 1 }
        )
        const result = yield* Runner.run(sessionId)
        expect(result.state.status).toBe("Failed")
        expect(statuses(result.state)).toEqual(["Failed", "Cancelled", "Cancelled"])
      }).pipe(
        withScript({
          rules: [
            { match: "migrate", outcomes: [{ fail: "disk full" }] },
            { match: "slow", delayMs: 10_000, outcomes: [{ complete: "too late" }] }
          ],
          default: { complete: "ok" }
        })
      )
    )

    it.live("a clarification pauses the run; the answer resumes it and reaches the executor", () =>
      Effect.gen(function* () {
        const { sessionId } = yield* Runner.start("Set the cookie expiry. Then write tests.", { config: fast })
        const paused = yield* Runner.run(sessionId)
        expect(paused.waiting).toBe(true)
        expect(statuses(paused.state)).toEqual(["NeedsClarification", "Planned"])
        expect(paused.state.tasks[0]?.clarifications).toEqual([{ question: "How long should cookies live?" }])
        yield* Runner.answer(sessionId, 1, "24 hours")
        const done = yield* Runner.resume(sessionId)
        expect(done.state.status).toBe("Succeeded")
        expect(done.state.tasks[0]?.result).toBe("expiry set to 24 hours")
      }).pipe(withScript(asksForExpiry))
    )

    it.live(
      "progress reports every event after the state a run began from, once and in order, with the state after it",
      () =>
        Effect.gen(function* () {
          const { sessionId } = yield* Runner.start("Set the cookie expiry. Then write tests.", { config: fast })
          // A run that pauses, then a resume that begins from where the first one stopped.
          for (const run of [Runner.run, Runner.resume]) {
            const before = yield* Runner.existing(sessionId)
            const seen: Array<Runner.Progress> = []
            const result = yield* run(sessionId, { onProgress: (progress) => Effect.sync(() => seen.push(progress)) })
            const log = (yield* Runner.history(sessionId)).map((record) => record.event)
            expect(seen.map((progress) => progress.record.sequence)).toEqual(
              Array.from({ length: result.state.version - before.version }, (_, index) => before.version + index + 1)
            )
            for (const progress of seen) {
              expect(progress.state).toEqual(Planner.fold(log.slice(0, progress.record.sequence)))
            }
            if (result.waiting) yield* Runner.answer(sessionId, 1, "24 hours")
          }
          expect((yield* Runner.existing(sessionId)).status).toBe("Succeeded")
        }).pipe(withScript(asksForExpiry))
    )

    it.live("a question answered by a handler during the run does not stop it", () =>
      Effect.gen(function* () {
        const { sessionId } = yield* Runner.start("Pick a colour. Then paint.", { config: fast })
        const result = yield* Runner.run(sessionId, {
          onClarification: (_task, question) => Effect.succeed(Option.some(question.includes("colour") ? "blue" : "?"))
        })
        expect(result.waiting).toBe(false)
        expect(result.state.tasks.map((task) => task.result)).toEqual(["picked blue", "ok"])
      }).pipe(
        withScript({
          rules: [{ match: "colour", outcomes: [{ ask: "Which colour?" }, { complete: "picked {answer}" }] }],
          default: { complete: "ok" }
        })
      )
    )

    it.live("cancelling stops the running attempt and ends the plan", () =>
      Effect.gen(function* () {
        const { sessionId } = yield* Runner.start("Run the long job. Then report.", { config: fast })
        const running = yield* Effect.fork(Runner.run(sessionId))
        // Wait until the long job is claimed, then cancel.
        yield* Effect.gen(function* () {
          const state = yield* Runner.existing(sessionId)
          if (state.tasks[0]?.status !== "Running") return yield* Effect.fail("not yet")
        }).pipe(Effect.retry({ times: 200, schedule: undefined }), Effect.delay("5 millis"), Effect.eventually)
        yield* Runner.cancel(sessionId, "no longer needed")
        const result = yield* running.await.pipe(Effect.flatten)
        expect(result.state.status).toBe("Cancelled")
        expect(statuses(result.state)).toEqual(["Cancelled", "Cancelled"])
        expect(result.state.tasks[0]?.result).toBeUndefined()
      }).pipe(
        withScript({
          rules: [{ match: "long job", delayMs: 30_000, outcomes: [{ complete: "finished" }] }],
          default: { complete: "ok" }
        })
      )
    )

    it.live("independent tasks run in parallel, never more than maxParallel at once", () =>
      Effect.gen(function* () {
        const inFlight = yield* Ref.make({ now: 0, max: 0 })
        // Opens once maxParallel executions are in flight together: reaching it proves the parallelism without
        // depending on timing, and the peak proves the bound.
        const barrier = yield* Deferred.make<void>()
        const counting: ExecutorService = {
          name: "counting",
          execute: (context) =>
            Effect.gen(function* () {
              const { now } = yield* Ref.updateAndGet(inFlight, ({ now, max }) => ({
                now: now + 1,
                max: Math.max(max, now + 1)
              }))
              if (now === 3) yield* Deferred.succeed(barrier, undefined)
              yield* Deferred.await(barrier).pipe(
                Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "never 3 at once" })
              )
              yield* Ref.update(inFlight, ({ now, max }) => ({ now: now - 1, max }))
              return Outcome.Completed({ result: `done ${context.taskId}` })
            }).pipe(Effect.catchAll((error) => Effect.succeed(Outcome.Failed({ error, retryable: false }))))
        }
        const result = yield* Effect.gen(function* () {
          const sessionId = yield* startWith(independent(8), { maxParallel: 3 })
          return yield* Runner.run(sessionId, { concurrency: 8 })
        }).pipe(Effect.provide(plannerRuntime(makeStore(), counting)))
        expect(result.state.status).toBe("Succeeded")
        expect((yield* Ref.get(inFlight)).max).toBe(3)
      })
    )

    it.live("a missing attachment becomes a question, and the answer replaces it", () =>
      Effect.gen(function* () {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "planner-attach-"))
        fs.writeFileSync(path.join(dir, "real.md"), "# spec")
        const { sessionId } = yield* Runner.start("Summarise docs/missing.md", { config: fast })
        const paused = yield* Runner.run(sessionId, { workingDirectory: dir })
        expect(paused.waiting).toBe(true)
        const question = paused.state.tasks[0]?.clarifications[0]
        expect(question?.attachment).toEqual({ kind: "FileRef", value: "docs/missing.md" })
        expect(question?.question).toContain("docs/missing.md")
        yield* Runner.answer(sessionId, 1, "real.md")
        const done = yield* Runner.resume(sessionId, { workingDirectory: dir })
        expect(done.state.status).toBe("Succeeded")
        expect(done.state.tasks[0]?.attachments).toEqual([{ kind: "FileRef", value: "real.md" }])
      }).pipe(withScript({ rules: [], default: { complete: "summarised" } }))
    )

    it.live("the rolling context is compacted under the token budget and progress is undisturbed", () =>
      Effect.gen(function* () {
        const long = "word ".repeat(120)
        const { sessionId } = yield* Runner.start("- step one\n- step two\n- step three\n- step four", {
          config: { ...fast, tokenBudget: 150 }
        })
        const result = yield* Runner.run(sessionId)
        expect(result.state.status).toBe("Succeeded")
        const records = yield* Runner.history(sessionId)
        const compactions = records.filter((record) => record.event._tag === "ContextCompacted")
        expect(compactions.length).toBeGreaterThan(0)
        expect(result.state.tasks.some((task) => task.compacted)).toBe(true)
        expect(result.state.tasks.map((task) => task.result)).toEqual(Array(4).fill(long.trim()))
      }).pipe(withScript({ rules: [], default: { complete: "word ".repeat(120).trim() } }))
    )

    it.live("a task held by a worker whose process is gone is retried at once on resume", () =>
      Effect.gen(function* () {
        const service = yield* PlannerService.PlannerService
        const { sessionId } = yield* Runner.start("Index the repository", { config: { ...fast, leaseMs: 600_000 } })
        // A worker of this host with a pid that does not exist took the task's job, started it and died.
        const dead = `${os.hostname()}/2147483646/dead`
        const taken = yield* service.queue.take({ workerId: dead, limit: 1, leaseMs: 600_000, sessionId })
        expect(taken.map((job) => [job.taskId, job.attempt])).toEqual([[1, 1]])
        yield* service.execute(
          sessionId,
          (state) => new ClaimTask({ taskId: 1, attempt: state.tasks[0]?.attempt ?? 1, workerId: dead, at: Date.now() })
        )
        const result = yield* Runner.resume(sessionId)
        expect(result.state.status).toBe("Succeeded")
        const task = result.state.tasks[0]
        expect(task?.attempt).toBe(2)
        expect(task?.failures).toBe(1)
      }).pipe(withScript({ rules: [], default: { complete: "indexed" } }))
    )

    it.live(
      "a task whose worker's lease ran out is retried as its next attempt, the lost one counted as a failure",
      () =>
        Effect.gen(function* () {
          const service = yield* PlannerService.PlannerService
          const { sessionId } = yield* Runner.start("Index the repository", { config: fast })
          // A worker on another machine took the job, its start to be recorded with its outcome, and was never heard
          // from again: its lease runs out.
          const gone = "far-host/4242/gone"
          const taken = yield* service.queue.take({ workerId: gone, limit: 1, leaseMs: 50, sessionId })
          expect(taken.map((job) => [job.taskId, job.attempt, job.takes])).toEqual([[1, 1, 1]])
          yield* Effect.sleep("100 millis")
          const result = yield* Runner.resume(sessionId)
          expect(result.state.status).toBe("Succeeded")
          const task = result.state.tasks[0]
          expect(task?.attempt).toBe(2)
          expect(task?.failures).toBe(1)
          // Attempt 1 was taken back, not run again under its number: its failure says why.
          const history = yield* Runner.history(sessionId)
          const lost = history.flatMap((record) =>
            record.event._tag === "TaskRetryScheduled" ||
            (record.event._tag === "TaskStatusUpdated" && record.event.status === "Failed")
              ? [record.event]
              : []
          )
          expect(JSON.stringify(lost)).toContain("lease")
          expect(
            history.filter((record) => record.event._tag === "TaskStatusUpdated" && record.event.status === "Completed")
          ).toHaveLength(1)
        }).pipe(withScript({ rules: [], default: { complete: "indexed" } }))
    )

    it.live("whether a live worker serves a session is told by its jobs in the queue, not by its log", () =>
      Effect.gen(function* () {
        const service = yield* PlannerService.PlannerService
        const { sessionId } = yield* Runner.start("Index the repository", { config: fast })
        // Recorded as running, but nobody has taken its job: not served (as after its runner was killed).
        expect(yield* Runner.liveness(sessionId)).toEqual({ served: false, workers: [], jobs: 1, waiting: 1 })
        const [job] = yield* service.queue.take({ workerId: "w/1/live", limit: 1, leaseMs: 600_000, sessionId })
        expect(yield* Runner.liveness(sessionId)).toEqual({ served: true, workers: ["w/1/live"], jobs: 1, waiting: 0 })
        if (job !== undefined) yield* service.queue.release(job, "w/1/live")
        expect((yield* Runner.liveness(sessionId)).served).toBe(false)
      }).pipe(withScript({ rules: [], default: { complete: "indexed" } }))
    )

    it.live("resuming an unknown session is a clear error", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(Runner.resume("no-such-session"))
        expect(error._tag).toBe("UnknownSession")
        expect(error.message).toContain("no-such-session")
      }).pipe(withScript({ rules: [], default: { complete: "ok" } }))
    )
  })
}
