/**
 * Plan-quality metrics for `npm run eval` (scripts/eval-plans.ts): how close a planner's tasks and dependencies are
 * to a gold plan. Pure functions, no I/O, so the test suite checks them directly.
 *
 * - Steps match by token-Jaccard similarity (`similarity`), at least `MATCH_THRESHOLD`, under the one-to-one
 *   assignment that maximises total similarity (`hungarian`).
 * - Edges are compared on matched steps only: a predicted edge counts when both ends matched a gold step and the
 *   gold plan links those two steps the same way.
 * - Chain F1 is WorFBench's node-chain score: the longest increasing subsequence of the gold positions of the matched
 *   tasks, taken in the planner's order, over the predicted and the gold step counts.
 */

/** The least similarity at which a task counts as the gold step it is matched with. */
export const MATCH_THRESHOLD = 0.3

/** Words that say nothing about which step a text describes: NLTK's English stop-word list (179 words). */
const stopWords: ReadonlySet<string> = new Set(
  (
    "i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his " +
    "himself she she's her hers herself it it's its itself they them their theirs themselves what which who whom " +
    "this that that'll these those am is are was were be been being have has had having do does did doing a an the " +
    "and but if or because as until while of at by for with about against between into through during before after " +
    "above below to from up down in out on off over under again further then once here there when where why how " +
    "all any both each few more most other some such no nor not only own same so than too very s t can will just " +
    "don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't " +
    "hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't " +
    "shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't"
  ).split(" ")
)

