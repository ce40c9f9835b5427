/** The built `planner` command: help, version, `plan`, and bad usage, as a child process. */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { commandHelp, commandNames, optionNames } from "../../src/app/Cli.js"
import { cli, ensureBuilt, oneLine, parseJson, root, tempFolder } from "./cli.js"

const commands = [
  "plan",
  "run",
  "answer",
  "resume",
  "fork",
  "rerun",
  "edit",
  "cancel",
  "expand",
  "sessions",
  "diff",
  "history",
  "replay",
  "show",
  "worker",
  "serve",
  "recall",
  "stats",
  "memory",
  "prune",
  "doctor"
]

let cwd = ""
beforeAll(() => {
  ensureBuilt()
  cwd = tempFolder()
}, 180_000)

describe.concurrent("planner basics", { timeout: 300_000 }, () => {
  it("--version prints the package version", async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }
    const result = await cli(["--version"], { cwd })
    expect(result).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: "" })
  })

  it("planner and planner --help list every command", async () => {
    const help = await cli(["--help"], { cwd })
    expect(help.code).toBe(0)
    for (const command of commands) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, "m"))
    expect(help.stdout).toContain("Exit codes: 0 completed, 1 failed or cancelled, 2 bad usage or input, 3 waiting")
  })

  it("every command's help has a description and examples", () => {
    expect(commandNames).toEqual(commands)
    for (const command of commands) {
      const help = commandHelp(command) ?? ""
      expect(help, command).toContain("DESCRIPTION")
      expect(help, command).toContain("Examples")
      expect(help, command).toMatch(new RegExp(`^ +planner ${command}\\b`, "m"))
    }
    // Options shared by every command that runs plans.
    for (const command of ["run", "answer", "resume", "fork"]) {
      expect([...(optionNames(command) ?? [])], command).toEqual(
        expect.arrayContaining([
          "--db",
          "--json",
          "--plain",
          "--verbose",
          "--executor",
          "--allow-shell",
          "--answer",
          "--non-interactive",
          "--no-check-links",
          "--no-local-worker"
        ])
      )
    }
    expect([...(optionNames("run") ?? [])]).toEqual(
      expect.arrayContaining(["--file", "--attach", "--max-parallel", "--max-attempts", "--on-failure"])
    )
    expect([...(optionNames("worker") ?? [])]).toEqual(
      expect.arrayContaining(["--kinds", "--concurrency", "--gather-ms"])
    )
    expect([...(optionNames("serve") ?? [])]).toEqual(expect.arrayContaining(["--worker", "--gather-ms"]))
    for (const command of ["sessions", "history", "replay", "show", "cancel"]) {
      expect([...(optionNames(command) ?? [])], command).toEqual(expect.arrayContaining(["--db", "--json"]))
    }
  })

  it("--help through the built command, without terminal styles when piped", async () => {
    const [run, worker] = await Promise.all([cli(["run", "--help"], { cwd }), cli(["worker", "-h"], { cwd })])
    for (const result of [run, worker]) {
      expect(result.code).toBe(0)
      // biome-ignore lint/suspicious/noControlCharactersInRegex: checking that no escape sequence was printed
      expect(result.stdout).not.toMatch(/\u001b\[/)
    }
    expect(run.stdout.trim()).toContain(commandHelp("run")?.trim().split("\n")[0])
    expect(run.stdout).toContain("--executor auto|echo|script:PATH")
    expect(run.stdout).toContain(
      'planner run --executor script:examples/demo.json "Add a login page. Then write tests for it."'
    )
    expect(worker.stdout).toContain("--kinds KIND,...")
    // Headed by the name and version once; the usage line as typed, optional repeatable options in brackets.
    expect(run.stdout).toMatch(/^planner \d+\.\d+\.\d+\n\nUSAGE\n\n\$ planner run \[--db PATH\|URL\]/)
    expect(run.stdout).toContain(" [--answer TASK_ID=TEXT...] ")
    expect(run.stdout).toContain(" [--attach PATH|URL...] ")
    expect(run.stdout).toContain(" [--budget-tokens TOKENS] [--budget-usd DOLLARS] ")
    // Each option's own description, without @effect/cli's generic words for its value's type above it.
    expect(worker.stdout).toMatch(/^--db PATH\|URL\n\n {2}The store: /m)
    expect(worker.stdout).toMatch(/^--concurrency N\n\n {2}How many tasks it runs at once/m)
    for (const result of [run, worker]) {
      expect(result.stdout).not.toContain("A user-defined piece of text.")
      expect(result.stdout).not.toContain("A true or false value.")
      expect(result.stdout).not.toContain("An integer.")
    }
  })

  it("plan prints the parser's tasks, or JSON", async () => {
    const request =
      "Add login with session cookies. Read the spec at https://example.com/spec.pdf. Then write unit tests."
    const [text, json] = await Promise.all([cli(["plan", request], { cwd }), cli(["plan", "--json", request], { cwd })])
    expect(text.code).toBe(0)
    expect(text.stdout).toBe(
      [
        "  1. [CodeImplementation] Add login with session cookies",
        "  2. [Retrieval] Read the spec at https://example.com/spec.pdf  (after 1)",
        "     Link: https://example.com/spec.pdf",
        "  3. [UnitTest] write unit tests  (after 2)",
        ""
      ].join("\n")
    )
    expect(parseJson(json)).toEqual({
      tasks: [
        {
          id: 1,
          description: "Add login with session cookies",
          kind: "CodeImplementation",
          dependsOn: [],
          attachments: []
        },
        {
          id: 2,
          description: "Read the spec at https://example.com/spec.pdf",
          kind: "Retrieval",
          dependsOn: [1],
          attachments: [{ kind: "Link", value: "https://example.com/spec.pdf" }]
        },
        { id: 3, description: "write unit tests", kind: "UnitTest", dependsOn: [2], attachments: [] }
      ]
    })
    // Nothing was stored.
    expect(fs.existsSync(path.join(cwd, ".planner"))).toBe(false)
  })

  it("run refuses a bad request before it opens the store: no database file is left behind", async () => {
    const own = tempFolder()
    const refused = await Promise.all([
      cli(["run", "   "], { cwd: own }),
      cli(["run", "... !!! - -"], { cwd: own }),
      cli(["run", "--file", path.join(own, "missing.txt")], { cwd: own }),
      cli(["run", "--max-attempts", "0", "Write the code."], { cwd: own }),
      cli(["run", "--db", path.join(own, "named.db"), "--plan", path.join(own, "missing.json")], { cwd: own })
    ])
    for (const result of refused) expect(result.code, result.stderr).toBe(2)
    expect(fs.readdirSync(own)).toEqual([])
  })

  it("plan reads the request from standard input with - (or --file -) and from --file", async () => {
    const file = path.join(cwd, "request.txt")
    fs.writeFileSync(file, "- write the code\n- test it\n")
    const [stdin, fromFile, fileDash] = await Promise.all([
      cli(["plan", "--json", "-"], { cwd, input: "Write the code. Then test it." }),
      cli(["plan", "--json", "--file", file], { cwd }),
      cli(["plan", "--json", "--file", "-"], { cwd, input: "Write the code. Then test it." })
    ])
    const descriptions = (result: typeof stdin) =>
      parseJson<{ tasks: Array<{ description: string }> }>(result).tasks.map((task) => task.description)
    expect(descriptions(stdin)).toEqual(["Write the code", "test it"])
    expect(descriptions(fromFile)).toEqual(["write the code", "test it"])
    expect(descriptions(fileDash)).toEqual(["Write the code", "test it"])
  })

  it("bad usage exits with 2 and one line on standard error", async () => {
    const cases: ReadonlyArray<[ReadonlyArray<string>, RegExp]> = [
      [["plan", "   "], /^planner: The request is empty/],
      [["plan", "... !!! - -"], /^planner: The request is empty or says nothing to do/],
      [
        ["plan", "--file", path.join(cwd, "missing.txt")],
        /^planner: Cannot read the request file .*missing\.txt: there is no such file: check the path\.$/
      ],
      [["plan", "--file", ""], /^planner: --file is given an empty value: give it one, or leave --file out\. See/],
      [["plan", "--file", cwd], /^planner: --file .* is not a file \(a folder\?\): give the path of a file\. See/],
      [["run", "--bogus", "Do it"], /^planner: Unknown option --bogus for `planner run`\. See `planner run --help`/],
      [["frobnicate"], /^planner: Invalid subcommand .* See `planner --help`/],
      [["replay", "some-session"], /^planner: Missing option --at\. See `planner replay --help`/],
      [["replay", "some-session", "--at"], /^planner: --at needs a value\. See `planner replay --help`/],
      [
        ["answer", "some-session", "one", "text"],
        /^planner: 'one' is not a whole number\. See `planner answer --help`/
      ],
      [["replay", "some-session", "--at", "1.5"], /^planner: --at needs a whole number; got '1\.5'\./],
      [["run", "--max-attempts=many", "Do it"], /^planner: --max-attempts needs a whole number; got 'many'\./],
      // Only decimal digits: `Number` would read these as 5, 10, 2 and 1.
      [
        ["replay", "some-session", "--at", "0x5"],
        /^planner: --at needs a whole number; got '0x5'\. See `planner replay --help`/
      ],
      // A file that cannot be read says why in words, and what to do.
      [
        ["run", "--executor", "script:missing.json", "Do it"],
        /^planner: The script file \/\S+\/missing\.json cannot be read \(there is no such file\): check the path after script:\.$/
      ],
      [["sessions", "--limit=1e1"], /^planner: --limit needs a whole number; got '1e1'\./],
      [["run", "--max-attempts", " 2", "Do it"], /^planner: --max-attempts needs a whole number; got ' 2'\./],
      [
        ["answer", "some-session", "0b1", "text"],
        /^planner: '0b1' is not a whole number\. See `planner answer --help`/
      ],
      [
        ["run", "--budget-usd", "abc", "Do it"],
        /^planner: --budget-usd needs a number; got 'abc'\. See `planner run --help`/
      ],
      // One line under --verbose too: no note of the failed fiber with its trace after it.
      [["run", "--verbose", "--bogus", "Do it"], /^planner: Unknown option --bogus for `planner run`\./],
      // An empty value is not dropped as if the option had not been given.
      [
        ["run", "--attach", "", "Do it"],
        /^planner: --attach is given an empty value: give it one, or leave --attach out\. See/
      ],
      [["run", "--answer=", "Do it"], /^planner: --answer is given an empty value/],
      [["memory", "bogus"], /^planner: planner memory has no command bogus: use planner memory rebuild\. See/],
      [["sessions", "--db", "a.db", "--db", "b.db"], /^planner: --db is given more than once: give it once\. See/],
      // What the user typed is repeated with its control characters escaped, never sent to the terminal as they are.
      [["show", "ab\u001b[2Jc"], /^planner: There is no session ab\\u001b\[2Jc in /],
      [
        ["run", "--max-attempts", "2", "--on-failure", "bogus", "Do it"],
        /^planner: --on-failure must be one of continue, abort, replan; got 'bogus'\. See `planner run --help`/
      ]
    ]
    const results = await Promise.all(cases.map(([args]) => cli(args, { cwd })))
    for (const [index, result] of results.entries()) {
      const [args, pattern] = cases[index] ?? [[], /$/]
      expect(result.code, args.join(" ")).toBe(2)
      expect(oneLine(result.stderr), args.join(" ")).toMatch(pattern)
      expect(result.stdout, args.join(" ")).toBe("")
    }
    // A worker's or a server's bad flag is refused before any store is opened: the folder gets no database.
    const fresh = tempFolder()
    const workerCases: Array<readonly [ReadonlyArray<string>, RegExp]> = [
      [
        ["worker", "--gather-ms", "1001"],
        /^planner: --gather-ms must be a whole number of milliseconds from 0 to 1000\./
      ],
      [["worker", "--gather-ms=-1"], /^planner: --gather-ms must be a whole number of milliseconds from 0 to 1000\./],
      [["worker", "--concurrency", "0"], /^planner: --concurrency must be a whole number from 1 to 256\./],
      [["worker", "--kinds", "Bogus"], /^planner: Unknown task kind "Bogus" in --kinds: use /],
      [
        ["worker", "--executor", "script:missing.json"],
        /^planner: The script file \/\S+\/missing\.json cannot be read /
      ],
      [["serve", "--port", "70000"], /^planner: --port must be a port number from 0 \(any free port\) to 65535/],
      [
        ["serve", "--worker", "--gather-ms", "5000"],
        /^planner: --gather-ms must be a whole number of milliseconds from 0 to 1000\./
      ],
      [["serve", "--executor", "echo"], /^planner: --executor, --allow-shell and --no-check-links go with --worker/],
      [
        ["serve", "--worker", "--executor", "script:missing.json"],
        /^planner: The script file \/\S+\/missing\.json cannot be read /
      ]
    ]
    const refused = await Promise.all(workerCases.map(([args]) => cli(args, { cwd: fresh })))
    for (const [index, result] of refused.entries()) {
      const [args, pattern] = workerCases[index] ?? [[], /$/]
      expect(result.code, args.join(" ")).toBe(2)
      expect(oneLine(result.stderr), args.join(" ")).toMatch(pattern)
    }
    // Invalid LLM settings in the environment are refused before the store is opened too.
    const badLlm = { PLANNER_LLM_MODEL: "some-model", PLANNER_LLM_TIMEOUT_MS: "abc" }
    const llmRefused = await Promise.all(
      [["worker"], ["serve", "--worker", "--port", "0"], ["run", "--executor", "echo", "Do it"]].map((args) =>
        cli(args, { cwd: fresh, env: badLlm })
      )
    )
    for (const result of llmRefused) {
      expect(result.code).toBe(2)
      expect(oneLine(result.stderr)).toMatch(/^planner: The LLM settings in the environment are invalid: /)
    }
    expect(fs.readdirSync(fresh)).toEqual([])
    const prices = await cli(["run", "--budget-usd", "1", "Do it"], {
      cwd,
      env: { PLANNER_LLM_PRICES: "prices.json" }
    })
    expect(prices.code).toBe(2)
    expect(oneLine(prices.stderr)).toMatch(
      /^planner: PLANNER_LLM_PRICES cannot be used: the file prices\.json cannot be read \(there is no such file\)\. /
    )
  })
})
