/**
 * Asking a person at the terminal. A plain `readline` on standard input rather than `@effect/cli`'s `Prompt`, which
 * hangs when standard input is not a terminal: callers check `canPrompt` first, and a prompt whose input ends
 * (Ctrl-D, a closed pipe) answers `None` instead of waiting forever. The question goes to standard error, so standard
 * output keeps only what the command prints (a `--json` object stays parseable).
 */
import * as Readline from "node:readline"
import { Effect, Option } from "effect"

/** True when a person can be asked: standard input is a terminal. */
export const canPrompt = (): boolean => process.stdin.isTTY === true

/**
 * Shows `lines`, then reads one non-empty line after `prompt`. `None` when the input ends first. Ctrl-C stops the
 * whole command, as it would anywhere else. Interrupting the effect closes the prompt.
 */
export const ask = (lines: ReadonlyArray<string>, prompt: string): Effect.Effect<Option.Option<string>> =>
  Effect.async<Option.Option<string>>((resume) => {
    if (!canPrompt() || process.stdin.readableEnded) {
      resume(Effect.succeedNone)
      return
    }
    process.stderr.write(`${lines.join("\n")}\n`)
    const reader = Readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true })
    let done = false
    const finish = (answer: Option.Option<string>) => {
      if (done) return
      done = true
      reader.close()
      resume(Effect.succeed(answer))
    }
    const question = () =>
      reader.question(prompt, (text) => {
        const answer = text.trim()
        if (answer.length > 0) return finish(Option.some(answer))
        process.stderr.write("An answer cannot be empty (Ctrl-D to stop here and answer later).\n")
        question()
      })
    reader.on("close", () => {
      if (!done) {
        process.stderr.write("\n")
        finish(Option.none())
      }
    })
    reader.on("SIGINT", () => {
      // readline swallows Ctrl-C while it reads; hand it back so the command stops the usual way (interrupting this
      // prompt, which is left unanswered).
      done = true
      reader.close()
      process.stderr.write("\n")
      process.kill(process.pid, "SIGINT")
    })
    question()
    return Effect.sync(() => {
      done = true
      reader.close()
    })
  })
