/**
 * The options of `planner fork SESSION --at 0 --replan` (A/B planning strategies): plan the source's request again with
 * another planner into a new session. Only option declarations: the command line loads this at start-up, and the work
 * (`ReplanForkCommand`) only when it runs.
 */
import { Options } from "@effect/cli"
import type { Option } from "effect"

export const replanOptions = {
  replan: Options.boolean("replan").pipe(
    Options.withDescription(
      "With --at 0: plan the session's request again, with --planner (and --model, --system-prompt), into a new session, and run it; compare the two runs with `planner diff`."
    )
  ),
  planner: Options.choice("planner", ["parser", "llm"]).pipe(
    Options.withDescription(
      "With --replan: who plans the request again: parser (the deterministic parser) or llm (the configured model). Default: llm when an LLM is configured, else parser."
    ),
    Options.optional
  ),
  model: Options.text("model").pipe(
    Options.withPseudoName("NAME"),
    Options.withDescription("With --replan: the model to plan (and run) with, instead of PLANNER_LLM_MODEL."),
    Options.optional
  ),
  replanSystemPrompt: Options.text("system-prompt").pipe(
    Options.withPseudoName("TEXT"),
    Options.withDescription(
      "With --replan: the system prompt for the new plan, instead of the one the session recorded."
    ),
    Options.optional
  )
}

export interface ReplanFlagValues {
  readonly replan: boolean
  readonly planner: Option.Option<"parser" | "llm">
  readonly model: Option.Option<string>
  readonly replanSystemPrompt: Option.Option<string>
}
