/**
 * Issue #18: an approved command runs as written. Shell syntax goes to `sh -c`, exactly as the approval question shows
 * it; a block of several lines runs line by line with `sh -e`, never joined into one command; a command a shell would
 * only split into words keeps running without a shell. Real processes on real files in a temp dir.
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck } from "effect"
import * as Parser from "../../src/domain/Parser.js"
import type { Outcome } from "../../src/infra/Executor.js"
import * as ShellExecutor from "../../src/infra/ShellExecutor.js"
import { answered, taskContext } from "./context.js"

let root = ""
beforeAll(() => {
  root = Fs.realpathSync(Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "shell-syntax-")))
})
afterAll(() => {
  Fs.rmSync(root, { recursive: true, force: true })
})

let counter = 0
/** A fresh directory holding the given (empty) files. */
const folderWith = (...files: ReadonlyArray<string>): string => {
  counter += 1
  const folder = NodePath.join(root, `case-${counter}`)
  Fs.mkdirSync(folder)
  for (const file of files) Fs.writeFileSync(NodePath.join(folder, file), "")
  return folder
}
const filesIn = (folder: string) => Fs.readdirSync(folder).sort()

const completed = (outcome: Outcome): string => {
  if (outcome._tag !== "Completed") throw new Error(`expected Completed, got ${JSON.stringify(outcome)}`)
  return outcome.result
}
const failed = (outcome: Outcome): string => {
  if (outcome._tag !== "Failed") throw new Error(`expected Failed, got ${JSON.stringify(outcome)}`)
  return outcome.error
}
const question = (outcome: Outcome): string => {
  if (outcome._tag !== "NeedsClarification") throw new Error(`expected a question, got ${JSON.stringify(outcome)}`)
  return outcome.question
}

const allowed = ShellExecutor.make({ allow: true })
const asking = ShellExecutor.make({ allow: false })

describe("needsShell and invocationOf", () => {
  it("sends shell syntax outside quotes to sh, and leaves plain words alone", () => {
    const shell = [
      "rm -f a.txt && echo done",
      "ls -1 / | wc -l",
      "echo a; echo b",
      "make > build.log",
      "sort < in.txt",
      "sleep 1 &",
      "echo $HOME",
      'echo "$HOME"',
      'echo "`id`"',
      "echo $(id)",
      "echo `id`",
      "ls *.txt",
      "ls file?.txt",
      "ls [ab].txt",
      "ls ~/x",
      "echo x # comment",
      "(cd sub && make)",
      "A=1 make",
      "cd build",
      "export A=1",
      "if true; then echo y; fi"
    ]
    for (const command of shell) expect(ShellExecutor.needsShell(command), command).toBe(true)
    const plain = [
      "npm test",
      'git commit -m "fix it"',
      "echo 'a && b | c $(id) *'",
      'echo "a && b | c * ~ #"',
      "echo a\\;b \\$HOME \\*",
      "make -j2 \\\n  all",
      "echo a#b x~y a=b",
      "sh -c 'one\ntwo'"
    ]
    for (const command of plain) expect(ShellExecutor.needsShell(command), command).toBe(false)
  })

  it("picks words, sh -c or sh -e -c, and never joins lines", () => {
    const of = (command: string) => Either.getOrThrow(ShellExecutor.invocationOf(command))
    expect(of('git commit -m "fix it"')).toEqual(
      ShellExecutor.Invocation.Direct({ argv: ["git", "commit", "-m", "fix it"] })
    )
    expect(ShellExecutor.argvOf(of("rm -f a.txt && echo done"))).toEqual(["/bin/sh", "-c", "rm -f a.txt && echo done"])
    expect(ShellExecutor.argvOf(of("rm -f victim1\ntouch keepme"))).toEqual([
      "/bin/sh",
      "-e",
      "-c",
      "rm -f victim1\ntouch keepme"
    ])
    expect(of("rm -f victim1\n\ntouch keepme")).toMatchObject({ _tag: "Script", lines: 2 })
    expect(Either.isLeft(ShellExecutor.invocationOf("echo 'open && x"))).toBe(true)
  })
})

