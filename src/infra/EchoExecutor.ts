/**
 * The `echo` executor completes every task with its own description: a dry run of the orchestration, showing the
 * order tasks would run in without doing any of them.
 */
import { Effect } from "effect"
import { type ExecutorService, Outcome, type TaskContext } from "./Executor.js"
import { hotSpanWith } from "./Tracing.js"

export const echo: ExecutorService = {
  name: "echo",
  execute: (context: TaskContext) =>
    hotSpanWith(Effect.succeed(Outcome.Completed({ result: context.description })), "EchoExecutor.execute", () => ({
      taskId: context.taskId
    }))
}

/** The `echo` executor (the same value as `echo`, for symmetry with the other executors' `make`). */
export const make = (): ExecutorService => echo
