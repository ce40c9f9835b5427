/**
 * Regression tests for the CLI defects of #18, through the built `planner` command on SQLite: follow-up commands
 * that carry only options their command takes, help texts, errors as JSON under --json, text no store keeps (NUL,
 * lone surrogates) refused at the edge, the compaction settings, paging the session list, a hole in a session's log,
 * and a shell step's output in `run` and `show`.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { SqlClient } from "@effect/sql"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { commandHelp, commandNames } from "../../src/app/Cli.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import {
  bin,
  cleanEnv,
  cli,
  demoScript,
  ensureBuilt,
  oneLine,
  parseJson,
  type ResultJson,
  sessionIdIn,
  tempFolder,
  writeScript
} from "./cli.js"
import { defaultDb, readSession, sessionIds } from "./store.js"

beforeAll(() => ensureBuilt(), 180_000)

/** The words of a printed command, as a shell would split them (single quotes only, as `shellQuote` writes them). */
const words = (command: string): ReadonlyArray<string> =>
  [...command.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((match) => match[1] ?? match[2] ?? match[3] ?? "")

/** Runs a command as printed (`planner show ...`), without its program name. */
const runPrinted = (printed: string, cwd: string) => cli(words(printed).slice(1), { cwd })

describe.concurrent("planner follow-up commands", { timeout: 300_000 }, () => {
  it("'See it again with' names show with --db only, and the printed command works", async () => {
    const cwd = tempFolder()
    const db = path.join(cwd, "stores", "my store.db")
    const run = await cli(
      ["run", "--executor", "echo", "--allow-shell", "--no-check-links", "--db", db, "Write the code. Then test it."],
      { cwd }
    )
    expect(run.code, run.stderr).toBe(0)
    const sessionId = sessionIdIn(run.stdout)
    const printed = run.stdout.match(/See it again with: (.*)$/m)?.[1] ?? ""
    expect(printed).toBe(`planner show ${sessionId} --db '${db}'`)
    const shown = await runPrinted(printed, cwd)
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toContain(`Session ${sessionId}: Succeeded`)
  })

  it("a waiting run prints answer commands with the execution options answer takes, and they work", async () => {
    const cwd = tempFolder()
    const run = await cli(
      ["run", "--allow-shell", "--executor", `script:${demoScript}`, "Add a login page. Then deploy it."],
      { cwd }
    )
    expect(run.code, run.stderr).toBe(3)
    const sessionId = sessionIdIn(run.stdout)
    const printed = run.stdout.match(/^ {2}(planner answer .*)$/m)?.[1] ?? ""
    expect(printed).toBe(`planner answer ${sessionId} 2 "<text>" --allow-shell`)
    const answered = await runPrinted(printed.replace("<text>", "staging"), cwd)
    expect(answered.code, answered.stderr).toBe(0)
    expect(answered.stdout).toMatch(new RegExp(`See it again with: planner show ${sessionId}$`, "m"))
  })
})

describe("planner help", { timeout: 300_000 }, () => {
  it("no example puts backticks inside double quotes (the user's shell would run them)", () => {
    for (const command of commandNames) {
      const help = commandHelp(command) ?? ""
      const examples = help.split("\n").filter((line) => /^ +planner /.test(line))
      for (const example of examples) expect(example, command).not.toMatch(/"[^"]*`[^"]*"/)
    }
    expect(commandHelp("run")).toContain("planner run --allow-shell 'Run `npm test`. Then summarise the failures.'")
  })

  it("every option with a default says what it is", () => {
    const expected: Record<string, ReadonlyArray<string>> = {
      run: [
        "How many tasks may run at once. Default: 4.",
        "fails for good. Default: 3.",
        "Default: continue.",
        "Default: 2000.",
        "Default: coding.",
        "Default: 50."
      ].slice(0, 5),
      sessions: ["Default: 50.", "Default: 0."],
      worker: ["Default: 4.", "Default: all."],
      serve: ["Default: 4780.", "Default 127.0.0.1"]
    }
    for (const [command, defaults] of Object.entries(expected)) {
      const help = commandHelp(command) ?? ""
      for (const text of defaults) expect(help, command).toContain(text)
    }
  })

  it("usage lines name option values: replay --at SEQ <session>", async () => {
    const cwd = tempFolder()
    const help = await cli(["replay", "--help"], { cwd })
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("replay [--db PATH|URL] [--json] --at SEQ <session>")
  })
})

describe.concurrent("planner --json errors", { timeout: 300_000 }, () => {
  const jsonError = (stderr: string) => JSON.parse(oneLine(stderr)) as { error: { code: number; message: string } }

  it("an error is one JSON object on stderr with the same exit code", async () => {
    const cwd = tempFolder()
    const [unknownSession, badUsage, unknownOption, unavailable, plain] = await Promise.all([
      cli(["show", "20250101-120000-abc123", "--json"], { cwd }),
      cli(["sessions", "--json", "--limit", "0"], { cwd }),
      cli(["run", "--json", "--bogus", "Write it."], { cwd }),
      cli(["sessions", "--json", "--db", path.join(cwd, "f", "x.db")], { cwd: prepareFileInTheWay(cwd) }),
      cli(["show", "20250101-120000-abc123"], { cwd })
    ])
    expect(unknownSession.code, unknownSession.stderr).toBe(2)
    expect(unknownSession.stdout).toBe("")
    expect(jsonError(unknownSession.stderr).error).toMatchObject({ code: 2 })
    expect(jsonError(unknownSession.stderr).error.message).toMatch(/^There is no session 20250101-120000-abc123/)
    expect(badUsage.code, badUsage.stderr).toBe(2)
    expect(jsonError(badUsage.stderr).error.message).toContain("--limit")
    expect(unknownOption.code, unknownOption.stderr).toBe(2)
    expect(jsonError(unknownOption.stderr).error).toMatchObject({ code: 2 })
    expect(jsonError(unknownOption.stderr).error.message).toContain("--bogus")
    expect(unavailable.code, unavailable.stderr).toBe(4)
    expect(jsonError(unavailable.stderr).error.code).toBe(4)
    // Without --json it stays one line of text.
    expect(plain.code, plain.stderr).toBe(2)
    expect(oneLine(plain.stderr)).toMatch(/^planner: There is no session/)
  })
})

/** A working folder where `f` is a file, so a store under `f/` cannot be made (exit code 4). */
const prepareFileInTheWay = (cwd: string) => {
  fs.writeFileSync(path.join(cwd, "f"), "")
  return cwd
}

describe.concurrent("planner refuses text no store keeps", { timeout: 300_000 }, () => {
  it("a NUL in a request from --file or standard input is exit code 2, one line, and nothing is stored", async () => {
    const cwd = tempFolder()
    const file = path.join(cwd, "request.txt")
    fs.writeFileSync(file, "Write the code.\u0000 Then test it.")
    const [fromFile, fromStdin, planned] = await Promise.all([
      cli(["run", "--executor", "echo", "--file", file], { cwd }),
      cli(["run", "--executor", "echo", "-"], { cwd, input: "Write the code. Then\u0000 test it." }),
      cli(["plan", "--file", file], { cwd })
    ])
    expect(fromFile.code).toBe(2)
    expect(oneLine(fromFile.stderr)).toBe(
      `planner: The request file ${file} holds a NUL character (U+0000) at character 16, which cannot be stored: remove it and try again.`
    )
    expect(fromStdin.code).toBe(2)
    expect(oneLine(fromStdin.stderr)).toContain("The request on standard input holds a NUL character")
    expect(planned.code).toBe(2)
    expect(oneLine(planned.stderr)).toContain("holds a NUL character")
    const stored = fs.existsSync(defaultDb(cwd)) ? await sessionIds(defaultDb(cwd)) : []
    expect(stored).toEqual([])
  })

  it("a request file that is not UTF-8 is exit code 2, not stored as U+FFFD", async () => {
    const cwd = tempFolder()
    const file = path.join(cwd, "request.txt")
    // A UTF-16 surrogate encoded as if it were a character (CESU-8): not UTF-8.
    fs.writeFileSync(file, Buffer.concat([Buffer.from("Write the code "), Buffer.from([0xed, 0xa0, 0x80])]))
    const fromFile = await cli(["run", "--executor", "echo", "--file", file], { cwd })
    expect(fromFile.code).toBe(2)
    expect(oneLine(fromFile.stderr)).toBe(
      `planner: The request file ${file} is not UTF-8 text: save it as UTF-8 and try again.`
    )
    const stored = fs.existsSync(defaultDb(cwd)) ? await sessionIds(defaultDb(cwd)) : []
    expect(stored).toEqual([])
  })

  it("a request argument that is not UTF-8 (a Latin-1 terminal) is exit code 2, not stored as U+FFFD", () => {
    const cwd = tempFolder()
    // The bytes as a Latin-1 terminal sends them: "café" with é as the single byte 0xE9.
    const result = spawnSync(
      "bash",
      ["-c", `"$0" "$1" run --executor echo "$(printf 'Write the caf\\xe9 menu.')"`, process.execPath, bin],
      {
        cwd,
        env: cleanEnv(),
        encoding: "utf8"
      }
    )
    expect(result.status).toBe(2)
    expect(oneLine(result.stderr)).toBe(
      "planner: The request holds bytes that are not UTF-8 text (shown as U+FFFD): set your terminal to UTF-8, or pass it in a UTF-8 file."
    )
    expect(fs.readdirSync(cwd)).toEqual([])
  })

  it("a NUL or a lone surrogate written as a JSON escape in a plan file is exit code 2, naming where", async () => {
    const cwd = tempFolder()
    const nul = path.join(cwd, "nul.json")
    fs.writeFileSync(nul, '{"tasks":[{"id":1,"description":"Write it"},{"id":2,"description":"Test \\u0000 it"}]}')
    const surrogate = path.join(cwd, "surrogate.json")
    fs.writeFileSync(surrogate, '{"request":"Write \\ud800 it","tasks":[{"id":1,"description":"Write it"}]}')
    const [withNul, withSurrogate] = await Promise.all([
      cli(["run", "--executor", "echo", "--plan", nul], { cwd }),
      cli(["run", "--executor", "echo", "--plan", surrogate], { cwd })
    ])
    expect(withNul.code).toBe(2)
    expect(oneLine(withNul.stderr)).toBe(
      `planner: The plan on ${nul} holds a NUL character (U+0000) at character 6 at .tasks[1].description, which cannot be stored: remove it and try again.`
    )
    expect(withSurrogate.code).toBe(2)
    expect(oneLine(withSurrogate.stderr)).toContain("a lone UTF-16 surrogate (U+D800) at character 7 at .request")
  })

  it("a NUL or a lone surrogate in a script file is exit code 2, naming where", async () => {
    const cwd = tempFolder()
    const nul = writeScript(cwd, "nul.json", { rules: [], default: { complete: "done\u0000" } })
    const surrogate = path.join(cwd, "surrogate.json")
    fs.writeFileSync(
      surrogate,
      '{"rules":[{"match":"code","outcomes":[{"complete":"ok \\ud800"}]}],"default":{"complete":"done"}}'
    )
    const [withNul, withSurrogate] = await Promise.all([
      cli(["run", "--executor", `script:${nul}`, "Write the code."], { cwd }),
      cli(["run", "--executor", `script:${surrogate}`, "Write the code."], { cwd })
    ])
    expect(withNul.code).toBe(2)
    expect(oneLine(withNul.stderr)).toContain(`The script file ${nul} holds a NUL character (U+0000)`)
    expect(withNul.stderr).toContain(".default.complete")
    expect(withSurrogate.code).toBe(2)
    expect(oneLine(withSurrogate.stderr)).toContain("a lone UTF-16 surrogate (U+D800)")
    expect(withSurrogate.stderr).toContain(".rules[0].outcomes[0].complete")
  })
})

describe.concurrent("planner run compaction settings", { timeout: 300_000 }, () => {
  it("--token-budget, --profile, --system-prompt and --error-char-limit are recorded with the plan and shown", async () => {
    const cwd = tempFolder()
    const run = await cli(
      [
        "run",
        "--executor",
        "echo",
        "--json",
        "--token-budget",
        "500",
        "--profile",
        "analysis",
        "--system-prompt",
        "You plan data work.",
        "--error-char-limit",
        "300",
        "Fetch the data. Then summarise it."
      ],
      { cwd }
    )
    expect(run.code, run.stderr).toBe(0)
    const { sessionId } = parseJson<ResultJson>(run)
    const [stored, shown, shownJson, replayed] = await Promise.all([
      readSession(defaultDb(cwd), sessionId),
      cli(["show", sessionId], { cwd }),
      cli(["show", sessionId, "--json"], { cwd }),
      cli(["replay", sessionId, "--at", "1"], { cwd })
    ])
    const settings = { tokenBudget: 500, profile: "analysis", systemPrompt: "You plan data work.", errorCharLimit: 300 }
    expect(stored.state.config).toMatchObject(settings)
    expect(shown.stdout).toContain("Compaction: token budget 500, profile analysis, error char limit 300")
    expect(shown.stdout).toContain("System prompt: You plan data work.")
    expect(shown.stdout).toContain("Settings: max parallel 4, max attempts 3, on failure continue")
    expect(parseJson<{ config: Record<string, unknown> }>(shownJson).config).toMatchObject(settings)
    expect(replayed.stdout).toContain("Compaction: token budget 500, profile analysis")
  })

  it("without them the defaults are recorded; bad values are exit code 2", async () => {
    const cwd = tempFolder()
    const [plainRun, badProfile, zeroBudget, badLimit] = await Promise.all([
      cli(["run", "--executor", "echo", "--json", "Write it."], { cwd }),
      cli(["run", "--executor", "echo", "--profile", "poetry", "Write it."], { cwd }),
      cli(["run", "--executor", "echo", "--token-budget", "0", "Write it."], { cwd }),
      cli(["run", "--executor", "echo", "--error-char-limit", "-5", "Write it."], { cwd })
    ])
    expect(plainRun.code, plainRun.stderr).toBe(0)
    const stored = await readSession(defaultDb(cwd), parseJson<ResultJson>(plainRun).sessionId)
    expect(stored.state.config).toMatchObject({ tokenBudget: 2000, profile: "coding", errorCharLimit: 2000 })
    expect(badProfile.code).toBe(2)
    expect(zeroBudget.code).toBe(2)
    expect(oneLine(zeroBudget.stderr)).toContain("--token-budget must be a whole number from 1")
    expect(badLimit.code).toBe(2)
  })
})

describe("planner sessions paging", { timeout: 300_000 }, () => {
  it("--limit and --offset page the list; JSON has the total; text says which part is shown", async () => {
    const cwd = tempFolder()
    for (const request of ["First.", "Second.", "Third."]) {
      const run = await cli(["run", "--executor", "echo", request], { cwd })
      expect(run.code, run.stderr).toBe(0)
    }
    const ids = await sessionIds(defaultDb(cwd))
    const [firstPage, lastPage, text, past, all] = await Promise.all([
      cli(["sessions", "--json", "--limit", "2"], { cwd }),
      cli(["sessions", "--json", "--limit", "2", "--offset", "2"], { cwd }),
      cli(["sessions", "--limit", "2"], { cwd }),
      cli(["sessions", "--offset", "5"], { cwd }),
      cli(["sessions"], { cwd })
    ])
    type Page = { total: number; offset: number; limit: number; sessions: ReadonlyArray<{ sessionId: string }> }
    const first = parseJson<Page>(firstPage)
    expect(first).toMatchObject({ total: 3, offset: 0, limit: 2 })
    expect(first.sessions.map((session) => session.sessionId)).toEqual(ids.slice(0, 2))
    const last = parseJson<Page>(lastPage)
    expect(last).toMatchObject({ total: 3, offset: 2 })
    expect(last.sessions.map((session) => session.sessionId)).toEqual(ids.slice(2))
    expect(text.stdout.trim().split("\n").at(-1)).toBe(
      "(showing 1-2 of 3 sessions, newest first; more with `planner sessions --offset 2 --limit 2`)"
    )
    expect(past.code).toBe(0)
    expect(past.stdout).toContain("No sessions at offset 5")
    expect(all.stdout.trim().split("\n").at(-1)).toBe("(showing 1-3 of 3 sessions, newest first)")
  })
})

/** Changes the SQLite file behind the store's back, as a damaged or hand-edited database would be changed. */
const onDatabase = (filename: string, change: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const context = yield* Layer.build(SqliteEventStore.layer({ filename }))
        yield* change(Context.get(context, SqlClient.SqlClient))
      })
    )
  )

/** A finished two-task session in the default store of a new folder. */
const finishedSession = async () => {
  const cwd = tempFolder()
  const run = await cli(["run", "--executor", "echo", "--json", "Write the code. Then test it."], { cwd })
  expect(run.code, run.stderr).toBe(0)
  return { cwd, sessionId: parseJson<ResultJson>(run).sessionId }
}

describe("planner on a session with a hole in its log", { timeout: 300_000 }, () => {
  it("history, show and replay report a corrupt log (exit code 4, one line); sessions lists it as unreadable", async () => {
    const { cwd, sessionId } = await finishedSession()
    // One stored row lost.
    await onDatabase(
      defaultDb(cwd),
      (sql) => sql`DELETE FROM events WHERE aggregate_id = ${sessionId} AND sequence = ${3}`
    )
    const [history, show, replay, sessions] = await Promise.all([
      cli(["history", sessionId], { cwd }),
      cli(["show", sessionId], { cwd }),
      cli(["replay", sessionId, "--at", "5"], { cwd }),
      cli(["sessions"], { cwd })
    ])
    for (const result of [history, show, replay]) {
      expect(result.code, result.stdout).toBe(4)
      expect(oneLine(result.stderr)).toMatch(
        new RegExp(
          `^planner: The stored event at position \\d+ \\(\\w+, ${sessionId}#4\\) cannot be read: the session's log has a gap: event 3 is missing before it\\.`
        )
      )
    }
    expect(sessions.code).toBe(0)
    expect(sessions.stdout).toMatch(
      new RegExp(`^${sessionId} .* Unreadable +event 4 cannot be read \\(a gap in the log\\)`, "m")
    )
  })
})

