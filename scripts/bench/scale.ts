/**
 * Horizontal scale: a plan of 400 independent tasks of 20 ms each (the script executor sleeping) on PostgreSQL,
 * served by 1, 2 and 4 worker processes (`Worker.run` with its default concurrency of 4, in child processes). The
 * wall time runs from the moment the plan is recorded (every worker already serving) to the moment this process sees
 * `PlanningCompleted`; the speedup is that of 1 worker divided by that of N.
 *
 * The CPU time every process spent per task is reported beside it (the workers, the PostgreSQL server, this process
 * recording the plan and following it): on a machine with few cores, that is what bounds the throughput; and that of
 * 2 and 4 workers against that of 1, run i against run i. Each set of
 * workers first runs warm-up plans, unmeasured, until each worker process has run about 2,000 tasks. The plan's events
 * are logged by type after each run. With PROFILE_PLANNER=<folder>, a CPU profile of this process during each measured run is written there.
 *
 * Beside the CPU, how often each kind of process slept and was woken per task, and what one wake-up of an idle Node
 * process costs on this machine, measured just before each run: on this shared virtual machine a Node process's
 * wake-up is dear (a bare timer's measured 180-580 µs of CPU; a PostgreSQL backend's about 40 µs) and moves with the
 * host's load, and the workers and the planner process each wake about once per task or less, so these say how much
 * of their CPU is the machine's price of waking rather than their work.
 */
import { SqlClient } from "@effect/sql"
import { Deferred, Effect, Exit, Layer, Redacted, Scope, Stream } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Planner from "../../src/domain/Planner.js"
import * as PgEventStore from "../../src/infra/PgEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import {
  type Child,
  log,
  nowMs,
  parseJson,
  processCpuMs,
  type Row,
  row,
  spawnScript,
  startCpuProfile,
  timerWakeUpCpuUs,
  wakeUps
} from "./common.js"
import { plan, startSession } from "./runtime.js"

export interface ScaleOptions {
  readonly runs: number
  readonly freshPgUrl: (prefix: string) => Promise<string>
  /** CPU milliseconds the PostgreSQL server has used so far (0 when it cannot be known). */
  readonly serverCpuMs: () => number
  /** Wake-ups of the PostgreSQL server's processes so far (`common.wakeUps`; 0 when they cannot be known). */
  readonly serverWakeUps: () => number
  readonly quick: boolean
}

const isReady = (line: string) => {
  const message = parseJson(line)
  return typeof message === "object" && message !== null && "ready" in message
}

/** Runs one plan and returns the milliseconds from recording it to seeing it completed. */
const runPlan = (tasks: number) =>
  Effect.gen(function* () {
    const completed = yield* Deferred.make<Planner.PlannerState>()
    const started = nowMs()
    const sessionId = yield* startSession(plan(tasks, false), { maxParallel: 1_024 })
    // Progress from the log, as `planner run` shows it, until the plan has ended.
    yield* Runner.observe(sessionId).pipe(
      Stream.runForEach((progress) =>
        Planner.isFinished(progress.state) ? Deferred.succeed(completed, progress.state) : Effect.void
      ),
      Effect.forkScoped
    )
    const state = yield* Deferred.await(completed).pipe(
      Effect.timeoutFail({ duration: "300 seconds", onTimeout: () => new Error("the plan did not finish in 300 s") })
    )
    const elapsed = nowMs() - started
    if (state.status !== "Succeeded") return yield* Effect.dieMessage(`the plan ended ${state.status}`)
    const sql = yield* SqlClient.SqlClient
    const types = yield* sql<{ readonly type: string; readonly count: string }>`
      SELECT event_type AS type, count(*) AS count FROM events WHERE aggregate_id = ${sessionId}
      GROUP BY event_type ORDER BY count(*) DESC`
    // Appends: the transactions that wrote the plan's events (each row's `xmin`).
    const [appends] = yield* sql<{ readonly count: string }>`
      SELECT count(DISTINCT xmin::text) AS count FROM events WHERE aggregate_id = ${sessionId}`
    const events = types.map((type) => `${type.type} ${type.count}`).join(", ")
    return { elapsed, events: `${events}, in ${appends?.count ?? "?"} appends` }
  }).pipe(Effect.scoped)

