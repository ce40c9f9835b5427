/**
 * Dependencies: which steps wait for which, from the words of the request.
 *
 * - Each step starts from its relation (./Steps.ts): an `ordered` or `sequence` step waits for every step so far that
 *   nothing else waits for (so "A, B, and then C" has C wait for both A and B); a `parallel` step waits for what the
 *   step before it waits for; an `independent` step for nothing; a `prerequisite` ("..., but first B") takes the place
 *   of the step before it, which then waits for it.
 * - The items of an action list run beside each other (each waits for what the list's first item waits for) when the
 *   step after the list is marked as coming after it ("then", "finally", "after X"): the request says where order
 *   matters, so the items it lists without an ordering word are independent. A list nothing marks keeps the written
 *   order, the safe default.
 * - A time clause that names another step decides instead: "After booking the flight, send ..." waits for the step
 *   that books the flight; "Before you deploy, run the tests" makes the deploying step wait. "Once done" names the step
 *   just before. A clause that names no step stays in the description as a condition on the world.
 * - A step that refers back to an earlier one also waits for it: "it", "them", "its" (the step just before); "the
 *   results", "the report", "the details" (the step just before); "the booking details", "the recorded content" (the
 *   nearest earlier step that books, records ...).
 * - Finally the dependencies are reduced to the direct ones (no edge that another path already implies), and the steps
 *   are put in an order where every dependency comes first, keeping the written order wherever it allows.
 */
import { protectedMask } from "./ProtectedText.js"
import type { Step } from "./Steps.js"

/** A step with its dependencies as 0-based positions in the returned list. */
export interface Ordered {
  readonly description: string
  readonly dependsOn: ReadonlyArray<number>
}

// --- Words --------------------------------------------------------------------------------------------------------

const stopWords: ReadonlySet<string> = new Set(
  (
    "a an the and or but of to in on at for from by with about into onto over under via as is are was were be been " +
    "being am do does did done have has had having i me my we us our you your he she it its they them their this " +
    "that these those there here what which who whom whose when where why how all any some each every no not only " +
    "just also please want need would like could should will can may might must shall let so then than too very " +
    "up down out off again once after before while until if else new same other another first second third last " +
    "next latest current whole entire final good best selected above following previous some more most such"
  ).split(" ")
)

/** Nouns that name what an earlier step produced, whatever it was: "the results", "the report". */
const resultNouns: ReadonlySet<string> = new Set([
  "result",
  "detail",
  "content",
  "output",
  "information",
  "info",
  "summary",
  "report",
  "data",
  "confirmation",
  "outcome",
  "finding",
  "status",
  "response",
  "answer",
  "progress"
])

