/**
 * What `npm run eval` does (scripts/eval-plans.ts is its entry point): reads the gold file, plans every request with
 * the chosen planner, scores the plans (./metrics.ts) and renders the figures. `main` returns the output and the exit
 * code instead of printing, so the tests call it directly.
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Either } from "effect"
import * as Planning from "../../src/app/Planning.js"
import * as Parser from "../../src/domain/Parser.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import * as LlmConfig from "../../src/infra/LlmConfig.js"
import { type PlanScore, type ScoredPlan, type Summary, scorePlan, summarize } from "./metrics.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
export const defaultFile = path.join(root, "data", "taskbench", "dev.jsonl")

export interface GoldRequest {
  readonly request: string
  readonly steps: ReadonlyArray<string>
  readonly links: ReadonlyArray<readonly [number, number]>
  readonly type: string
}

export class UsageError extends Error {}

/** "Step 2: Call X" is scored as "Call X": the numbering is the gold file's, not part of the step. */
const stepText = (step: string) => step.replace(/^\s*step\s*\d+\s*[:.)-]\s*/i, "")

export const readGold = (file: string): ReadonlyArray<GoldRequest> => {
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}; pass an existing file with --file`)
  }
  const requests: Array<GoldRequest> = []
  for (const [index, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === "") continue
    const where = `${file}:${index + 1}`
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch (error) {
      throw new UsageError(`${where} is not JSON: ${(error as Error).message}`)
    }
    const record = value as Partial<Record<string, unknown>>
    const steps = record.steps
    const links = record.links
    if (typeof record.request !== "string" || !Array.isArray(steps) || !steps.every((s) => typeof s === "string")) {
      throw new UsageError(`${where} needs "request" (a string) and "steps" (an array of strings)`)
    }
    const pairs = Array.isArray(links) ? links : []
    for (const link of pairs) {
      if (
        !Array.isArray(link) ||
        link.length !== 2 ||
        !link.every((end) => Number.isInteger(end) && end >= 0 && end < steps.length)
      ) {
        throw new UsageError(`${where}: every link must be [from, to] with 0-based indices below ${steps.length}`)
      }
    }
    requests.push({
      request: record.request,
      steps: steps.map(stepText),
      links: pairs as ReadonlyArray<readonly [number, number]>,
      type: typeof record.type === "string" ? record.type : "unknown"
    })
  }
  if (requests.length === 0) throw new UsageError(`${file} has no requests`)
  return requests
}

/** A plan as the metrics see it: descriptions, and each dependency as a 0-based link. */
export const toScored = (tasks: ReadonlyArray<TaskPlan>): ScoredPlan => ({
  steps: tasks.map((task) => task.description),
  links: tasks.flatMap((task) => task.dependsOn.map((dep): readonly [number, number] => [dep - 1, task.id - 1]))
})

export type PlannerName = "parser" | "llm"

export interface Planned {
  readonly tasks: ReadonlyArray<TaskPlan>
  /** Set when the LLM planner fell back to the parser, with the reason. */
  readonly fallback?: string
}

const byParser = (request: string): Planned => {
  const parsed = Parser.parse(request)
  return { tasks: Either.isRight(parsed) ? parsed.right : [] }
}

const byLlm = async (requests: ReadonlyArray<GoldRequest>): Promise<ReadonlyArray<Planned>> => {
  const program = Effect.gen(function* () {
    const settings = yield* LlmConfig.fromEnv
    if (settings._tag === "None") {
      return yield* Effect.fail(
        new UsageError(
          "--planner llm needs an LLM: set PLANNER_LLM_BASE_URL and PLANNER_LLM_MODEL (see docs/llm.md), e.g. PLANNER_LLM_BASE_URL=http://localhost:11434/v1 PLANNER_LLM_MODEL=llama3.1"
        )
      )
    }
    return yield* Effect.forEach(requests, (gold) =>
      Planning.planRequest(gold.request).pipe(
        Effect.map((result): Planned => {
          const source = result.source
          return source._tag === "Parser"
            ? { tasks: result.tasks, fallback: source.reason ?? "the parser planned" }
            : { tasks: result.tasks }
        }),
        Effect.orElseSucceed((): Planned => ({ tasks: [] })),
        Effect.provide(LlmConfig.layer(settings))
      )
    )
  })
  // Run to an Either, so a UsageError reaches `main` as itself (runPromise would wrap it in a FiberFailure).
  const result = await Effect.runPromise(
    program.pipe(
      Effect.catchTag("ConfigError", (error) => Effect.fail(new UsageError(`LLM settings: ${String(error)}`))),
      Effect.either
    )
  )
  if (Either.isLeft(result)) throw result.left
  return result.right
}

export interface Evaluation {
  readonly file: string
  readonly planner: PlannerName
  readonly overall: Summary
  readonly byType: Readonly<Record<string, Summary>>
  readonly fallbacks: number
  readonly results: ReadonlyArray<{ readonly gold: GoldRequest; readonly planned: Planned; readonly score: PlanScore }>
}

export const evaluate = async (file: string, planner: PlannerName): Promise<Evaluation> => {
  const gold = readGold(file)
  const planned = planner === "parser" ? gold.map((request) => byParser(request.request)) : await byLlm(gold)
  const results = gold.map((request, index) => {
    const plan = planned[index] ?? { tasks: [] }
    return { gold: request, planned: plan, score: scorePlan(toScored(plan.tasks), request) }
  })
  const types = [...new Set(gold.map((request) => request.type))].sort()
  const byType: Record<string, Summary> = {}
  for (const type of types) {
    byType[type] = summarize(results.filter((result) => result.gold.type === type).map((result) => result.score))
  }
  return {
    file,
    planner,
    overall: summarize(results.map((result) => result.score)),
    byType,
    fallbacks: results.filter((result) => result.planned.fallback !== undefined).length,
    results
  }
}

const figure = (value: number) => value.toFixed(2)
const edgeFigure = (pick: (summary: Summary) => number) => (summary: Summary) =>
  summary.predictedEdges + summary.goldEdges === 0 ? "n/a" : figure(pick(summary))

const metricRows: ReadonlyArray<readonly [string, (summary: Summary) => string]> = [
  ["requests", (s) => String(s.requests)],
  ["step-count accuracy", (s) => figure(s.countAccuracy)],
  ["step precision", (s) => figure(s.stepPrecision)],
  ["step recall", (s) => figure(s.stepRecall)],
  ["step F1", (s) => figure(s.stepF1)],
  ["edge precision", edgeFigure((s) => s.edgePrecision)],
  ["edge recall", edgeFigure((s) => s.edgeRecall)],
  ["edge F1", edgeFigure((s) => s.edgeF1)],
  ["chain F1 (WorFBench)", (s) => figure(s.chainF1)],
  ["shape accuracy", (s) => figure(s.shapeAccuracy)],
  ["exact plans", (s) => figure(s.exactRate)],
  [
    "tasks per multi-step request",
    (s) => (s.multiStepRequests === 0 ? "n/a" : `${s.multiStepPredicted.toFixed(1)} / ${s.multiStepGold.toFixed(1)}`)
  ],
  ["branching gold plans planned branching", (s) => `${s.predictedBranchingOfThose} / ${s.goldBranching}`]
]

/** The figures as a Markdown table: one row per metric, one column for all requests and one per type. */
export const renderTable = (evaluation: Evaluation): string => {
  const columns: ReadonlyArray<readonly [string, Summary]> = [
    ["all", evaluation.overall],
    ...Object.entries(evaluation.byType)
  ]
  const header = ["metric", ...columns.map(([name]) => name)]
  const rows = metricRows.map(([name, pick]) => [name, ...columns.map(([, summary]) => pick(summary))])
  const widths = header.map((cell, index) => Math.max(cell.length, ...rows.map((row) => (row[index] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((cell, index) => (index === 0 ? cell.padEnd(widths[index] ?? 0) : cell.padStart(widths[index] ?? 0))).join(" | ")} |`
  const rule = `| ${widths.map((width, index) => (index === 0 ? "-".repeat(width) : `${"-".repeat(width - 1)}:`)).join(" | ")} |`
  return [line(header), rule, ...rows.map(line)].join("\n")
}

