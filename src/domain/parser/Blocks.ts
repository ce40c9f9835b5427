/** Blocks: a request as lines, list items, headings and fenced code. */
import { collapse, hasContent } from "./Text.js"

interface Line {
  readonly indent: number
  readonly content: string
  /** The line as written (control characters other than tabs blanked): what a fenced code block keeps. */
  readonly raw: string
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
  text.split(/\r\n?|[\n\u2028\u2029\u0085]/).map((line) => ({
    indent: indentWidth(line),
    content: collapse(line.replace(/[\p{Cc}\u200b\u2060]/gu, " ")),
    raw: line.replace(/[^\P{Cc}\t]/gu, " ").trimEnd()
  }))

/**
 * A fenced code block stands in the text of its block as one opaque word, `codeMark(n)`, so no rule of the parser
 * (splitting, collapsing whitespace, dropping filler) ever touches it; `restoreCode` puts the block back, verbatim,
 * on lines of its own (the shell executor runs it line by line, exactly as written).
 */
export const codeMark = (index: number): string => `\uE000${index}\uE001`

/** `description` with every code mark replaced by its fenced block from `fences`, each starting on a line of its own. */
export const restoreCode = (description: string, fences: ReadonlyArray<string>): string =>
  description.replace(/\s*\uE000(\d+)\uE001/gu, (mark, index: string, offset: number) => {
    const block = fences[Number(index)] ?? ""
    return offset === 0 && !/^\s/u.test(mark) ? block : `\n${block}`
  })

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

export const toBlocks = (lines: ReadonlyArray<Line>, fences: Array<string> = []): ReadonlyArray<Block> => {
  const blocks: Array<Block> = []
  let fence:
    | {
        readonly marker: string
        readonly info: string
        readonly indent: number
        readonly code: Array<string>
        readonly owner: Block | undefined
      }
    | undefined
  const closeFence = (indent: number) => {
    if (fence === undefined) return
    // The lines as written, minus the fence's own indentation and blank lines around them.
    const open = fence
    const lines = open.code.map((line) => line.replace(new RegExp(`^ {0,${open.indent}}`), ""))
    while (lines.length > 0 && (lines[0] ?? "").trim() === "") lines.shift()
    while (lines.length > 0 && (lines[lines.length - 1] ?? "").trim() === "") lines.pop()
    const code = lines.join("\n")
    if (hasContent(code)) {
      const longestRun = Math.max(0, ...(code.match(/`+/g) ?? []).map((run) => run.length))
      const marker = "`".repeat(Math.max(3, longestRun + 1))
      const mark = codeMark(fences.length)
      fences.push(`${marker}${open.info}\n${code}\n${marker}`)
      if (open.owner !== undefined) open.owner.parts.push(mark)
      else blocks.push({ kind: "line", indent, first: mark, parts: [mark] })
    }
    fence = undefined
  }
  for (const line of lines) {
    const { content, indent } = line
    if (fence !== undefined) {
      if (content.startsWith(fence.marker)) closeFence(indent)
      else fence.code.push(line.raw)
      continue
    }
    if (content === "") continue
    const current = blocks[blocks.length - 1]
    const opening = fenceOpening.exec(content)
    if (opening !== null) {
      fence = {
        marker: opening[1] ?? "```",
        info: /^[\w+#.-]*$/u.test(content.slice((opening[1] ?? "").length).trim())
          ? content.slice((opening[1] ?? "").length).trim()
          : "",
        indent,
        code: [],
        owner: current?.kind === "heading" ? undefined : current
      }
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
