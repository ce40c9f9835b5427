/**
 * What every benchmark scenario shares: the clock, summary statistics, result rows, temp folders, child processes
 * and their cleanup.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bundle, nodeFlags } from "./bundle.js"

export const root = fileURLToPath(new URL("../..", import.meta.url))

/**
 * Milliseconds on CLOCK_MONOTONIC. On Linux every process reads the same monotonic clock, so a timestamp taken in one
 * process can be compared with one taken in another (unlike `performance.now()`, whose origin is each process's own
 * start, or `Date.now()`, which has millisecond resolution and can be stepped by NTP).
 */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6

// --- Statistics -------------------------------------------------------------------------------------------------

export const quantile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  // Nearest rank: p99 of 500 samples is the 495th smallest, a value that was really observed.
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)))
  return sorted[rank - 1] ?? Number.NaN
}

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? Number.NaN) + (sorted[middle] ?? Number.NaN)) / 2
}

// --- Results ----------------------------------------------------------------------------------------------------

export interface Target {
  /** "min": the figure must be at least `value`; "max": at most. */
  readonly kind: "min" | "max"
  readonly value: number
}

/** One line of the table: a figure measured once per run, summarised over the runs. */
export interface Row {
  readonly scenario: string
  readonly backend: string
  readonly metric: string
  readonly unit: string
  /** One value per run. */
  readonly samples: ReadonlyArray<number>
  readonly median: number
  readonly min: number
  readonly max: number
  readonly target?: Target
  /** Whether the median meets the target; absent when the row has none. */
  readonly met?: boolean
  readonly note?: string
}

export const row = (fields: {
  readonly scenario: string
  readonly backend: string
  readonly metric: string
  readonly unit: string
  readonly samples: ReadonlyArray<number>
  readonly target?: Target
  readonly note?: string
}): Row => {
  const med = median(fields.samples)
  const target = fields.target
  return {
    ...fields,
    median: med,
    min: Math.min(...fields.samples),
    max: Math.max(...fields.samples),
    ...(target === undefined ? {} : { met: target.kind === "min" ? med >= target.value : med <= target.value })
  }
}

const format = (value: number): string => {
  if (!Number.isFinite(value)) return "n/a"
  const magnitude = Math.abs(value)
  if (magnitude >= 1_000) return Math.round(value).toLocaleString("en-US")
  if (magnitude >= 100) return value.toFixed(0)
  if (magnitude >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

const formatTarget = (row: Row): string =>
  row.target === undefined ? "" : `${row.target.kind === "min" ? ">=" : "<="} ${format(row.target.value)}`

const verdict = (row: Row): string => (row.met === undefined ? "" : row.met ? "yes" : "NO")

/** The results as a plain-text table (also valid Markdown). */
export const table = (rows: ReadonlyArray<Row>): string => {
  const header = ["Scenario", "Backend", "Metric", "Median", "Min", "Max", "Unit", "Target", "Met", "Runs"]
  const body = rows.map((r) => [
    r.scenario,
    r.backend,
    r.metric,
    format(r.median),
    format(r.min),
    format(r.max),
    r.unit,
    formatTarget(r),
    verdict(r),
    String(r.samples.length)
  ])
  const widths = header.map((title, column) =>
    Math.max(title.length, ...body.map((cells) => cells[column]?.length ?? 0))
  )
  const numeric = new Set([3, 4, 5, 9])
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells
      .map((cell, column) =>
        numeric.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0)
      )
      .join(" | ")} |`
  const rule = `|${widths.map((width, column) => (numeric.has(column) ? `${"-".repeat(width + 1)}:` : "-".repeat(width + 2))).join("|")}|`
  return [line(header), rule, ...body.map(line)].join("\n")
}

// --- Logging ----------------------------------------------------------------------------------------------------

/** Progress goes to stderr, so stdout holds only the table. */
export const log = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`)
}

