/** Splitting a paragraph: inline enumerations, sentences, and clauses at sequencing connectors. */

import { actionVerbs } from "./Actions.js"
import {
  conditionAtStart,
  conditionInside,
  connectorWords,
  isConnectorUse,
  notThenStep,
  withoutLeadingConnectors
} from "./Connectors.js"
import { protectedMask } from "./ProtectedText.js"
import { beforeNumber, hasContent, isDottedAbbreviation, maybeTerminal, neverTerminal, wordBefore } from "./Text.js"

/** "Here is the plan:", "Please do the following:" at the start of a paragraph. */
export const paragraphIntro =
  /^[^.!?:\n]{0,80}?\b(?:plan|steps|following|tasks|to-?dos?|to do|checklist|below)\s*:\s+/iu

const numberWords = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
const inlineMarker = new RegExp(
  `(?<=^|[\\s:;,])(?:\\((\\d{1,2})\\)|(\\d{1,2})([.)])|(step)\\s+(\\d{1,2}|${numberWords.join("|")})\\s*[:.)])(?=\\s)`,
  "giu"
)
const markerNumber = (digitsOrWord: string): number => {
  const word = numberWords.indexOf(digitsOrWord.toLowerCase())
  return word >= 0 ? word + 1 : Number(digitsOrWord)
}

interface Marker {
  readonly index: number
  readonly end: number
  readonly number: number
  readonly style: string
}

/** An inline enumeration (`1) a 2) b`) starting the paragraph or following a colon, split into its items. */
export const splitEnumeration = (text: string): ReadonlyArray<string> | undefined => {
  // Parentheses are not protected here: `(1)` is itself a marker.
  const mask = protectedMask(text, false)
  const markers: Array<Marker> = []
  for (const match of text.matchAll(inlineMarker)) {
    if (mask[match.index] === 1) continue
    const number = markerNumber(match[1] ?? match[2] ?? match[5] ?? "")
    const style = match[1] !== undefined ? "()" : match[2] !== undefined ? (match[3] ?? "") : "step"
    markers.push({ index: match.index, end: match.index + match[0].length, number, style })
  }
  const startsAt = markers.findIndex(
    (marker) => marker.number === 1 && (marker.index === 0 || text.slice(0, marker.index).trimEnd().endsWith(":"))
  )
  const first = markers[startsAt]
  if (first === undefined) return undefined
  const chain: Array<Marker> = [first]
  for (const marker of markers.slice(startsAt + 1)) {
    const last = chain[chain.length - 1] ?? first
    if (marker.style === last.style && marker.number === last.number + 1) chain.push(marker)
  }
  if (chain.length < 2) return undefined
  return chain.map((marker, position) => text.slice(marker.end, chain[position + 1]?.index ?? text.length))
}

