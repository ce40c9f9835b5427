/**
 * Planning with memory, end to end through the built CLI on a real SQLite file: a task whose similar past tasks
 * asked a question is flagged before it runs; `run --from-memory` reuses a closely matching past plan and records it
 * in the plan's source, and plans as usual when nothing matches.
 */
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { cli, ensureBuilt, inTerminal, parseJson, sessionIdIn, tempFolder, writeScript } from "../cli/cli.js"

// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are removed
const plainText = (text: string) => text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "")

let cwd = ""
let script = ""
beforeAll(() => {
  ensureBuilt()
  cwd = tempFolder("planner-memory-planning-")
  script = writeScript(cwd, "script.json", {
    rules: [{ match: "deploy", outcomes: [{ ask: "Staging or production?" }, { complete: "Deployed to {answer}" }] }],
    default: { complete: "done: {description}" }
  })
}, 180_000)

describe("planning with memory", { timeout: 300_000 }, () => {
  it("flags a task whose similar past tasks usually asked for clarification, and not one with an answer given", async () => {
    const db = path.join(cwd, "flags.db")
    const executor = `script:${script}`
    for (const request of ["Deploy the website to staging", "Deploy the API server to staging"]) {
      const past = await cli(["run", "--executor", executor, "--plain", "--db", db, "--answer", "1=staging", request], {
        cwd
      })
      expect(past.code, past.stderr).toBe(0)
      // Nothing similar had asked before these.
      expect(past.stderr).not.toContain("asked for clarification")
    }
    const flagged = await cli(
      ["run", "--executor", executor, "--plain", "--non-interactive", "--db", db, "Deploy the docs site to staging"],
      { cwd }
    )
    expect(flagged.code).toBe(3)
    expect(flagged.stderr).toContain(
      "Note: task 1: similar tasks asked for clarification 2 times in 2: consider answering in advance with --answer 1=..."
    )
    const answered = await cli(
      [
        "run",
        "--executor",
        executor,
        "--plain",
        "--db",
        db,
        "--answer",
        "1=staging",
        "Deploy the docs site to staging"
      ],
      { cwd }
    )
    expect(answered.code, answered.stderr).toBe(0)
    expect(answered.stderr).not.toContain("asked for clarification")
    // An unrelated task is not flagged.
    const other = await cli(["run", "--executor", executor, "--plain", "--db", db, "Write the release notes"], { cwd })
    expect(other.code, other.stderr).toBe(0)
    expect(other.stderr).not.toContain("asked for clarification")
  })

  it("run --from-memory reuses a closely matching past successful plan, named in the plan's source", async () => {
    const db = path.join(cwd, "reuse.db")
    const original = await cli(
      [
        "run",
        "--executor",
        "echo",
        "--plain",
        "--db",
        db,
        "Fetch the sales figures. Then chart the monthly totals. Then email the chart to the team."
      ],
      { cwd }
    )
    expect(original.code, original.stderr).toBe(0)
    const originalId = sessionIdIn(original.stdout + original.stderr)
    const shown = parseJson<{ tasks: ReadonlyArray<{ description: string; kind: string; dependsOn: number[] }> }>(
      await cli(["show", "--json", "--db", db, originalId], { cwd })
    )

    // Said differently, in one sentence: the parser alone would plan it otherwise.
    const request = "Fetch the monthly sales figures, chart the totals and email the team the chart"
    const reused = await cli(["run", "--executor", "echo", "--plain", "--from-memory", "--db", db, request], { cwd })
    expect(reused.code, reused.stderr).toBe(0)
    expect(reused.stderr).toContain(`Reusing the plan of session ${originalId} from memory (3 tasks).`)
    const reusedId = sessionIdIn(reused.stdout + reused.stderr)
    const state = parseJson<{
      request: string
      source: { _tag: string; reason: string }
      tasks: ReadonlyArray<{ description: string; kind: string; dependsOn: number[]; status: string }>
    }>(await cli(["show", "--json", "--db", db, reusedId], { cwd }))
    expect(state.request).toBe(request)
    expect(state.source._tag).toBe("Parser")
    expect(state.source.reason).toContain(`reused the plan of session ${originalId} from memory`)
    expect(state.tasks.map(({ description, kind, dependsOn }) => ({ description, kind, dependsOn }))).toEqual(
      shown.tasks.map(({ description, kind, dependsOn }) => ({ description, kind, dependsOn }))
    )
    expect(state.tasks.every((task) => task.status === "Completed")).toBe(true)

    const unrelated = await cli(
      ["run", "--executor", "echo", "--plain", "--from-memory", "--db", db, "Water the office plants"],
      { cwd }
    )
    expect(unrelated.code, unrelated.stderr).toBe(0)
    expect(unrelated.stderr).toContain("No closely matching successful plan in memory: planning the request instead.")

    const both = await cli(["run", "--from-memory", "--plan", "-", "--db", db], { cwd, input: "{}" })
    expect(both.code).toBe(2)
    expect(both.stderr).toContain("--from-memory")
  })

  it("at a terminal, run offers a closely matching past plan: yes reuses it, no plans the request, a pipe is never asked", async () => {
    const db = path.join(cwd, "offer.db")
    const original = await cli(
      [
        "run",
        "--executor",
        "echo",
        "--plain",
        "--db",
        db,
        "Fetch the sales figures. Then chart the monthly totals. Then email the chart to the team."
      ],
      { cwd }
    )
    expect(original.code, original.stderr).toBe(0)
    const originalId = sessionIdIn(original.stdout + original.stderr)
    const request = "Fetch the monthly sales figures, chart the totals and email the team the chart"
    const sourceOf = async (text: string) =>
      parseJson<{ source: { _tag: string; reason?: string }; tasks: ReadonlyArray<unknown> }>(
        await cli(["show", "--json", "--db", db, sessionIdIn(text)], { cwd })
      )

    const yes = inTerminal(["run", "--executor", "echo", "--plain", "--db", db, request], { cwd })
    await yes.waitFor(/Reuse its plan \(as --from-memory does\)\? \[y\/n\] /)
    expect(plainText(yes.stdout())).toContain(
      `Past session ${originalId} planned a closely matching request and succeeded`
    )
    expect(plainText(yes.stdout())).toContain("3. [")
    yes.type("y")
    const reused = await yes.result
    expect(reused.code, reused.stdout).toBe(0)
    const reusedText = plainText(reused.stdout)
    expect(reusedText).toContain(`Reusing the plan of session ${originalId} from memory (3 tasks).`)
    const reusedState = await sourceOf(reusedText.slice(reusedText.indexOf("Reusing")))
    expect(reusedState.source.reason).toContain(`reused the plan of session ${originalId} from memory`)
    expect(reusedState.tasks).toHaveLength(3)

    const no = inTerminal(["run", "--executor", "echo", "--plain", "--db", db, request], { cwd })
    await no.waitFor(/Reuse its plan \(as --from-memory does\)\? \[y\/n\] /)
    no.type("n")
    const planned = await no.result
    expect(planned.code, planned.stdout).toBe(0)
    const plannedText = plainText(planned.stdout)
    expect(plannedText).toContain("Planning the request instead.")
    expect(
      (await sourceOf(plannedText.slice(plannedText.indexOf("Planning the request")))).source.reason ?? ""
    ).not.toContain("from memory")

    // Not at a terminal, or with --json: never asked, planned as usual.
    for (const extra of [[], ["--json"]]) {
      const piped = await cli(["run", "--executor", "echo", "--plain", ...extra, "--db", db, request], { cwd })
      expect(piped.code, piped.stderr).toBe(0)
      expect(piped.stdout + piped.stderr).not.toContain("Reuse its plan")
    }
  })
})
