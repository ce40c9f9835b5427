/**
 * Which `planner plan` command lines the small plan bundle (dist/cli/plan.cjs, from `../PlanMain.ts`) answers, so
 * that the most common print-only command does not load @effect/cli and every other command's definition first.
 *
 * It takes only what it reads exactly as @effect/cli reads it: `plan`, then in any order at most one request argument
 * (not starting with `-`, or `-` itself for standard input), `--json` (not followed by a word @effect/cli would take
 * as its value, such as `true` or `no`), and `--file PATH` / `--file=PATH` naming an existing regular file. Anything
 * else (help, an unknown option, `--`, a second argument, a missing or odd file, no request) and any configured LLM
 * goes to the full command line, which says what it says today. So this decides between two programs; it never
 * explains an error itself.
 *
 * Imports nothing: bin/planner.js loads it (compiled, dist/app/cli/PlanArgs.js) before either bundle.
 */

/** True when the environment names an LLM (`PLANNER_LLM_BASE_URL` or `PLANNER_LLM_MODEL`): `plan` then asks it. */
export const llmConfigured = (env: Readonly<Record<string, string | undefined>>): boolean =>
  ["PLANNER_LLM_BASE_URL", "PLANNER_LLM_MODEL"].some((name) => (env[name] ?? "").trim() !== "")

export interface FastPlanArgs {
  readonly request: string | undefined
  readonly file: string | undefined
  readonly json: boolean
}

/** The words @effect/cli takes as the value of a boolean option that follows it (`--json yes`). */
const booleanWord = /^(true|1|y|yes|on|false|0|n|no|off)$/

/**
 * The flags of `planner plan ...` when the plan bundle can answer it; undefined for the full command line.
 * `isFile` says whether a path names an existing regular file (@effect/cli refuses `--file` of a folder); it may throw.
 */
export const fastPlanArgs = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  isFile: (path: string) => boolean
): FastPlanArgs | undefined => {
  if (args[0] !== "plan" || llmConfigured(env)) return undefined
  let request: string | undefined
  let file: string | undefined
  let json = false
  for (let index = 1; index < args.length; index++) {
    const arg = args[index] as string
    if (arg === "--json") {
      if (json) return undefined
      const next = args[index + 1]
      if (next !== undefined && booleanWord.test(next)) return undefined
      json = true
    } else if (arg === "--file" || arg.startsWith("--file=")) {
      if (file !== undefined) return undefined
      const value = arg === "--file" ? args[++index] : arg.slice("--file=".length)
      if (value === undefined || value === "" || value.startsWith("-")) return undefined
      file = value
    } else if (arg === "-" || !arg.startsWith("-")) {
      if (request !== undefined) return undefined
      request = arg
    } else {
      return undefined
    }
  }
  if (request === undefined && file === undefined) return undefined
  if (request !== undefined && file !== undefined) return undefined
  if (file !== undefined && !regularFile(isFile, file)) return undefined
  return { request, file, json }
}

/**
 * `isFile`, false when it throws: `fs.statSync`'s `throwIfNoEntry: false` spares only a missing path, and a path
 * through a file (ENOTDIR), a folder it may not enter (EACCES) or a link loop threw past both entry points as a stack
 * trace. The full command line then says what is wrong with the file.
 */
const regularFile = (isFile: (path: string) => boolean, path: string) => {
  try {
    return isFile(path)
  } catch {
    return false
  }
}
