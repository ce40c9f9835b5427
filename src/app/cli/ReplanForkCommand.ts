/**
 * `planner fork SESSION --at 0 --replan`: plans the session's request again with another planner (`ReplanFork`) into a
 * new session, says so, and runs it like `resume`. `planner diff SESSION NEW` then compares the two runs.
 */
import { Effect, Option } from "effect"
import * as Planner from "../../domain/Planner.js"
import { replanFork } from "../ReplanFork.js"
import { drive } from "./Drive.js"
import { usage } from "./Failure.js"
import { llmConfigured } from "./LlmChoice.js"
import { out, plural } from "./Output.js"
import type { ReplanFlagValues } from "./ReplanFlags.js"
import { storable } from "./Request.js"
import { type ExecutionFlags, prepareContinue } from "./RunCommands.js"
import { programName } from "./Session.js"
import type { StoreTarget } from "./Store.js"

export interface ReplanForkFlags extends ExecutionFlags, ReplanFlagValues {
  readonly sessionId: string
  readonly at: number
}

/** The replan fork, once the command knows `--replan` was given; runs with the store of `store` provided. */
export const replanForkCommand = (flags: ReplanForkFlags, store: StoreTarget) =>
  Effect.gen(function* () {
    if (flags.at !== 0) {
      return yield* usage(
        `--replan plans the request again from the start: give --at 0 (got --at ${flags.at}); to start from event ${flags.at}, fork without --replan.`
      )
    }
    // The model named here plans and runs this session: it replaces the environment's for this command.
    if (Option.isSome(flags.model)) {
      const model = yield* storable("--model", flags.model.value.trim())
      if (model.length === 0) return yield* usage("--model is empty: give a model name.")
      process.env.PLANNER_LLM_MODEL = model
    }
    const planner: "parser" | "llm" = Option.getOrElse(flags.planner, () => (llmConfigured() ? "llm" : "parser"))
    if (planner === "llm" && !llmConfigured()) {
      return yield* usage(
        "--planner llm needs an LLM: set PLANNER_LLM_BASE_URL and PLANNER_LLM_MODEL (and PLANNER_LLM_API_KEY if it needs one), or use --planner parser."
      )
    }
    const systemPrompt = Option.isSome(flags.replanSystemPrompt)
      ? yield* storable("--system-prompt", flags.replanSystemPrompt.value.trim())
      : undefined
    if (systemPrompt !== undefined && systemPrompt.length > 20_000) {
      return yield* usage(`--system-prompt is ${systemPrompt.length} characters long: keep it under 20000.`)
    }
    const { run } = yield* prepareContinue(flags, store, flags.sessionId)
    const { withRunServices } = yield* Effect.promise(() => import("./Running.js"))
    yield* Effect.gen(function* () {
      const forked = yield* replanFork(flags.sessionId, {
        planner,
        ...(systemPrompt === undefined ? {} : { systemPrompt })
      })
      if (run.drive.mode !== "json") {
        const source = forked.state.source
        const by =
          source?._tag === "Llm"
            ? source.model
            : source?._tag === "Parser" && planner === "llm"
              ? "the parser (the LLM could not plan)"
              : "the parser"
        yield* out(
          `Planned the request of session ${flags.sessionId} again with ${by} into ${forked.sessionId} (${plural(forked.state.tasks.length, "task")}). Compare the runs with: ${programName()} diff ${flags.sessionId} ${forked.sessionId}${store.flag}`
        )
      }
      if (Planner.isFinished(forked.state)) return
      yield* drive(forked.sessionId, forked.state, run.drive)
    }).pipe(withRunServices(run))
  })
