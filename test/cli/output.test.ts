/**
 * Output that is larger than a pipe holds (64 KiB on Linux) arrives whole: the command exits only once standard output
 * and error have drained. A reader that goes away early, or a signal while nobody reads, still ends the command.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { bin, cleanEnv, cli, ensureBuilt, parseJson, tempFolder } from "./cli.js"

/** Sentences enough for a plan of `count` tasks whose JSON is several times a pipe's 64 KiB. */
const bigRequest = (count: number) =>
  Array.from({ length: count }, (_, i) => `Write the module number ${i + 1} with care.`).join(" ")

const taskCount = 2_000

let cwd = ""
let requestFile = ""
beforeAll(() => {
  ensureBuilt()
  cwd = tempFolder("planner-output-")
  requestFile = path.join(cwd, "request.txt")
  fs.writeFileSync(requestFile, bigRequest(taskCount))
}, 180_000)

describe("output larger than a pipe holds", { timeout: 120_000 }, () => {
  it("plan --json arrives whole through a pipe", async () => {
    const result = await cli(["plan", "--json", "--file", requestFile], { cwd })
    expect(result.code).toBe(0)
    expect(result.stdout.length).toBeGreaterThan(3 * 65_536)
    const plan = parseJson<{ tasks: ReadonlyArray<{ id: number; description: string }> }>(result)
    expect(plan.tasks).toHaveLength(taskCount)
    expect(plan.tasks.at(-1)?.id).toBe(taskCount)
    expect(plan.tasks.at(-1)?.description).toContain(`Write the module number ${taskCount} with care`)
  })

  it("the text plan arrives whole through a pipe, its last task included", async () => {
    const result = await cli(["plan", "--file", requestFile], { cwd })
    expect(result.code).toBe(0)
    expect(result.stdout.length).toBeGreaterThan(2 * 65_536)
    // The parser's own words for the last task; what matters is that it is there, after every other.
    expect(result.stdout.trimEnd().split("\n").at(-1)).toMatch(
      new RegExp(`^${taskCount}\\. \\[\\w+\\] Write the module number ${taskCount} with care`)
    )
  })

  it("a reader that stops early ends the command quietly with its own exit code", async () => {
    const script = `"${process.execPath}" "${bin}" plan --json --file "${requestFile}" | head -c 100 >/dev/null; echo "exit=\${PIPESTATUS[0]}"`
    const result = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn("bash", ["-c", script], { cwd, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] })
      let stdout = ""
      let stderr = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk
      })
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk
      })
      child.on("error", reject)
      child.on("close", () => resolve({ stdout, stderr }))
    })
    expect(result.stdout.trim()).toBe("exit=0")
    expect(result.stderr).toBe("")
  })

  it("SIGTERM ends a command whose output nobody reads, with exit code 130", async () => {
    // A real pipe (a FIFO) that the shell opens and reads one chunk of, then holds unread: the command has written
    // its answer and waits for the rest to drain when the signal comes. (Node's own child pipes are socket pairs,
    // whose buffers can take the whole answer.)
    const fifo = path.join(cwd, `out-${process.pid}.fifo`)
    const script = [
      `mkfifo "${fifo}"`,
      `"${process.execPath}" "${bin}" plan --json --file "${requestFile}" >"${fifo}" 2>"${fifo}.err" &`,
      "pid=$!",
      `exec 3<"${fifo}"`,
      "head -c 1 <&3 >/dev/null",
      'echo "started $pid"',
      'wait "$pid"',
      'echo "exit=$?"'
    ].join("\n")
    const shell = spawn("bash", ["-c", script], { cwd, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    const closed = new Promise<void>((resolve) => shell.on("close", () => resolve()))
    await new Promise<void>((resolve, reject) => {
      shell.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk
        const started = stdout.match(/started (\d+)\n/)
        if (started?.[1] !== undefined && !stdout.includes("exit=")) {
          try {
            process.kill(Number(started[1]), "SIGTERM")
          } catch {
            // Already gone: it exited without waiting for its output to be read, which the assertion below reports.
          }
          resolve()
        }
      })
      shell.on("close", () => reject(new Error(`the shell ended first:\n${stdout}`)))
    })
    await closed
    expect(stdout).toMatch(/exit=130/)
    expect(fs.readFileSync(`${fifo}.err`, "utf8")).toBe("")
  })
})
