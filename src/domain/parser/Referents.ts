/**
 * Referents: a scene-setting sentence that is dropped ("I am planning a trip to New York on October 30th, 2022.") may
 * name the place and the date the steps after it refer to deictically ("that day", "the destination", "there"). A step
 * read on its own must still say which: the deictic phrase is replaced by what it refers to ("know the weather for
 * that day" gives "know the weather in New York on October 30th, 2022"). Conservative: only a place or date named in
 * dropped context is used, only the phrases below are replaced, and nothing changes when the context names none.
 */

const month =
  "(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\\.?"
const day = "\\d{1,2}(?:st|nd|rd|th)?"
const year = "\\d{4}"
const datePattern = new RegExp(
  `\\b(?:on|for)\\s+(?:the\\s+)?(${month}\\s+${day}(?:,?\\s+${year})?|${day}\\s+(?:of\\s+)?${month}(?:,?\\s+${year})?|${year}-\\d{2}-\\d{2})\\b`,
  "u"
)
const capitalized = "\\p{Lu}[\\p{L}'’.-]*"
const placePattern = new RegExp(
  `\\b(?:to|in|at|visit|visiting)\\s+((?:the\\s+)?${capitalized}(?:\\s+${capitalized})*)`,
  "u"
)
const notPlace = new RegExp(`^(?:${month}|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|I)\\b`, "u")

export interface Referents {
  readonly place?: string
  readonly date?: string
}

/** The first place and date a dropped context sentence names. */
export const referentsOf = (context: ReadonlyArray<string>): Referents => {
  let place: string | undefined
  let date: string | undefined
  for (const text of context) {
    if (date === undefined) date = datePattern.exec(text)?.[1]
    if (place === undefined) {
      const found = placePattern.exec(text)?.[1]?.replace(/^the\s+/u, "")
      if (found !== undefined && !notPlace.test(found)) place = found
    }
  }
  return { ...(place === undefined ? {} : { place }), ...(date === undefined ? {} : { date }) }
}

const dateDeictic = /\b(?:(?:for|on)\s+)?(?:that|the same|this)\s+(?:day|date)\b/iu
const placeDeictic = /\b(?:(?:at|in|to)\s+)?(?:the destination|that city|that place)\b|\s+there$/iu
/** A place already named in the step ("in Boston"): the date deictic then gets no place added. */
const namesPlace = /\b(?:in|at|to|from|near)\s+\p{Lu}/u
/** Steps whose answer depends on a place as much as a date. */
const placeBound = /\b(?:weather|forecast|temperature)\b/iu

/** The description with its deictic place and date phrases replaced by the referents, when they are known. */
export const resolveReferents = (description: string, referents: Referents): string => {
  let text = description
  const { date, place } = referents
  if (date !== undefined && dateDeictic.test(text)) {
    const where = place !== undefined && placeBound.test(text) && !namesPlace.test(text) ? `in ${place} ` : ""
    text = text.replace(dateDeictic, `${where}on ${date}`)
  }
  if (place !== undefined && placeDeictic.test(text)) {
    text = text.replace(placeDeictic, (match) => (match.startsWith(" ") ? ` in ${place}` : `in ${place}`))
  }
  return text
}
