/** Replanning through the library on a SQLite file (the scenarios are in `replanSuite`). */
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { replanSuite } from "./replanSuite.js"

replanSuite("SQLite", freshSqliteFile)
