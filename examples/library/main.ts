/**
 * A program of its own that uses the planner as a library: the planner's SQLite layer, with this program's executor
 * for every task, runs a small plan to completion and prints what each task returned.
 *
 * It needs no Node.js or PostgreSQL type declarations (`skipLibCheck` is off): only `effect` and the planner's own.
 */
import { Console, Effect } from "effect"
import { Executor, PlannerRuntime, Runner } from "event-sourced-planner"

/** This program's executor: it "does" each step by counting its words. */
const wordCounter: Executor.ExecutorService = {
  name: "word-counter",
  execute: (task) =>
    Effect.succeed(
      Executor.Outcome.Completed({ result: `${task.description.split(/\s+/).length} words in "${task.description}"` })
    )
}

const program = Effect.gen(function* () {
  const { sessionId } = yield* Runner.start("Write the code. Then test it. Finally write the release notes.")
  const result = yield* Runner.run(sessionId)
  yield* Console.log(`Session ${sessionId}: ${result.state.status}, ${result.state.tasks.length} tasks`)
  for (const task of result.state.tasks) yield* Console.log(`  ${task.id}. [${task.status}] ${task.result ?? ""}`)
  if (result.state.status !== "Succeeded") return yield* Effect.fail(`the plan ended ${result.state.status}`)
})

// The store: a SQLite file in the working folder (`PlannerRuntime.memory()` keeps everything in memory instead).
const planner = PlannerRuntime.sqlite("example.db", { executor: wordCounter })

Effect.runPromise(program.pipe(Effect.provide(planner))).catch((error: unknown) => {
  Effect.runSync(Console.error(`example failed: ${String(error)}`))
  throw error
})
