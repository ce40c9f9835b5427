import { Effect, Layer, Redacted } from "effect"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { freshPgDatabase } from "../infra/fixtures/databases.js"
import { forkSuite } from "./forkSuite.js"

forkSuite("PostgreSQL", () =>
  Layer.unwrapScoped(Effect.map(freshPgDatabase, (url) => PgEventStore.layer({ url: Redacted.make(url) })))
)
