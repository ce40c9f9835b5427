/**
 * The `person` executor: a step nobody here can do by machine becomes a question for a person, "Do this step and
 * report the result: ...", and the answer is the step's result. The CLI routes tasks to it when no LLM is configured.
 *
 * It keeps no state: the decision is a function of the task's clarifications, so it gives the same outcome after a
 * restart and on any worker. The first attempt asks; once the latest question is its own and has an answer, the
 * attempt completes with that answer. An answer beginning with `failed:` (or `fail:`) records the step as failed
 * instead, without retries, since asking the same person again cannot help.
 */
import { Effect } from "effect"
import { type ExecutorService, Outcome, type TaskContext } from "./Executor.js"

/** The question a person is asked for a step. */
export const questionFor = (description: string): string => `Do this step and report the result: ${description}`

const failurePrefix = /^\s*fail(?:ed)?\s*:\s*/i

/** The outcome for one attempt, from the task's description and clarifications alone. */
export const decide = (context: Pick<TaskContext, "description" | "clarifications">): Outcome => {
  const question = questionFor(context.description)
  const latest = context.clarifications.at(-1)
  if (latest === undefined || latest.question !== question || latest.answer === undefined) {
    return Outcome.NeedsClarification({ question })
  }
  const answer = latest.answer.trim()
  if (failurePrefix.test(answer)) {
    const error = answer.replace(failurePrefix, "")
    return Outcome.Failed({
      error: error.length > 0 ? error : "the person reported that the step failed",
      retryable: false
    })
  }
  return Outcome.Completed({ result: answer })
}

export const make = (): ExecutorService => ({
  name: "person",
  execute: (context: TaskContext) => Effect.sync(() => decide(context)).pipe(Effect.withSpan("PersonExecutor.execute"))
})
