/**
 * Both compactors keep their budget whatever they are given; the heuristic one keeps recent results and error lines
 * and never cuts a word; the LLM one asks the model with the plan's system prompt and profile and enforces the
 * budget itself, against a real HTTP server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import type { CompactionInput } from "../../src/infra/Compactor.js"
import { Compactor } from "../../src/infra/Compactor.js"
import * as HeuristicCompactor from "../../src/infra/HeuristicCompactor.js"
import * as LlmCompactor from "../../src/infra/LlmCompactor.js"
import * as Tokenizer from "../../src/infra/Tokenizer.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { messagesOf, Reply } from "./support/FakeOpenAiServer.js"
import { llmLayer, model, settingsFor } from "./support/layers.js"

const counter = Tokenizer.fallback
const llmCounter = Tokenizer.forModel(model)

const wordArb = fc.oneof(
  fc.constantFrom(
    "error:",
    "Error:",
    "failed",
    "src/app.ts:12:5",
    "ok",
    "résumé",
    "数据处理",
    "🚀",
    "done.",
    "`npm test`"
  ),
  fc.stringMatching(/^[a-z]{1,12}$/),
  fc
    .string({ minLength: 1, maxLength: 40 })
    .map((text) => text.replace(/\s/g, ""))
    .filter((text) => text.length > 0)
)
const textArb = fc
  .array(fc.tuple(wordArb, fc.constantFrom(" ", " ", " ", "\n", "\n\n")), { maxLength: 120 })
  .map((parts) => parts.map(([word, gap]) => word + gap).join(""))
const entriesArb = fc.uniqueArray(fc.record({ taskId: fc.integer({ min: 1, max: 50 }), text: textArb }), {
  selector: (entry) => entry.taskId,
  maxLength: 8
})

const inputOf = (
  summary: string,
  entries: CompactionInput["entries"],
  budget: number,
  profile = "coding"
): CompactionInput => ({
  summary,
  entries,
  budget,
  profile,
  systemPrompt: "You are a careful planner."
})

const wordsOf = (text: string) => text.split(/\s+/).filter((word) => word.length > 0)

describe("HeuristicCompactor", () => {
  it.prop(
    "never exceeds the budget, folds in every entry, and never cuts inside a word",
    [textArb, entriesArb, fc.integer({ min: 1, max: 400 })],
    ([summary, entries, budget]) => {
      const result = HeuristicCompactor.compactContext(inputOf(summary, entries, budget), counter)
      expect(counter.count(result.summary)).toBeLessThanOrEqual(budget)
      expect(result.removedTaskIds).toEqual(entries.map((entry) => entry.taskId))
      const allowed = new Set([
        ...wordsOf(summary),
        ...entries.flatMap((entry) => [...wordsOf(entry.text), `${entry.taskId}:`]),
        "Task",
        "(no",
        "output)",
        "…"
      ])
      for (const word of wordsOf(result.summary))
        expect(allowed.has(word), `"${word}" is not a whole input word`).toBe(true)
    },
    { fastCheck: { numRuns: 150 } }
  )

  it("returns everything when it fits", () => {
    const result = HeuristicCompactor.compactContext(
      inputOf("Earlier: set up the repo.", [{ taskId: 2, text: "Created src/app.ts" }], 100),
      counter
    )
    expect(result).toEqual({ summary: "Earlier: set up the repo.\nTask 2: Created src/app.ts", removedTaskIds: [2] })
  })

  it("keeps the newest result whole and the error lines of older ones", () => {
    const noise = Array.from({ length: 40 }, (_, index) => `line ${index} of unremarkable build output`).join("\n")
    const entries = [
      { taskId: 1, text: `Compiled the backend\n${noise}\nError: connection refused at src/db.ts:10\n${noise}` },
      { taskId: 2, text: `Built the frontend\n${noise}` },
      { taskId: 3, text: "All 42 tests passed in test/login.test.ts" }
    ]
    const budget = 60
    const result = HeuristicCompactor.compactContext(inputOf("", entries, budget), counter)
    expect(counter.count(result.summary)).toBeLessThanOrEqual(budget)
    expect(result.summary).toContain("Task 3: All 42 tests passed in test/login.test.ts")
    expect(result.summary).toContain("Error: connection refused at src/db.ts:10")
    expect(result.summary).toContain("Task 1: Compiled the backend")
    expect(result.summary).not.toContain("line 7 of unremarkable")
    expect(result.removedTaskIds).toEqual([1, 2, 3])
  })
})

describe("compactError", () => {
  it("keeps the error type, file paths and line numbers, and drops repeated stack frames", () => {
    const frames = Array.from(
      { length: 60 },
      () => "    at recurse (/app/src/tree.ts:41:12)\n    at walk (/app/src/tree.ts:17:3)"
    ).join("\n")
    const message = `RangeError: Maximum call stack size exceeded\n${frames}\n    at Module._compile (node:internal/modules/cjs/loader:1256:14)\n    at run (/app/node_modules/runner/index.js:5:1)`
    const compacted = HeuristicCompactor.compactError(message, 300)
    expect(compacted.length).toBeLessThanOrEqual(300)
    expect(compacted).toContain("RangeError: Maximum call stack size exceeded")
    expect(compacted).toContain("/app/src/tree.ts:41:12")
    expect(compacted).toContain("/app/src/tree.ts:17:3")
    expect(compacted.split("tree.ts:41:12")).toHaveLength(2)
    expect(compacted).not.toContain("node:internal")
  })

  it("prefers error and location lines when the limit is tight", () => {
    const message = [
      "Running the build step 3 of 7 for the project in /work/app with the default configuration",
      "Traceback (most recent call last):",
      '  File "/work/app/build.py", line 88, in <module>',
      "    main()",
      ...Array.from({ length: 30 }, (_, index) => `debug: cache entry ${index} is still warm and was reused`),
      "KeyError: 'output_dir'"
    ].join("\n")
    const compacted = HeuristicCompactor.compactError(message, 160)
    expect(compacted.length).toBeLessThanOrEqual(160)
    expect(compacted).toContain("KeyError: 'output_dir'")
    expect(compacted).toContain('File "/work/app/build.py", line 88')
  })

  it.prop(
    "never exceeds the limit, and returns a message that fits unchanged",
    [
      fc.array(fc.oneof(textArb, fc.constant("    at f (src/a.ts:1:1)")), { maxLength: 20 }),
      fc.integer({ min: 0, max: 400 })
    ],
    ([lines, limit]) => {
      const message = lines.join("\n")
      const compacted = HeuristicCompactor.compactError(message, limit)
      expect(compacted.length).toBeLessThanOrEqual(limit)
      if (message.length <= limit) expect(compacted).toBe(message)
    },
    { fastCheck: { numRuns: 200 } }
  )
})

describe("LlmCompactor", () => {
  const longEntries = [
    {
      taskId: 4,
      text: `Refactored src/auth/session.ts: ${"renamed the helpers and moved the token checks ".repeat(12)}`
    },
    { taskId: 5, text: `Ran \`npm test\`: ${"suite passed with coverage numbers reported per file ".repeat(12)}` }
  ]

  it.scopedLive("asks the model with the system prompt and the profile, and keeps a summary within budget", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(
        Reply.json({ summary: "Refactored src/auth/session.ts; `npm test` passes." }),
        Reply.json({ summary: "Findings: 3 of 5 sources agree; revenue grew 12%." })
      )
      const compactor = yield* Effect.provide(Compactor, LlmCompactor.layer).pipe(
        Effect.provide(llmLayer("responses", settingsFor(server)))
      )

      const coding = yield* compactor.compact(inputOf("Set up the repo.", longEntries, 40, "coding"))
      expect(coding).toEqual({ summary: "Refactored src/auth/session.ts; `npm test` passes.", removedTaskIds: [4, 5] })
      const analysis = yield* compactor.compact(inputOf("", longEntries, 40, "analysis"))
      expect(analysis.summary).toBe("Findings: 3 of 5 sources agree; revenue grew 12%.")

      const [codingRequest, analysisRequest] = server.modelRequests().map(messagesOf)
      expect(codingRequest?.[0]?.text).toContain("You are a careful planner.")
      expect(codingRequest?.[0]?.text).toContain("file paths")
      expect(codingRequest?.[0]?.text).toContain("under 40 tokens")
      expect(codingRequest?.[1]?.text).toContain("Set up the repo.")
      expect(codingRequest?.[1]?.text).toContain("Result of task 5")
      expect(analysisRequest?.[0]?.text).toContain("numbers")
      expect(analysisRequest?.[0]?.text).toContain("sources")
    })
  )

  it.scopedLive("does not call the model when everything fits", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const compactor = yield* Effect.provide(Compactor, LlmCompactor.layer).pipe(
        Effect.provide(llmLayer("chat", settingsFor(server)))
      )
      const result = yield* compactor.compact(inputOf("", [{ taskId: 1, text: "Done." }], 50))
      expect(result.summary).toBe("Task 1: Done.")
      expect(server.modelRequests()).toHaveLength(0)
    })
  )

  it.scopedLive("cuts a slightly long summary between words, and replaces a far too long one", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const budget = 40
      const slightlyLong = "word ".repeat(50).trim()
      const farTooLong = "paragraph ".repeat(400).trim()
      server.enqueue(Reply.json({ summary: slightlyLong }), Reply.json({ summary: farTooLong }))
      const compactor = yield* Effect.provide(Compactor, LlmCompactor.layer).pipe(
        Effect.provide(llmLayer("chat", settingsFor(server)))
      )
      const cut = yield* compactor.compact(inputOf("", longEntries, budget))
      expect(llmCounter.count(cut.summary)).toBeLessThanOrEqual(budget)
      expect(cut.summary.endsWith("word …")).toBe(true)
      const replaced = yield* compactor.compact(inputOf("", longEntries, budget))
      expect(llmCounter.count(replaced.summary)).toBeLessThanOrEqual(budget)
      expect(replaced.summary).toContain("Task 5:")
    })
  )

  it.scopedLive("falls back to the heuristic when the model cannot answer", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      server.enqueue(Reply.status(500), Reply.status(500), Reply.status(500))
      const compactor = yield* Effect.provide(Compactor, LlmCompactor.layer).pipe(
        Effect.provide(llmLayer("responses", settingsFor(server)))
      )
      const result = yield* compactor.compact(inputOf("", longEntries, 30))
      expect(llmCounter.count(result.summary)).toBeLessThanOrEqual(30)
      expect(result.removedTaskIds).toEqual([4, 5])
    })
  )

  it.scopedLive("compacts errors with the model and enforces the limit on its answer", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      const message = `TypeError: x is undefined\n${"    at f (src/a.ts:1:1)\n".repeat(50)}`
      server.enqueue(
        Reply.json({ message: "TypeError: x is undefined (src/a.ts:1:1)" }),
        Reply.json({ message: `TypeError: x is undefined ${"and more detail ".repeat(30)}` })
      )
      const compactor = yield* Effect.provide(Compactor, LlmCompactor.layer).pipe(
        Effect.provide(llmLayer("responses", settingsFor(server)))
      )
      expect(yield* compactor.compactError(message, 100)).toBe("TypeError: x is undefined (src/a.ts:1:1)")
      const enforced = yield* compactor.compactError(message, 100)
      expect(enforced.length).toBeLessThanOrEqual(100)
      expect(enforced).toContain("TypeError")
      expect(yield* compactor.compactError("short", 100)).toBe("short")
      expect(server.modelRequests()).toHaveLength(2)
    })
  )

  it.live.prop(
    "never exceeds the budget, whatever the model answers",
    [fc.array(wordArb, { maxLength: 300 }), fc.integer({ min: 5, max: 120 })],
    ([answerWords, budget]) =>
      Effect.gen(function* () {
        const server = yield* FakeOpenAiServer.make
        server.enqueue(Reply.json({ summary: answerWords.join(" ") }))
        const compactor = yield* Effect.provide(Compactor, LlmCompactor.layer).pipe(
          Effect.provide(llmLayer("chat", settingsFor(server)))
        )
        const result = yield* compactor.compact(inputOf("Earlier work.", longEntries, budget))
        expect(llmCounter.count(result.summary)).toBeLessThanOrEqual(budget)
        expect(result.removedTaskIds).toEqual([4, 5])
      }).pipe(Effect.scoped),
    { fastCheck: { numRuns: 25 } }
  )
})
