/** Protected text: the spans no split may happen inside. */
import { linkSpans } from "./Attachments.js"

/**
 * Marks the characters no split may happen inside: URLs, backtick spans, double-quoted strings and parentheses
 * (the last two only when balanced and short, so a stray quote or bracket cannot swallow the rest of a request).
 */
export const protectedMask = (text: string, parentheses = true): Uint8Array => {
  const mask = new Uint8Array(text.length)
  for (const link of linkSpans(text)) mask.fill(1, link.start, link.end)
  for (const match of text.matchAll(/`[^`]*`|"[^"]{0,300}"|“[^”]{0,300}”/g)) {
    mask.fill(1, match.index, match.index + match[0].length)
  }
  const opens: Array<number> = []
  for (let index = 0; parentheses && index < text.length; index++) {
    if (mask[index] === 1) continue
    const char = text.charAt(index)
    if (char === "(") opens.push(index)
    else if (char === ")") {
      const open = opens.pop()
      if (open !== undefined && index - open <= 500) mask.fill(1, open, index + 1)
    }
  }
  return mask
}
