/**
 * The event store's migrations, in order. Keys are `<id>_<name>` as `Migrator.fromRecord` expects; a released
 * migration is never edited or renumbered.
 */
import type { SqlClient } from "@effect/sql"
import type { Effect } from "effect"
import createEvents from "./0001_create_events.js"
import createCheckpoints from "./0002_create_checkpoints.js"
import createJobs from "./0003_create_jobs.js"
import createMemory from "./0004_create_memory.js"
import createSessionSnapshots from "./0005_create_session_snapshots.js"
import createBudgetHolds from "./0006_create_budget_holds.js"
import jobReports from "./0007_job_reports.js"
import snapshotCreatedAt from "./0008_snapshot_created_at.js"
import createWorkers from "./0009_create_workers.js"

export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_create_events": createEvents,
  "0002_create_checkpoints": createCheckpoints,
  "0003_create_jobs": createJobs,
  "0004_create_memory": createMemory,
  "0005_create_session_snapshots": createSessionSnapshots,
  "0006_create_budget_holds": createBudgetHolds,
  "0007_job_reports": jobReports,
  "0008_snapshot_created_at": snapshotCreatedAt,
  "0009_create_workers": createWorkers
}

/** The table recording which migrations ran; its own name so the app's other migrations cannot collide with it. */
export const migrationsTable = "event_store_migrations"
