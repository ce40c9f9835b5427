/**
 * The memory index: past tasks and sessions (`domain/Memory.ts` records), searchable by text.
 *
 * Layers: `memory` (plain code: tokenise, stem lightly, BM25), and `MemoryIndexSql.layer` on the event store's
 * `SqlClient` (SQLite FTS5 ranked by bm25, PostgreSQL `tsvector` + GIN ranked by `ts_rank`). Each layer takes an
 * optional `Embedder`: when one is given, every record's text is embedded when it is stored, the vector kept beside
 * the text, and a search fuses the full-text ranking with the vectors' cosine ranking by reciprocal-rank fusion. A
 * record whose text could not be embedded is still stored and found by text.
 *
 * The index is a projection of the log (`MemoryProjection`): it is kept up to date by a durable consumer and can be
 * rebuilt from the log at any time, so nothing in it is the only copy of anything.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { type MemoryRecord, recordKey, recordText } from "../domain/Memory.js"
import type { NodeKind } from "../domain/Task.js"

// --- Port -----------------------------------------------------------------------------------------------------------

/** What to look for: every record, tasks only, sessions only, or tasks of one kind. */
export type RecallKind = "task" | "session" | NodeKind

export interface SearchQuery {
  readonly text: string
  /** At most this many hits; 10 when omitted. */
  readonly limit?: number
  readonly kind?: RecallKind
  /** Only tasks that completed and sessions that succeeded. */
  readonly succeededOnly?: boolean
}

export interface MemoryHit {
  readonly record: MemoryRecord
  /** The fused reciprocal-rank score: higher is closer. */
  readonly score: number
}

export class MemoryIndexError extends Schema.TaggedError<MemoryIndexError>()("MemoryIndexError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `The memory index failed to ${this.operation}: ${this.reason}`
  }
}

export interface MemoryIndexService {
  /** Adds records, replacing any with the same key (a task of a session, a session). */
  readonly put: (records: ReadonlyArray<MemoryRecord>) => Effect.Effect<void, MemoryIndexError>
  /** The most similar records, best first. */
  readonly search: (query: SearchQuery) => Effect.Effect<ReadonlyArray<MemoryHit>, MemoryIndexError>
  /** Forgets a session's records (a fork's copied prefix). */
  readonly removeSession: (sessionId: string) => Effect.Effect<void, MemoryIndexError>
  /** Every record, by key. */
  readonly all: Effect.Effect<ReadonlyArray<MemoryRecord>, MemoryIndexError>
  /** Forgets everything (before a rebuild). */
  readonly clear: Effect.Effect<void, MemoryIndexError>
}

export class MemoryIndex extends Context.Tag("event-sourced-planner/MemoryIndex")<MemoryIndex, MemoryIndexService>() {}

