import { Effect, Layer } from "effect"
import * as MemoryIndexSql from "../../src/infra/MemoryIndexSql.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { memoryIndexContract } from "./MemoryIndexContract.js"

memoryIndexContract("SQLite (FTS5, bm25)", {
  layer: (embedder) =>
    Effect.map(freshSqliteFile, (filename) =>
      MemoryIndexSql.layer(embedder).pipe(Layer.provideMerge(SqliteEventStore.layer({ filename })))
    ),
  propertyRuns: 15
})
