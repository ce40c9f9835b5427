/**
 * Crash safety: a process running a plan (with a retry, a question answered during the run, and compaction between
 * steps) is killed with SIGKILL at random points; each time, `resume` here finishes the plan, and the log must hold
 * every invariant: one completion per task, one `PlanningCompleted` and nothing after it, contiguous sequences, no
 * attempt claimed twice, no task dispatched before what it depends on completed, and a replay equal to the result.
 *
 * The kill points come from a seeded generator: each kill waits until the log has reached a drawn sequence (read from
 * the SQLite file as the child writes it), then a drawn few milliseconds more, so the kills spread over the whole plan
 * however fast or slow the machine is. The seed and every kill point are logged, and `CRASH_SEED=<n>` replays a
 * failing sequence.
 */
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Context, Duration, Effect, Fiber, Layer, Option } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import type { PlannerConfig } from "../../src/domain/Config.js"
import * as Planner from "../../src/domain/Planner.js"
import * as Jobs from "../../src/infra/Jobs.js"
import { type PlannerEventRecord, PlannerStore } from "../../src/infra/PlannerStore.js"
import * as ScriptExecutor from "../../src/infra/ScriptExecutor.js"
import { within } from "../infra/EventStoreContract.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { spawnFixture } from "../support/child.js"
import { plannerRuntime, storeLayer } from "./fixtures/runtime.js"

const request =
  "Fetch the sales data. Ask which output format to use. Then transform the data. Index the documents. Finally write the report."

// The steps take their time so that the plan lasts longer than the longest kill delay whatever the planner's own
// speed: a kill after the plan finished proves nothing.
const script = {
  rules: [
    {
      match: "fetch",
      delayMs: 150,
      outcomes: [{ fail: "connection reset by peer", retryable: true }, { complete: "rows fetched" }]
    },
    { match: "format", delayMs: 100, outcomes: [{ ask: "Which output format?" }, { complete: "format {answer}" }] },
    { match: "transform", delayMs: 150, outcomes: [{ complete: "transformed" }] },
    { match: "index", delayMs: 150, outcomes: [{ complete: "indexed" }] },
    { match: "report", delayMs: 150, outcomes: [{ complete: "report written" }] }
  ],
  default: { complete: "done" }
}

const config: Partial<PlannerConfig> = {
  backoff: { initialDelayMs: 30, factor: 2, maxDelayMs: 200 },
  maxAttempts: 6,
  leaseMs: 5_000,
  // Small enough that the context is compacted between steps: kills also land around compactions.
  tokenBudget: 12
}

const answer = "parquet"
const iterations = 12
/** Each kill waits for a sequence drawn from [1, this] (the plan's log has about 27 events)... */
const maxKillSequence = 25
/** ...then for a delay drawn from [0, this), so it lands inside a step as well as right after an append. */
const maxKillDelayMs = 60

/** Waits until session `sessionId`'s log in the SQLite file has reached `sequence` (or `stop` says to give up). */
const logReaches = (filename: string, sessionId: string, sequence: number, stop: Effect.Effect<boolean>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new Database(filename, { readonly: true, fileMustExist: true })),
    (db) => {
      const last = db.prepare("SELECT coalesce(max(sequence), 0) AS last FROM events WHERE aggregate_id = ?")
      const reached = Effect.sync(() => (last.get(sessionId) as { last: number }).last >= sequence)
      const poll: Effect.Effect<void> = Effect.flatMap(Effect.zip(reached, stop), ([done, stopped]) =>
        done || stopped
          ? Effect.void
          : Effect.zipRight(
              Effect.sleep(Duration.millis(5)),
              Effect.suspend(() => poll)
            )
      )
      return poll
    },
    (db) => Effect.sync(() => db.close())
  )

/** mulberry32: a small seeded generator, so a failing sequence of kill points can be replayed. */
const seeded = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** Every invariant the log of a finished plan must hold; `where` says which kill it was after. */
const checkLog = (records: ReadonlyArray<PlannerEventRecord>, final: Planner.PlannerState, where: string) => {
  const events = records.map((record) => record.event)
  expect(
    records.map((record) => record.sequence),
    `${where}: contiguous sequences`
  ).toEqual(records.map((_, index) => index + 1))
  expect(Planner.fold(events), `${where}: replay equals the resumed state`).toEqual(final)
  expect(final.status, where).toBe("Succeeded")

  const completions = new Map<number, number>()
  const claimed = new Set<string>()
  let state = Planner.initialState
  for (const [index, event] of events.entries()) {
    switch (event._tag) {
      case "TaskDispatched": {
        const task = Planner.task(state, event.taskId)
        const waitingFor = (task?.dependsOn ?? []).filter((id) => Planner.task(state, id)?.status !== "Completed")
        expect(
          waitingFor,
          `${where}: task ${event.taskId} dispatched at #${index + 1} before its dependencies`
        ).toEqual([])
        break
      }
      case "TaskClaimed": {
        const attempt = `${event.taskId}/${event.attempt}`
        expect(claimed.has(attempt), `${where}: attempt ${attempt} claimed twice`).toBe(false)
        claimed.add(attempt)
        expect(Planner.task(state, event.taskId)?.status, `${where}: claim of ${attempt}`).toBe("Dispatched")
        break
      }
      case "TaskStatusUpdated":
        if (event.status === "Completed") completions.set(event.taskId, (completions.get(event.taskId) ?? 0) + 1)
        break
      case "PlanningCompleted":
        expect(index, `${where}: PlanningCompleted is the last event`).toBe(events.length - 1)
        break
      default:
        break
    }
    state = Planner.evolve(state, event)
  }
  expect(state, `${where}: event by event replay`).toEqual(final)
  expect(
    final.tasks.map((task) => completions.get(task.id) ?? 0),
    `${where}: one completion per task`
  ).toEqual(final.tasks.map(() => 1))
  expect(events.filter((event) => event._tag === "PlanningCompleted").length, where).toBe(1)
  // The answer reached the step that asked for it.
  if (events.some((event) => event._tag === "ClarificationReceived")) {
    expect(final.tasks[1]?.result, where).toBe(`format ${answer}`)
  }
}