/** A light stemmer: enough for "booking"/"book", "recorded"/"record", "consultation"/"consult", "submitted"/"submit". */
export const stem = (word: string): string => {
  let w = word.toLowerCase().replace(/['’]s$/u, "")
  if (w.length > 5 && w.endsWith("ations")) w = w.slice(0, -6)
  else if (w.length > 5 && w.endsWith("ation")) w = w.slice(0, -5)
  else if (w.length > 5 && w.endsWith("ments")) w = w.slice(0, -5)
  else if (w.length > 5 && w.endsWith("ment")) w = w.slice(0, -4)
  else if (w.length > 5 && w.endsWith("ings")) w = w.slice(0, -4)
  else if (w.length > 4 && w.endsWith("ing")) w = w.slice(0, -3)
  else if (w.length > 4 && w.endsWith("ied")) w = `${w.slice(0, -3)}y`
  else if (w.length > 4 && w.endsWith("ed")) w = w.slice(0, -2)
  else if (w.length > 4 && w.endsWith("ies")) w = `${w.slice(0, -3)}y`
  else if (w.length > 4 && /(?:ch|sh|x|ss)es$/u.test(w)) w = w.slice(0, -2)
  else if (w.length > 3 && w.endsWith("s") && !w.endsWith("ss")) w = w.slice(0, -1)
  if (w.length > 3 && /([b-df-hj-np-tv-z])\1$/u.test(w) && !/(?:ll|ss|zz|ff)$/u.test(w)) w = w.slice(0, -1)
  if (w.length > 3 && w.endsWith("e")) w = w.slice(0, -1)
  return w
}

/** `text` with quoted strings and code blanked: what a message says is not what the step does. */
const unquoted = (text: string): string => {
  const mask = protectedMask(text, false)
  let out = ""
  for (let index = 0; index < text.length; index++) out += mask[index] === 1 ? " " : text.charAt(index)
  return out
}

const wordsOf = (text: string): ReadonlyArray<string> =>
  text
    .toLowerCase()
    .split(/[^\p{L}\p{N}'’]+/u)
    .map((word) => word.replace(/^['’]+|['’]+$/gu, ""))
    .filter((word) => word.length > 0)

/** The stems of the content words of a text (quoted text and code left out). */
const contentStems = (text: string): ReadonlySet<string> =>
  new Set(
    wordsOf(unquoted(text))
      .filter((word) => !stopWords.has(word))
      .map(stem)
  )

// --- References ---------------------------------------------------------------------------------------------------

const pronoun = /\b(?:it|them|its)\b/iu
/** "the booking details", "these files", "the consultation's audio": up to three words after the article. */
const definite = /\b(?:the|these|those)\s+([\p{L}\p{N}'’-]+(?:\s+[\p{L}\p{N}'’-]+){0,2})/giu

/**
 * The earlier steps a description refers back to, as positions in `earlier`. A pronoun means the step just before,
 * unless `pronounTargets` says what the same pronoun meant in an earlier item of the same list ("Fetch the rows, clean
 * them and count them": both "them" are the rows).
 */
const backReferences = (
  description: string,
  earlier: ReadonlyArray<ReadonlySet<string>>,
  pronounTargets?: ReadonlyMap<string, number>
): ReadonlyArray<number> => {
  if (earlier.length === 0) return []
  const text = unquoted(description)
  const found = new Set<number>()
  const said = pronoun.exec(text)?.[0]?.toLowerCase()
  if (said !== undefined) found.add(pronounTargets?.get(said) ?? earlier.length - 1)
  for (const match of text.matchAll(definite)) {
    const core: Array<string> = []
    let results = false
    for (const word of (match[1] ?? "").toLowerCase().split(/\s+/)) {
      if (stopWords.has(word)) break
      const possessive = /['’]s$/u.test(word)
      const stemmed = stem(word)
      if (resultNouns.has(stemmed)) results = true
      else core.push(stemmed)
      // "the consultation's audio" refers to the consultation.
      if (possessive) break
    }
    if (core.length === 0) {
      if (results) found.add(earlier.length - 1)
      continue
    }
    for (let index = earlier.length - 1; index >= 0; index--) {
      const stems = earlier[index]
      if (stems !== undefined && core.every((word) => stems.has(word))) {
        found.add(index)
        break
      }
    }
  }
  return [...found]
}

/** The step a time clause names: the one sharing the most content words with it (the nearest on a tie), if any. */
const resolveTarget = (
  target: string,
  candidates: ReadonlyArray<number>,
  stems: ReadonlyArray<ReadonlySet<string>>
): number | undefined => {
  const wanted = contentStems(target)
  let best: number | undefined
  let bestScore = 0
  for (const index of candidates) {
    const have = stems[index]
    if (have === undefined) continue
    let score = 0
    for (const word of wanted) if (have.has(word)) score += 1
    if (score > bestScore) {
      best = index
      bestScore = score
    }
  }
  return best
}

// --- Graph --------------------------------------------------------------------------------------------------------

/** Whether `to` can be reached from `from` by following dependencies. */
const reaches = (deps: ReadonlyArray<ReadonlySet<number>>, from: number, to: number): boolean => {
  const seen = new Set<number>([from])
  const pending = [from]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (next === to) return true
    for (const dep of deps[next] ?? []) {
      if (!seen.has(dep)) {
        seen.add(dep)
        pending.push(dep)
      }
    }
  }
  return false
}

/**
 * Only the direct dependencies: one that another dependency already waits for, directly or not, is dropped. `position`
 * is a topological order: a step's ancestors all come before it there, so the search stops below the earliest
 * dependency (which keeps long requests linear).
 */
const reduce = (
  deps: ReadonlyArray<ReadonlySet<number>>,
  position: ReadonlyMap<number, number>
): ReadonlyArray<ReadonlySet<number>> =>
  deps.map((own) => {
    if (own.size < 2) return own
    let floor = Number.POSITIVE_INFINITY
    for (const dep of own) floor = Math.min(floor, position.get(dep) ?? 0)
    const implied = new Set<number>()
    const pending: Array<number> = []
    for (const dep of own) for (const further of deps[dep] ?? []) pending.push(further)
    for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
      if (implied.has(next) || (position.get(next) ?? 0) < floor) continue
      implied.add(next)
      for (const further of deps[next] ?? []) pending.push(further)
    }
    return new Set([...own].filter((dep) => !implied.has(dep)))
  })

/** Positions in an order where dependencies come first, the written order kept wherever it allows. */
const stableOrder = (deps: ReadonlyArray<ReadonlySet<number>>): ReadonlyArray<number> => {
  if (deps.every((own, index) => [...own].every((dep) => dep < index))) return deps.map((_, index) => index)
  const waiting = deps.map((own) => own.size)
  const dependents = deps.map((): Array<number> => [])
  deps.forEach((own, index) => {
    for (const dep of own) dependents[dep]?.push(index)
  })
  const ready = deps.flatMap((own, index) => (own.size === 0 ? [index] : []))
  const order: Array<number> = []
  while (ready.length > 0) {
    ready.sort((a, b) => a - b)
    const next = ready.shift() as number
    order.push(next)
    for (const dependent of dependents[next] ?? []) {
      waiting[dependent] = (waiting[dependent] ?? 1) - 1
      if (waiting[dependent] === 0) ready.push(dependent)
    }
  }
  return order
}

/** Whether each step is an item of an action list whose items run beside each other (see the module comment). */
const parallelListItems = (steps: ReadonlyArray<Step>): ReadonlyArray<boolean> => {
  const parallel = steps.map(() => false)
  let first = 0
  while (first < steps.length) {
    let last = first
    while (steps[last + 1]?.relation === "list") last += 1
    const after = steps[last + 1]
    const marked = after !== undefined && (after.relation === "ordered" || after.temporal?.kind === "after")
    if (last > first && marked) for (let index = first + 1; index <= last; index++) parallel[index] = true
    first = last + 1
  }
  return parallel
}

/** The steps with their dependencies, in an order where every dependency comes first (see the module comment). */
export const dependenciesOf = (steps: ReadonlyArray<Step>): ReadonlyArray<Ordered> => {
  const deps: Array<Set<number>> = []
  const descriptions: Array<string> = []
  const stems: Array<ReadonlySet<string>> = []
  const before: Array<readonly [number, string]> = []
  let listBase = new Set<number>()
  const parallelItem = parallelListItems(steps)
  /** What each pronoun referred to in the current parallel list's earlier items. */
  const listPronouns = new Map<string, number>()
  /** Steps so far that no other step waits for. */
  const sinks = new Set<number>()
  for (const [index, step] of steps.entries()) {
    let own: Set<number>
    let description = step.description
    switch (index === 0 ? "first" : step.relation) {
      case "first":
      case "independent":
        own = new Set()
        break
      case "list":
        own = parallelItem[index] === true ? new Set(listBase) : new Set(sinks)
        break
      case "parallel":
        own = new Set(deps[index - 1] ?? [])
        break
      case "prerequisite":
        own = new Set(deps[index - 1] ?? [])
        deps[index - 1] = new Set([index])
        break
      default:
        own = new Set(sinks)
    }
    if (step.relation !== "list" || index === 0) listBase = new Set(own)
    const temporal = step.temporal
    // A prerequisite is waited for by the step it comes before; every other step is, for now, waited for by nothing.
    let waitedFor = index > 0 && step.relation === "prerequisite"
    if (temporal?.kind === "after") {
      const earlier = Array.from({ length: index }, (_, position) => index - 1 - position)
      const target =
        temporal.target === "" ? (index > 0 ? index - 1 : undefined) : resolveTarget(temporal.target, earlier, stems)
      if (target !== undefined) {
        own = new Set([target])
        description = temporal.without
      }
    } else if (temporal?.kind === "before") {
      // "Deploy the app. Before you deploy, run the tests": the tests take the deploy's place and it waits for them.
      const earlier = Array.from({ length: index }, (_, position) => index - 1 - position)
      const target = temporal.target === "" ? undefined : resolveTarget(temporal.target, earlier, stems)
      if (target !== undefined) {
        own = new Set(deps[target] ?? [])
        deps[target]?.add(index)
        waitedFor = true
        description = temporal.without
      } else before.push([index, temporal.target])
    }
    if (step.relation !== "list" || parallelItem[index] !== true) listPronouns.clear()
    for (const reference of backReferences(description, stems, listPronouns)) {
      // Only a step that something already waits for (a prerequisite) can close a cycle through a reference.
      if (!waitedFor || !reaches(deps, reference, index)) own.add(reference)
    }
    const said = pronoun.exec(unquoted(description))?.[0]?.toLowerCase()
    if (said !== undefined && !listPronouns.has(said)) listPronouns.set(said, index - 1)
    deps.push(own)
    for (const dep of own) sinks.delete(dep)
    if (!waitedFor) sinks.add(index)
    descriptions.push(description)
    stems.push(contentStems(description))
  }
  // "Before X, do A" with X later in the request: the step that does X waits for A, unless that makes a cycle.
  for (const [index, target] of before) {
    const others = Array.from({ length: steps.length - index - 1 }, (_, position) => index + 1 + position)
    const resolved = target === "" ? undefined : resolveTarget(target, others, stems)
    if (resolved === undefined || reaches(deps, index, resolved)) continue
    deps[resolved]?.add(index)
    const step = steps[index]
    if (step?.temporal !== undefined) descriptions[index] = step.temporal.without
  }
  // Reducing keeps what waits for what, so the order is the same before and after.
  const order = stableOrder(deps)
  const position = new Map(order.map((original, at) => [original, at]))
  const reduced = reduce(deps, position)
  return order.map((original) => ({
    description: descriptions[original] ?? "",
    dependsOn: [...(reduced[original] ?? [])].map((dep) => position.get(dep) ?? 0).sort((a, b) => a - b)
  }))
}