/** The words of a text that carry meaning: lower case, punctuation and stop words removed, a plural `s` stripped. */
export const tokens = (text: string): ReadonlySet<string> => {
  const words = text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s']/gu, " ")
    .split(/\s+/)
    .map((word) => word.replace(/^'+|'+$/g, "").replace(/'s$/, ""))
    .filter((word) => word.length > 0 && !stopWords.has(word))
    .map((word) => (word.length > 3 && word.endsWith("s") && !word.endsWith("ss") ? word.slice(0, -1) : word))
  return new Set(words)
}

/** Jaccard similarity of the two texts' token sets: shared tokens over all tokens, 0 when both are empty. */
export const similarity = (a: string, b: string): number => jaccard(tokens(a), tokens(b))

const jaccard = (a: ReadonlySet<string>, b: ReadonlySet<string>): number => {
  let shared = 0
  for (const token of a) if (b.has(token)) shared += 1
  const union = a.size + b.size - shared
  return union === 0 ? 0 : shared / union
}

/**
 * The one-to-one assignment of rows to columns that maximises the total weight (Hungarian algorithm, O(n^3), on the
 * square matrix padded with zeros). Returns, for each row, its column or -1.
 */
export const hungarian = (weights: ReadonlyArray<ReadonlyArray<number>>): ReadonlyArray<number> => {
  const rows = weights.length
  const columns = rows === 0 ? 0 : Math.max(...weights.map((row) => row.length))
  const n = Math.max(rows, columns)
  if (n === 0) return []
  let maxWeight = 0
  for (const row of weights) for (const weight of row) maxWeight = Math.max(maxWeight, weight)
  // Minimises cost = maxWeight - weight; 1-based arrays as in the classic potentials formulation.
  const cost = (i: number, j: number) => maxWeight - (weights[i - 1]?.[j - 1] ?? 0)
  const u = new Array<number>(n + 1).fill(0)
  const v = new Array<number>(n + 1).fill(0)
  const p = new Array<number>(n + 1).fill(0)
  const way = new Array<number>(n + 1).fill(0)
  for (let i = 1; i <= n; i++) {
    p[0] = i
    let j0 = 0
    const minv = new Array<number>(n + 1).fill(Number.POSITIVE_INFINITY)
    const used = new Array<boolean>(n + 1).fill(false)
    do {
      used[j0] = true
      const i0 = p[j0] ?? 0
      let delta = Number.POSITIVE_INFINITY
      let j1 = 0
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue
        const current = cost(i0, j) - (u[i0] ?? 0) - (v[j] ?? 0)
        if (current < (minv[j] ?? 0)) {
          minv[j] = current
          way[j] = j0
        }
        if ((minv[j] ?? 0) < delta) {
          delta = minv[j] ?? 0
          j1 = j
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          const row = p[j] ?? 0
          u[row] = (u[row] ?? 0) + delta
          v[j] = (v[j] ?? 0) - delta
        } else minv[j] = (minv[j] ?? 0) - delta
      }
      j0 = j1
    } while ((p[j0] ?? 0) !== 0)
    do {
      const j1 = way[j0] ?? 0
      p[j0] = p[j1] ?? 0
      j0 = j1
    } while (j0 !== 0)
  }
  const assignment = new Array<number>(rows).fill(-1)
  for (let j = 1; j <= n; j++) {
    const i = p[j] ?? 0
    if (i >= 1 && i <= rows && j <= columns) assignment[i - 1] = j - 1
  }
  return assignment
}

/** Length of the longest strictly increasing subsequence. */
export const longestIncreasing = (values: ReadonlyArray<number>): number => {
  const tails: Array<number> = []
  for (const value of values) {
    let low = 0
    let high = tails.length
    while (low < high) {
      const middle = (low + high) >> 1
      if ((tails[middle] ?? 0) < value) low = middle + 1
      else high = middle
    }
    tails[low] = value
  }
  return tails.length
}

export type Shape = "single" | "chain" | "branching"

/**
 * The shape of a plan of `count` steps with `links` (0-based `[from, to]`): one step; a chain (every step has at most
 * one step before and one after it, and they form one path); or branching (anything else, including steps that are
 * not linked at all).
 */
export const shapeOf = (count: number, links: ReadonlyArray<readonly [number, number]>): Shape => {
  if (count <= 1) return "single"
  const edges = new Set(links.map(([from, to]) => `${from}>${to}`))
  if (edges.size !== count - 1) return "branching"
  const indegree = new Array<number>(count).fill(0)
  const outdegree = new Array<number>(count).fill(0)
  const next = new Array<number>(count).fill(-1)
  for (const key of edges) {
    const [from, to] = key.split(">").map(Number) as [number, number]
    outdegree[from] = (outdegree[from] ?? 0) + 1
    indegree[to] = (indegree[to] ?? 0) + 1
    next[from] = to
  }
  if (indegree.some((d) => d > 1) || outdegree.some((d) => d > 1)) return "branching"
  const start = indegree.indexOf(0)
  if (start < 0) return "branching"
  let visited = 0
  for (let at = start; at >= 0 && visited <= count; at = next[at] ?? -1) visited += 1
  return visited === count ? "chain" : "branching"
}

/** A plan to score: step texts and 0-based links `[from, to]` (`to` needs `from`). */
export interface ScoredPlan {
  readonly steps: ReadonlyArray<string>
  readonly links: ReadonlyArray<readonly [number, number]>
}

/** What one predicted plan scores against its gold plan: counts, so results add up over a file. */
export interface PlanScore {
  readonly predictedSteps: number
  readonly goldSteps: number
  readonly matchedSteps: number
  readonly predictedEdges: number
  readonly goldEdges: number
  readonly matchedEdges: number
  readonly chainF1: number
  readonly countCorrect: boolean
  readonly predictedShape: Shape
  readonly goldShape: Shape
  readonly shapeCorrect: boolean
  readonly exact: boolean
  /** For each predicted step, the gold step it matched, or -1. */
  readonly matching: ReadonlyArray<number>
}

const f1 = (precision: number, recall: number): number =>
  precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall)

const edgeKey = (from: number, to: number) => `${from}>${to}`

/** Scores `predicted` against `gold` (see the module comment). Steps are in each planner's own order. */
export const scorePlan = (predicted: ScoredPlan, gold: ScoredPlan): PlanScore => {
  const weights = predicted.steps.map((step) =>
    gold.steps.map((goldStep) => {
      const value = similarity(step, goldStep)
      return value >= MATCH_THRESHOLD ? value : 0
    })
  )
  const assignment = hungarian(weights)
  const matching = assignment.map((column, row) => (column >= 0 && (weights[row]?.[column] ?? 0) > 0 ? column : -1))
  const matchedSteps = matching.filter((column) => column >= 0).length
  const goldEdges = new Set(gold.links.map(([from, to]) => edgeKey(from, to)))
  const predictedEdges = new Set(predicted.links.map(([from, to]) => edgeKey(from, to)))
  let matchedEdges = 0
  for (const key of predictedEdges) {
    const [from, to] = key.split(">").map(Number) as [number, number]
    const goldFrom = matching[from] ?? -1
    const goldTo = matching[to] ?? -1
    if (goldFrom >= 0 && goldTo >= 0 && goldEdges.has(edgeKey(goldFrom, goldTo))) matchedEdges += 1
  }
  const positions = matching.filter((column) => column >= 0)
  const chainLength = longestIncreasing(positions)
  const chainF1 = f1(
    predicted.steps.length === 0 ? 0 : chainLength / predicted.steps.length,
    gold.steps.length === 0 ? 0 : chainLength / gold.steps.length
  )
  const predictedShape = shapeOf(predicted.steps.length, predicted.links)
  const goldShape = shapeOf(gold.steps.length, gold.links)
  const countCorrect = predicted.steps.length === gold.steps.length
  const exact =
    countCorrect &&
    matchedSteps === gold.steps.length &&
    matchedEdges === goldEdges.size &&
    predictedEdges.size === goldEdges.size
  return {
    predictedSteps: predicted.steps.length,
    goldSteps: gold.steps.length,
    matchedSteps,
    predictedEdges: predictedEdges.size,
    goldEdges: goldEdges.size,
    matchedEdges,
    chainF1,
    countCorrect,
    predictedShape,
    goldShape,
    shapeCorrect: predictedShape === goldShape,
    exact,
    matching
  }
}

