import { freshPgDatabase } from "../infra/fixtures/databases.js"
import { competingWorkersSuite } from "./competingWorkersSuite.js"

competingWorkersSuite("PostgreSQL", freshPgDatabase)
competingWorkersSuite("PostgreSQL", freshPgDatabase, { victimWrites: true })
