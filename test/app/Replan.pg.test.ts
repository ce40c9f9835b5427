/** Replanning through the library on PostgreSQL (the scenarios are in `replanSuite`). */
import { freshPgDatabase } from "../infra/fixtures/databases.js"
import { replanSuite } from "./replanSuite.js"

replanSuite("PostgreSQL", freshPgDatabase)