// --- Cleanup ----------------------------------------------------------------------------------------------------

const cleanups = new Set<() => void>()

/** Registers a synchronous cleanup to run at exit, whatever the exit; returns its removal. */
export const onExit = (cleanup: () => void): (() => void) => {
  cleanups.add(cleanup)
  return () => cleanups.delete(cleanup)
}

export const runExitCleanups = (): void => {
  for (const cleanup of [...cleanups].reverse()) {
    try {
      cleanup()
    } catch {
      // Best effort: the others must still run.
    }
  }
  cleanups.clear()
}

/** A fresh temp folder, removed at exit at the latest. */
export const tempDir = (prefix: string): { readonly dir: string; readonly remove: () => void } => {
  const dir = mkdtempSync(path.join(os.tmpdir(), `planner-bench-${prefix}-`))
  const remove = () => rmSync(dir, { recursive: true, force: true })
  const unregister = onExit(remove)
  return {
    dir,
    remove: () => {
      unregister()
      remove()
    }
  }
}

// --- Child processes --------------------------------------------------------------------------------------------

export interface Child {
  readonly process: ChildProcess
  /** Resolves with the first stdout line that passes `test`; rejects if the child exits first or on timeout. */
  readonly waitFor: (test: (line: string) => boolean, timeoutMs: number) => Promise<string>
  /** Every stdout line, as it comes. */
  readonly onLine: (listener: (line: string) => void) => void
  readonly send: (line: string) => void
  /** Resolves with the exit code. */
  readonly exited: Promise<number>
  readonly stderr: () => string
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  readonly stop: (graceMs?: number) => Promise<void>
}

/** Runs a TypeScript module of this folder in a child process, from its bundle (see `bundle.ts`). */
export const spawnScript = async (
  script: string,
  args: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv = {}
): Promise<Child> => {
  const file = await bundle(path.relative(root, fileURLToPath(new URL(script, import.meta.url))))
  const child = spawn(process.execPath, [...nodeFlags(), file, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...env }
  })
  let stderr = ""
  let pending = ""
  const listeners = new Set<(line: string) => void>()
  child.stdout?.setEncoding("utf8").on("data", (data: string) => {
    pending += data
    const lines = pending.split("\n")
    pending = lines.pop() ?? ""
    for (const line of lines) for (const listener of [...listeners]) listener(line)
  })
  child.stderr?.setEncoding("utf8").on("data", (data: string) => {
    stderr = (stderr + data).slice(-8_000)
  })
  const exited = new Promise<number>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)))
    child.once("error", () => resolve(1))
  })
  const unregister = onExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  })
  void exited.then(unregister)

  const waitFor = (test: (line: string) => boolean, timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(listener)
        reject(new Error(`${script}: no expected line after ${timeoutMs} ms\n${stderr}`))
      }, timeoutMs)
      const listener = (line: string) => {
        if (!test(line)) return
        clearTimeout(timer)
        listeners.delete(listener)
        resolve(line)
      }
      listeners.add(listener)
      void exited.then((code) => {
        if (!listeners.has(listener)) return
        clearTimeout(timer)
        listeners.delete(listener)
        reject(new Error(`${script} exited with code ${code} before the expected line\n${stderr}`))
      })
    })

  const stop = async (graceMs = 5_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
    await exited
    clearTimeout(timer)
  }

  return {
    process: child,
    waitFor,
    onLine: (listener) => listeners.add(listener),
    send: (line) => void child.stdin?.write(`${line}\n`),
    exited,
    stderr: () => stderr,
    stop
  }
}

