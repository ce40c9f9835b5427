/**
 * The shell executor against real processes: output capture, exit codes, timeouts that leave no process behind,
 * approval by answer, and task text that must never run as shell.
 */
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber } from "effect"
import type { Outcome } from "../../src/infra/Executor.js"
import * as ShellExecutor from "../../src/infra/ShellExecutor.js"
import { answered, taskContext } from "./context.js"

let directory = ""
beforeAll(() => {
  directory = Fs.realpathSync(Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "shell-executor-")))
})
afterAll(() => {
  Fs.rmSync(directory, { recursive: true, force: true })
})

const allowed = (options: Partial<ShellExecutor.ShellExecutorOptions> = {}) =>
  ShellExecutor.make({ allow: true, ...options })

const completed = (outcome: Outcome): string => {
  if (outcome._tag !== "Completed") throw new Error(`expected Completed, got ${JSON.stringify(outcome)}`)
  return outcome.result
}
const failed = (outcome: Outcome): { readonly error: string; readonly retryable: boolean } => {
  if (outcome._tag !== "Failed") throw new Error(`expected Failed, got ${JSON.stringify(outcome)}`)
  return outcome
}
const question = (outcome: Outcome): string => {
  if (outcome._tag !== "NeedsClarification")
    throw new Error(`expected NeedsClarification, got ${JSON.stringify(outcome)}`)
  return outcome.question
}

/** Gone: no such process, or one that has exited and only waits to be reaped. */
const processGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")
  } catch {
    return true
  }
}

/** The pids a command wrote to `file`, once it holds `count` of them. */
const pidsIn = (file: string, count: number) =>
  Effect.gen(function* () {
    for (;;) {
      const pids = Fs.existsSync(file)
        ? Fs.readFileSync(file, "utf8")
            .split(/\s+/)
            .filter((word) => word.length > 0)
            .map(Number)
        : []
      if (pids.length >= count) return pids
      yield* Effect.sleep("10 millis")
    }
  })

const uniqueFile = (name: string) => NodePath.join(directory, `${name}-${randomUUID()}`)

describe("splitShellWords", () => {
  const words = (line: string) => Either.getOrThrow(ShellExecutor.splitShellWords(line))

  it("splits on blanks and honours quotes and escapes without expanding anything", () => {
    expect(words(`npm   test\t--  "a b" 'c  d' e\\ f`)).toEqual(["npm", "test", "--", "a b", "c  d", "e f"])
    expect(words(`echo "it's \\"x\\" \\$HOME \\n" '$(id)' $(id) \`id\` ; a && b | c > d * ~ #x`)).toEqual([
      "echo",
      `it's "x" $HOME \\n`,
      "$(id)",
      "$(id)",
      "`id`",
      ";",
      "a",
      "&&",
      "b",
      "|",
      "c",
      ">",
      "d",
      "*",
      "~",
      "#x"
    ])
    expect(words(`a "" ''`)).toEqual(["a", "", ""])
    expect(words("npm run \\\n  build")).toEqual(["npm", "run", "build"])
    expect(words("sh -c 'one\ntwo'")).toEqual(["sh", "-c", "one\ntwo"])
  })

  it("rejects unterminated quotes and several lines", () => {
    const reason = (line: string) => Either.flip(ShellExecutor.splitShellWords(line)).pipe(Either.getOrThrow).reason
    expect(reason(`echo 'open`)).toBe("UnterminatedSingleQuote")
    expect(reason(`echo "open`)).toBe("UnterminatedDoubleQuote")
    expect(reason("npm install\nnpm test")).toBe("SeveralLines")
  })
})

describe("findCommand", () => {
  it("finds the first inline code or fenced block", () => {
    expect(ShellExecutor.findCommand("Run `npm test` then `npm run lint`")).toBe("npm test")
    expect(ShellExecutor.findCommand("Run `` echo `date` `` now")).toBe("echo `date`")
    expect(ShellExecutor.findCommand("Run this:\n```sh\nmake -j2 \\\n  all\n```\nthanks")).toBe("make -j2 \\\n  all")
    expect(ShellExecutor.findCommand("Run ```npm test``` please")).toBe("npm test")
    expect(ShellExecutor.findCommand("An empty `` then ` ` then `ls`")).toBe("ls")
    expect(ShellExecutor.findCommand("No code here, just a stray ` backquote")).toBeUndefined()
  })
})

