/** Blocks: a request as lines, list items, headings and fenced code. */
import { collapse, hasContent } from "./Text.js"

interface Line {
  readonly indent: number
  readonly content: string
}

const indentWidth = (line: string): number => {
  let width = 0
  for (const char of line) {
    if (char === "\t") width += 4 - (width % 4)
    else if (/\s/.test(char)) width += 1
    else break
  }
  return width
}

export const toLines = (text: string): ReadonlyArray<Line> =>
  text
    .split(/\r\n?|[\n\u2028\u2029\u0085]/)
    .map((line) => ({ indent: indentWidth(line), content: collapse(line.replace(/[\p{Cc}\u200b\u2060]/gu, " ")) }))

const checkbox = "(?:\\[[ xX]\\](?:\\s+|$))?"
const bulletMarker = new RegExp(`^[-*+•‣◦▪▫●○■□·–—](?:\\s+|$)${checkbox}`, "u")
const numberedMarker = new RegExp(
  "^(?:\\d{1,3}(?:\\.\\d{1,3})*[.)]|\\(\\d{1,3}\\)|\\(?[a-z]\\)|\\d{1,3}(?:\\s+[-–—]|:)" +
    "|(?:step|task|phase|stage|part)\\s+(?:\\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten)\\s*[:.)\\-–—])" +
    `(?:\\s+|$)${checkbox}`,
  "iu"
)
const markdownHeading = /^#{1,6}(?:\s+|$)/u
const fenceOpening = /^(`{3,}|~{3,})/

type BlockKind = "item" | "line" | "heading"

export interface Block {
  readonly kind: BlockKind
  readonly indent: number
  /** The line that started the block, list marker included. */
  readonly first: string
  readonly parts: Array<string>
}

export const blockText = (block: Block): string => collapse(block.parts.join(" "))

export const toBlocks = (lines: ReadonlyArray<Line>): ReadonlyArray<Block> => {
  const blocks: Array<Block> = []
  let fence: { readonly marker: string; readonly code: Array<string>; readonly owner: Block | undefined } | undefined
  const closeFence = (indent: number) => {
    if (fence === undefined) return
    // Lines of code become the statements of one span: `npm ci; npm test`.
    const lines = fence.code
    const separator = (previous: string | undefined) =>
      previous === undefined ? "" : /[;{}(,[]$/.test(previous) ? " " : "; "
    const statements = lines.map((line, index) => separator(lines[index - 1]) + line).join("")
    const code = collapse(statements.replaceAll("`", "'"))
    if (hasContent(code)) {
      if (fence.owner !== undefined) fence.owner.parts.push(`\`${code}\``)
      else blocks.push({ kind: "line", indent, first: code, parts: [`\`${code}\``] })
    }
    fence = undefined
  }
  for (const line of lines) {
    const { content, indent } = line
    if (fence !== undefined) {
      if (content.startsWith(fence.marker)) closeFence(indent)
      else if (content !== "") fence.code.push(content)
      continue
    }
    if (content === "") continue
    const current = blocks[blocks.length - 1]
    const opening = fenceOpening.exec(content)
    if (opening !== null) {
      fence = { marker: opening[1] ?? "```", code: [], owner: current?.kind === "heading" ? undefined : current }
      continue
    }
    const heading = markdownHeading.exec(content)
    const marker = heading === null ? (bulletMarker.exec(content) ?? numberedMarker.exec(content)) : null
    if (heading !== null)
      blocks.push({ kind: "heading", indent, first: content, parts: [content.slice(heading[0].length)] })
    else if (marker !== null)
      blocks.push({ kind: "item", indent, first: content, parts: [content.slice(marker[0].length)] })
    else if (
      current !== undefined &&
      current.kind === "item" &&
      indent > current.indent &&
      !(current.parts[current.parts.length - 1] ?? "").endsWith(":")
    ) {
      current.parts.push(content)
    } else blocks.push({ kind: "line", indent, first: content, parts: [content] })
  }
  closeFence(0)
  return blocks
}