/** Parses a child's JSON line, or undefined when the line is something else (a log line). */
export const parseJson = (line: string): unknown => {
  if (!line.startsWith("{")) return undefined
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// --- CPU time of other processes --------------------------------------------------------------------------------

/**
 * User + system CPU milliseconds a process has used so far (Linux /proc), with its exited children's when
 * `withChildren`; 0 when it is gone.
 */
export const processCpuMs = (pid: number, withChildren = false): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name (which may hold spaces), counted from field 3 (state): utime is field 14.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const own = Number(fields[11]) + Number(fields[12])
    const children = withChildren ? Number(fields[13]) + Number(fields[14]) : 0
    // Clock ticks of 10 ms (USER_HZ is 100 on Linux).
    return (own + children) * 10
  } catch {
    return 0
  }
}

/** CPU milliseconds of a PostgreSQL server so far: the postmaster, its live processes and those that exited. */
export const postgresCpuMs = (dataDir: string): number => {
  const postmaster = postmasterPid(dataDir)
  if (postmaster === undefined) return 0
  return childPids(postmaster).reduce((sum, pid) => sum + processCpuMs(pid), processCpuMs(postmaster, true))
}

/** The pid of the server's postmaster, from its data folder; undefined when it is not running. */
const postmasterPid = (dataDir: string): number | undefined => {
  try {
    const pid = Number.parseInt(readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0] ?? "", 10)
    return Number.isInteger(pid) ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * How many times a process has gone to sleep and been woken so far (Linux: the voluntary context switches of all its
 * threads); 0 when it is gone. On a virtual machine each wake-up costs CPU of its own (`timerWakeUpCpuUs`), so this
 * says how much of a process's CPU is its waking rather than its work.
 */
export const wakeUps = (pid: number): number => {
  let count = 0
  try {
    for (const thread of readdirSync(`/proc/${pid}/task`)) {
      try {
        const status = readFileSync(`/proc/${pid}/task/${thread}/status`, "utf8")
        count += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      } catch {
        // The thread ended meanwhile.
      }
    }
  } catch {
    return 0
  }
  return count
}

/** The wake-ups of a PostgreSQL server's live processes so far (those that exited are not counted). */
export const postgresWakeUps = (dataDir: string): number => {
  const postmaster = postmasterPid(dataDir)
  return postmaster === undefined
    ? 0
    : childPids(postmaster).reduce((sum, pid) => sum + wakeUps(pid), wakeUps(postmaster))
}

/**
 * The CPU microseconds one wake-up of an idle Node process costs on this machine now: a bare timer every `gapMs`,
 * `count` times, with nothing else to do. On a shared virtual machine it was 180-580 µs, growing with the time slept
 * (a cold cache), and it moves with the host's load. The planner's Node processes pay it per wake-up, so a benchmark
 * reports it beside the CPU it measured.
 */
export const timerWakeUpCpuUs = async (count = 50, gapMs = 20): Promise<number> => {
  const before = process.cpuUsage()
  for (let index = 0; index < count; index++) await sleep(gapMs)
  const used = process.cpuUsage(before)
  return (used.user + used.system) / count
}

/** The pids of a process's direct children (Linux /proc). */
export const childPids = (parent: number): Array<number> => {
  const pids: Array<number> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === parent) pids.push(Number(entry))
    } catch {
      // Gone meanwhile.
    }
  }
  return pids
}

/**
 * A CPU profile of this process from now on, through the inspector (`--cpu-prof` is not allowed in NODE_OPTIONS, and
 * a profile of the measured part alone leaves start-up out). `stop(file)` writes it, for DevTools or a script.
 */
export const startCpuProfile = async (samplingIntervalUs: number) => {
  const session = new (await import("node:inspector")).Session()
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params, (error, result) => (error ? reject(error) : resolve(result)))
    )
  session.connect()
  await post("Profiler.enable")
  await post("Profiler.setSamplingInterval", { interval: samplingIntervalUs })
  await post("Profiler.start")
  return {
    stop: async (file: string) => {
      const { profile } = (await post("Profiler.stop")) as { profile: unknown }
      ;(await import("node:fs")).writeFileSync(file, JSON.stringify(profile))
    }
  }
}