interface Measured {
  readonly wallMs: number
  readonly workersCpuMs: number
  readonly serverCpuMs: number
  readonly selfCpuMs: number
  /** Times each kind of process went to sleep and was woken during the run (voluntary context switches). */
  readonly wakeUps: { readonly workers: number; readonly server: number; readonly self: number }
  /** The CPU of one bare timer wake-up of this process, measured just before the run (`timerWakeUpCpuUs`). */
  readonly wakeUpCpuUs: number
}

export const scale = async (options: ScaleOptions): Promise<Array<Row>> => {
  const tasks = options.quick ? 100 : 400
  // Each configuration starts fresh worker processes. Warm-up plans give each of them about `warmUpPerWorker` tasks
  // first, unmeasured, so that their code is compiled and their caches filled (a worker serving a team runs for days)
  // and a per-process start-up cost is not counted per task, four times over with four workers. The count is per
  // process: with one warm-up plan for every configuration, each of four workers had run a quarter as many tasks as a
  // single worker before it was measured, and V8 was still compiling hot code during the measured runs (a quarter of
  // the Node processes' CPU, in a profile of the whole machine); a single worker cost 1.6 ms per task over its tasks
  // 400 to 1,600 and 0.9 ms over its tasks 4,800 to 6,000, so the ratio said more about the warm-up than the design.
  const warmUpPerWorker = options.quick ? tasks : 5 * tasks
  const warmUpPlans = (workers: number) => Math.ceil((warmUpPerWorker * workers) / tasks)
  const url = await options.freshPgUrl("bench_scale")
  const scope = Effect.runSync(Scope.make())
  const layer = PlannerService.layer().pipe(
    Layer.provideMerge(PlannerStore.layer),
    Layer.provideMerge(PgEventStore.layer({ url: Redacted.make(url) }))
  )
  const rows: Array<Row> = []
  try {
    const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
    const run = (count: number) => Effect.runPromise(runPlan(count).pipe(Effect.provide(context)))
    const measured = new Map<number, Array<Measured>>()
    for (const workers of [1, 2, 4]) {
      const children: Array<Child> = []
      try {
        for (let index = 0; index < workers; index++) children.push(await spawnScript("./workerChild.ts", [url]))
        await Promise.all(children.map((child) => child.waitFor(isReady, 90_000)))
        log(`scale: ${workers} worker process(es): ${warmUpPlans(workers)} warm-up plans of ${tasks} tasks`)
        for (let plan = 0; plan < warmUpPlans(workers); plan++) await run(tasks)
        for (let attempt = 0; attempt < options.runs; attempt++) {
          log(`scale: ${workers} worker process(es): ${tasks} tasks of 20 ms, run ${attempt + 1} of ${options.runs}`)
          const workersCpu = () => children.reduce((sum, child) => sum + processCpuMs(child.process.pid ?? 0), 0)
          const woken = () => ({
            workers: children.reduce((sum, child) => sum + wakeUps(child.process.pid ?? 0), 0),
            server: options.serverWakeUps(),
            self: wakeUps(process.pid)
          })
          // What waking costs on this machine now, with every process idle: the CPU figures below move with it.
          const wakeUpCpuUs = await timerWakeUpCpuUs()
          const wokenBefore = woken()
          const before = { workers: workersCpu(), server: options.serverCpuMs(), self: process.cpuUsage() }
          const plannerProfile = process.env.PROFILE_PLANNER === undefined ? undefined : await startCpuProfile(500)
          const { elapsed: wallMs, events } = await run(tasks)
          const self = process.cpuUsage(before.self)
          const wokenAfter = woken()
          await plannerProfile?.stop(`${process.env.PROFILE_PLANNER}/planner-${workers}-${attempt}.cpuprofile`)
          log(`scale: ${workers} worker process(es): the plan's events: ${events}`)
          measured.set(workers, [
            ...(measured.get(workers) ?? []),
            {
              wallMs,
              workersCpuMs: workersCpu() - before.workers,
              serverCpuMs: options.serverCpuMs() - before.server,
              selfCpuMs: (self.user + self.system) / 1_000,
              wakeUps: {
                workers: wokenAfter.workers - wokenBefore.workers,
                server: wokenAfter.server - wokenBefore.server,
                self: wokenAfter.self - wokenBefore.self
              },
              wakeUpCpuUs
            }
          ])
        }
      } finally {
        await Promise.all(children.map((child) => child.stop()))
      }
    }

    const scenario = `horizontal scale, ${tasks} x 20 ms tasks`
    const single = measured.get(1) ?? []
    for (const workers of [1, 2, 4]) {
      const runs = measured.get(workers) ?? []
      const label = `${workers} worker${workers === 1 ? "" : "s"}`
      rows.push(
        row({
          scenario,
          backend: "PostgreSQL",
          metric: `${label}, wall time`,
          unit: "s",
          samples: runs.map((r) => r.wallMs / 1_000)
        })
      )
      if (workers > 1) {
        rows.push(
          row({
            scenario,
            backend: "PostgreSQL",
            metric: `${label}, speedup vs 1 worker`,
            unit: "x",
            // Run i against run i of 1 worker: the runs of a series are alike; pairing keeps the spread honest.
            samples: runs.map((r, index) => (single[index]?.wallMs ?? Number.NaN) / r.wallMs),
            ...(workers === 4 ? { target: { kind: "min", value: 3 } } : {})
          })
        )
      }
      const cpuPerTask = (r: Measured) => (r.workersCpuMs + r.serverCpuMs + r.selfCpuMs) / tasks
      rows.push(
        row({
          scenario,
          backend: "PostgreSQL",
          metric: `${label}, CPU per task: workers + PostgreSQL + planner process`,
          unit: "ms",
          samples: runs.map(cpuPerTask),
          target: { kind: "max", value: 3 },
          note: "summed over every process; the machine's cores bound throughput at cores / this"
        }),
        ...(workers === 1
          ? []
          : [
              row({
                scenario,
                backend: "PostgreSQL",
                metric: `${label}, CPU per task vs 1 worker`,
                unit: "x",
                // Run i against run i of 1 worker, as the speedup is.
                samples: runs.map((r, index) => {
                  const one = single[index]
                  return one === undefined ? Number.NaN : cpuPerTask(r) / cpuPerTask(one)
                }),
                ...(workers === 4 ? { target: { kind: "max" as const, value: 1.2 } } : {})
              })
            ]),
        ...(
          [
            ["in the worker processes", (r: Measured) => r.workersCpuMs],
            ["in PostgreSQL", (r: Measured) => r.serverCpuMs],
            ["in the planner process", (r: Measured) => r.selfCpuMs]
          ] as const
        ).map(([where, of]) =>
          row({
            scenario,
            backend: "PostgreSQL",
            metric: `${label}, CPU per task ${where}`,
            unit: "ms",
            samples: runs.map((r) => of(r) / tasks)
          })
        ),
        ...(
          [
            ["in the worker processes", (r: Measured) => r.wakeUps.workers],
            ["in PostgreSQL", (r: Measured) => r.wakeUps.server],
            ["in the planner process", (r: Measured) => r.wakeUps.self]
          ] as const
        ).map(([where, of]) =>
          row({
            scenario,
            backend: "PostgreSQL",
            metric: `${label}, wake-ups per task ${where}`,
            unit: "/task",
            samples: runs.map((r) => of(r) / tasks),
            note: "times a process slept and was woken (voluntary context switches), each costing CPU of its own"
          })
        )
      )
    }
    rows.push(
      row({
        scenario,
        backend: "PostgreSQL",
        metric: "this machine: CPU per wake-up of a bare Node timer every 20 ms, before each run",
        unit: "µs",
        samples: [...measured.values()].flat().map((r) => r.wakeUpCpuUs),
        note: "what waking an idle process costs here; the CPU per task above moves with it"
      })
    )
    rows.push(
      row({
        scenario,
        backend: "PostgreSQL",
        metric: "ideal wall time, 1 worker (tasks x 20 ms / concurrency 4)",
        unit: "s",
        samples: [(tasks * 20) / 4 / 1_000]
      })
    )
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
  return rows
}
