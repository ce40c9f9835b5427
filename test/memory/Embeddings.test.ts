/**
 * Embeddings from a real OpenAI-compatible HTTP server on 127.0.0.1 with deterministic vectors: stored beside the
 * text, fused with full-text ranking, and the search still works without them or when the endpoint fails.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option, Redacted } from "effect"
import * as Embeddings from "../../src/infra/Embeddings.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import { type Embedder, layerMemory, MemoryIndex } from "../../src/infra/MemoryIndex.js"
import * as MemoryIndexSql from "../../src/infra/MemoryIndexSql.js"
import * as MemoryProjection from "../../src/infra/MemoryProjection.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { startEmbeddingsServer } from "./EmbeddingsServer.js"
import { type MemoryTarget, withTarget } from "./MemoryIndexContract.js"
import { writeSession } from "./support.js"

const targets: ReadonlyArray<readonly [string, MemoryTarget]> = [
  [
    "in memory",
    {
      layer: (embedder) => Effect.succeed(Layer.merge(MemoryEventStore.layer(), layerMemory(embedder))),
      propertyRuns: 0
    }
  ],
  [
    "SQLite",
    {
      layer: (embedder) =>
        Effect.map(freshSqliteFile, (filename) =>
          MemoryIndexSql.layer(embedder).pipe(Layer.provideMerge(SqliteEventStore.layer({ filename })))
        ),
      propertyRuns: 0
    }
  ]
]

const writeSessions = Effect.zipRight(
  writeSession("cars", "Service the old automobile", [
    { description: "Repair the automobile engine", kind: "ToolCall" },
    { description: "Wash the paintwork", kind: "ToolCall" }
  ]),
  writeSession("photos", "Publish the holiday album", [
    { description: "Compress every photo in the album", kind: "Processing" }
  ])
)

const embedderFor = (baseUrl: string): Embedder =>
  Embeddings.make(
    Embeddings.makeSettings({ baseUrl, model: "test-embed", apiKey: Option.some(Redacted.make("sk-embed-secret")) })
  )

for (const [name, target] of targets) {
  describe(`Memory with embeddings: ${name}`, () => {
    it.live("a query sharing no word with a record finds it through the vectors, fused with the text ranking", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* startEmbeddingsServer
          const embedder = embedderFor(server.baseUrl)
          yield* withTarget(
            target,
            Effect.gen(function* () {
              yield* writeSessions
              yield* MemoryProjection.catchUp
              const index = yield* MemoryIndex
              // "fix car motor" shares no word with "Repair the automobile engine": only the vectors connect them.
              const hits = yield* index.search({ text: "fix car motor", kind: "task" })
              expect(hits[0]?.record).toMatchObject({ sessionId: "cars", taskId: 1 })
              // Both rankings agree on a plain query: it comes first with both lists' scores added.
              const both = yield* index.search({ text: "compress photo album" })
              expect(both[0]?.record.sessionId).toBe("photos")
              expect(both[0]?.score ?? 0).toBeGreaterThan(1 / 61)
            }),
            embedder
          )
          // Sent to {baseUrl}/embeddings with the model and the key in the Authorization header.
          expect(server.requests.length).toBeGreaterThan(0)
          expect(server.requests.every((request) => request.model === "test-embed")).toBe(true)
          expect(server.requests.every((request) => request.authorization === "Bearer sk-embed-secret")).toBe(true)
          expect(server.requests.flatMap((request) => request.input)).toContain("fix car motor")
        })
      )
    )

    it.live("without embeddings the same query finds nothing, and text search works as before", () =>
      withTarget(
        target,
        Effect.gen(function* () {
          yield* writeSessions
          yield* MemoryProjection.catchUp
          const index = yield* MemoryIndex
          expect(yield* index.search({ text: "fix car motor", kind: "task" })).toEqual([])
          const hits = yield* index.search({ text: "repairing engines" })
          expect(hits[0]?.record).toMatchObject({ sessionId: "cars", taskId: 1 })
        })
      )
    )

    it.live("when the endpoint fails, records are still stored and found by text", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* startEmbeddingsServer
          server.failing(true)
          yield* withTarget(
            target,
            Effect.gen(function* () {
              yield* writeSessions
              yield* MemoryProjection.catchUp
              const index = yield* MemoryIndex
              expect((yield* index.all).length).toBe(5)
              const hits = yield* index.search({ text: "repairing engines" })
              expect(hits[0]?.record).toMatchObject({ sessionId: "cars", taskId: 1 })
            }),
            embedderFor(server.baseUrl)
          )
          expect(server.requests.length).toBeGreaterThan(0)
        })
      )
    )
  })
}

describe("Memory with embeddings: SQLite storage", () => {
  it.live("the vector is stored beside the text of every record", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* startEmbeddingsServer
        const target = targets[1]?.[1] as MemoryTarget
        yield* withTarget(
          target,
          Effect.gen(function* () {
            yield* writeSessions
            yield* MemoryProjection.catchUp
            // The target's layer also holds the store's client.
            const sql = yield* Effect.orDie(Effect.serviceOptional(SqlClient.SqlClient))
            const rows = yield* sql<{ body: string; embedding: string | null }>`SELECT body, embedding FROM memory_docs`
            expect(rows.length).toBe(5)
            for (const row of rows) expect((JSON.parse(row.embedding ?? "[]") as Array<number>).length).toBe(64)
          }),
          embedderFor(server.baseUrl)
        )
      })
    )
  )
})

describe("Embeddings settings", () => {
  const settings = (env: Record<string, string>) =>
    Effect.withConfigProvider(Effect.either(Embeddings.fromEnv), ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect(
    "off without PLANNER_EMBEDDINGS_MODEL; the LLM's base URL and key otherwise; a clear error when nowhere to send",
    () =>
      Effect.gen(function* () {
        expect(yield* settings({ PLANNER_LLM_BASE_URL: "http://localhost:11434/v1" })).toEqual(
          expect.objectContaining({ right: Option.none() })
        )
        const on = yield* settings({
          PLANNER_EMBEDDINGS_MODEL: "nomic-embed-text",
          PLANNER_LLM_BASE_URL: "http://localhost:11434/v1/"
        })
        expect(on._tag).toBe("Right")
        if (on._tag === "Right") {
          expect(Option.getOrThrow(on.right)).toMatchObject({
            model: "nomic-embed-text",
            baseUrl: "http://localhost:11434/v1"
          })
        }
        const nowhere = yield* settings({ PLANNER_EMBEDDINGS_MODEL: "nomic-embed-text" })
        expect(nowhere._tag).toBe("Left")
        if (nowhere._tag === "Left") expect(String(nowhere.left)).toContain("PLANNER_LLM_BASE_URL")
      })
  )
})