describe("crash safety", () => {
  it.live(
    "a run killed with SIGKILL at random points is finished by resume, and its log holds every invariant",
    () =>
      Effect.gen(function* () {
        const seed = Number(process.env.CRASH_SEED ?? 20_261_124)
        const random = seeded(seed)
        const points = Array.from({ length: iterations }, () => ({
          sequence: 1 + Math.floor(random() * maxKillSequence),
          delay: Math.floor(random() * maxKillDelayMs)
        }))
        yield* Effect.logInfo(
          `crash test seed ${seed}: kills at ${points.map((point) => `event ${point.sequence} + ${point.delay} ms`).join(", ")}`
        )
        const executor = ScriptExecutor.make(yield* ScriptExecutor.parse(JSON.stringify(script), "crash-script.json"))
        const killedAt: Array<number> = []

        // Each child starts (about 1.5 s here) while the previous iteration is still being resumed and checked.
        const prepare = (iteration: number) =>
          Effect.gen(function* () {
            const filename = yield* freshSqliteFile
            const sessionId = `crash-${iteration}`
            const child = yield* spawnFixture(new URL("./fixtures/crashRun.ts", import.meta.url), [
              filename,
              sessionId,
              JSON.stringify(script),
              request,
              JSON.stringify(config)
            ])
            yield* child
              .waitFor((line) => line === "ready")
              .pipe(within(60, `iteration ${iteration}: the child's start`))
            return { filename, sessionId, child }
          })

        yield* Effect.scoped(
          Effect.gen(function* () {
            let next = yield* Effect.fork(prepare(0))
            for (const [iteration, point] of points.entries()) {
              const where = `seed ${seed}, iteration ${iteration}, kill at event ${point.sequence} + ${point.delay} ms`
              const { filename, sessionId, child } = yield* Fiber.join(next)
              if (iteration + 1 < iterations) next = yield* Effect.fork(prepare(iteration + 1))
              yield* child.send("go")
              yield* child.waitFor((line) => line === "started").pipe(within(30, `${where}: the plan's start`))
              const exitedAlready = Effect.map(
                Effect.either(Effect.timeout(child.exited, Duration.zero)),
                (exit) => exit._tag === "Right"
              )
              yield* logReaches(filename, sessionId, point.sequence, exitedAlready).pipe(
                within(60, `${where}: the log's growth`)
              )
              yield* Effect.sleep(Duration.millis(point.delay))
              yield* child.kill("SIGKILL")
              const code = yield* child.exited.pipe(within(10, `${where}: the child's exit`))

              yield* Effect.scoped(
                Effect.gen(function* () {
                  const context = yield* Layer.build(plannerRuntime(storeLayer(filename), executor))
                  const store = Context.get(context, PlannerStore)
                  const service = Context.get(context, PlannerService.PlannerService)
                  killedAt.push(code === 0 ? -1 : yield* store.lastSequence(sessionId))
                  // Wherever the kill landed, the queue holds exactly the jobs the log implies: a dispatch and its
                  // job, an outcome and its job's completion, committed together or not at all.
                  const logged = yield* service.state(sessionId)
                  const jobKey = (job: { taskId: number; attempt: number; kind: string; runAt: number }) =>
                    `${job.taskId}/${job.attempt}/${job.kind}/${job.runAt}`
                  expect(
                    (yield* service.queue.list(sessionId)).map(jobKey),
                    `${where}: the queue equals its rebuild from the log`
                  ).toEqual(Jobs.jobsFromState(sessionId, logged).map(jobKey))
                  const result = yield* Runner.resume(sessionId, {
                    onClarification: () => Effect.succeed(Option.some(answer))
                  }).pipe(Effect.provide(context), within(20, `${where}: resume`))
                  expect(result.waiting, where).toBe(false)
                  checkLog(yield* store.load(sessionId), result.state, where)
                  expect(yield* service.queue.list(sessionId), `${where}: no job left`).toEqual([])
                })
              )
            }
          })
        )
        yield* Effect.logInfo(`crash test seed ${seed}: the log was at sequence ${killedAt.join(", ")} (-1: finished)`)
        // Most kills must have landed inside the plan, at different points, or the test proves little.
        const inside = killedAt.filter((sequence) => sequence > 0)
        expect(inside.length).toBeGreaterThanOrEqual(iterations / 2)
        expect(new Set(inside).size).toBeGreaterThanOrEqual(iterations / 3)
      }),
    360_000
  )
})
