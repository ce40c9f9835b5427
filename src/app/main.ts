/** The `planner` executable. */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Option } from "effect"
import { CliFailure, cli } from "./Cli.js"

const program = Effect.suspend(() => cli(process.argv)).pipe(
  Effect.tapErrorCause((cause) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && failure.value instanceof CliFailure) return Console.error(failure.value.message)
    // @effect/cli reports its own validation errors (unknown flags, missing arguments) before failing.
    return Option.isSome(failure) ? Effect.void : Console.error(Cause.pretty(cause))
  }),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit)) return onExit(0)
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure) && failure.value instanceof CliFailure) return onExit(failure.value.code)
    // A validation error from @effect/cli (bad usage).
    if (Option.isSome(failure)) return onExit(2)
    onExit(Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
  }
})
