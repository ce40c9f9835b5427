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
  scrub(json ? JSON.stringify({ error: { code, message: text.replace(/^planner: /, ""), ...fields } }) : visible(text))

/**
 * Control characters written as escapes: a message may repeat what the user typed (a session id, a path), and a
 * terminal must not take an escape sequence in it as a command (colours, a cleared screen, a changed title).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const controlCharacters = /[\u0000-\u001f\u007f-\u009f]/g

export const visible = (text: string): string =>
  text.replace(controlCharacters, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`)

/** Registers the secrets a command line and the environment hold (a database URL's password, the LLM keys). */
export const registerCommandLineSecrets = (args: ReadonlyArray<string>): void => {
  registerEnvironmentSecrets()
  for (const arg of args) if (isPostgresUrl(arg) || arg.includes("://")) registerUrlSecret(arg.replace(/^--db=/, ""))
}