/** Turns texts into vectors (an OpenAI-compatible `/embeddings` endpoint: see `Embeddings.ts`). */
export interface Embedder {
  readonly model: string
  readonly embed: (
    texts: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<number>>, MemoryIndexError>
}

// --- Text -----------------------------------------------------------------------------------------------------------

const stopWords: ReadonlySet<string> = new Set(
  (
    "a an and are as at be by for from has have in into is it its of on or that the then this to was were will " +
    "with we you i me my our your them they their do does did so but if not no yes all any can could should would"
  ).split(" ")
)

/** Lower-cased words of letters and digits, without stop words and one-letter words. */
export const terms = (text: string): ReadonlyArray<string> =>
  (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((word) => word.length > 1 && !stopWords.has(word))

/**
 * A light stemmer for the in-memory layer (the SQL engines bring their own): plural and verb endings, so "tests",
 * "testing" and "tested" meet at "test", and "running" at "run".
 */
export const stem = (word: string): string => {
  if (word.length <= 3) return word
  let stemmed = word
  if (stemmed.endsWith("ies") && stemmed.length > 4) stemmed = `${stemmed.slice(0, -3)}y`
  else if (stemmed.endsWith("sses")) stemmed = stemmed.slice(0, -2)
  else if (stemmed.endsWith("s") && !stemmed.endsWith("ss") && !stemmed.endsWith("us")) stemmed = stemmed.slice(0, -1)
  for (const suffix of ["ing", "ed", "ly", "ment", "er"]) {
    if (stemmed.endsWith(suffix) && stemmed.length - suffix.length >= 3) {
      stemmed = stemmed.slice(0, -suffix.length)
      const last = stemmed.length - 1
      if (stemmed[last] === stemmed[last - 1] && !/[lsz]/.test(stemmed[last] ?? "")) stemmed = stemmed.slice(0, -1)
      break
    }
  }
  if (stemmed.endsWith("e") && stemmed.length > 4) stemmed = stemmed.slice(0, -1)
  return stemmed
}

// --- Documents ------------------------------------------------------------------------------------------------------

/** A record as the layers store it: its key, the columns searches filter on, and its text. */
export interface MemoryDoc {
  readonly key: string
  readonly sessionId: string
  readonly type: "task" | "session"
  /** The task's kind; empty for a session. */
  readonly kind: string
  /** A completed task or a succeeded session. */
  readonly ok: boolean
  readonly finishedAt: number
  readonly body: string
  readonly record: MemoryRecord
  readonly embedding: ReadonlyArray<number> | undefined
}

export const toDoc = (record: MemoryRecord, embedding?: ReadonlyArray<number>): MemoryDoc => ({
  key: recordKey(record),
  sessionId: record.sessionId,
  type: record._tag === "Task" ? "task" : "session",
  kind: record._tag === "Task" ? record.kind : "",
  ok: record._tag === "Task" ? record.status === "Completed" : record.outcome === "Succeeded",
  finishedAt: record.finishedAt,
  body: recordText(record),
  record,
  embedding
})

/** The filter columns of a query: type "" and kind "" match anything. */
export interface DocFilter {
  readonly type: "" | "task" | "session"
  readonly kind: string
  readonly okOnly: boolean
}

export const docFilter = (query: SearchQuery): DocFilter => {
  const kind = query.kind
  return {
    type: kind === undefined ? "" : kind === "session" ? "session" : "task",
    kind: kind === undefined || kind === "task" || kind === "session" ? "" : kind,
    okOnly: query.succeededOnly === true
  }
}

export const matches = (doc: MemoryDoc, filter: DocFilter): boolean =>
  (filter.type === "" || doc.type === filter.type) &&
  (filter.kind === "" || doc.kind === filter.kind) &&
  (!filter.okOnly || doc.ok)

/** What an engine offers the shared search: its own ranked full-text search, and the stored vectors. */
export interface MemoryBackend {
  readonly write: (docs: ReadonlyArray<MemoryDoc>) => Effect.Effect<void, MemoryIndexError>
  /** Keys best first, by the engine's own ranking over these query terms. */
  readonly textSearch: (
    terms: ReadonlyArray<string>,
    filter: DocFilter,
    limit: number
  ) => Effect.Effect<ReadonlyArray<string>, MemoryIndexError>
  readonly vectors: (
    filter: DocFilter
  ) => Effect.Effect<
    ReadonlyArray<{ readonly key: string; readonly embedding: ReadonlyArray<number> }>,
    MemoryIndexError
  >
  readonly records: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, MemoryRecord>, MemoryIndexError>
  readonly removeSession: (sessionId: string) => Effect.Effect<void, MemoryIndexError>
  readonly all: Effect.Effect<ReadonlyArray<MemoryRecord>, MemoryIndexError>
  readonly clear: Effect.Effect<void, MemoryIndexError>
}

export const cosine = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => {
  let dot = 0
  let na = 0
  let nb = 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a[i] ?? 0
    const y = b[i] ?? 0
    dot += x * y
    na += x * x
    nb += y * y
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb)
}

/** Reciprocal-rank fusion (k = 60): each list gives 1 / (k + rank) to each key it ranks. */
export const fuse = (
  rankings: ReadonlyArray<ReadonlyArray<string>>,
  k = 60
): ReadonlyArray<{ readonly key: string; readonly score: number }> => {
  const scores = new Map<string, number>()
  for (const ranking of rankings) {
    ranking.forEach((key, index) => {
      scores.set(key, (scores.get(key) ?? 0) + 1 / (k + index + 1))
    })
  }
  return [...scores.entries()]
    .map(([key, score]) => ({ key, score }))
    .sort((a, b) => b.score - a.score || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}

/** The index over an engine: embedding on write when an embedder is given, fused search. */
export const makeIndex = (backend: MemoryBackend, embedder?: Embedder): MemoryIndexService => ({
  put: (records) =>
    Effect.gen(function* () {
      if (records.length === 0) return
      const texts = records.map(recordText)
      const vectors =
        embedder === undefined
          ? undefined
          : yield* embedder.embed(texts).pipe(
              Effect.tapError((error) => Effect.logWarning(`memory: stored without embeddings: ${error.message}`)),
              Effect.orElseSucceed(() => undefined)
            )
      yield* backend.write(records.map((record, index) => toDoc(record, vectors?.[index])))
    }),
  search: (query) =>
    Effect.gen(function* () {
      const limit = Math.max(1, query.limit ?? 10)
      const filter = docFilter(query)
      const candidates = Math.max(limit * 4, 20)
      const queryTerms = terms(query.text)
      const textRanking = queryTerms.length === 0 ? [] : yield* backend.textSearch(queryTerms, filter, candidates)
      const rankings: Array<ReadonlyArray<string>> = [textRanking]
      if (embedder !== undefined && query.text.trim().length > 0) {
        const queryVector = yield* embedder.embed([query.text]).pipe(
          Effect.map((vectors) => vectors[0]),
          Effect.tapError((error) => Effect.logWarning(`memory: searching by text alone: ${error.message}`)),
          Effect.orElseSucceed(() => undefined)
        )
        if (queryVector !== undefined) {
          const stored = yield* backend.vectors(filter)
          rankings.push(
            stored
              .map(({ key, embedding }) => ({ key, similarity: cosine(queryVector, embedding) }))
              .filter(({ similarity }) => similarity > 0)
              .sort((a, b) => b.similarity - a.similarity || (a.key < b.key ? -1 : 1))
              .slice(0, candidates)
              .map(({ key }) => key)
          )
        }
      }
      const fused = fuse(rankings).slice(0, limit)
      const records = yield* backend.records(fused.map(({ key }) => key))
      return fused.flatMap(({ key, score }) => {
        const record = records.get(key)
        return record === undefined ? [] : [{ record, score }]
      })
    }),
  removeSession: backend.removeSession,
  // Sorted here, not by the engines' collations (PostgreSQL's locale order is not JavaScript's).
  all: Effect.map(backend.all, (records) =>
    [...records]
      .map((record) => ({ key: recordKey(record), record }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map(({ record }) => record)
  ),
  clear: backend.clear
})

// --- In memory ------------------------------------------------------------------------------------------------------

/** BM25 over stemmed terms, in plain code (k1 = 1.2, b = 0.75), for tests and the in-memory store. */
export const memoryBackend = (): MemoryBackend => {
  const docs = new Map<string, { doc: MemoryDoc; counts: ReadonlyMap<string, number>; length: number }>()
  const index = (doc: MemoryDoc) => {
    const words = terms(doc.body).map(stem)
    const counts = new Map<string, number>()
    for (const word of words) counts.set(word, (counts.get(word) ?? 0) + 1)
    return { doc, counts, length: words.length }
  }
  const sortedRecords = () =>
    [...docs.values()].map(({ doc }) => doc).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  return {
    write: (written) =>
      Effect.sync(() => {
        for (const doc of written) docs.set(doc.key, index(doc))
      }),
    textSearch: (queryTerms, filter, limit) =>
      Effect.sync(() => {
        const all = [...docs.values()]
        const n = all.length
        const averageLength = n === 0 ? 0 : all.reduce((total, entry) => total + entry.length, 0) / n
        const wanted = [...new Set(queryTerms.map(stem))]
        const documentFrequency = new Map(
          wanted.map((term) => [term, all.filter((entry) => entry.counts.has(term)).length] as const)
        )
        const scored: Array<{ key: string; score: number }> = []
        for (const entry of all) {
          if (!matches(entry.doc, filter)) continue
          let score = 0
          for (const term of wanted) {
            const tf = entry.counts.get(term) ?? 0
            if (tf === 0) continue
            const df = documentFrequency.get(term) ?? 0
            const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += (idf * tf * 2.2) / (tf + 1.2 * (1 - 0.75 + (0.75 * entry.length) / (averageLength || 1)))
          }
          if (score > 0) scored.push({ key: entry.doc.key, score })
        }
        return scored
          .sort((a, b) => b.score - a.score || (a.key < b.key ? -1 : 1))
          .slice(0, limit)
          .map(({ key }) => key)
      }),
    vectors: (filter) =>
      Effect.sync(() =>
        [...docs.values()].flatMap(({ doc }) =>
          doc.embedding !== undefined && matches(doc, filter) ? [{ key: doc.key, embedding: doc.embedding }] : []
        )
      ),
    records: (keys) =>
      Effect.sync(
        () =>
          new Map(
            keys.flatMap((key) => {
              const entry = docs.get(key)
              return entry === undefined ? [] : [[key, entry.doc.record] as const]
            })
          )
      ),
    removeSession: (sessionId) =>
      Effect.sync(() => {
        for (const [key, entry] of docs) if (entry.doc.sessionId === sessionId) docs.delete(key)
      }),
    all: Effect.sync(() => sortedRecords().map((doc) => doc.record)),
    clear: Effect.sync(() => docs.clear())
  }
}

export const makeMemory = (embedder?: Embedder): MemoryIndexService => makeIndex(memoryBackend(), embedder)

/** The in-memory index, empty when built. */
export const layerMemory = (embedder?: Embedder): Layer.Layer<MemoryIndex> =>
  Layer.sync(MemoryIndex, () => makeMemory(embedder))
