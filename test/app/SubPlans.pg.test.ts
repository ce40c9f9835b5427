import { Effect, Layer, Redacted } from "effect"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { freshPgDatabase } from "../infra/fixtures/databases.js"
import { subPlanSuite } from "./subPlanSuite.js"

subPlanSuite("PostgreSQL", () =>
  Layer.unwrapScoped(Effect.map(freshPgDatabase, (url) => PgEventStore.layer({ url: Redacted.make(url) })))
)
