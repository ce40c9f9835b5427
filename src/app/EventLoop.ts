/**
 * Keeping the event loop turning while a session runs in this process. `Runner.run` and `Worker.run` run on this
 * scheduler themselves, so a program that embeds the planner gets it as the CLI does.
 *
 * Effect's default scheduler runs fibers in microtasks and falls back to a timer only after 2048 drains in a row of
 * one fiber's runner. Since effect 3.20 each fiber has its own runner, so fibers that wake each other in turns (the
 * runner, the local worker and the command handler, with SQLite answering synchronously and `echo` completing at once)
 * start a fresh runner at every turn and never reach that fallback: a 2,000-task `--executor echo` run was one chain
 * of microtasks. Node never got back to its event loop, so SIGTERM and SIGINT were never handled (the run went on and
 * exited 0) and no timer fired until the end.
 *
 * This scheduler is the default one, except that once work has gone on for `sliceMs` without the event loop turning,
 * the next task waits for a macrotask (`setImmediate`): signals, timers and I/O get their turn at least that often.
 * Each fiber has at most one task scheduled at a time, so deferring one never reorders a fiber's own work.
 *
 * Nested uses keep the outer scheduler (see `withEventLoopTurns`).
 */
import { Effect, FiberRef, Scheduler } from "effect"

/** The schedulers `makeScheduler` made: an effect already running on one is not wrapped again. */
const turning = new WeakSet<Scheduler.Scheduler>()

export const makeScheduler = (sliceMs = 20): Scheduler.Scheduler => {
  const base = new Scheduler.MixedScheduler(2048)
  let turnedAt = Date.now()
  let waiting: Array<() => void> = []
  const turn = () => {
    turnedAt = Date.now()
    const tasks = waiting
    waiting = []
    for (const task of tasks) task()
  }
  const scheduler: Scheduler.Scheduler = {
    shouldYield: (fiber) => base.shouldYield(fiber),
    scheduleTask: (task, priority, fiber) => {
      if (waiting.length > 0 || Date.now() - turnedAt >= sliceMs) {
        if (waiting.length === 0) setImmediate(turn)
        waiting.push(() => base.scheduleTask(task, priority, fiber))
      } else {
        base.scheduleTask(task, priority, fiber)
      }
    }
  }
  turning.add(scheduler)
  return scheduler
}

/**
 * Runs `effect` (and the fibers it forks) on a scheduler that lets the event loop turn at least every `sliceMs`.
 * Already on such a scheduler (`Runner.run` inside the CLI's run, `Worker.run` inside `Runner.run`), it stays there:
 * one scheduler serves the whole run, as before the library runs had their own. Schedulers nested in one run changed
 * the order in which a stopped worker's fibers finish (a run stopped by SIGINT no longer gave its task back).
 */
export const withEventLoopTurns =
  (sliceMs?: number) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(FiberRef.get(FiberRef.currentScheduler), (current) =>
      turning.has(current) ? effect : Effect.withScheduler(effect, makeScheduler(sliceMs))
    )
