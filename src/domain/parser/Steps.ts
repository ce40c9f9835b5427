/**
 * Steps: the request cut into the steps it asks for, each with its description and how it relates to the steps
 * before it (in order after them, listed beside them, independent of them, or needed before them). The dependencies
 * themselves are worked out from these relations in ./Dependencies.ts.
 */
import { isAction, isContext, splitActions, splitCondition, withoutFiller } from "./Actions.js"
import { type Block, blockText, restoreCode, toBlocks, toLines } from "./Blocks.js"
import { hasFirstStep, isOnlyConnectors, withoutLeadingConnectors } from "./Connectors.js"
import { protectedMask } from "./ProtectedText.js"
import { referentsOf, resolveReferents } from "./Referents.js"
import { clauses, paragraphIntro, sentences, splitEnumeration } from "./Sentences.js"
import { collapse, hasContent, isAbbreviation, trimEndWhere, wordBefore } from "./Text.js"

/**
 * How a step relates to the steps before it:
 * - `ordered`: after them, as an ordering word says ("then", "next", "after that", "finally", "lastly");
 * - `sequence`: after them, because nothing says otherwise (a new sentence or line): steps run in the order written;
 * - `list`: an item of an action list: beside the other items when the request marks where order matters ("enroll in
 *   the course, order a pizza, and then drive to the campus": the first two are listed without an ordering word,
 *   the drive comes after both); in the order written when nothing in the request says (the safe default);
 * - `parallel`: "meanwhile", "at the same time", "in parallel": beside the step just before it;
 * - `independent`: "also", "additionally", "in addition", "separately": needs nothing before it;
 * - `prerequisite`: "..., but first X", "Before that, X": the step before it waits for it.
 */
export type Relation = "sequence" | "ordered" | "list" | "parallel" | "independent" | "prerequisite"

/** A time clause that names another step: "After booking the flight, send ...", "... before you deploy". */
export interface Temporal {
  readonly kind: "after" | "before"
  /** What the clause names ("booking the flight"); empty for "once done", which means the step just before. */
  readonly target: string
  /** The description without the clause, used when the clause is resolved to a step. */
  readonly without: string
}

export interface Step {
  readonly description: string
  readonly relation: Relation
  readonly temporal?: Temporal
}

// --- Descriptions -------------------------------------------------------------------------------------------------

/** Drops one final sentence period, but never an ellipsis or the period of an abbreviation. */
const dropSentencePeriod = (text: string): string => {
  if (!text.endsWith(".") || text.endsWith("..")) return text
  return isAbbreviation(wordBefore(text, text.length - 1)) ? text : text.slice(0, -1).trimEnd()
}

/** The index of the first comma outside quotes, code, URLs and brackets, or -1. */
const firstOpenComma = (text: string): number => {
  const mask = protectedMask(text)
  for (let index = 0; index < text.length; index++) if (text.charAt(index) === "," && mask[index] !== 1) return index
  return -1
}

/**
 * A piece as a command: filler removed at its start ("I want to", "Please", "Also,"), and after a leading condition
 * or adverbial ("If the weather is good, I want to book" gives "If the weather is good, book").
 */
const commandForm = (text: string): string => {
  // Only what leaves an action is filler: "Just one item" and "I want a pizza" stay as written.
  const stripped = withoutFiller(text)
  const command = isAction(stripped) ? stripped : text
  const comma = firstOpenComma(command)
  if (comma <= 0) return command
  const head = command.slice(0, comma)
  const tail = command.slice(comma + 1).trimStart()
  if (isAction(head)) return command
  const rest = withoutFiller(tail)
  return rest === tail || !isAction(rest) ? command : `${head}, ${rest}`
}

/** A piece of the request as a task description, or `undefined` when it says nothing. */
const describe = (piece: string, ordinals: boolean): string | undefined => {
  const collapsed = collapse(piece)
  const stripped = withoutLeadingConnectors(collapsed, ordinals)
  const commanded = commandForm(stripped)
  let text = hasContent(commanded) ? commanded : hasContent(stripped) ? stripped : collapsed
  for (;;) {
    const trimmed = trimEndWhere(text, /[\s,;]/u).replace(/\s(?:and then|and|then)$/iu, "")
    if (trimmed === text || !hasContent(trimmed)) break
    text = trimmed
  }
  const description = withoutTrailingCourtesy(dropSentencePeriod(text).trim())
  return hasContent(description) ? description : undefined
}

