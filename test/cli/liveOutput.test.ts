/**
 * A shell step's output on the live board (a pseudo-terminal, `fixtures/terminal.py`): printed above the board under
 * a line naming the step, trimmed, with the command's own escape sequences and control characters left out (#18).
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { ensureBuilt, inTerminal, tempFolder } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are what is removed
const plainText = (text: string) => text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "")

describe("planner at a terminal, a shell step", { timeout: 300_000 }, () => {
  it("prints the step's output above the live board, and keeps the command's escapes out", async () => {
    const cwd = tempFolder()
    const session = inTerminal(["run", "--allow-shell", "Run `printf 'first line\\n\\033[2Jsecond line\\n'`"], { cwd })
    const result = await session.result
    expect(result.code, result.stdout).toBe(0)
    // The command asked the terminal to clear the screen: that escape never reaches it.
    expect(result.stdout).not.toContain("\u001b[2J")
    const text = plainText(result.stdout)
    expect(text).toMatch(/task 1 output \(Run `printf [^\n]*\):\n {4}first line\n {4}second line\n/)
    expect(text).toContain("Succeeded: 1 of 1 task completed.")
  })
})
