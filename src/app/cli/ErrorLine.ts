/**
 * The one line a failed command prints on standard error: `planner: MESSAGE`, or under --json one JSON object,
 * `{"error":{"code":2,"message":"..."}}`. Known secrets are scrubbed from it. Shared by the full command line
 * (`../main.ts`) and the small plan bundle (`../PlanMain.ts`), which must say the same.
 */
import { isPostgresUrl, registerEnvironmentSecrets, registerUrlSecret, scrub } from "./Output.js"

/** `text` (starting `planner: `) as printed, without the newline. */
export const errorLine = (text: string, code: number, json: boolean): string =>
  scrub(json ? JSON.stringify({ error: { code, message: text.replace(/^planner: /, "") } }) : text)

/** Registers the secrets a command line and the environment hold (a database URL's password, the LLM keys). */
export const registerCommandLineSecrets = (args: ReadonlyArray<string>): void => {
  registerEnvironmentSecrets()
  for (const arg of args) if (isPostgresUrl(arg) || arg.includes("://")) registerUrlSecret(arg.replace(/^--db=/, ""))
}
