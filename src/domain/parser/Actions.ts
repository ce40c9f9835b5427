/**
 * Actions: which clauses ask for something to be done, how a clause listing several actions splits into them, and the
 * filler removed so a description reads as a command.
 *
 * A clause is an action when, once its filler is removed ("I want to", "Please", "Also,", "Kindly help me"), it starts
 * with a verb from `actionVerbs` and says more than the verb ("book a car", not "search"). A list splits at commas,
 * semicolons, "and", "as well as" and "plus" only into actions: a part that is not one (an object, a condition, an
 * adverbial) stays with the action before it, or, at the start, with the action after it. So "buy apples, pears and
 * milk" is one task and "pay the bill, book a car and buy stocks" three.
 */
import { extractAttachments } from "./Attachments.js"
import { protectedMask } from "./ProtectedText.js"
import { hasContent } from "./Text.js"

/** Verbs that start a request, in their base (imperative) form. Nouns that are also verbs only count before an object. */
export const actionVerbs: ReadonlySet<string> = new Set(
  (
    "accept access activate add adjust alert allocate analyse analyze announce answer apply approve archive arrange ask " +
    "assign attach attend audit authorize automate back backup ban bill block book borrow browse buy calculate call " +
    "cancel capture change charge chat check choose clean clear clone close collect combine comment commit compare " +
    "compile complete compose compress compute configure confirm connect consult contact convert copy correct count " +
    "cover crawl create crop cut debug decide decline decrypt delete deliver deploy describe design detect determine " +
    "develop diagnose dial disable discover display document donate download draft draw drive drop edit email enable " +
    "encrypt enroll enrol ensure enter estimate evaluate examine exchange execute expand explain explore export extend " +
    "extract fetch file fill filter find fix flag follow forecast format forward generate get give go grab grant help " +
    "hire hook identify implement import improve inform initiate insert inspect install instruct integrate introduce " +
    "investigate invite invoke issue join keep launch learn lend let link list listen load locate lock log look make " +
    "manage map mark measure meet merge message migrate mint modify monitor move mute name navigate note notify obtain " +
    "open optimise optimize order organise organize pack paint park parse pass paste patch pay pick pin place plan " +
    "play plot post predict prepare present print process produce program provide publish pull purchase push put " +
    "query read rebuild receive recommend reconcile record recover redeem refactor refresh refund register reject " +
    "release reload remind remove rename renew rent reorganise reorganize repair replace reply report request rerun " +
    "reschedule research reserve reset resize resolve respond restart restore restructure retrieve return review " +
    "revise rewrite run save scan schedule scrape search select sell send set setup share ship show shut sign simplify " +
    "sort speak split start stop store stream study submit subscribe summarise summarize supply support switch sync " +
    "take talk tell test text track train transcribe transfer translate transform tweet type undo uninstall unlock " +
    "unsubscribe update upgrade upload use validate verify view visit vote wake warn wash watch withdraw write " +
    "know see hear remember try leave arrive come travel fly hold bring cook eat drink feed walk ride turn finish " +
    "begin figure stay wait bake boil fry grill wrap mow vacuum iron fold hang sweep tidy charge refill"
  ).split(" ")
)

/**
 * Filler at the start of a clause: politeness, the speaker's wish ("I want to", "I'd like to", "I need you to"), a
 * request for help ("Kindly help me to"), and words that only add ("also", "and", "then" is a connector elsewhere).
 */
const filler = new RegExp(
  [
    "(?:please|pls|plz|kindly|also|and|so|now|just|additionally|plus|besides|furthermore|moreover)\\b[\\s,:]*",
    "(?:in addition|on top of that|at the same time|in parallel|meanwhile|simultaneously|separately|as well)\\b[\\s,:]*",
    "(?:can|could|would|will) you (?:please |kindly )?(?:help me (?:to )?)?",
    "(?:please |kindly )?help me (?:to )?",
    "(?:i|we)(?: also| really| just| then| now| first| still| additionally)?(?: want| wanna| need| wish| would like| would also like|['’]d like|['’]d also like| would love|['’]d love| am going|['’]m going| plan| intend| hope| have) (?:you )?to ",
    "(?:i|we)(?: want| need| would like|['’]d like) you to ",
    "i'?d appreciate (?:it )?if you (?:could |would )?",
    "(?:let'?s|let us|go ahead and|make sure to|try to) "
  ]
    .map((part) => `(?:${part})`)
    .join("|"),
  "iu"
)
const fillerAtStart = new RegExp(`^(?:${filler.source})`, "iu")

