/**
 * `planner worker`: a long-lived worker against the same store as the other commands, for running executors on other
 * machines (or in another terminal). It prints a line for each task it takes and for how that task ends. SIGINT or
 * SIGTERM stop it cleanly: the attempts it holds are given back, so other workers take them at once.
 */
import { Effect, Option } from "effect"
import { type NodeKind, nodeKinds } from "../../domain/Task.js"
import { ExecutorRegistry } from "../../infra/Executor.js"
import * as MemoryLive from "../MemoryLive.js"
import * as Worker from "../Worker.js"
import { withEventLoopTurns } from "./EventLoop.js"
import { chooseSpec, type ExecutorSpec, makeExecutors, specText } from "./Executors.js"
import { ExitCode, sayingHowItStops, setInterruptExitCode, toFailure, unconfirmedStopReason, usage } from "./Failure.js"
import { checkLlmSettings } from "./LlmChoice.js"
import { clip, clock, firstLine, out } from "./Output.js"
import { runServices } from "./Services.js"
import { plannerLayer, resolveStore } from "./Store.js"
import { checkGatherMs } from "./WorkerFlags.js"

export interface WorkerFlags {
  readonly db: Option.Option<string>
  readonly json: boolean
  readonly verbose: boolean
  readonly kinds: Option.Option<string>
  readonly concurrency: number
  /** How long an outcome may wait for those of attempts started with it (`WorkerOptions.gatherMs`). */
  readonly gatherMs: number
  readonly executor: Option.Option<string>
  readonly allowShell: boolean
  readonly noCheckLinks: boolean
}

/** Parses `--kinds ToolCall,Processing` (names as in the plan, case-insensitive). */
export const parseKinds = (text: string) =>
  Effect.gen(function* () {
    const kinds: Array<NodeKind> = []
    for (const part of text
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item.length > 0)) {
      const kind = nodeKinds.find((known) => known.toLowerCase() === part.toLowerCase())
      if (kind === undefined) {
        return yield* usage(`Unknown task kind ${JSON.stringify(part)} in --kinds: use ${nodeKinds.join(", ")}.`)
      }
      if (!kinds.includes(kind)) kinds.push(kind)
    }
    if (kinds.length === 0) return yield* usage(`--kinds needs at least one of ${nodeKinds.join(", ")}.`)
    return kinds
  })

/** The flags' values, checked before anything is opened: a bad one creates no store. */
const checkFlags = (flags: WorkerFlags) =>
  Effect.gen(function* () {
    if (!Number.isInteger(flags.concurrency) || flags.concurrency < 1 || flags.concurrency > 256) {
      return yield* usage("--concurrency must be a whole number from 1 to 256.")
    }
    yield* checkGatherMs(flags.gatherMs)
    const kinds = Option.isSome(flags.kinds) ? yield* parseKinds(flags.kinds.value) : nodeKinds
    const spec = yield* chooseSpec(flags.executor)
    yield* checkLlmSettings()
    return { kinds, spec }
  })

export const worker = (flags: WorkerFlags) =>
  Effect.flatMap(checkFlags(flags), ({ kinds, spec }) => serve(flags, kinds, spec))

const serve = (flags: WorkerFlags, kinds: ReadonlyArray<NodeKind>, spec: ExecutorSpec) => {
  const store = resolveStore(flags.db)
  return Effect.gen(function* () {
    const registry = yield* makeExecutors({ spec, allowShell: flags.allowShell })
    const workerId = Worker.makeWorkerId()
    const served = kinds.filter((kind) => registry.executorFor(kind) !== undefined)
    // Stopping is how a worker is meant to end: a stop by signal exits with 0.
    setInterruptExitCode(ExitCode.ok)

    const say = (json: Record<string, unknown>, text: string) =>
      flags.json ? out(JSON.stringify({ workerId, ...json })) : out(text)

    yield* say(
      { event: "ready", kinds: served, concurrency: flags.concurrency, executor: specText(spec), store: store.label },
      `Worker ${workerId} serving ${served.join(", ")} (${specText(spec)}, up to ${flags.concurrency} at once) on ${store.label}. Stop it with Ctrl-C.`
    )

    // What happens to the tasks this worker runs, told by the worker itself: it follows no session.
    /** Attempts and jobs the store did not take back as the worker stopped. */
    let notGivenBack = 0
    const report = (attempt: Worker.AttemptReport) => {
      if (attempt._tag === "Finished" && attempt.outcome === "not-given-back") notGivenBack += 1
      if (attempt._tag === "Started") {
        const description = clip(attempt.description, 100)
        return say(
          {
            event: "started",
            sessionId: attempt.sessionId,
            taskId: attempt.taskId,
            attempt: attempt.attempt,
            description
          },
          `session ${attempt.sessionId} task ${attempt.taskId} started: ${description}${attempt.attempt > 1 ? ` (attempt ${attempt.attempt})` : ""}`
        )
      }
      if (attempt.outcome === "discarded") return Effect.void
      // The outcome's name in JSON, the words for it in text, and what it carries.
      const [name, words] =
        attempt.outcome === "retry-scheduled"
          ? ["retry-scheduled", `failed, retry at ${clock(attempt.retryAt ?? 0)}`]
          : attempt.outcome === "retry-pending"
            ? ["retry-pending", "failed, to be retried if it has attempts left"]
            : attempt.outcome === "waiting"
              ? ["waiting", "waits for an answer"]
              : attempt.outcome === "released"
                ? ["released", "was given back"]
                : attempt.outcome === "not-given-back"
                  ? ["not-given-back", "could not be given back"]
                  : [attempt.outcome, attempt.outcome]
      const text = attempt.detail
      return say(
        { event: name, sessionId: attempt.sessionId, taskId: attempt.taskId, detail: text },
        `session ${attempt.sessionId} task ${attempt.taskId} ${words}${text === "" ? "" : `: ${firstLine(text)}`}`
      )
    }

    yield* Worker.run({
      workerId,
      kinds: served,
      concurrency: flags.concurrency,
      gatherMs: flags.gatherMs,
      onAttempt: report
    }).pipe(
      Effect.provideService(ExecutorRegistry, registry),
      sayingHowItStops(
        Effect.suspend(() =>
          flags.json
            ? out(JSON.stringify({ workerId, event: "stopped", givenBack: notGivenBack === 0 }))
            : out(
                notGivenBack === 0
                  ? `Worker ${workerId} stopped; the tasks it held were given back.`
                  : `Worker ${workerId} stopped; ${notGivenBack} of the tasks it held could not be given back (the store did not answer): they go to other workers when their leases run out.`
              )
        ),
        {
          fd: 1,
          line: flags.json
            ? JSON.stringify({ workerId, event: "stopped", givenBack: false })
            : `Worker ${workerId} stopped before the store confirmed it (${unconfirmedStopReason}); the tasks it held go to other workers when their leases run out.`
        }
      )
    )
  }).pipe(
    Effect.scoped,
    Effect.provide(runServices({ checkLinks: !flags.noCheckLinks })),
    // The memory index is kept live while the worker runs: a task's record is there as soon as it ends (#17).
    Effect.provide(MemoryLive.liveLayer),
    // The session writer's wait for outcomes on their way has the worker's bound (see `WorkerOptions.gatherMs`).
    Effect.provide(plannerLayer(store, { gatherMs: flags.gatherMs })),
    Effect.mapError(toFailure),
    // Tasks that complete at once must not keep Node from its event loop (and from SIGTERM): see `EventLoop`.
    withEventLoopTurns()
  )
}