const renderDetails = (evaluation: Evaluation): string =>
  evaluation.results
    .map(({ gold, planned, score }, index) => {
      const tasks = planned.tasks.map((task, position) => {
        const matched = score.matching[position] ?? -1
        const after = task.dependsOn.length > 0 ? ` (after ${task.dependsOn.join(", ")})` : ""
        return `    ${task.id}. ${task.description}${after}  -> ${matched >= 0 ? `gold ${matched + 1}` : "unmatched"}`
      })
      const goldLinks = gold.links.map(([from, to]) => `${from + 1}->${to + 1}`).join(" ")
      return [
        `#${index + 1} [${gold.type}] ${gold.request}`,
        ...gold.steps.map((step, position) => `  gold ${position + 1}. ${step}`),
        `  gold links: ${goldLinks.length > 0 ? goldLinks : "none"}`,
        ...tasks,
        `  steps ${score.matchedSteps}/${score.predictedSteps} of ${score.goldSteps}, edges ${score.matchedEdges}/${score.predictedEdges} of ${score.goldEdges}, shape ${score.predictedShape} vs ${score.goldShape}${score.exact ? ", exact" : ""}${planned.fallback !== undefined ? `, parser fallback: ${planned.fallback}` : ""}`
      ].join("\n")
    })
    .join("\n\n")

