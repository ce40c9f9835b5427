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

  it.prop(
    "texts joined by newlines cost no more than their counts plus one token per newline",
    [
      fc.array(
        fc.oneof(
          fc.string({ minLength: 1 }),
          fc.stringMatching(/^[A-Za-z0-9 .,:;!?'"()[\]{}<>_-]{1,40}$/),
          fc.constantFrom("Task 3: done.", "Error: boom!", "a.b()", "  x  ", "'s", "123456", "naïve — café")
        ),
        { minLength: 1, maxLength: 6 }
      )
    ],
    ([parts]) => {
      const texts = parts.map((part) => part.trim()).filter((part) => part.length > 0)
      const counter = Tokenizer.fallback
      const sum = texts.reduce((total, text) => total + counter.count(text), 0)
      expect(counter.count(texts.join("\n"))).toBeLessThanOrEqual(sum + Math.max(0, texts.length - 1))
    },
    { fastCheck: { numRuns: 500 } }
  )
})
