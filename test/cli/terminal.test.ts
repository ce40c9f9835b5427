/**
 * `planner` at a terminal, through a pseudo-terminal (`fixtures/terminal.py`): the live task board, questions asked
 * at a prompt and answered by typing, Ctrl-D at a prompt, and the terminal cases that must not prompt.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { demoScript, ensureBuilt, inTerminal, type ResultJson, sessionIdIn, tempFolder } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are what is checked
const anyEscape = /\u001b\[/
// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are what is checked
const cursorUp = /\u001b\[\d+A\u001b\[J/
// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are what is checked
const plainText = (text: string) => text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "")

describe.concurrent("planner at a terminal", { timeout: 300_000 }, () => {
  it("redraws a live task board, asks the question at a prompt and goes on with the typed answer", async () => {
    const cwd = tempFolder()
    const session = inTerminal(["run", "--executor", `script:${demoScript}`, "Add a login page. Then deploy it."], {
      cwd
    })
    await session.waitFor(/answer> /)
    expect(plainText(session.stdout())).toContain("? Task 2 (deploy it) asks: Deploy to staging or production?")
    session.type("production")
    const result = await session.result
    expect(result.code, result.stdout).toBe(0)
    expect(result.stdout).toMatch(cursorUp)
    const text = plainText(result.stdout)
    expect(text).toMatch(/Session \S+ · succeeded · 2\/2 done/)
    expect(text).toContain("✓  2 [Processing] deploy it — Deployed to production")
    expect(text).toContain("Succeeded: 2 of 2 tasks completed.")
  })

  it("asks several questions one at a time; with --json the prompts stay off the JSON", async () => {
    const cwd = tempFolder()
    const session = inTerminal(["run", "--json", "Check the logs. Then write the report."], { cwd })
    await session.waitFor(/Task 1 asks: Do this step and report the result: Check the logs\r?\n.*answer> /)
    session.type("the logs are clean")
    await session.waitFor(/Task 2 asks: Do this step and report the result: write the report\r?\n.*answer> /)
    session.type("report sent")
    const result = await session.result
    expect(result.code, result.stdout).toBe(0)
    const last = plainText(result.stdout).trim().split("\n").at(-1) ?? ""
    const json = JSON.parse(last) as ResultJson
    expect(json.tasks.map((task) => task.result)).toEqual(["the logs are clean", "report sent"])
  })

  it("Ctrl-D at the prompt leaves the question for later: exit code 3 with the answer command", async () => {
    const cwd = tempFolder()
    const session = inTerminal(["run", "--plain", "Check the logs."], { cwd })
    await session.waitFor(/answer> /)
    session.type("\u0004")
    const result = await session.result
    expect(result.code).toBe(3)
    const text = plainText(result.stdout)
    const sessionId = sessionIdIn(text)
    expect(text).toContain(`planner answer ${sessionId} 1 "<text>"`)
  })

  it("--non-interactive never prompts; NO_COLOR prints plain lines", async () => {
    const cwd = tempFolder()
    const waiting = inTerminal(["run", "--non-interactive", "Check the logs."], { cwd })
    const noColour = inTerminal(["run", "--executor", "echo", "Write the code. Then test it."], {
      cwd,
      env: { NO_COLOR: "1" }
    })
    const [stopped, plain] = await Promise.all([waiting.result, noColour.result])
    expect(stopped.code).toBe(3)
    expect(stopped.stdout).not.toContain("answer>")
    expect(plainText(stopped.stdout)).toContain("Task 1 asks: Do this step and report the result: Check the logs")
    expect(plain.code).toBe(0)
    expect(plain.stdout).not.toMatch(anyEscape)
    expect(plain.stdout.replace(/\r/g, "")).toContain("task 2 completed: test it\nplan succeeded\n")
  })
})