/** `text` without the filler at its start (repeatedly: "Also, please, I want to book" gives "book"). */
export const withoutFiller = (text: string): string => {
  let rest = text.trimStart()
  for (let round = 0; round < 8; round++) {
    const match = fillerAtStart.exec(rest)
    if (match === null || match[0].length === 0) break
    const next = rest.slice(match[0].length).trimStart()
    if (!hasContent(next)) break
    rest = next
  }
  return rest
}

const firstWord = (text: string): string => (/^[\p{L}'’-]+/u.exec(text)?.[0] ?? "").toLowerCase()

/** Whether a clause asks for an action: after its filler, a verb from `actionVerbs` and at least one more word. */
export const isAction = (clause: string): boolean => {
  const command = withoutFiller(clause)
  const verb = firstWord(command)
  if (verb === "don't" || verb === "do") return /^do(?:n't| not)\s+\S+\s+\S/iu.test(command)
  if (!actionVerbs.has(verb)) return false
  const after = command.slice(verb.length)
  // "set's", "book-keeping": the word is not the verb.
  if (/^['’-]/u.test(after)) return false
  return /^\s+[^\s]/u.test(after) && !/^\s+(?:of|is|are|was|were|has|have)\b/iu.test(after)
}

/** A condition opening a clause: "If X, ...", "When X, ...", "In case X, ...". */
const conditionOpening =
  /^(?:if|when|whenever|in case|unless|provided(?: that)?|as long as|assuming(?: that)?|should|depending on)\b/iu

/** A statement that sets the scene rather than asking for something: it is not a task of its own. */
const contextStatement = new RegExp(
  [
    "thank(?:s| you)\\b",
    "(?:i|we)(?: am|['’]m| are|['’]re) (?:a|an|the|planning|currently|about to|new|traveling|travelling|going on|on)\\b",
    "(?:i|we)(?: have|['’]ve)? (?:just|already|recently) \\p{L}+ed\\b",
    "here(?: is| are|['’]s)\\b",
    "this is\\b",
    "(?:i|we)(?: need| want| would like|['’]d like) (?:your|some) (?:help|assistance)\\b",
    "(?:i|we)(?: have|['’]ve got) (?:a|some) (?:few|couple|series|number|list)\\b"
  ]
    .map((part) => `(?:${part})`)
    .join("|")
    .replace(/^/, "^(?:")
    .concat(")"),
  "iu"
)

/**
 * Whether a clause only sets the scene ("I am planning a trip", "Here is my voice command", "Thank you"). One that
 * names a link or a file ("Here is the spec: ./spec.md") is kept: its attachment belongs to the plan.
 */
export const isContext = (clause: string): boolean =>
  contextStatement.test(clause.trim()) && !isAction(clause) && extractAttachments(clause).length === 0

/** The condition at the start of `clause` ("If I get the job") and the rest after its comma, if it has one. */
export const splitCondition = (clause: string): { readonly condition: string; readonly rest: string } | undefined => {
  if (!conditionOpening.test(clause)) return undefined
  const mask = protectedMask(clause)
  for (let index = 0; index < clause.length; index++) {
    if (clause.charAt(index) !== "," || mask[index] === 1) continue
    const rest = clause.slice(index + 1).trim()
    if (!hasContent(rest)) return undefined
    return { condition: clause.slice(0, index).trim(), rest }
  }
  return undefined
}

/** How an item of an action list relates to the item before it. */
export type ListJoint = "list" | "prerequisite" | "parallel"

export interface ListItem {
  readonly text: string
  /** How this item joins the one before it; the first item's is "list" and means nothing. */
  readonly joint: ListJoint
}

/** "and at the same time order a shake": the item runs beside the one before it. */
const parallelWords = /^(?:meanwhile|in the meantime|at the same time|in parallel|simultaneously)\b/iu

/** Separators between the parts of a list, outside quotes, code, URLs and brackets. */
const separator =
  /,?\s+but\s+(?:first(?:\s+of\s+all)?|before\s+that|beforehand)\b,?\s*|\s*;\s*(?:and\s+)?|\s*,\s*(?:and\s+(?:also\s+)?|as\s+well\s+as\s+|plus\s+)?|\s+(?:and(?:\s+also)?|as\s+well\s+as|plus)\s+/giu

/**
 * Splits a clause into the actions it lists. Parts that are not actions join their neighbours (see the module
 * comment); a condition's consequence stays with it ("Run tests and if they pass, deploy the app" is one task); a
 * context statement leading the clause is dropped unless it is all there is.
 */
export const splitActions = (clause: string): ReadonlyArray<ListItem> => {
  const mask = protectedMask(clause)
  const parts: Array<{ readonly lead: string; readonly text: string; readonly joint: ListJoint }> = []
  let start = 0
  let lead = ""
  let joint: ListJoint = "list"
  for (const match of clause.matchAll(separator)) {
    if (mask[match.index] === 1 || match.index === 0) continue
    parts.push({ lead, text: clause.slice(start, match.index), joint })
    lead = match[0]
    start = match.index + match[0].length
    joint = /\bbut\b/iu.test(match[0])
      ? "prerequisite"
      : parallelWords.test(clause.slice(start, start + 40))
        ? "parallel"
        : "list"
  }
  parts.push({ lead, text: clause.slice(start), joint })
  if (parts.length === 1) return [{ text: clause, joint: "list" }]

  const items: Array<{ text: string; joint: ListJoint }> = []
  /** Parts waiting for the action they belong to: a leading adverbial, or a condition ("if there is enough money"). */
  let prefix = ""
  let prefixJoint: ListJoint = "list"
  let glue = false
  for (const [index, part] of parts.entries()) {
    const conditional = conditionOpening.test(part.text.trim())
    const action = !glue && !conditional && isAction(part.text)
    // "..., and if they pass, then deploy": a "then" answering the condition keeps it inside the action before it.
    const answeredByThen = /^\s*then\b/iu.test(parts[index + 1]?.text ?? "")
    if (action) {
      const joint = prefix === "" ? part.joint : prefixJoint
      items.push({
        text: `${prefix}${prefix === "" ? "" : part.lead}${part.text}`,
        joint: items.length === 0 ? "list" : joint
      })
      prefix = ""
    } else if (items.length === 0 || prefix !== "" || (conditional && !answeredByThen)) {
      // A leading context statement ("I am a user who just applied for a passport, and I would like to ...") is
      // dropped; any other part before an action (a condition, "For my friend's birthday") belongs to that action.
      if (items.length === 0 && prefix === "" && isContext(part.text) && !conditional) continue
      if (prefix === "") prefixJoint = part.joint
      prefix = `${prefix}${prefix === "" ? "" : part.lead}${part.text}`
    } else {
      const last = items[items.length - 1]
      if (last !== undefined) last.text = `${last.text}${part.lead}${part.text}`
    }
    // What follows a condition kept inside an action is its consequence: "and if they pass, then deploy".
    glue = conditional && answeredByThen && items.length > 0
  }
  if (items.length === 0) return [{ text: clause, joint: "list" }]
  const last = items[items.length - 1]
  if (prefix !== "" && last !== undefined) last.text = `${last.text}${prefixJoint === "list" ? ", " : " "}${prefix}`
  // A condition holds for every action listed after it: "If I get the job, book a hotel and show me the news".
  let condition: string | undefined
  return items.map((item) => {
    const own = splitCondition(item.text)
    if (own !== undefined) {
      condition = own.condition
      return item
    }
    return condition === undefined ? item : { text: `${condition}, ${item.text}`, joint: item.joint }
  })
}