describe("planner on a session with an unreadable event", { timeout: 300_000 }, () => {
  it("what comes before it still works: the history up to it, time travel and forks before it", async () => {
    const { cwd, sessionId } = await finishedSession()
    // One stored event's data overwritten with fields its schema does not accept.
    await onDatabase(
      defaultDb(cwd),
      (sql) => sql`UPDATE events SET data = '{"bogus":1}' WHERE aggregate_id = ${sessionId} AND sequence = ${3}`
    )
    const unreadable = new RegExp(
      `^planner: The stored event at position \\d+ \\(\\w+, ${sessionId}#3\\) cannot be read`
    )
    const [history, historyJson, before, at, copyFork, editedFork] = await Promise.all([
      cli(["history", sessionId], { cwd }),
      cli(["history", sessionId, "--json"], { cwd }),
      cli(["replay", sessionId, "--at", "2"], { cwd }),
      cli(["replay", sessionId, "--at", "3"], { cwd }),
      cli(["fork", sessionId, "--at", "2", "--json"], { cwd }),
      cli(["fork", sessionId, "--at", "2", "--set", "2=Test it well", "--json"], { cwd })
    ])
    // As text, the events before it, then the error; as JSON, the error alone.
    expect(history.code).toBe(4)
    expect(history.stdout).toMatch(/^ +1 .*TasksPlanned/m)
    expect(history.stdout).toMatch(/^ +2 .*TaskDispatched/m)
    expect(history.stdout).not.toMatch(/^ +3 /m)
    expect(history.stdout).toMatch(/: the first 2 of \d+ events can be read/)
    expect(oneLine(history.stderr)).toMatch(unreadable)
    expect(historyJson.code).toBe(4)
    expect(historyJson.stdout).toBe("")
    expect(before.code, before.stderr).toBe(0)
    expect(before.stdout).toContain("as it was after event 2 of")
    expect(at.code).toBe(4)
    expect(oneLine(at.stderr)).toMatch(unreadable)
    for (const forked of [copyFork, editedFork]) {
      expect(forked.code, forked.stderr).toBe(0)
      expect(parseJson<ResultJson>(forked)).toMatchObject({ status: "Succeeded" })
    }
  })
})

