/** Protected text: the spans no split may happen inside. */
import { linkSpans } from "./Attachments.js"

/**
 * Quoted text: backtick spans, double quotes, and single quotes that open at the start of a word and close at its end
 * ('Paid electricity bill'), so the apostrophes of "friend's" and "I'd" never open one. Quotes are short (300
 * characters at most), so a stray one cannot swallow the rest of a request.
 */
const quoted =
  /`[^`]*`|"[^"]{0,300}"|“[^”]{0,300}”|‘[^’]{0,300}’|(?<![\p{L}\p{N}'’])'(?=[^\s'])[^'\n]{0,300}?(?<=\S)'(?![\p{L}\p{N}])/gu

/**
 * Marks the characters no split may happen inside: URLs, quoted text (see `quoted`) and parentheses (only when
 * balanced and short, so a stray bracket cannot swallow the rest of a request).
 */
export const protectedMask = (text: string, parentheses = true): Uint8Array => {
  const mask = new Uint8Array(text.length)
  for (const link of linkSpans(text)) mask.fill(1, link.start, link.end)
  for (const match of text.matchAll(quoted)) {
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
