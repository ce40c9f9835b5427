import { Context, Effect, Layer, Redacted } from "effect"
import * as BudgetHolds from "../../src/infra/BudgetHolds.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { budgetHoldsContract } from "./BudgetHoldsContract.js"
import { freshPgDatabase, freshSqliteFile } from "./fixtures/databases.js"

/** `count` stores opened one after the other on one database, each with its own connection, and their holds. */
const opened = <E>(count: number, layer: () => Layer.Layer<BudgetHolds.BudgetHolds, E>) =>
  Effect.forEach(Array.from({ length: count }), () =>
    Effect.map(Layer.build(layer()), (context) => Context.get(context, BudgetHolds.BudgetHolds))
  )

budgetHoldsContract("memory", (count) => {
  const shared = BudgetHolds.makeMemory()
  return Effect.succeed(Array.from({ length: count }, () => shared))
})

budgetHoldsContract("SQLite", (count) =>
  Effect.flatMap(freshSqliteFile, (filename) => opened(count, () => SqliteEventStore.layer({ filename })))
)

budgetHoldsContract("PostgreSQL", (count) =>
  Effect.flatMap(freshPgDatabase, (url) => opened(count, () => PgEventStore.layer({ url: Redacted.make(url) })))
)