describe("needsShell against the real shell", () => {
  const alphabet = [
    ..."ab -_./=,:@%+",
    " ",
    "\t",
    "'",
    '"',
    "\\",
    "$",
    "*",
    "?",
    "[",
    "]",
    ";",
    "|",
    "&",
    "<",
    ">",
    "(",
    ")",
    "#",
    "~",
    "`",
    "{",
    "}",
    "!",
    "\n"
  ]
  // Plain characters more often than special ones, so that many commands need no shell and get compared.
  const character = FastCheck.oneof(
    { arbitrary: FastCheck.constantFrom(..."abc-_./=,:@%+ "), weight: 8 },
    { arbitrary: FastCheck.constantFrom(...alphabet), weight: 1 }
  )
  const commands = FastCheck.array(character, { minLength: 1, maxLength: 24 }).map((chars) => chars.join(""))

  it("whenever it says no shell is needed, the words are exactly those sh would pass", () => {
    let compared = 0
    FastCheck.assert(
      FastCheck.property(commands, (command) => {
        const words = ShellExecutor.splitShellWords(command)
        if (ShellExecutor.needsShell(command) || Either.isLeft(words)) return
        // The words sh makes of the command, NUL-separated: the arguments a function called with them receives.
        const shell = spawnSync(
          "/bin/sh",
          ["-c", `f() { for word in "$@"; do printf '%s\\0' "$word"; done; }\nf ${command}`],
          { encoding: "utf8" }
        )
        expect(shell.status, `${JSON.stringify(command)}: ${shell.stderr}`).toBe(0)
        const fromShell = shell.stdout === "" ? [] : shell.stdout.slice(0, -1).split("\u0000")
        expect(words.right, JSON.stringify(command)).toEqual(fromShell)
        compared += 1
      }),
      { numRuns: 150 }
    )
    // The property compared something, not only commands it sent to the shell.
    expect(compared).toBeGreaterThan(60)
  })
})

describe("ShellExecutor with shell syntax", () => {
  it.live("`rm -f a.txt && echo done` removes a.txt only and prints done", () =>
    Effect.gen(function* () {
      const folder = folderWith("a.txt", "echo", "done", "other.txt")
      const result = completed(
        yield* allowed.execute(taskContext({ description: "Run `rm -f a.txt && echo done`", workingDirectory: folder }))
      )
      expect(result).toMatch(/^\$ rm -f a\.txt && echo done \(with sh -c, exit 0, \d+\.\d s\)\ndone$/)
      expect(filesIn(folder)).toEqual(["done", "echo", "other.txt"])
    })
  )

  it.live("a pipeline pipes: `ls -1 | wc -l` prints a count", () =>
    Effect.gen(function* () {
      const folder = folderWith("one", "two", "three")
      const result = completed(
        yield* allowed.execute(taskContext({ description: "Count: `ls -1 | wc -l`", workingDirectory: folder }))
      )
      expect(result.split("\n")[1]?.trim()).toBe("3")
    })
  )

  it.live("the exit status is the shell's: `false && echo never` fails, redirection writes its file", () =>
    Effect.gen(function* () {
      const folder = folderWith()
      const error = failed(
        yield* allowed.execute(taskContext({ description: "`false && echo never`", workingDirectory: folder }))
      )
      expect(error).toMatch(/^exit code 1: \$ false && echo never \(with sh -c, \d+\.\d s\)$/)
      completed(
        yield* allowed.execute(taskContext({ description: "`echo written > out.txt`", workingDirectory: folder }))
      )
      expect(Fs.readFileSync(NodePath.join(folder, "out.txt"), "utf8")).toBe("written\n")
    })
  )

  it.live("the approval question shows exactly what runs and how; yes runs exactly that", () =>
    Effect.gen(function* () {
      const folder = folderWith("a.txt", "echo", "done")
      const description = "Run `rm -f a.txt && echo done`"
      const asked = question(yield* asking.execute(taskContext({ description, workingDirectory: folder })))
      expect(asked).toBe(
        `Run \`rm -f a.txt && echo done\` with sh -c in ${folder}? Answer yes to run it once, or give another command.`
      )
      expect(filesIn(folder)).toEqual(["a.txt", "done", "echo"])
      const result = completed(
        yield* asking.execute(
          taskContext({ description, workingDirectory: folder, attempt: 2, clarifications: [answered(asked, "yes")] })
        )
      )
      expect(result.split("\n")[1]).toBe("done")
      expect(filesIn(folder)).toEqual(["done", "echo"])
    })
  )

  it.live("an approval given to the same text without a shell, or for another directory, does not carry over", () =>
    Effect.gen(function* () {
      const folder = folderWith("a.txt")
      const elsewhere = folderWith("a.txt")
      const description = "Run `rm -f a.txt && echo done`"
      // The question as it was worded before shell commands existed (a log written then).
      const old = `Run \`rm -f a.txt && echo done\` in ${folder}? Answer yes to run it once, or give another command.`
      const again = question(
        yield* asking.execute(
          taskContext({ description, workingDirectory: folder, attempt: 2, clarifications: [answered(old, "yes")] })
        )
      )
      expect(again).toContain("with sh -c")
      // A refusal given then still holds.
      const refusedThen = failed(
        yield* asking.execute(
          taskContext({ description, workingDirectory: folder, attempt: 2, clarifications: [answered(old, "no")] })
        )
      )
      expect(refusedThen).toBe("not run: the user declined `rm -f a.txt && echo done`")
      const askedHere = question(yield* asking.execute(taskContext({ description, workingDirectory: folder })))
      const movedAway = question(
        yield* asking.execute(
          taskContext({
            description,
            workingDirectory: elsewhere,
            attempt: 2,
            clarifications: [answered(askedHere, "yes")]
          })
        )
      )
      expect(movedAway).toContain(`in ${elsewhere}?`)
      // A refusal holds wherever the task runs.
      const refused = failed(
        yield* asking.execute(
          taskContext({
            description,
            workingDirectory: elsewhere,
            attempt: 2,
            clarifications: [answered(askedHere, "no")]
          })
        )
      )
      expect(refused).toBe("not run: the user declined `rm -f a.txt && echo done`")
      expect(filesIn(folder)).toEqual(["a.txt"])
      expect(filesIn(elsewhere)).toEqual(["a.txt"])
    })
  )

  it.live("wildcards, variables and a leading assignment take effect as in a shell", () =>
    Effect.gen(function* () {
      const folder = folderWith("b.txt", "a.txt", "c.md")
      const globbed = completed(
        yield* allowed.execute(taskContext({ description: "`ls *.txt`", workingDirectory: folder }))
      )
      expect(globbed.split("\n").slice(1)).toEqual(["a.txt", "b.txt"])
      const variable = completed(
        yield* allowed.execute(taskContext({ description: "`GREETING=hi; echo $GREETING`", workingDirectory: folder }))
      )
      expect(variable.split("\n")[1]).toBe("hi")
    })
  )
})

