import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { competingWorkersSuite } from "./competingWorkersSuite.js"

competingWorkersSuite("SQLite", freshSqliteFile)
