import { Effect, Layer } from "effect"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { forkSuite } from "./forkSuite.js"

forkSuite("a SQLite file", () =>
  Layer.unwrapScoped(Effect.map(freshSqliteFile, (filename) => SqliteEventStore.layer({ filename })))
)