describe("ShellExecutor with a block of several commands", () => {
  const block = "Clean up:\n```sh\nrm -f victim1\ntouch keepme\n```"

  it.live("runs each line as written: victim1 is removed, keepme created, files named like words kept", () =>
    Effect.gen(function* () {
      const folder = folderWith("victim1", "touch", "rm")
      const result = completed(yield* allowed.execute(taskContext({ description: block, workingDirectory: folder })))
      expect(result).toMatch(/^\$ rm -f victim1 … \(2 lines with sh -e -c, exit 0, \d+\.\d s\)$/)
      expect(filesIn(folder)).toEqual(["keepme", "rm", "touch"])
    })
  )

  it.live("is asked about as a whole, every line shown, and yes runs exactly those lines", () =>
    Effect.gen(function* () {
      const folder = folderWith("victim1", "touch")
      const asked = question(yield* asking.execute(taskContext({ description: block, workingDirectory: folder })))
      expect(asked).toBe(
        `Run these 2 lines with sh -e -c in ${folder}, one after another, stopping at the first command that fails?\n` +
          "```sh\nrm -f victim1\ntouch keepme\n```\nAnswer yes to run them once, or give another command."
      )
      expect(filesIn(folder)).toEqual(["touch", "victim1"])
      completed(
        yield* asking.execute(
          taskContext({
            description: block,
            workingDirectory: folder,
            attempt: 2,
            clarifications: [answered(asked, "yes")]
          })
        )
      )
      expect(filesIn(folder)).toEqual(["keepme", "touch"])
    })
  )

  it.live("stops at the first command that fails", () =>
    Effect.gen(function* () {
      const folder = folderWith("victim1")
      const error = failed(
        yield* allowed.execute(
          taskContext({
            description: "```\nrm -f victim1\nls no-such-file\ntouch after\n```",
            workingDirectory: folder
          })
        )
      )
      expect(error).toMatch(/^exit code \d+: \$ rm -f victim1 … \(3 lines with sh -e -c, \d+\.\d s\)\n.*no-such-file/)
      expect(filesIn(folder)).toEqual([])
    })
  )

  it.live("a multi-line construct runs as one script, as a shell reads it", () =>
    Effect.gen(function* () {
      const folder = folderWith("x.txt")
      const result = completed(
        yield* allowed.execute(
          taskContext({
            description: "```\nif [ -f x.txt ]; then\n  echo found\nfi\nfor n in 1 2; do\n  echo $n\ndone\n```",
            workingDirectory: folder
          })
        )
      )
      expect(result.split("\n").slice(1)).toEqual(["found", "1", "2"])
    })
  )

  it.live("the request as the parser plans it removes victim1 and keeps the rest, whatever form the block takes", () =>
    Effect.gen(function* () {
      const folder = folderWith("victim1", "touch")
      const tasks = Either.getOrThrow(Parser.parse(`Clean up:\n\`\`\`\nrm -f victim1\ntouch keepme\n\`\`\``))
      expect(tasks).toHaveLength(1)
      const task = tasks[0]
      if (task === undefined) throw new Error("no task")
      expect(task.kind).toBe("ToolCall")
      completed(yield* allowed.execute(taskContext({ description: task.description, workingDirectory: folder })))
      expect(filesIn(folder)).toEqual(["keepme", "touch"])
    })
  )
})
