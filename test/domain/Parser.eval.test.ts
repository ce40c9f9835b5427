/**
 * `npm run eval` (scripts/eval-plans.ts): the plan-quality metrics on small cases worked out by hand, and the script
 * run on the TaskBench dev file (data/taskbench/dev.jsonl: Shen et al., arXiv:2311.18760, microsoft/JARVIS, MIT).
 */
import { execFile } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "@effect/vitest"
import {
  hungarian,
  longestIncreasing,
  scorePlan,
  shapeOf,
  similarity,
  summarize,
  tokens
} from "../../scripts/eval/metrics.js"
import { main } from "../../scripts/eval/run.js"

const root = path.resolve(import.meta.dirname, "..", "..")

describe("eval metrics", () => {
  it("tokens: lower case, no punctuation or stop words, plural s stripped", () => {
    expect([...tokens("Book the HOTELS, and pay: my bills!")]).toEqual(["book", "hotel", "pay", "bill"])
    expect(similarity("book a hotel", "Book hotels")).toBe(1)
    expect(similarity("book a hotel", "pay the bill")).toBe(0)
    expect(similarity("book a hotel in Rome", "book a flight")).toBeCloseTo(1 / 4)
  })

  it("hungarian: the one-to-one assignment with the largest total, not the greedy one", () => {
    // Greedy would give row 0 column 0 (0.9) and leave row 1 with 0.1: 1.0 in all; the best is 0.8 + 0.8.
    expect(
      hungarian([
        [0.9, 0.8],
        [0.8, 0.1]
      ])
    ).toEqual([1, 0])
    expect(hungarian([[0.5], [0.7]])).toEqual([-1, 0])
    expect(hungarian([[0.2, 0.6, 0.1]])).toEqual([1])
    expect(hungarian([])).toEqual([])
  })

  it("longestIncreasing and shapeOf", () => {
    expect(longestIncreasing([0, 2, 1, 3])).toBe(3)
    expect(longestIncreasing([])).toBe(0)
    expect(shapeOf(1, [])).toBe("single")
    expect(
      shapeOf(3, [
        [1, 0],
        [0, 2]
      ])
    ).toBe("chain")
    expect(
      shapeOf(3, [
        [0, 1],
        [0, 2]
      ])
    ).toBe("branching")
    expect(shapeOf(3, [[0, 1]])).toBe("branching")
  })

  it("scorePlan: steps match above the threshold, edges count only between matched steps", () => {
    const gold = {
      steps: ["Book a hotel in Rome", "Pay the electricity bill", "Send me the hotel booking"],
      links: [
        [0, 1],
        [1, 2]
      ] as const
    }
    const predicted = {
      steps: ["pay my electricity bill", "book a hotel in Rome", "water the plants"],
      links: [
        [1, 0],
        [0, 2]
      ] as const
    }
    const score = scorePlan(predicted, gold)
    expect(score.matching).toEqual([1, 0, -1])
    expect(score).toMatchObject({ matchedSteps: 2, matchedEdges: 1, predictedEdges: 2, goldEdges: 2, exact: false })
    expect(score.chainF1).toBeCloseTo(1 / 3)
    const perfect = scorePlan(gold, gold)
    expect(perfect).toMatchObject({ exact: true, chainF1: 1, shapeCorrect: true, countCorrect: true })
    const summary = summarize([score, perfect])
    expect(summary.stepPrecision).toBeCloseTo(5 / 6)
    expect(summary.edgeRecall).toBeCloseTo(3 / 4)
    expect(summary.exactRate).toBe(0.5)
  })
})

describe("npm run eval", () => {
  it("prints the table for the dev file, overall and per type, and the parser meets the issue's targets", async () => {
    const { stdout } = await promisify(execFile)(
      path.join(root, "node_modules", ".bin", "vite-node"),
      ["scripts/eval-plans.ts", "--file", "data/taskbench/dev.jsonl"],
      { cwd: root }
    )
    expect(stdout).toContain("Plan quality of the parser on data/taskbench/dev.jsonl")
    expect(stdout).toMatch(/\| metric\s+\|\s+all \|\s+chain \|\s+dag \|\s+single \|/)
    for (const row of ["step-count accuracy", "step F1", "edge F1", "chain F1 (WorFBench)", "shape accuracy"]) {
      expect(stdout).toMatch(new RegExp(`\\| ${row.replace(/[()]/g, "\\$&")}\\s+\\|\\s+\\d\\.\\d\\d \\|`))
    }
    expect(stdout).toMatch(/\| exact plans\s+\|\s+\d\.\d\d \|/)

    const { output, code } = await main(["--file", path.join(root, "data", "taskbench", "dev.jsonl"), "--json"])
    expect(code).toBe(0)
    const { overall } = JSON.parse(output)
    expect(overall.requests).toBe(28)
    expect(overall.countAccuracy).toBeGreaterThanOrEqual(0.75)
    expect(overall.edgeF1).toBeGreaterThanOrEqual(0.55)
    expect(overall.stepF1).toBeGreaterThanOrEqual(0.8)
    expect(overall.predictedBranchingOfThose * 2).toBeGreaterThanOrEqual(overall.goldBranching)
  }, 60_000)

  it("refuses a malformed file and unknown options with exit code 2 and a message that says what to fix", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "eval-"))
    const bad = path.join(dir, "bad.jsonl")
    writeFileSync(bad, '{"request":"x","steps":["a"],"links":[[0,3]]}\n')
    expect(await main(["--file", bad])).toEqual({
      output: `eval: ${bad}:1: every link must be [from, to] with 0-based indices below 1`,
      code: 2
    })
    expect((await main(["--planner", "gpt"])).output).toBe('eval: --planner must be parser or llm, got "gpt"')
    expect((await main(["--file", path.join(dir, "missing.jsonl")])).code).toBe(2)
    expect((await main(["--bogus"])).code).toBe(2)
  })

  it("--planner llm without an LLM configured says how to configure one, exit code 2", async () => {
    const saved = { ...process.env }
    for (const name of Object.keys(process.env)) if (/^(PLANNER_LLM_|OPENAI_)/.test(name)) delete process.env[name]
    try {
      const { output, code } = await main(["--planner", "llm"])
      expect(code).toBe(2)
      expect(output).toMatch(/^eval: --planner llm needs an LLM: set PLANNER_LLM_BASE_URL and PLANNER_LLM_MODEL/)
    } finally {
      Object.assign(process.env, saved)
    }
  })
})