/** Courtesy at the end of a request: ", please assist me", "for me", "thank you". */
const trailingCourtesy =
  /(?:,?\s+(?:please(?:\s+(?:assist|help)\s+me)?|for me|thanks?(?: you)?(?: very much)?|if possible|if you can|asap))+[.!]*$/iu

const withoutTrailingCourtesy = (text: string): string => {
  const trimmed = text.replace(trailingCourtesy, "")
  return trimmed !== text && isAction(trimmed) ? trimmed : text
}

// --- Time clauses -------------------------------------------------------------------------------------------------

const leadingTime = /^(after|once|as soon as|before)\s+/iu
const trailingTime =
  /\s+(after|once|before)\s+((?:\p{L}+ing|the|you|i|we|it|they|my|your|our|this|that|these|those|having)\b.*)$/iu
/** Targets that name no step: "once done", "after that's finished" mean the step just before. */
const noTarget =
  /^(?:(?:it|that|this|everything|all)(?: is|'s| has been| have been)?\s*)?(?:done|finished|complete|completed|over|ready)$/iu

const temporalOf = (description: string): Temporal | undefined => {
  const leading = leadingTime.exec(description)
  if (leading !== null) {
    const comma = firstOpenComma(description)
    if (comma > 0) {
      const target = description.slice(leading[0].length, comma).trim()
      const rest = commandForm(description.slice(comma + 1).trim())
      if (hasContent(rest)) {
        return {
          kind: (leading[1] ?? "").toLowerCase() === "before" ? "before" : "after",
          target: noTarget.test(target) ? "" : target,
          without: rest
        }
      }
    }
  }
  const mask = protectedMask(description)
  const trailing = trailingTime.exec(description)
  if (trailing !== null && mask[trailing.index] !== 1) {
    const without = description.slice(0, trailing.index).trim()
    if (isAction(without)) {
      const target = (trailing[2] ?? "").trim()
      return {
        kind: (trailing[1] ?? "").toLowerCase() === "before" ? "before" : "after",
        target: noTarget.test(target) ? "" : target,
        without
      }
    }
  }
  return undefined
}

// --- Relations ----------------------------------------------------------------------------------------------------

const parallelOpening = /^(?:and\s+)?(?:meanwhile|in the meantime|at the same time|in parallel|simultaneously)\b/iu
const independentOpening =
  /^(?:and\s+)?(?:also|additionally|in addition|besides|separately|independently|on top of that|as well)\b/iu
const prerequisiteOpening = /^(?:but\s+)?(?:before that|beforehand|first of all, before that|but first)\b/iu
const orderingOpening = /^(?:and\s+)?(?:then|next|after that|afterwards?|finally|lastly|subsequently)\b/iu

/** How a sentence's first clause relates to what came before, from the words it opens with. */
const openingRelation = (clause: string): Relation => {
  const text = clause.trimStart()
  if (orderingOpening.test(text)) return "ordered"
  if (parallelOpening.test(text)) return "parallel"
  if (prerequisiteOpening.test(text)) return "prerequisite"
  // "I also want to", "Please also": the speaker adds something that needs nothing before it.
  if (independentOpening.test(text) || /^(?:(?:i|we) also|please also)\b/iu.test(text)) return "independent"
  return "sequence"
}

interface Piece {
  readonly text: string
  readonly relation: Relation
  /** Whether the piece only sets the scene and is dropped when other steps remain. */
  readonly context: boolean
}

/** "Can you find a recipe and order the ingredients?" asks for actions, not for an answer: it ends like a command. */
const politeQuestion = /^\s*(?:(?:please|so|and|also)[\s,]+)?(?:can|could|would|will) you\b/iu
const politeRequestAsCommand = (sentence: string): string => {
  const trimmed = sentence.trimEnd()
  return politeQuestion.test(sentence) && trimmed.endsWith("?") && isAction(trimmed.slice(0, -1))
    ? `${trimmed.slice(0, -1)}.`
    : sentence
}

const paragraphPieces = (paragraph: string): { readonly pieces: ReadonlyArray<Piece>; readonly ordinals: boolean } => {
  const intro = paragraphIntro.exec(paragraph)
  const body =
    intro !== null && hasContent(paragraph.slice(intro[0].length)) ? paragraph.slice(intro[0].length) : paragraph
  const enumerated = splitEnumeration(body)
  if (enumerated !== undefined) {
    return { pieces: enumerated.map((text) => ({ text, relation: "sequence", context: false })), ordinals: false }
  }
  const ordinals = hasFirstStep(body)
  const pieces: Array<Piece> = []
  for (const sentence of sentences(body).map(politeRequestAsCommand)) {
    for (const [position, clause] of clauses(sentence, ordinals).entries()) {
      // Clauses after the first were cut at an ordering word: they come after what is before them.
      const relation = position === 0 ? openingRelation(clause) : "ordered"
      const unconnected = withoutLeadingConnectors(clause, ordinals)
      const items = splitActions(hasContent(unconnected) ? unconnected : clause)
      for (const [index, item] of items.entries()) {
        pieces.push({
          text: item.text,
          relation: index === 0 ? relation : item.joint,
          context: items.length === 1 && isContext(withoutLeadingConnectors(item.text, ordinals))
        })
      }
    }
  }
  return { pieces, ordinals }
}

const blockPieces = (blocks: ReadonlyArray<Block>): ReadonlyArray<Piece> =>
  blocks.map((block) => {
    const text = blockText(block)
    const relation = openingRelation(text)
    // Lists already say what a step is: a line is never split, and only a word that makes it independent or parallel
    // changes the default order.
    return { text, relation: relation === "prerequisite" ? "sequence" : relation, context: false }
  })

/** The steps of a request, in the order written (see the module comment of ../Parser.ts for the rules). */
export const stepsOf = (text: string): ReadonlyArray<Step> => {
  const fences: Array<string> = []
  const blocks = toBlocks(toLines(text), fences).filter((block) => hasContent(blockText(block)))
  // An introduction ("Here is the plan:", "# Backend") is not a task, unless the request is nothing but those.
  const isIntro = (block: Block) => block.kind === "heading" || blockText(block).endsWith(":")
  const tasks = blocks.filter((block) => !isIntro(block))
  const kept = tasks.length > 0 ? tasks : blocks
  const only = kept.length === 1 ? kept[0] : undefined
  let pieces: ReadonlyArray<Piece>
  let ordinals = false
  if (only?.kind === "line") {
    const paragraph = paragraphPieces(blockText(only))
    pieces = paragraph.pieces
    ordinals = paragraph.ordinals
  } else if (only?.kind === "item") {
    // "1. Add login. 2. Write tests." on one line is an inline enumeration, not one item.
    const enumerated = splitEnumeration(collapse([only.first, ...only.parts.slice(1)].join(" ")))
    pieces = (enumerated ?? [blockText(only)]).map((piece) => ({ text: piece, relation: "sequence", context: false }))
  } else pieces = blockPieces(kept)
  // A piece that is only a connector ("Add login. Then.") is dropped, unless it is all the request says; so is a piece
  // that only sets the scene ("I am planning a trip.", "Thank you."), unless nothing else is left.
  const meaningful = pieces.filter((piece) => !isOnlyConnectors(piece.text))
  const usable = meaningful.length > 0 ? meaningful : pieces
  const actions = usable.filter((piece) => !piece.context)
  const chosen = actions.length > 0 ? actions : usable
  // Dropped scene-setting may name the place and date later steps call "there" and "that day".
  const referents = referentsOf(chosen === usable ? [] : usable.filter((piece) => piece.context).map((p) => p.text))
  const steps: Array<Step> = []
  for (const [index, piece] of chosen.entries()) {
    const described = describe(piece.text, ordinals)
    if (described === undefined) continue
    const description = resolveReferents(restoreCode(described, fences), referents)
    // A dropped first piece leaves the next one first: its relation then means nothing.
    const relation = index === 0 && piece.relation === "prerequisite" ? "sequence" : piece.relation
    const condition = splitCondition(description)
    const temporal = condition === undefined ? temporalOf(description) : undefined
    steps.push(temporal === undefined ? { description, relation } : { description, relation, temporal })
  }
  return steps
}
