import { Effect, Layer, Redacted } from "effect"
import * as MemoryIndexSql from "../../src/infra/MemoryIndexSql.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { freshPgDatabase } from "../infra/fixtures/databases.js"
import { memoryIndexContract } from "./MemoryIndexContract.js"

memoryIndexContract("PostgreSQL (tsvector, GIN, ts_rank)", {
  layer: (embedder) =>
    Effect.map(freshPgDatabase, (url) =>
      MemoryIndexSql.layer(embedder).pipe(Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) })))
    ),
  propertyRuns: 5
})