export interface Options {
  readonly file: string
  readonly planner: PlannerName
  readonly json: boolean
  readonly details: boolean
}

export const parseOptions = (argv: ReadonlyArray<string>): Options => {
  let file = defaultFile
  let planner: PlannerName = "parser"
  let json = false
  let details = false
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] ?? ""
    const [name, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg]
    const value = () => {
      if (inline !== undefined) return inline
      const next = argv[index + 1]
      if (next === undefined) throw new UsageError(`${name} needs a value`)
      index += 1
      return next
    }
    switch (name) {
      case "--file":
        file = path.resolve(value())
        break
      case "--planner": {
        const chosen = value()
        if (chosen !== "parser" && chosen !== "llm") {
          throw new UsageError(`--planner must be parser or llm, got ${JSON.stringify(chosen)}`)
        }
        planner = chosen
        break
      }
      case "--json":
        json = true
        break
      case "--details":
        details = true
        break
      default:
        throw new UsageError(`unknown option ${JSON.stringify(arg)}; use --file PATH, --planner parser|llm, --json`)
    }
  }
  return { file, planner, json, details }
}

/** Runs the eval for `argv` and returns what to print and the exit code. */
export const main = async (
  argv: ReadonlyArray<string>
): Promise<{ readonly output: string; readonly code: number }> => {
  try {
    const options = parseOptions(argv)
    const evaluation = await evaluate(options.file, options.planner)
    if (options.json) {
      const { results, ...figures } = evaluation
      const output = options.details
        ? { ...figures, results: results.map(({ gold, planned, score }) => ({ gold, planned, score })) }
        : figures
      return { output: JSON.stringify(output, null, 2), code: 0 }
    }
    const title = `Plan quality of the ${options.planner} on ${path.relative(process.cwd(), options.file) || options.file}`
    const fallbackNote =
      evaluation.fallbacks > 0 ? `\n\n${evaluation.fallbacks} request(s) were planned by the parser fallback.` : ""
    const details = options.details ? `\n\n${renderDetails(evaluation)}` : ""
    return { output: `${title}\n\n${renderTable(evaluation)}${fallbackNote}${details}`, code: 0 }
  } catch (error) {
    if (error instanceof UsageError) return { output: `eval: ${error.message}`, code: 2 }
    throw error
  }
}
