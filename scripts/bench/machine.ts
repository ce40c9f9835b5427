/** The machine a benchmark ran on, for the results file and docs/performance.md. */
import { readFileSync } from "node:fs"
import * as os from "node:os"

export interface Machine {
  readonly cpus: number
  readonly cpuModel: string
  readonly memoryGiB: number
  readonly node: string
  readonly platform: string
  readonly kernel: string
  /** 1-minute load average when the run started: other work on the machine skews every figure. */
  readonly loadAverage: number
}

const cpuModel = (): string => {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"))
    return line?.split(":")[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown"
  } catch {
    return os.cpus()[0]?.model ?? "unknown"
  }
}

export const machine = (): Machine => ({
  cpus: os.availableParallelism(),
  cpuModel: cpuModel(),
  memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  kernel: os.release(),
  loadAverage: Math.round((os.loadavg()[0] ?? 0) * 100) / 100
})
