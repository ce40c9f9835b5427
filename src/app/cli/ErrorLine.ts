/**
 * The one line a failed command prints on standard error: `planner: MESSAGE`, or under --json one JSON object,
 * `{"error":{"code":2,"message":"..."}}`. Known secrets are scrubbed from it. Shared by the full command line
 * (`../main.ts`) and the small plan bundle (`../PlanMain.ts`), which must say the same.
 */
import { isPostgresUrl, registerEnvironmentSecrets, registerUrlSecret, scrub } from "./Output.js"

/**
 * `text` (starting `planner: `) as printed, without the newline. Under --json, `fields` go in the error object beside
 * the code and the message (the session a stopped run goes on with).
 */
export const errorLine = (
  text: string,
  code: number,
  json: boolean,
  fields: Readonly<Record<string, string>> = {}
): string =>
  scrub(json ? JSON.stringify({ error: { code, message: text.replace(/^planner: /, ""), ...fields } }) : text)

/** Registers the secrets a command line and the environment hold (a database URL's password, the LLM keys). */
export const registerCommandLineSecrets = (args: ReadonlyArray<string>): void => {
  registerEnvironmentSecrets()
  for (const arg of args) if (isPostgresUrl(arg) || arg.includes("://")) registerUrlSecret(arg.replace(/^--db=/, ""))
}