/** A finished session whose task 1 ran as a sub-plan (`ROOT~1`, two steps), from a plan file, with `--expand`. */
const finishedTree = async () => {
  const cwd = tempFolder()
  const plan = {
    request: "Release it",
    tasks: [
      { id: 1, description: "Build the release. Then publish it.", kind: "Processing", dependsOn: [], attachments: [] },
      { id: 2, description: "Tell the team", kind: "Processing", dependsOn: [1], attachments: [] }
    ]
  }
  fs.writeFileSync(path.join(cwd, "plan.json"), JSON.stringify(plan))
  const run = await cli(["run", "--executor", "echo", "--expand", "--plan", "plan.json", "--json"], { cwd })
  expect(run.code, run.stderr).toBe(0)
  const root = parseJson<ResultJson>(run).sessionId
  // The root's log: 1 planned, 2 expanded, 3 task 1 dispatched (its sub-plan runs), 4 task 1 completed, ...
  const history = await cli(["history", root], { cwd })
  expect(history.stdout).toMatch(/^ +2 .*TaskExpanded/m)
  expect(history.stdout).toMatch(/^ +4 .*TaskStatusUpdated +task 1 completed/m)
  return { cwd, root, child: `${root}~1` }
}

describe("planner on a session with sub-plans and an unreadable event", { timeout: 300_000 }, () => {
  const overwrite = (cwd: string, sessionId: string, sequence: number) =>
    onDatabase(
      defaultDb(cwd),
      (sql) => sql`UPDATE events SET data = '{"bogus":1}' WHERE aggregate_id = ${sessionId} AND sequence = ${sequence}`
    )

  it("the root's next event unreadable: time travel and a fork just before it work, cut by its stored moment", async () => {
    const { cwd, root } = await finishedTree()
    await overwrite(cwd, root, 4)
    const sessionsBefore = await sessionIds(defaultDb(cwd))
    const [replayed, forked] = await Promise.all([
      cli(["replay", root, "--at", "3"], { cwd }),
      cli(["fork", root, "--at", "3", "--json"], { cwd })
    ])
    expect(replayed.code, replayed.stderr).toBe(0)
    expect(replayed.stdout).toContain("as it was after event 3 of")
    expect(forked.code, forked.stderr).toBe(0)
    expect(parseJson<ResultJson>(forked)).toMatchObject({ status: "Succeeded" })
    // The fork and its own sub-plan, nothing else.
    const added = (await sessionIds(defaultDb(cwd))).filter((id) => !sessionsBefore.includes(id))
    const forkId = parseJson<ResultJson>(forked).sessionId
    expect(added.sort()).toEqual([forkId, `${forkId}~1`].sort())
  })

  it("a sub-plan's event unreadable after the moment a fork cuts at: time travel and the fork do not read it", async () => {
    const { cwd, root, child } = await finishedTree()
    await overwrite(cwd, child, 8)
    const [replayed, forked, childAfter] = await Promise.all([
      cli(["replay", root, "--at", "2"], { cwd }),
      cli(["fork", root, "--at", "2", "--json"], { cwd }),
      cli(["replay", root, "--at", "8"], { cwd })
    ])
    expect(replayed.code, replayed.stderr).toBe(0)
    expect(forked.code, forked.stderr).toBe(0)
    expect(parseJson<ResultJson>(forked)).toMatchObject({ status: "Succeeded" })
    // At the root's last event the whole sub-plan is part of the moment: its unreadable last event says so.
    expect(childAfter.code).toBe(4)
    expect(oneLine(childAfter.stderr)).toContain(`${child}#8) cannot be read`)
  })
})

describe("planner shell output", { timeout: 300_000 }, () => {
  it("run and show print a shell step's output under it, long output trimmed to its head and tail", async () => {
    const cwd = tempFolder()
    const run = await cli(["run", "--allow-shell", "--plain", "Run `seq 1 40`"], { cwd })
    expect(run.code, run.stderr).toBe(0)
    const sessionId = sessionIdIn(run.stdout)
    const lines = run.stdout.split("\n")
    const at = lines.findIndex((line) => /^task 1 completed: \$ seq 1 40/.test(line))
    expect(at, run.stdout).toBeGreaterThanOrEqual(0)
    expect(lines.slice(at + 1, at + 22)).toEqual([
      ...Array.from({ length: 8 }, (_, index) => `    ${index + 1}`),
      "    … 20 more lines …",
      ...Array.from({ length: 12 }, (_, index) => `    ${index + 29}`)
    ])
    const show = await cli(["show", sessionId], { cwd })
    expect(show.stdout).toContain(`${" ".repeat(18)}1\n${" ".repeat(18)}2\n`)
    expect(show.stdout).toContain(`${" ".repeat(18)}40\n`)
    expect(show.stdout).toContain("… 20 more lines …")
  })
})
