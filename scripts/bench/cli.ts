/**
 * How fast the `planner` command starts, measured as whole processes the way a person runs it (`bin/planner.js`, which
 * loads the bundle in dist/cli/): `--version`, `plan` of a two-sentence request (from its own bundle, and through the
 * full one for comparison), and a two-task `run --executor echo` on a new SQLite file. Each round also starts
 * `node -e 1`, the floor no Node program goes below on this machine, so the ratios compare like with like however busy
 * the machine is. The commands of a round run one after another,
 * in the same order, after one warm-up round (file cache). Beside the wall-clock time, the CPU time (user + system)
 * each process used, read from this process's children's times in /proc (Linux): on a machine shared with other
 * work the wall clock includes waiting for a core, the CPU time much less so.
 */
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { log, nowMs, type Row, root, row, tempDir } from "./common.js"

interface Command {
  readonly name: string
  readonly args: (round: number) => ReadonlyArray<string>
  /** At most this many seconds (issue 18). */
  readonly targetS?: number
}

const request = "Write the code. Then test it."
const bin = path.join(root, "bin", "planner.js")

/** The environment without anything that changes what the command does (a store, an LLM, OpenTelemetry). */
const cleanEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env))
    if (!/^(PLANNER_|OPENAI_|OTEL_|NO_COLOR$|FORCE_COLOR$|npm_|NODE_OPTIONS$)/.test(name)) env[name] = value
  return env
}

/** User + system CPU seconds of this process's finished children so far (Linux), or NaN. */
const childrenCpuSeconds = (): number => {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // cutime and cstime, fields 16 and 17 of the whole line, in clock ticks (100 per second on Linux).
    return (Number(fields[13]) + Number(fields[14])) / 100
  } catch {
    return Number.NaN
  }
}

interface Timing {
  readonly wall: number
  readonly cpu: number
}

/** Wall-clock and CPU seconds of one process, from spawn to exit; fails unless it exits with 0. */
const timeProcess = (args: ReadonlyArray<string>, cwd: string): Timing => {
  const cpuBefore = childrenCpuSeconds()
  const started = nowMs()
  const result = spawnSync(process.execPath, args, { cwd, env: cleanEnv(), encoding: "utf8", stdio: "pipe" })
  const wall = (nowMs() - started) / 1_000
  if (result.status !== 0)
    throw new Error(`node ${args.join(" ")} exited with ${result.status ?? result.signal}: ${result.stderr.trim()}`)
  return { wall, cpu: childrenCpuSeconds() - cpuBefore }
}

export const cli = async (options: { readonly runs: number }): Promise<ReadonlyArray<Row>> => {
  if (!existsSync(path.join(root, "dist", "cli", "main.cjs")))
    throw new Error("dist/cli/main.cjs is missing: run `npm run build` first")
  const work = tempDir("cli")
  const commands: ReadonlyArray<Command> = [
    { name: "node -e 1", args: () => ["-e", "1"] },
    { name: "planner --version", args: () => [bin, "--version"], targetS: 0.2 },
    { name: "planner plan", args: () => [bin, "plan", request], targetS: 0.35 },
    // The same plan through the full bundle (dist/cli/main.cjs): `--json false` is a command line the plan bundle
    // leaves to it. What `plan` cost before it had a bundle of its own, in the same rounds.
    { name: "planner plan, full bundle", args: () => [bin, "plan", "--json", "false", request] },
    {
      name: "planner run --executor echo (2 tasks, SQLite)",
      args: (round) => [bin, "run", "--executor", "echo", "--db", path.join(work.dir, `run-${round}.db`), request],
      targetS: 0.7
    }
  ]
  const samples = new Map<string, Array<number>>(commands.map((command) => [command.name, []]))
  const cpuSamples = new Map<string, Array<number>>(commands.map((command) => [command.name, []]))
  try {
    log(`cli: ${options.runs} rounds of ${commands.map((c) => c.name).join(", ")} (after one warm-up round)`)
    for (let round = 0; round <= options.runs; round++) {
      for (const command of commands) {
        const timing = timeProcess(command.args(round), work.dir)
        if (round > 0) {
          samples.get(command.name)?.push(timing.wall)
          cpuSamples.get(command.name)?.push(timing.cpu)
        }
      }
    }
  } finally {
    work.remove()
  }
  const floor = samples.get("node -e 1") ?? []
  const rows: Array<Row> = []
  for (const command of commands) {
    const times = samples.get(command.name) ?? []
    rows.push(
      row({
        scenario: "cli start",
        backend: command.name.includes("SQLite") ? "sqlite" : "-",
        metric: command.name,
        unit: "s",
        samples: times,
        ...(command.targetS === undefined ? {} : { target: { kind: "max" as const, value: command.targetS } })
      })
    )
  }
  for (const command of commands.slice(1)) {
    const times = samples.get(command.name) ?? []
    rows.push(
      row({
        scenario: "cli start",
        backend: command.name.includes("SQLite") ? "sqlite" : "-",
        metric: `${command.name} / node -e 1`,
        unit: "x",
        // Each round's ratio: both processes ran back to back, on the same machine load.
        samples: times.map((seconds, index) => seconds / (floor[index] ?? Number.NaN))
      })
    )
  }
  for (const command of commands) {
    const times = cpuSamples.get(command.name) ?? []
    if (times.some((seconds) => Number.isNaN(seconds))) continue
    rows.push(
      row({
        scenario: "cli start",
        backend: command.name.includes("SQLite") ? "sqlite" : "-",
        metric: `${command.name}, CPU`,
        unit: "s",
        samples: times
      })
    )
  }
  return rows
}