/** Scores summed over many plans. */
export interface Summary {
  readonly requests: number
  /** Totals over the set: with none of either, edge figures mean nothing (they print as n/a). */
  readonly predictedEdges: number
  readonly goldEdges: number
  readonly multiStepRequests: number
  readonly countAccuracy: number
  readonly stepPrecision: number
  readonly stepRecall: number
  readonly stepF1: number
  readonly edgePrecision: number
  readonly edgeRecall: number
  readonly edgeF1: number
  readonly chainF1: number
  readonly shapeAccuracy: number
  readonly exactRate: number
  /** Mean predicted and gold step counts over the requests whose gold plan has more than one step. */
  readonly multiStepPredicted: number
  readonly multiStepGold: number
  /** Requests whose gold plan branches, and how many of them got a branching plan. */
  readonly goldBranching: number
  readonly predictedBranchingOfThose: number
}

const ratio = (part: number, whole: number): number => (whole === 0 ? 0 : part / whole)

/**
 * Sums scores over a set of requests. Step and edge precision and recall are micro-averaged (totals over the set,
 * so a long plan weighs more than a short one); F1 is computed from them. Chain F1 is the mean per request.
 */
export const summarize = (scores: ReadonlyArray<PlanScore>): Summary => {
  const sum = (pick: (score: PlanScore) => number) => scores.reduce((total, score) => total + pick(score), 0)
  const count = (pick: (score: PlanScore) => boolean) => scores.filter(pick).length
  const stepPrecision = ratio(
    sum((s) => s.matchedSteps),
    sum((s) => s.predictedSteps)
  )
  const stepRecall = ratio(
    sum((s) => s.matchedSteps),
    sum((s) => s.goldSteps)
  )
  const edgePrecision = ratio(
    sum((s) => s.matchedEdges),
    sum((s) => s.predictedEdges)
  )
  const edgeRecall = ratio(
    sum((s) => s.matchedEdges),
    sum((s) => s.goldEdges)
  )
  const multi = scores.filter((s) => s.goldSteps > 1)
  const branching = scores.filter((s) => s.goldShape === "branching")
  return {
    requests: scores.length,
    predictedEdges: sum((s) => s.predictedEdges),
    goldEdges: sum((s) => s.goldEdges),
    multiStepRequests: multi.length,
    countAccuracy: ratio(
      count((s) => s.countCorrect),
      scores.length
    ),
    stepPrecision,
    stepRecall,
    stepF1: f1(stepPrecision, stepRecall),
    edgePrecision,
    edgeRecall,
    edgeF1: f1(edgePrecision, edgeRecall),
    chainF1: ratio(
      sum((s) => s.chainF1),
      scores.length
    ),
    shapeAccuracy: ratio(
      count((s) => s.shapeCorrect),
      scores.length
    ),
    exactRate: ratio(
      count((s) => s.exact),
      scores.length
    ),
    multiStepPredicted: ratio(
      multi.reduce((total, s) => total + s.predictedSteps, 0),
      multi.length
    ),
    multiStepGold: ratio(
      multi.reduce((total, s) => total + s.goldSteps, 0),
      multi.length
    ),
    goldBranching: branching.length,
    predictedBranchingOfThose: branching.filter((s) => s.predictedShape === "branching").length
  }
}
