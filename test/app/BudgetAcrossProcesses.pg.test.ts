import { freshPgDatabase } from "../infra/fixtures/databases.js"
import { budgetAcrossProcessesSuite } from "./budgetAcrossProcessesSuite.js"

budgetAcrossProcessesSuite("PostgreSQL", freshPgDatabase)
