/**
 * One chain of the orchestration scenario, alone, for profiling: `node --cpu-prof` around it shows where a task's
 * overhead goes. `npx vite-node scripts/bench/chainProfile.ts -- [tasks]` prints the wall and CPU time per task.
 */
import * as path from "node:path"
import { Effect } from "effect"
import * as Runner from "../../src/app/Runner.js"
import { echo } from "../../src/infra/EchoExecutor.js"
import * as SqliteEventStore from "../../src/infra/SqliteEventStore.js"
import { plannerRuntime } from "../../test/app/fixtures/runtime.js"
import { nowMs, startCpuProfile, tempDir } from "./common.js"
import { plan, startSession } from "./runtime.js"

/** With STATEMENTS=1: time every SQLite statement by its text (better-sqlite3's statements, patched). */
const statementTimes = new Map<string, { count: number; ms: number }>()
if (process.env.STATEMENTS === "1") {
  const Sqlite = (await import("better-sqlite3")).default
  const probe = new Sqlite(":memory:").prepare("SELECT 1")
  const proto = Object.getPrototypeOf(probe) as Record<string, (...args: Array<unknown>) => unknown>
  // Preparing is counted too: a statement prepared again and again misses the client's cache.
  const databaseProto = Sqlite.prototype as unknown as Record<string, (...args: Array<unknown>) => unknown>
  const prepare = databaseProto.prepare
  if (prepare !== undefined) {
    databaseProto.prepare = function (this: unknown, ...args: Array<unknown>) {
      const start = nowMs()
      try {
        return prepare.apply(this, args)
      } finally {
        const text = `prepare: ${String(args[0]).replace(/\s+/g, " ").slice(0, 80)}`
        const known = statementTimes.get(text) ?? { count: 0, ms: 0 }
        known.count += 1
        known.ms += nowMs() - start
        statementTimes.set(text, known)
      }
    }
  }
  for (const method of ["run", "all", "get"]) {
    const original = proto[method]
    if (original === undefined) continue
    proto[method] = function (this: { source: string }, ...args: Array<unknown>) {
      const start = nowMs()
      try {
        return original.apply(this, args)
      } finally {
        const text = this.source.replace(/\s+/g, " ").slice(0, 90)
        const known = statementTimes.get(text) ?? { count: 0, ms: 0 }
        known.count += 1
        known.ms += nowMs() - start
        statementTimes.set(text, known)
      }
    }
  }
}

const tasks = Number(process.argv.find((arg) => /^\d+$/.test(arg)) ?? 1_000)

const chain = async (count: number) => {
  const folder = tempDir("chain-profile")
  try {
    const layer = plannerRuntime(SqliteEventStore.layer({ filename: path.join(folder.dir, "events.db") }), echo)
    return await Effect.runPromise(
      Effect.gen(function* () {
        const sessionId = yield* startSession(plan(count, true))
        const started = nowMs()
        const cpu = process.cpuUsage()
        const result = yield* Runner.run(sessionId)
        const used = process.cpuUsage(cpu)
        return {
          status: result.state.status,
          wallMs: (nowMs() - started) / count,
          cpuMs: (used.user + used.system) / 1_000 / count
        }
      }).pipe(Effect.provide(layer))
    )
  } finally {
    folder.remove()
  }
}

await chain(100)
statementTimes.clear()
// With PROFILE=file: a CPU profile of the measured chain alone (not of start-up), for DevTools or a script.
const profileTo = process.env.PROFILE
const profiler = profileTo === undefined ? undefined : await startCpuProfile(200)
const measured = await chain(tasks)
if (profiler !== undefined && profileTo !== undefined) await profiler.stop(profileTo)
process.stdout.write(`${JSON.stringify({ tasks, ...measured })}\n`)
for (const [text, { count, ms }] of [...statementTimes].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) {
  process.stdout.write(`${(ms / tasks).toFixed(3)} ms/task ${(count / tasks).toFixed(2)}x  ${text}\n`)
}
