import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Tokenizer from "../../src/infra/Tokenizer.js"

describe("Tokenizer", () => {
  it("chooses the encoding by model name", () => {
    expect(Tokenizer.encodingFor("gpt-4o-mini")).toEqual({ encoding: "o200k_base", exact: true })
    expect(Tokenizer.encodingFor("gpt-4.1-nano")).toEqual({ encoding: "o200k_base", exact: true })
    expect(Tokenizer.encodingFor("gpt-5")).toEqual({ encoding: "o200k_base", exact: true })
    expect(Tokenizer.encodingFor("o3-mini")).toEqual({ encoding: "o200k_base", exact: true })
    expect(Tokenizer.encodingFor("openai/gpt-oss:20b")).toEqual({ encoding: "o200k_base", exact: true })
    expect(Tokenizer.encodingFor("gpt-4")).toEqual({ encoding: "cl100k_base", exact: true })
    expect(Tokenizer.encodingFor("gpt-3.5-turbo")).toEqual({ encoding: "cl100k_base", exact: true })
  })

  it("falls back to an approximation for models it does not know", () => {
    expect(Tokenizer.encodingFor("llama3.1")).toEqual({ encoding: Tokenizer.fallbackEncoding, exact: false })
    expect(Tokenizer.encodingFor("qwen2.5-coder:7b")).toEqual({ encoding: Tokenizer.fallbackEncoding, exact: false })
    expect(Tokenizer.encodingFor(undefined).exact).toBe(false)
    const llama = Tokenizer.forModel("llama3.1")
    expect(llama.count("Hello, world!")).toBe(4)
  })

  it("counts real BPE tokens, and special-token text as plain text", () => {
    const counter = Tokenizer.forModel("gpt-4o")
    expect(counter.count("")).toBe(0)
    expect(counter.count("hello")).toBe(1)
    // Would throw with the library's defaults, which refuse special tokens in input.
    expect(counter.count("a <|endoftext|> b")).toBeGreaterThan(3)
    expect(Tokenizer.forModel("gpt-4").count("internationalization")).toBeLessThan("internationalization".length / 2)
  })

  it.prop(
    "a memoized counter counts like the counter it wraps, however texts repeat and are evicted",
    [
      fc.array(fc.constantFrom("", "a", "Hello, world!", "naïve café", "<|endoftext|>", "x".repeat(50)), {
        maxLength: 40
      }),
      fc.integer({ min: 1, max: 4 })
    ],
    ([texts, capacity]) => {
      const memo = Tokenizer.memoized(Tokenizer.fallback, capacity)
      for (const text of texts) expect(memo.count(text)).toBe(Tokenizer.fallback.count(text))
    }
  )

  it("a newline can cost more than one token: BPE counts of joined texts do not add up", () => {
    // Found by the property below in an earlier, wrong form ("no more than the counts plus a token per newline"):
    // the newline joins the punctuation before it into one piece, `':{'\n`, which costs 3 tokens, not 1 + 1.
    const counter = Tokenizer.fallback
    const texts = ["':{'", "!"]
    expect(texts.map(counter.count)).toEqual([1, 1])
    expect(counter.count(texts.join("\n"))).toBe(4)
    expect(Tokenizer.countJoinedLines(counter, texts)).toBe(4)
  })

  const lineArb = fc.oneof(
    fc.string(),
    fc.fullUnicodeString({ maxLength: 12 }),
    fc.stringMatching(/^[A-Za-z0-9 .,:;!?'"()[\]{}<>_\-\n\t]{0,40}$/),
    fc.stringMatching(/^[.,:;!?'"(){}<>/*#=+-]{1,8}[a-z \n]{0,3}$/),
    fc.constantFrom("Task 3: done.", "Error: boom!", "a.b()", "  x  ", "'s", "123456", "naïve — café", "", "\r")
  )

  it.prop(
    "counting texts one by one, each with its newline, gives the count of the joined text",
    [fc.constantFrom("gpt-4", "gpt-4o", undefined), fc.array(lineArb, { maxLength: 6 })],
    ([model, texts]) => {
      const counter = Tokenizer.forModel(model)
      expect(Tokenizer.countJoinedLines(counter, texts)).toBe(counter.count(texts.join("\n")))
    },
    {
      fastCheck: {
        numRuns: 500,
        examples: [
          ["gpt-4", ["':{'", "!"]],
          [undefined, ["}}{{", "}{.:<"]]
        ]
      }
    }
  )

  it.prop(
    "slots changed one at a time cost what their non-empty texts joined by newlines cost, after every change",
    [
      fc.constantFrom("gpt-4", "gpt-4o", undefined),
      fc
        .integer({ min: 1, max: 6 })
        .chain((size) =>
          fc.tuple(
            fc.constant(size),
            fc.array(fc.tuple(fc.integer({ min: 0, max: size - 1 }), lineArb), { minLength: 1, maxLength: 20 })
          )
        )
    ],
    ([model, [size, changes]]) => {
      const counter = Tokenizer.forModel(model)
      const lines = Tokenizer.joinedLines(counter, size)
      const texts: Array<string> = new Array(size).fill("")
      expect(lines.total()).toBe(0)
      for (const [index, text] of changes) {
        lines.set(index, text)
        texts[index] = text
        expect(lines.total()).toBe(counter.count(texts.filter((one) => one.length > 0).join("\n")))
      }
    },
    { fastCheck: { numRuns: 300 } }
  )
})
