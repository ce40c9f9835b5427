import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { budgetAcrossProcessesSuite } from "./budgetAcrossProcessesSuite.js"

budgetAcrossProcessesSuite("SQLite", freshSqliteFile)
