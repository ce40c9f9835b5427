/** Connectors: the words that order steps ("then", "after that", "finally", "first", ...) and when they are connectors. */
import { hasContent, trimEndWhere } from "./Text.js"

export const connectorWords =
  "then|next|after\\s+that|afterwards?|finally|lastly|subsequently|firstly|secondly|thirdly|first|second|third"

/** Words after "next" that make it an adjective ("next to", "next week"), not a connector. */
const notNextStep: ReadonlySet<string> = new Set([
  "to",
  "week",
  "weeks",
  "month",
  "year",
  "day",
  "days",
  "time",
  "sprint",
  "release",
  "version",
  "quarter",
  "morning",
  "afternoon",
  "evening",
  "weekend",
  "monday",
  "tuesday",
  "wednesday",
  "thursday",
  "friday",
  "saturday",
  "sunday",
  "step",
  "steps",
  "page",
  "line",
  "item",
  "one",
  "few",
  "level",
  "generation",
  "gen",
  "major",
  "minor"
])
/** Words after "first"/"second"/"third" that make it an adjective ("first time", "second opinion"). */
const notOrdinalStep: ReadonlySet<string> = new Set([
  "time",
  "times",
  "step",
  "steps",
  "thing",
  "things",
  "part",
  "version",
  "draft",
  "one",
  "of",
  "and",
  "class",
  "hand",
  "half",
  "impression",
  "impressions",
  "opinion",
  "page",
  "line",
  "item",
  "place",
  "round",
  "pass",
  "person",
  "party"
])
/** Words before a bare "then" that make it part of the clause ("only then", "was then", "will then"). */
export const notThenStep: ReadonlySet<string> = new Set([
  "since",
  "by",
  "until",
  "till",
  "back",
  "only",
  "even",
  "just",
  "right",
  "from",
  "than",
  "now",
  "what",
  "but",
  "and",
  "or",
  "is",
  "are",
  "was",
  "were",
  "be",
  "been",
  "will",
  "would",
  "can",
  "could",
  "should",
  "shall",
  "must",
  "may",
  "might",
  "we",
  "i",
  "you",
  "they"
])

const firstWordOf = (text: string): string => (/^[\s,]*([\p{L}-]+)/u.exec(text)?.[1] ?? "").toLowerCase()

const leadingConnector = new RegExp(`^(?:and\\s+)?(${connectorWords})(?=[\\s,:]|$)[\\s,:]*`, "iu")

/** Whether a connector word at the start of `rest` (what follows it) is used as a connector there. */
export const isConnectorUse = (connector: string, rest: string, ordinals: boolean): boolean => {
  const word = connector.toLowerCase().replace(/\s+/g, " ")
  const nextWord = firstWordOf(rest)
  const commaFollows = /^\s*,/.test(rest)
  switch (word) {
    case "next":
      return !notNextStep.has(nextWord)
    case "first":
      return commaFollows || !notOrdinalStep.has(nextWord)
    case "second":
    case "third":
      return commaFollows || (ordinals && !notOrdinalStep.has(nextWord))
    default:
      return true
  }
}

/** `text` without its leading connectors ("Then", "And then finally,"). */
export const withoutLeadingConnectors = (text: string, ordinals: boolean): string => {
  let rest = text.trimStart()
  for (let round = 0; round < 4; round++) {
    const match = leadingConnector.exec(rest)
    if (match === null || match[1] === undefined) break
    const after = rest.slice(match[1].length + match[0].indexOf(match[1]))
    if (!isConnectorUse(match[1], after, ordinals)) break
    rest = rest.slice(match[0].length)
  }
  return rest
}

/** Whether a piece of text is nothing but connectors ("Then.", "and then,"). */
export const isOnlyConnectors = (text: string): boolean =>
  hasContent(text) && !hasContent(withoutLeadingConnectors(trimEndWhere(text, /[\p{P}\s]/u), true))

/** Whether a paragraph counts its steps ("First, ... Second, ..."), so "second" and "third" are connectors in it. */
export const hasFirstStep = (text: string): boolean => /(?:^|[.!?;:,]\s*)first(?:ly)?[\s,]/iu.test(text)

/**
 * A clause that states a condition ("If the build fails, then roll back"; "Run tests and if they pass, then deploy"),
 * whose "then" answers it instead of starting a new step: a condition word at its start, or after and/or/but/so.
 */
const conditionWords =
  "if|when|whenever|once|unless|in case|as soon as|after|before|until|till|while|provided|assuming|should|in the event"
export const conditionAtStart = new RegExp(`^(?:${conditionWords})\\b`, "iu")
export const conditionInside = new RegExp(`\\b(?:and|or|but|so)\\s+(?:${conditionWords})\\b`, "giu")
