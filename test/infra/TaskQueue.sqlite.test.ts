import type { SqlClient } from "@effect/sql"
import { Layer } from "effect"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import * as SqlTaskQueue from "../../src/infra/SqlTaskQueue.js"
import { freshSqliteFile } from "./fixtures/databases.js"
import { sqlTaskQueueContract, type TaskQueueTarget, taskQueueContract } from "./TaskQueueContract.js"

const sqliteTarget: TaskQueueTarget<string, SqlClient.SqlClient> = {
  freshDatabase: freshSqliteFile,
  // The event store's layer runs the migrations, the jobs table's among them.
  layer: (filename) => SqlTaskQueue.layer().pipe(Layer.provideMerge(SqliteEventStore.layer({ filename }))),
  // Another process's enqueue reaches a SQLite waiter only through its poll.
  wakesOtherInstances: false
}

taskQueueContract("SqlTaskQueue on SQLite", sqliteTarget)
sqlTaskQueueContract("SqlTaskQueue on SQLite", sqliteTarget)
