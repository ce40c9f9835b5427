/**
 * `planner plan` runs the small plan bundle (dist/cli/plan.cjs) for the command lines `PlanArgs.fastPlanArgs` takes,
 * and the full command line (dist/cli/main.cjs) for the rest. Both must answer every command line alike: same
 * standard output, same error line, same exit code. Each case runs once as people run it (bin/planner.js) and once
 * through the full bundle alone.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { fastPlanArgs } from "../../src/app/cli/PlanArgs.js"
import { type CliResult, cleanEnv, cli, ensureBuilt, root, tempFolder } from "./cli.js"

const fullBundle = path.join(root, "dist", "cli", "main.cjs")

/** `node dist/cli/main.cjs ARGS`: the full command line, whatever the arguments. */
const full = (args: ReadonlyArray<string>, cwd: string, input?: string): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fullBundle, ...args], {
      cwd,
      env: cleanEnv(),
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
    })
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("error", reject)
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }))
    if (input !== undefined) child.stdin?.end(input)
  })

const noFiles = () => false
const anyFile = () => true

describe("PlanArgs.fastPlanArgs: which command lines the plan bundle answers", () => {
  const env = {}
  it("takes a request, --json and --file in any order", () => {
    expect(fastPlanArgs(["plan", "Do it."], env, noFiles)).toEqual({ request: "Do it.", file: undefined, json: false })
    expect(fastPlanArgs(["plan", "Do it.", "--json"], env, noFiles)).toEqual({
      request: "Do it.",
      file: undefined,
      json: true
    })
    expect(fastPlanArgs(["plan", "--json", "-"], env, noFiles)).toEqual({ request: "-", file: undefined, json: true })
    expect(fastPlanArgs(["plan", "--file", "r.txt"], env, anyFile)).toEqual({
      request: undefined,
      file: "r.txt",
      json: false
    })
    expect(fastPlanArgs(["plan", "--json", "--file=r.txt"], env, anyFile)).toEqual({
      request: undefined,
      file: "r.txt",
      json: true
    })
  })

  it("leaves everything else to the full command line", () => {
    const others: ReadonlyArray<ReadonlyArray<string>> = [
      ["run", "Do it."],
      ["plan"],
      ["plan", "--help"],
      ["plan", "-h"],
      ["plan", "--verbose", "Do it."],
      ["plan", "--db", "x.db", "Do it."],
      ["plan", "--", "Do it."],
      ["plan", "one", "two"],
      ["plan", "--json", "yes", "Do it."],
      ["plan", "--json", "--json", "Do it."],
      ["plan", "--json=true", "Do it."],
      ["plan", "--file"],
      ["plan", "--file", "r.txt", "Do it."],
      ["plan", "--file", "r.txt", "--file", "s.txt"],
      ["plan", "--wizard"],
      ["plan", "--bogus", "Do it."]
    ]
    for (const args of others) expect(fastPlanArgs(args, env, anyFile), args.join(" ")).toBeUndefined()
    // A --file that is no regular file: @effect/cli says so.
    expect(fastPlanArgs(["plan", "--file", "folder"], env, noFiles)).toBeUndefined()
    // One that cannot even be looked at (a path through a file, a folder it may not enter): the full command line says
    // why, instead of the throw escaping as a stack trace.
    const throwing = () => {
      throw Object.assign(new Error("ENOTDIR: not a directory, stat 'notes.txt/r.txt'"), { code: "ENOTDIR" })
    }
    expect(fastPlanArgs(["plan", "--file", "notes.txt/r.txt"], env, throwing)).toBeUndefined()
  })

  it("leaves plan with an LLM configured to the full command line", () => {
    expect(fastPlanArgs(["plan", "Do it."], { PLANNER_LLM_MODEL: "llama3.1" }, noFiles)).toBeUndefined()
    expect(fastPlanArgs(["plan", "Do it."], { PLANNER_LLM_BASE_URL: "http://x/v1" }, noFiles)).toBeUndefined()
    expect(fastPlanArgs(["plan", "Do it."], { PLANNER_LLM_MODEL: "  " }, noFiles)).toBeDefined()
  })
})

let cwd = ""
beforeAll(() => {
  ensureBuilt()
  cwd = tempFolder("planner-plan-bundle-")
}, 180_000)

describe.concurrent("planner plan: the plan bundle and the full command line agree", { timeout: 300_000 }, () => {
  const request =
    "Add login with session cookies. Read the spec at https://example.com/spec.pdf. Then write unit tests and run them."

  const cases = (): ReadonlyArray<{ name: string; args: ReadonlyArray<string>; input?: string }> => {
    const requestFile = path.join(cwd, "request.txt")
    fs.writeFileSync(requestFile, "- write the code\n- test it\n")
    const latin1 = path.join(cwd, "latin1.txt")
    fs.writeFileSync(latin1, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e]))
    const huge = path.join(cwd, "huge.txt")
    fs.writeFileSync(huge, "Write the code. ".repeat(20_000))
    return [
      { name: "text", args: ["plan", request] },
      { name: "JSON", args: ["plan", "--json", request] },
      { name: "JSON after the request", args: ["plan", request, "--json"] },
      { name: "standard input", args: ["plan", "-"], input: "Write the code. Then test it." },
      { name: "a request file", args: ["plan", "--file", requestFile] },
      { name: "a request file, --file=", args: ["plan", `--file=${requestFile}`, "--json"] },
      { name: "an empty request", args: ["plan", "   "] },
      { name: "an empty request under --json", args: ["plan", "--json", "   "] },
      { name: "a NUL on standard input", args: ["plan", "-"], input: "Write the code.\u0000 Then test it." },
      { name: "a file that is not UTF-8", args: ["plan", "--file", latin1] },
      { name: "a request too large", args: ["plan", "--file", huge] },
      { name: "a request and a file", args: ["plan", "--file", requestFile, request] },
      { name: "a missing file", args: ["plan", "--file", path.join(cwd, "missing.txt")] },
      { name: "a folder as the file", args: ["plan", "--file", cwd] },
      { name: "a path through a file", args: ["plan", "--file", path.join(requestFile, "request.txt")] },
      { name: "an unknown option", args: ["plan", "--bogus", request] },
      { name: "help", args: ["plan", "--help"] },
      { name: "no request", args: ["plan"] }
    ]
  }

  it("answers every case with the same output, error line and exit code", async () => {
    const all = cases()
    const results = await Promise.all(
      all.map(async ({ args, input }) => {
        const options = input === undefined ? { cwd } : { cwd, input }
        return [await cli(args, options), await full(args, cwd, input)] as const
      })
    )
    for (const [index, [viaBin, viaFull]] of results.entries()) {
      const name = all[index]?.name
      expect(viaBin, name).toEqual(viaFull)
    }
    // The cases cover success and failure on both paths.
    const codes = new Set(results.map(([viaBin]) => viaBin.code))
    expect(codes).toEqual(new Set([0, 2]))
    expect(results[0]?.[0].stdout).toContain("[CodeImplementation] Add login with session cookies")
    expect(results[7]?.[0].stderr).toMatch(/^\{"error":\{"code":2,"message":"The request is empty/)
    const throughFile = results[all.findIndex((one) => one.name === "a path through a file")]?.[0]
    expect(throughFile?.code).toBe(2)
    expect(throughFile?.stderr.trim().split("\n")).toHaveLength(1)
  })
})
