/**
 * PostgreSQL: the high-water mark's probe stays a few index reads however large the log grows. Every follower of a
 * session (the CLI's run, the dashboard) runs it at each wake-up as a named prepared statement, and PostgreSQL keeps
 * the generic plan it settles on for as long as the connection lives (until the table is analyzed again). An earlier
 * text asked for "the positions after the mark, the first 1,000": planned while the log was small, that was a
 * sequential scan and a sort, and it stayed one as the log grew (8,000 buffers a probe at 200,000 events). A range
 * closed on both sides is guessed small at any size, so its plan goes through the index from the start.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import { highWaterProbe } from "../../src/infra/SqlEventStore.js"
import { freshPgDatabase } from "./fixtures/databases.js"

interface PlanNode {
  readonly "Node Type": string
  readonly "Relation Name"?: string
  readonly "Shared Hit Blocks": number
  readonly "Shared Read Blocks": number
  readonly Plans?: ReadonlyArray<PlanNode>
}

const nodes = (node: PlanNode): ReadonlyArray<PlanNode> => [node, ...(node.Plans ?? []).flatMap(nodes)]

describe("the high-water mark's probe on PostgreSQL", () => {
  for (const start of [0, 20]) {
    it.live(
      `planned on a log of ${start} events, it reads a few index entries once the log holds 200,000`,
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const url = yield* freshPgDatabase
            const context = yield* Layer.build(PgEventStore.layer({ url: Redacted.make(url) }))
            const sql = Context.get(context, SqlClient.SqlClient)
            // Events the size of a task's outcome, so the table has as many pages as a real one.
            const append = (from: number, to: number) =>
              sql.unsafe(`
                INSERT INTO events (stream_id, event_type, aggregate_id, sequence, event_version, data, metadata)
                SELECT 'planner', 'TaskStatusUpdated', 'session-' || (g / 100), g % 100 + 1, '1',
                  jsonb_build_object('output', repeat('done: a task of the plan ', 8)), '{}'
                FROM generate_series(${from}, ${to}) AS g`)
            if (start > 0) yield* append(0, start - 1)
            const plan = yield* Effect.scoped(
              Effect.gen(function* () {
                const connection = yield* sql.reserve
                yield* connection.executeUnprepared("SET plan_cache_mode = force_generic_plan", [], undefined)
                yield* connection.executeUnprepared(`PREPARE probe(bigint) AS ${highWaterProbe}`, [], undefined)
                // Past five runs PostgreSQL settles on a plan and keeps it.
                for (let run = 0; run < 10; run++) {
                  yield* connection.executeUnprepared(`EXECUTE probe(${run})`, [], undefined)
                }
                yield* append(start, 199_999)
                return yield* connection.executeUnprepared(
                  "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE probe(199000)",
                  [],
                  undefined
                )
              })
            )
            const [explained] = (plan[0] as { readonly "QUERY PLAN": ReadonlyArray<{ readonly Plan: PlanNode }> })[
              "QUERY PLAN"
            ]
            const root = explained?.Plan
            if (root === undefined) return expect.fail("EXPLAIN gave no plan")
            const scans = nodes(root).filter((node) => node["Relation Name"] === "events")
            expect(scans.map((node) => node["Node Type"])).not.toContain("Seq Scan")
            // The 1,000 positions after the mark and the highest one: some tens of pages of several thousand.
            expect(root["Shared Hit Blocks"] + root["Shared Read Blocks"]).toBeLessThan(200)
          })
        ),
      60_000
    )
  }
})