/** Whether the text from `index` on starts a new sentence: a capital, a digit, an opening quote, or a connector. */
const startsSentence = (text: string, index: number): boolean => {
  const rest = text.slice(index, index + 40).trimStart()
  return /^[\p{Lu}\p{N}"'“‘([`]/u.test(rest) || startsWithConnector(rest)
}

const connectorStart = new RegExp(`^(?:and\\s+)?(?:${connectorWords})\\b`, "iu")
const startsWithConnector = (rest: string): boolean => connectorStart.test(rest)

/**
 * After an abbreviation that may end a sentence ("etc.", "Inc.", "U.S."), only a capitalised word or a connector
 * starts the next one: "Apple Inc. (AAPL)" goes on.
 */
const startsSentenceAfterAbbreviation = (text: string, index: number): boolean => {
  const rest = text.slice(index, index + 40).trimStart()
  return /^\p{Lu}/u.test(rest) || startsWithConnector(rest)
}

/**
 * After an initial ("J. R. R. Tolkien", "vitamin C."), a sentence starts only with a connector or a verb that starts
 * a request ("vitamin C. Book a car"), not with a name.
 */
const startsSentenceAfterInitial = (text: string, index: number): boolean => {
  const rest = text.slice(index, index + 40).trimStart()
  return startsWithConnector(rest) || actionVerbs.has((/^\p{L}+/u.exec(rest)?.[0] ?? "").toLowerCase())
}

export const sentences = (text: string): ReadonlyArray<string> => {
  const mask = protectedMask(text)
  const pieces: Array<string> = []
  let start = 0
  for (const match of text.matchAll(/(?<![.!?…])([.!?…]+)[)\]"'”’»]*(?=\s)/gu)) {
    if (mask[match.index] === 1) continue
    const punctuation = match[1] ?? ""
    const after = match.index + match[0].length
    const word = wordBefore(text, match.index)
    const nextWord = text.slice(after, after + 40).trimStart()
    let ends: boolean
    if (/[!?]/.test(punctuation)) ends = true
    else if (punctuation !== ".") ends = startsSentence(text, after)
    else if (neverTerminal.has(word)) ends = false
    else if (beforeNumber.has(word) && /^\d/.test(nextWord)) ends = false
    else if (maybeTerminal.has(word) || isDottedAbbreviation(word)) ends = startsSentenceAfterAbbreviation(text, after)
    else if (/^\p{Lu}$/u.test(text.charAt(match.index - 1)) && word.length === 1) {
      ends = startsSentenceAfterInitial(text, after)
    } else ends = true
    if (!ends) continue
    pieces.push(text.slice(start, after))
    start = after
  }
  pieces.push(text.slice(start))
  return pieces
}

const clauseBreak = new RegExp(`(\\s*[,;]\\s*|\\s+[-–—]\\s+|\\s+)(and\\s+)?(${connectorWords})(?=[\\s,:]|$)`, "giu")

export const clauses = (sentence: string, ordinals: boolean): ReadonlyArray<string> => {
  const mask = protectedMask(sentence)
  const pieces: Array<string> = []
  let start = 0
  // Where the current clause's first inner condition is, searched once per clause so long sentences stay linear.
  let conditionSearchedFrom = -1
  let conditionAt = -1
  const isConditional = (clauseStart: number, end: number, opening: string): boolean => {
    if (conditionAtStart.test(opening)) return true
    if (conditionSearchedFrom !== clauseStart) {
      conditionSearchedFrom = clauseStart
      conditionInside.lastIndex = clauseStart
      conditionAt = conditionInside.exec(sentence)?.index ?? -1
    }
    return conditionAt >= 0 && conditionAt < end
  }
  for (const match of sentence.matchAll(clauseBreak)) {
    const lead = match[1] ?? ""
    const connector = (match[3] ?? "").toLowerCase().replace(/\s+/g, " ")
    const at = match.index + lead.length
    if (match.index === 0 || mask[at] === 1) continue
    const rest = sentence.slice(match.index + match[0].length, match.index + match[0].length + 80)
    if (!hasContent(sentence.slice(match.index + match[0].length))) continue
    const punctuated = /[,;–—-]/.test(lead)
    const joined = match[2] !== undefined
    // Connectors are short: the clause's first 120 characters tell how it opens.
    const opening = withoutLeadingConnectors(sentence.slice(start, Math.min(match.index, start + 120)), ordinals)
    let splits: boolean
    switch (connector) {
      case "then":
        splits =
          (punctuated || joined || !notThenStep.has(wordBefore(sentence, match.index))) &&
          !isConditional(start, match.index, opening)
        break
      case "first":
        splits = punctuated && !joined && /^\s*,/.test(rest)
        break
      case "second":
      case "third":
        splits = punctuated && !joined && isConnectorUse(connector, rest, ordinals)
        break
      case "firstly":
      case "secondly":
      case "thirdly":
        splits = punctuated
        break
      default:
        splits = (punctuated || joined) && isConnectorUse(connector, rest, ordinals)
    }
    // "; then, afterwards, deploy": the connectors before the last one belong to its clause.
    if (!splits || !hasContent(opening)) continue
    pieces.push(sentence.slice(start, match.index))
    start = at
  }
  pieces.push(sentence.slice(start))
  return pieces
}
