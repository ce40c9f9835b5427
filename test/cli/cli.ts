/**
 * Drives the built `planner` command as a child process, the way a person or a script does: `bin/planner.js` runs
 * `dist/app/main.js`, so the first test file to need it builds `dist` when it is missing or older than `src` (once,
 * under a lock, since test files run in parallel forks). A fresh clone has `dist` already: `npm install` builds it.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const root = fileURLToPath(new URL("../..", import.meta.url))
export const bin = path.join(root, "bin", "planner.js")
export const demoScript = path.join(root, "examples", "demo.json")
const terminalHelper = fileURLToPath(new URL("./fixtures/terminal.py", import.meta.url))
const builtEntry = path.join(root, "dist", "app", "main.js")
const lockDir = path.join(root, "node_modules", ".cache", "planner-cli-build.lock")

const newestMtime = (folder: string): number => {
  let newest = 0
  for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
    const full = path.join(folder, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs)
  }
  return newest
}

const isStale = () =>
  !fs.existsSync(builtEntry) || fs.statSync(builtEntry).mtimeMs < newestMtime(path.join(root, "src"))

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

/**
 * Set once `dist` was checked for this `vitest run` (test files run in forks of one vitest process): a later test
 * file must not rebuild `dist` under the commands another file is running, even when `src` changed meanwhile.
 */
const checkedMarker = (() => {
  // The parent's start time as well as its pid, so a later run whose vitest got a recycled pid checks again.
  let started = "0"
  try {
    const stat = fs.readFileSync(`/proc/${process.ppid}/stat`, "utf8")
    started = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "0"
  } catch {
    // No /proc: the pid alone.
  }
  return path.join(root, "node_modules", ".cache", `planner-cli-built-for-${process.ppid}-${started}`)
})()

/** Builds `dist` with the project's build config when it is missing or older than `src`, once per test run. */
export const ensureBuilt = (): void => {
  if (fs.existsSync(checkedMarker) && fs.existsSync(builtEntry)) return
  fs.mkdirSync(path.dirname(lockDir), { recursive: true })
  const deadline = Date.now() + 180_000
  for (;;) {
    try {
      fs.mkdirSync(lockDir)
      break
    } catch {
      // Another test file is building; a lock older than three minutes was left by a killed run.
      const age = Date.now() - (fs.statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now())
      if (age > 180_000) fs.rmSync(lockDir, { recursive: true, force: true })
      if (Date.now() > deadline) throw new Error("timed out waiting for another test file to build dist/")
      sleepSync(200)
      if (fs.existsSync(checkedMarker)) return
    }
  }
  try {
    if (fs.existsSync(checkedMarker) || !isStale()) return
    // The project's own build (tsc, and the dashboard's files), as `npm install` runs it.
    const built = spawnSync("npm", ["run", "build"], { cwd: root, encoding: "utf8" })
    // tsc emits even with type errors elsewhere in the tree; the typecheck step of `npm test` reports those.
    if (!fs.existsSync(builtEntry)) throw new Error(`npm run build failed:\n${built.stdout}${built.stderr}`)
  } finally {
    // Markers of earlier runs are no use: remove those older than a day.
    const cache = path.dirname(checkedMarker)
    for (const name of fs.readdirSync(cache)) {
      const file = path.join(cache, name)
      if (name.startsWith("planner-cli-built-for-") && Date.now() - fs.statSync(file).mtimeMs > 86_400_000)
        fs.rmSync(file)
    }
    fs.writeFileSync(checkedMarker, "")
    fs.rmSync(lockDir, { recursive: true, force: true })
  }
}

/** Processes and folders this test file made, removed when it ends however it ends (a failed test included). */
const children = new Set<ChildProcess>()
const folders = new Set<string>()
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  for (const folder of folders) fs.rmSync(folder, { recursive: true, force: true })
})

/** A fresh working folder (the default store `./.planner/planner.db` lands in it), removed when the file ends. */
export const tempFolder = (prefix = "planner-cli-"): string => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  folders.add(folder)
  return folder
}

/** The environment for the command: this one without anything that would change how the CLI behaves. */
export const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(PLANNER_|OPENAI_|OTEL_|NO_COLOR$|FORCE_COLOR$|npm_)/.test(name)) continue
    env[name] = value
  }
  return { ...env, ...extra }
}

export interface CliOptions {
  readonly cwd: string
  readonly env?: Record<string, string>
  /** Text for standard input; without it standard input is /dev/null (not a terminal, and at its end). */
  readonly input?: string
  readonly timeoutMs?: number
}

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface Running {
  readonly child: ChildProcess
  /** Everything written to standard output so far. */
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves when standard output matches `pattern`; rejects if the process exits first or time runs out. */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  /** Types a line (through the pseudo-terminal for `inTerminal`). */
  readonly type: (line: string) => void
  readonly result: Promise<CliResult>
}