describe("ShellExecutor", () => {
  it.live("completes with the header line and stdout and stderr in the order they were written", () =>
    Effect.gen(function* () {
      // Each line is followed, on its own stream, by more blank lines than a pipe holds (64 KiB on Linux): the write
      // returns only once the executor has read what came before, so the next line, on the other stream, is written
      // after the previous one was read. No sleeps: the order is forced, however loaded the machine is.
      const fill = (stream: string) => `yes "" | head -n 262144${stream}`
      const script = `echo first; ${fill("")}; echo second >&2; ${fill(" >&2")}; echo third`
      const outcome = yield* allowed({ maxOutputBytes: 1024 * 1024 }).execute(
        taskContext({ description: `Print: \`sh -c '${script}'\``, workingDirectory: directory })
      )
      const result = completed(outcome)
      const [header = "", ...lines] = result.split("\n")
      expect(header).toMatch(/^\$ sh -c 'echo first; yes "" \| head .*; echo third' \(exit 0, \d+\.\d s\)$/)
      expect(lines.filter((line) => line.length > 0)).toEqual(["first", "second", "third"])
      expect(lines.length).toBeGreaterThan(2 * 262144)
    })
  )

  it.live("keeps only the tail of long output and says how much was dropped", () =>
    Effect.gen(function* () {
      const result = completed(
        yield* allowed({ maxOutputBytes: 100 }).execute(taskContext({ description: "`seq 1 20000`" }))
      )
      const [header, omitted, ...lines] = result.split("\n")
      expect(header).toMatch(/^\$ seq 1 20000 \(exit 0/)
      expect(omitted).toMatch(/^\[\d+ earlier bytes of output omitted\]$/)
      expect(lines.at(-1)).toBe("20000")
      expect(lines.join("\n").length).toBeLessThanOrEqual(100)
    })
  )

  it.live("passes the attempt's ids to the command", () =>
    Effect.gen(function* () {
      const result = completed(
        yield* allowed().execute(
          taskContext({
            taskId: 7,
            sessionId: "session-ids",
            idempotencyKey: "key-7-2",
            description: `\`sh -c 'echo "$PLANNER_IDEMPOTENCY_KEY $PLANNER_SESSION_ID $PLANNER_TASK_ID"'\``
          })
        )
      )
      expect(result.split("\n")[1]).toBe("key-7-2 session-ids 7")
    })
  )

  it.live("fails without retry on a non-zero exit, with the exit code and the output's tail", () =>
    Effect.gen(function* () {
      const failure = failed(
        yield* allowed().execute(taskContext({ description: "`sh -c 'echo progress; echo boom >&2; exit 3'`" }))
      )
      expect(failure.retryable).toBe(false)
      expect(failure.error).toMatch(/^exit code 3: \$ sh -c 'echo progress; echo boom >&2; exit 3' \(\d+\.\d s\)\n/)
      expect(failure.error).toContain("progress\nboom")
    })
  )

  it.live("times out: the whole process group is killed and the failure is retryable", () =>
    Effect.gen(function* () {
      const pidFile = uniqueFile("pids")
      const failure = failed(
        yield* allowed({ timeoutMs: 300, killGraceMs: 500 }).execute(
          taskContext({ description: `\`sh -c 'echo $$ > ${pidFile}; sleep 30 & echo $! >> ${pidFile}; wait'\`` })
        )
      )
      expect(failure.retryable).toBe(true)
      expect(failure.error).toMatch(/^timed out after 0\.3 s: \$ sh -c/)
      const pids = yield* pidsIn(pidFile, 2)
      for (const pid of pids) expect(processGone(pid), `process ${pid}`).toBe(true)
    })
  )

  it.live("a plain `sleep 30` is killed at the timeout and leaves no process", () =>
    Effect.gen(function* () {
      const marker = `shell-executor-${randomUUID()}`
      const executor = allowed({ timeoutMs: 300, killGraceMs: 500 })
      // The only way to know the child's pid from outside is to look for it: its environment carries our key.
      const fiber = yield* Effect.fork(
        executor.execute(taskContext({ description: "`sleep 30`", idempotencyKey: marker }))
      )
      const pid = yield* Effect.gen(function* () {
        for (;;) {
          const found = Fs.readdirSync("/proc")
            .filter((entry) => /^\d+$/.test(entry))
            .find((entry) => {
              try {
                return Fs.readFileSync(`/proc/${entry}/environ`, "utf8").includes(`PLANNER_IDEMPOTENCY_KEY=${marker}`)
              } catch {
                return false
              }
            })
          if (found !== undefined) return Number(found)
          yield* Effect.sleep("10 millis")
        }
      })
      expect(processGone(pid)).toBe(false)
      const failure = failed(yield* Fiber.join(fiber))
      expect(failure.error).toMatch(/^timed out after 0\.3 s: \$ sleep 30/)
      expect(processGone(pid)).toBe(true)
    })
  )

  it.live("a command that ignores SIGTERM is killed with SIGKILL after the grace period", () =>
    Effect.gen(function* () {
      const pidFile = uniqueFile("pids")
      const failure = failed(
        yield* allowed({ timeoutMs: 300, killGraceMs: 200 }).execute(
          taskContext({
            description: `\`sh -c 'trap "" TERM; echo $$ > ${pidFile}; sleep 30 & echo $! >> ${pidFile}; wait'\``
          })
        )
      )
      expect(failure.retryable).toBe(true)
      for (const pid of yield* pidsIn(pidFile, 2)) expect(processGone(pid), `process ${pid}`).toBe(true)
    })
  )

  it.live("interrupting the execution (a cancelled task) kills the process group", () =>
    Effect.gen(function* () {
      const pidFile = uniqueFile("pids")
      const fiber = yield* Effect.fork(
        allowed({ killGraceMs: 500 }).execute(
          taskContext({ description: `\`sh -c 'echo $$ > ${pidFile}; sleep 30 & echo $! >> ${pidFile}; wait'\`` })
        )
      )
      const pids = yield* pidsIn(pidFile, 2)
      for (const pid of pids) expect(processGone(pid)).toBe(false)
      yield* Fiber.interrupt(fiber)
      for (const pid of pids) expect(processGone(pid), `process ${pid}`).toBe(true)
    })
  )

  it.live("output a process left behind keeps writing after the command exits is read while it comes", () =>
    Effect.gen(function* () {
      // The shell exits at once; what it left writes a line every 100 ms for 1.2 s, longer than the pipes may stay
      // silent (here 1 s, a margin wide enough for a loaded machine), never silent for more than a tenth of that:
      // every line is read, none given up on.
      const script = "(for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 0.1; echo line $i; done) & echo started"
      const result = completed(
        yield* allowed({ killGraceMs: 500, outputSilenceMs: 1_000 }).execute(
          taskContext({ description: `\`sh -c '${script}'\`` })
        )
      )
      expect(result.split("\n").slice(1)).toEqual([
        "started",
        ...Array.from({ length: 12 }, (_, index) => `line ${index + 1}`)
      ])
    })
  )

  it.live("a command that exited in time is not timed out while the rest of its output is read", () =>
    Effect.gen(function* () {
      // The shell exits 0 at once; what it left writes for 2 s, past the 300 ms timeout: the task ran and exited in
      // time, so it completed (with the output read by then), rather than timed out and run again.
      const script = "(for i in $(seq 1 40); do sleep 0.05; echo tick; done) & echo started"
      const result = completed(
        yield* allowed({ timeoutMs: 300, killGraceMs: 500 }).execute(
          taskContext({ description: `\`sh -c '${script}'\`` })
        )
      )
      expect(result).toMatch(/^\$ sh -c .* \(exit 0, \d+\.\d s\)\nstarted/)
    })
  )

  it.live(
    "a command that exited before its deadline, seen only after it (a stalled event loop), is not timed out",
    () =>
      Effect.gen(function* () {
        const running = yield* Effect.fork(
          allowed({ timeoutMs: 300 }).execute(taskContext({ description: "`sleep 0.1`" }))
        )
        yield* Effect.sleep("30 millis")
        // The event loop stalls past the deadline (in its check phase, as a busy callback would); the command exits
        // meanwhile, at 100 ms (a second's stall leaves a loaded machine time to start and end it). On the loop's next
        // turn the deadline's timer runs before the loop reads the exit.
        yield* Effect.sync(() => {
          setImmediate(() => {
            const until = Date.now() + 1_000
            while (Date.now() < until) {
              // stalled
            }
          })
        })
        expect(completed(yield* Fiber.join(running))).toMatch(/^\$ sleep 0\.1 \(exit 0, /)
      })
  )

  it.live("what a command leaves behind is killed even when the timeout comes during its grace period", () =>
    Effect.gen(function* () {
      const pidFile = uniqueFile("pids")
      // The shell exits at once; what it leaves ignores SIGTERM, so only the SIGKILL after the grace period (1 s) ends
      // it, and the task's timeout (500 ms) comes during that grace period.
      const result = completed(
        yield* allowed({ timeoutMs: 500, killGraceMs: 1_000 }).execute(
          taskContext({ description: `\`sh -c 'trap "" TERM; sleep 30 & echo $! > ${pidFile}; echo started'\`` })
        )
      )
      expect(result.split("\n")[1]).toBe("started")
      const [pid] = yield* pidsIn(pidFile, 1)
      expect(pid !== undefined && processGone(pid)).toBe(true)
    })
  )

  it.live("processes a successful command leaves behind are stopped", () =>
    Effect.gen(function* () {
      const pidFile = uniqueFile("pids")
      const result = completed(
        yield* allowed({ killGraceMs: 500 }).execute(
          taskContext({ description: `\`sh -c 'sleep 30 & echo $! > ${pidFile}; echo started'\`` })
        )
      )
      expect(result.split("\n")[1]).toBe("started")
      const [pid] = yield* pidsIn(pidFile, 1)
      expect(pid !== undefined && processGone(pid)).toBe(true)
    })
  )

  it.live("without permission it asks for approval; yes runs that command, no refuses it", () =>
    Effect.gen(function* () {
      const executor = ShellExecutor.make({ allow: false })
      const description = "Check the greeting with `echo approved run`"
      const asked = question(yield* executor.execute(taskContext({ description, workingDirectory: directory })))
      expect(asked).toBe(
        `Run \`echo approved run\` in ${directory}? Answer yes to run it once, or give another command.`
      )

      const approved = yield* executor.execute(
        taskContext({ description, workingDirectory: directory, attempt: 2, clarifications: [answered(asked, "Yes")] })
      )
      expect(completed(approved).split("\n")[1]).toBe("approved run")

      const refused = failed(
        yield* executor.execute(taskContext({ description, attempt: 2, clarifications: [answered(asked, "no")] }))
      )
      expect(refused).toEqual({
        _tag: "Failed",
        error: "not run: the user declined `echo approved run`",
        retryable: false
      })
    })
  )

  it.live("an answer with another command replaces the command, which still needs approval", () =>
    Effect.gen(function* () {
      const executor = ShellExecutor.make({ allow: false })
      const description = "Greet with `echo first`"
      const first = question(yield* executor.execute(taskContext({ description })))
      const replaced = [answered(first, "Rather use `echo second` please")]
      const second = question(yield* executor.execute(taskContext({ description, clarifications: replaced })))
      expect(second).toMatch(/^Run `echo second` in /)
      // "yes" to the question about the first command does not approve the second.
      const stale = yield* executor.execute(
        taskContext({ description, clarifications: [...replaced, answered(first, "yes")] })
      )
      expect(question(stale)).toBe(second)
      const approved = yield* executor.execute(
        taskContext({ description, clarifications: [...replaced, answered(second, "y")] })
      )
      expect(completed(approved).split("\n")[1]).toBe("second")
    })
  )

  it.live("a task without a command asks for one, and the answer supplies it", () =>
    Effect.gen(function* () {
      const executor = allowed()
      const description = "Run the smoke test"
      const asked = question(yield* executor.execute(taskContext({ description })))
      expect(asked).toContain("no command in backticks")

      const fromCode = yield* executor.execute(
        taskContext({ description, clarifications: [answered(asked, "Use `echo from code` for that")] })
      )
      expect(completed(fromCode).split("\n")[1]).toBe("from code")

      const bare = yield* executor.execute(
        taskContext({ description, clarifications: [answered(asked, "echo 'bare line'")] })
      )
      expect(completed(bare)).toMatch(/^\$ echo 'bare line' \(exit 0.*\nbare line$/)

      const prose = yield* executor.execute(
        taskContext({ description, clarifications: [answered(asked, "I am not sure.\nMaybe ask Bob?")] })
      )
      expect(question(prose)).toContain("no command in your answer")
    })
  )

  it.live("a command with an unterminated quote is sent back as a question", () =>
    Effect.gen(function* () {
      const unterminated = question(yield* allowed().execute(taskContext({ description: "Run `echo 'oops`" })))
      expect(unterminated).toContain("single quote that is never closed")
    })
  )

  it.live("task text outside the backticks never runs, and quotes inside them keep their meaning", () =>
    Effect.gen(function* () {
      const marker = (n: number) => NodePath.join(directory, `PWNED-${randomUUID()}-${n}`)
      const markers = Array.from({ length: 5 }, (_, n) => marker(n))
      const [m0, m1, m2, m3, m4] = markers
      // No shell syntax outside quotes: the words go to `echo` as they are, `$(...)` inside single quotes included.
      const inside = `echo "it's quoted" 'single $(touch ${m3})' 'and; touch ${m4}'`
      const description = `Say "hello" $(touch ${m0}) and 'quote' then run \`\` ${inside} \`\`; touch ${m1} \`touch ${m2}\``
      const result = completed(yield* allowed().execute(taskContext({ description, workingDirectory: directory })))
      expect(result.split("\n")[0]).toMatch(/^\$ echo .* \(exit 0, /)
      expect(result.split("\n")[1]).toBe(`it's quoted single $(touch ${m3}) and; touch ${m4}`)
      // The same text in a fenced block, and the approval question quoting it.
      const fenced = completed(
        yield* allowed().execute(
          taskContext({ description: `Run:\n\`\`\`sh\n${inside}\n\`\`\`\n$(touch ${m0})`, workingDirectory: directory })
        )
      )
      expect(fenced.split("\n")[1]).toBe(`it's quoted single $(touch ${m3}) and; touch ${m4}`)
      const asked = question(yield* ShellExecutor.make({ allow: false }).execute(taskContext({ description })))
      expect(asked).toContain(inside)
      for (const file of markers) expect(Fs.existsSync(file), file).toBe(false)
    })
  )

  it.live("a missing program or a file that is not executable fails without retry", () =>
    Effect.gen(function* () {
      const missing = failed(yield* allowed().execute(taskContext({ description: "`no-such-command-4f1c --version`" })))
      expect(missing).toEqual({
        _tag: "Failed",
        error:
          "command not found: no-such-command-4f1c (from `no-such-command-4f1c --version`): install it, or give its full path",
        retryable: false
      })
      const script = uniqueFile("not-executable")
      Fs.writeFileSync(script, "#!/bin/sh\necho hi\n", { mode: 0o644 })
      const notExecutable = failed(yield* allowed().execute(taskContext({ description: `\`${script}\`` })))
      expect(notExecutable.retryable).toBe(false)
      expect(notExecutable.error).toContain("it is not an executable file")
    })
  )

  it.live("the command's environment has no secrets", () =>
    Effect.gen(function* () {
      const secrets = {
        PLANNER_LLM_API_KEY: "s-llm",
        OPENAI_API_KEY: "s-openai",
        PLANNER_DATABASE_URL: "postgres://user:s-db@host/db",
        MY_SERVICE_TOKEN: "s-token",
        github_secret: "s-github",
        Db_Password: "s-password",
        AWS_SECRET_ACCESS_KEY: "s-aws"
      }
      const saved = { ...process.env }
      Object.assign(process.env, secrets, { SHELL_EXECUTOR_VISIBLE: "visible" })
      const result = yield* allowed()
        .execute(taskContext({ description: "`env`" }))
        .pipe(Effect.ensuring(Effect.sync(() => (process.env = saved))))
      const output = completed(result)
      expect(output).toContain("\nSHELL_EXECUTOR_VISIBLE=visible")
      expect(output).toContain("\nPATH=")
      for (const [name, value] of Object.entries(secrets)) {
        expect(output).not.toContain(`${name}=`)
        expect(output).not.toContain(value)
      }
    })
  )

  it.live("runs in the task's working directory, or the configured one relative to it", () =>
    Effect.gen(function* () {
      Fs.mkdirSync(NodePath.join(directory, "sub"), { recursive: true })
      const here = completed(
        yield* allowed().execute(taskContext({ description: "`pwd`", workingDirectory: directory }))
      )
      expect(here.split("\n")[1]).toBe(directory)
      const sub = completed(
        yield* allowed({ workingDirectory: "sub" }).execute(
          taskContext({ description: "`pwd`", workingDirectory: directory })
        )
      )
      expect(sub.split("\n")[1]).toBe(NodePath.join(directory, "sub"))
      const missing = failed(
        yield* allowed().execute(
          taskContext({ description: "`pwd`", workingDirectory: NodePath.join(directory, "gone") })
        )
      )
      expect(missing).toEqual({
        _tag: "Failed",
        error: `the working directory ${NodePath.join(directory, "gone")} does not exist`,
        retryable: false
      })
    })
  )
})
