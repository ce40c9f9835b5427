/**
 * A real OpenAI-compatible embeddings server on 127.0.0.1 (`POST /embeddings`) that answers with deterministic
 * vectors: each word counts in the dimension of its concept, and a few synonyms share a concept ("car", "auto",
 * "automobile"; "fix", "repair", "mend"; ...), so texts with no word in common can still be close, which full-text
 * search alone cannot find. It records every request, and can be told to fail.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, type Scope } from "effect"

export const dimensions = 64

const synonyms: ReadonlyArray<ReadonlyArray<string>> = [
  ["car", "auto", "automobile", "vehicle"],
  ["fix", "repair", "mend"],
  ["engine", "motor"],
  ["picture", "photo", "image"],
  ["shrink", "compress", "resize"]
]

const concept = (word: string): string => synonyms.find((group) => group.includes(word))?.[0] ?? word

const hash = (text: string): number => {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 16777619)
  }
  return h >>> 0
}

export const vectorOf = (text: string): ReadonlyArray<number> => {
  const vector = new Array<number>(dimensions).fill(0)
  for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    if (word.length < 3) continue
    const at = hash(concept(word)) % dimensions
    vector[at] = (vector[at] ?? 0) + 1
  }
  return vector
}

export interface EmbeddingsRequest {
  readonly model: string
  readonly input: ReadonlyArray<string>
  readonly authorization: string | undefined
}

export interface EmbeddingsServer {
  readonly baseUrl: string
  readonly requests: ReadonlyArray<EmbeddingsRequest>
  /** From now on, answer 500 (true) or vectors (false). */
  readonly failing: (on: boolean) => void
}

export const startEmbeddingsServer: Effect.Effect<EmbeddingsServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<EmbeddingsServer & { close: () => Promise<void> }>((resolve) => {
        const requests: Array<EmbeddingsRequest> = []
        let failing = false
        const server = createServer((req, res) => {
          let body = ""
          req.on("data", (chunk: Buffer) => {
            body += chunk.toString("utf8")
          })
          req.on("end", () => {
            if (req.method !== "POST" || req.url !== "/embeddings") {
              res.writeHead(404).end()
              return
            }
            const parsed = JSON.parse(body) as { model: string; input: string | ReadonlyArray<string> }
            const input = typeof parsed.input === "string" ? [parsed.input] : parsed.input
            requests.push({ model: parsed.model, input, authorization: req.headers.authorization })
            if (failing) {
              res.writeHead(500, { "content-type": "application/json" })
              res.end(JSON.stringify({ error: { message: "embeddings are down" } }))
              return
            }
            res.writeHead(200, { "content-type": "application/json" })
            res.end(
              JSON.stringify({
                object: "list",
                model: parsed.model,
                // Out of order on purpose: clients must use `index`.
                data: input.map((text, index) => ({ object: "embedding", index, embedding: vectorOf(text) })).reverse()
              })
            )
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resolve({
            baseUrl: `http://127.0.0.1:${port}`,
            requests,
            failing: (on) => {
              failing = on
            },
            close: () =>
              new Promise<void>((done) => {
                server.closeAllConnections()
                server.close(() => done())
              })
          })
        })
      })
  ),
  (server) => Effect.promise(() => server.close())
)