const start = (command: string, args: ReadonlyArray<string>, options: CliOptions, pipeInput: boolean): Running => {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: cleanEnv(options.env),
    stdio: [pipeInput || options.input !== undefined ? "pipe" : "ignore", "pipe", "pipe"]
  })
  children.add(child)
  child.on("exit", () => children.delete(child))
  let stdout = ""
  let stderr = ""
  const listeners = new Set<() => void>()
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk
    for (const listener of listeners) listener()
  })
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk
  })
  if (options.input !== undefined) child.stdin?.end(options.input)
  const timeoutMs = options.timeoutMs ?? 280_000
  const result = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(
        new Error(
          `planner ${args.join(" ")} did not finish in ${timeoutMs} ms.\nstdout:\n${stdout}\nstderr:\n${stderr}`
        )
      )
    }, timeoutMs)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      for (const listener of listeners) listener()
      resolve({ code: code ?? 128 + (signal === "SIGKILL" ? 9 : signal === "SIGTERM" ? 15 : 2), stdout, stderr })
    })
  })
  // Callers that never await the result still must not leave an unhandled rejection behind.
  result.catch(() => undefined)
  let exited = false
  void result.then(() => {
    exited = true
  })
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor: (pattern, waitMs = 200_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = stdout.match(pattern)
          if (match !== null) {
            listeners.delete(check)
            clearTimeout(timer)
            resolve(match)
          } else if (exited || child.exitCode !== null) {
            listeners.delete(check)
            clearTimeout(timer)
            reject(new Error(`exited before printing ${pattern}:\nstdout:\n${stdout}\nstderr:\n${stderr}`))
          }
        }
        const timer = setTimeout(() => {
          listeners.delete(check)
          reject(new Error(`no ${pattern} within ${waitMs} ms:\nstdout:\n${stdout}\nstderr:\n${stderr}`))
        }, waitMs)
        listeners.add(check)
        check()
      }),
    type: (line) => void child.stdin?.write(`${line}\n`),
    result
  }
}

/** Starts `planner ARGS` with pipes (not a terminal). */
export const startCli = (args: ReadonlyArray<string>, options: CliOptions): Running =>
  start(process.execPath, [bin, ...args], options, false)

/**
 * How many short commands of this test file run at once. Each spends most of a second of CPU loading modules, and
 * test files run in parallel on two cores: more at once only makes each slower.
 */
const slots = { free: 2, waiting: [] as Array<() => void> }

const acquire = (): Promise<void> =>
  new Promise((resolve) => {
    if (slots.free > 0) {
      slots.free -= 1
      resolve()
    } else {
      slots.waiting.push(resolve)
    }
  })

const release = () => {
  const next = slots.waiting.shift()
  if (next === undefined) slots.free += 1
  else next()
}

/** Runs `planner ARGS` to the end. */
export const cli = async (args: ReadonlyArray<string>, options: CliOptions): Promise<CliResult> => {
  await acquire()
  try {
    return await startCli(args, options).result
  } finally {
    release()
  }
}

/** Starts `planner ARGS` in a pseudo-terminal (120 columns), as a person at a terminal would. */
export const inTerminal = (args: ReadonlyArray<string>, options: CliOptions): Running =>
  start("python3", [terminalHelper, process.execPath, bin, ...args], options, true)

/** Parses the one JSON object a `--json` command prints; fails when there is anything else on standard output. */
export const parseJson = <T = Record<string, unknown>>(result: CliResult): T => {
  try {
    return JSON.parse(result.stdout) as T
  } catch (error) {
    throw new Error(`not one JSON object (${String(error)}):\n${result.stdout}\nstderr:\n${result.stderr}`)
  }
}

/** The session id a run printed (`Session <id>: ...`). */
export const sessionIdIn = (text: string): string => {
  const match = text.match(/Session (\d{8}-\d{6}-[0-9a-f]{6})/)
  if (match?.[1] === undefined) throw new Error(`no session id in:\n${text}`)
  return match[1]
}

/** Writes a script file for the `script:` executor. */
export const writeScript = (folder: string, name: string, script: unknown): string => {
  const file = path.join(folder, name)
  fs.writeFileSync(file, JSON.stringify(script))
  return file
}

export interface TaskJson {
  readonly id: number
  readonly description: string
  readonly kind: string
  readonly status: string
  readonly attempts: number
  readonly result?: string
  readonly error?: string
  readonly question?: string
}

export interface ResultJson {
  readonly sessionId: string
  readonly status: string
  readonly waiting: boolean
  readonly tasks: ReadonlyArray<TaskJson>
  readonly summary: string
}

/** Standard error is exactly one line (the rule for every error the CLI reports without --verbose). */
export const oneLine = (stderr: string): string => {
  const lines = stderr.split("\n").filter((line) => line.length > 0)
  if (lines.length !== 1) throw new Error(`expected one line on stderr, got ${lines.length}:\n${stderr}`)
  return lines[0] ?? ""
}
