import { Effect, Layer } from "effect"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as MemoryIndex from "../../src/infra/MemoryIndex.js"
import { memoryIndexContract } from "./MemoryIndexContract.js"

memoryIndexContract("in memory (plain-code BM25)", {
  layer: (embedder) => Effect.succeed(Layer.merge(MemoryEventStore.layer(), MemoryIndex.layerMemory(embedder))),
  propertyRuns: 60
})
