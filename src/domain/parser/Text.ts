/** Characters: what counts as content, whitespace, and the abbreviations after which a period does not end a sentence. */

/** Whether text says anything: a letter, a digit or an emoji. Punctuation and markers alone never make a task. */
export const hasContent = (text: string): boolean => /[\p{L}\p{N}\p{Extended_Pictographic}]/u.test(text)

export const collapse = (text: string): string => text.replace(/\s+/g, " ").trim()

/** `text` without the characters matching `char` at its end; a loop, as `/[...]+$/` is quadratic on long runs. */
export const trimEndWhere = (text: string, char: RegExp): string => {
  let end = text.length
  while (end > 0 && char.test(text.charAt(end - 1))) end -= 1
  return text.slice(0, end)
}

/** Words after which a period does not end a sentence. */
export const neverTerminal: ReadonlySet<string> = new Set([
  "e.g",
  "i.e",
  "eg",
  "ie",
  "vs",
  "cf",
  "viz",
  "mr",
  "mrs",
  "ms",
  "dr",
  "prof",
  "sr",
  "jr",
  "st",
  "approx",
  "incl",
  "excl",
  "esp",
  "resp",
  "ca",
  "dept",
  "gen",
  "lt",
  "col",
  "sgt"
])
/** Abbreviations that end a sentence only when a capital letter or a connector follows ("... etc. Then test"). */
export const maybeTerminal: ReadonlySet<string> = new Set(["etc", "inc", "ltd", "co", "corp", "al", "misc"])
/** Abbreviations that do not end a sentence before a number ("No. 5", "Fig. 3", "v. 2"). */
export const beforeNumber: ReadonlySet<string> = new Set([
  "no",
  "nos",
  "nr",
  "vol",
  "ch",
  "sec",
  "pp",
  "p",
  "pg",
  "art",
  "fig",
  "figs",
  "eq",
  "ver",
  "v",
  "rev",
  "op",
  "jan",
  "feb",
  "mar",
  "apr",
  "jun",
  "jul",
  "aug",
  "sep",
  "sept",
  "oct",
  "nov",
  "dec"
])
export const isDottedAbbreviation = (word: string): boolean => /^(?:\p{L}\.)+\p{L}$/u.test(word)
export const isAbbreviation = (word: string): boolean =>
  neverTerminal.has(word) || maybeTerminal.has(word) || isDottedAbbreviation(word)

/** The word before `index` (exclusive), lower case, without leading brackets or quotes. */
export const wordBefore = (text: string, index: number): string => {
  let start = index
  while (start > 0 && !/\s/.test(text.charAt(start - 1))) start -= 1
  return text
    .slice(start, index)
    .replace(/^[^\p{L}\p{N}]+/u, "")
    .toLowerCase()
}
