/**
 * Reading the LLM-related environment the same way everywhere (the LLM settings and the embeddings settings): a blank
 * variable counts as unset, and the key is `PLANNER_LLM_API_KEY`, else `OPENAI_API_KEY`, kept `Redacted`.
 *
 * @internal
 */
import { Config, Option, Redacted } from "effect"

/** A variable's trimmed text; `None` when it is unset or blank. */
export const optionalText = (name: string): Config.Config<Option.Option<string>> =>
  Config.option(Config.string(name)).pipe(
    Config.map(Option.filter((value) => value.trim().length > 0)),
    Config.map(Option.map((value) => value.trim()))
  )

/** A secret variable, `Redacted`; `None` when it is unset or blank. */
export const optionalSecret = (name: string): Config.Config<Option.Option<Redacted.Redacted>> =>
  Config.option(Config.redacted(name)).pipe(
    Config.map(Option.filter((secret) => Redacted.value(secret).trim().length > 0))
  )

/** The API key: `PLANNER_LLM_API_KEY`, else `OPENAI_API_KEY`. */
export const apiKey: Config.Config<Option.Option<Redacted.Redacted>> = Config.all([
  optionalSecret("PLANNER_LLM_API_KEY"),
  optionalSecret("OPENAI_API_KEY")
]).pipe(Config.map(([own, openAi]) => Option.orElse(own, () => openAi)))
