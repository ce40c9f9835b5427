/**
 * Properties of plan edits and incremental forks over random plans, random logs (with live edits among the commands)
 * and random edit sets: what a fork reuses and re-runs, fold against the live state, and deterministic replays.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { ForkSession, Initialize, type PlannerCommand } from "../../src/domain/Commands.js"
import type { PlannerConfig } from "../../src/domain/Config.js"
import * as Edits from "../../src/domain/Edits.js"
import { decodeEvent, encodeEvent, type PlannerEvent } from "../../src/domain/Events.js"
import type { PlanEdit } from "../../src/domain/PlanEdit.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskId, TaskPlan, TaskState } from "../../src/domain/Task.js"
import { configArb, editFor, type Intent, intentsArb, planArb, resolve, T0 } from "./plannerArbitraries.js"

/** Runs intents the way the writer does; the log and the live state after each command. */
const runLog = (plan: ReadonlyArray<TaskPlan>, config: PlannerConfig, intents: ReadonlyArray<Intent>) => {
  const log: Array<PlannerEvent> = []
  const snapshots: Array<{ readonly length: number; readonly state: Planner.PlannerState }> = []
  let live = Planner.initialState
  let at = T0
  const apply = (command: PlannerCommand) => {
    const outcome = Planner.decideAndEvolve(live, command)
    if (Either.isLeft(outcome)) return
    log.push(...outcome.right.events)
    live = outcome.right.state
    snapshots.push({ length: log.length, state: live })
  }
  apply(new Initialize({ request: "random plan", tasks: plan, config, at }))
  for (const intent of intents) {
    at += intent._tag === "continue" ? intent.advance : 10
    const command = resolve(live, intent, at)
    if (command !== undefined) apply(command)
  }
  return { log, snapshots, live }
}

const editIntent = fc.record({
  pick: fc.nat(),
  which: fc.nat(),
  mask: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 })
})

const logArb = fc.tuple(
  planArb,
  configArb.map((config) => ({ ...config, maxParallel: 3 })),
  intentsArb(40)
)

/** What an edit reaches directly, worked out here on its own from the plan it is applied to. */
const reachedBy = (tasks: ReadonlyArray<TaskState>, edit: PlanEdit): ReadonlyArray<TaskId> => {
  switch (edit._tag) {
    case "AddTask":
      return [edit.id ?? tasks.length + 1, ...edit.dependents]
    case "RemoveTask":
      return [
        edit.taskId,
        ...(edit.rewire ? tasks.filter((t) => t.dependsOn.includes(edit.taskId)).map((t) => t.id) : [])
      ]
    default:
      return [edit.taskId]
  }
}

/** Everything that depends, directly or not, on `seeds` in either graph, the seeds included: a plain fixpoint. */
const closure = (
  seeds: Iterable<TaskId>,
  before: ReadonlyArray<TaskState>,
  after: ReadonlyArray<TaskState>
): Set<TaskId> => {
  const found = new Set(seeds)
  let grew = true
  while (grew) {
    grew = false
    for (const task of [...before, ...after]) {
      if (!found.has(task.id) && task.dependsOn.some((dep) => found.has(dep))) {
        found.add(task.id)
        grew = true
      }
    }
  }
  return found
}

const forkAt = (
  log: ReadonlyArray<PlannerEvent>,
  at: number,
  edits: ReadonlyArray<PlanEdit>,
  rerun: ReadonlyArray<TaskId>
) =>
  new ForkSession({
    fromSessionId: "source",
    atSequence: at,
    sourceEvents: log.slice(0, at),
    edits,
    rerun,
    at: T0 + 1e9
  })

describe("plan edit and incremental fork properties", () => {
  it.prop(
    "a fork with no edits reuses every task completed at its event and re-runs none",
    [logArb, fc.nat()],
    ([[plan, config, intents], pick]) => {
      const { log } = runLog(plan, config, intents)
      const at = 1 + (pick % log.length)
      const source = Planner.fold(log.slice(0, at))
      const forked = Edits.planFork(source, log.slice(0, at), {
        fromSessionId: "source",
        atSequence: at,
        edits: [],
        editSource: { _tag: "User" },
        rerun: [],
        at: T0
      })
      const completed = source.tasks.filter((t) => t.status === "Completed" && t.removed !== true).map((t) => t.id)
      const plan2 = Either.getOrThrow(forked)
      expect(plan2.reused).toEqual(completed)
      expect(plan2.rerun).toEqual([])
      // And the fork's state has them completed with the source's results.
      const state = Planner.fold(Either.getOrThrow(Planner.decideEither(Planner.initialState, forkAt(log, at, [], []))))
      for (const id of completed) {
        expect(Planner.task(state, id)?.status).toBe("Completed")
        expect(Planner.task(state, id)?.result).toBe(Planner.task(source, id)?.result)
      }
    }
  )

  it.prop(
    "the tasks a fork re-runs are exactly the completed ones downstream of the edited and re-run tasks",
    [logArb, fc.nat(), fc.array(editIntent, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 2 })],
    ([[plan, config, intents], pick, editIntents, rerunPicks]) => {
      const { log } = runLog(plan, config, intents)
      const at = 1 + (pick % log.length)
      const source = Planner.fold(log.slice(0, at))
      // Edits made against the fork's starting point: the source's plan at its event with nothing run yet.
      const start = source
      const fresh: Array<TaskState> = source.tasks.map((t) => ({
        id: t.id,
        description: t.description,
        kind: t.kind,
        dependsOn: t.dependsOn,
        attachments: t.attachments,
        status: t.removed === true ? "Cancelled" : "Planned",
        attempt: 0,
        failures: 0,
        clarifications: t.clarifications.filter((c) => c.answer !== undefined),
        compacted: false,
        ...(t.removed === true ? { removed: true as const } : {})
      }))
      const edits: Array<PlanEdit> = []
      let working = fresh
      const reached = new Set<TaskId>()
      for (const [index, intent] of editIntents.entries()) {
        const state = { ...start, tasks: working }
        const edit = editFor(state, intent, T0 + index)
        if (edit === undefined) continue
        const decided = Edits.decideEdits(working, [edit])
        if (Either.isLeft(decided)) continue
        const filled = decided.right.edits[0] as PlanEdit
        for (const id of reachedBy(working, filled)) reached.add(id)
        edits.push(filled)
        working = decided.right.tasks as Array<TaskState>
      }
      const alive = fresh.filter((t) => t.removed !== true).map((t) => t.id)
      const rerun = [
        ...new Set(rerunPicks.flatMap((p) => (alive.length === 0 ? [] : [alive[p % alive.length] as TaskId])))
      ]
      const outcome = Edits.planFork(source, log.slice(0, at), {
        fromSessionId: "source",
        atSequence: at,
        edits,
        editSource: { _tag: "User" },
        rerun,
        at: T0
      })
      // Each edit was valid where it was made, so the batch is too.
      const forked = Either.getOrThrow(outcome)
      const downstream = closure([...reached, ...rerun], fresh, working)
      const completed = source.tasks.filter((t) => t.status === "Completed" && t.removed !== true).map((t) => t.id)
      expect(forked.rerun).toEqual(completed.filter((id) => downstream.has(id)))
      expect(forked.reused).toEqual(completed.filter((id) => !downstream.has(id)))
    }
  )

  it.prop(
    "fold equals the live state at every point of an edited session and of a fork of it, and replays are deterministic",
    [logArb, fc.nat(), intentsArb(20), fc.array(editIntent, { maxLength: 2 })],
    ([[plan, config, intents], pick, more, editIntents]) => {
      const { log, snapshots } = runLog(plan, config, intents)
      for (const snapshot of snapshots) {
        expect(Planner.fold(log.slice(0, snapshot.length))).toEqual(snapshot.state)
      }
      const at = 1 + (pick % log.length)
      const start = Planner.fold(log.slice(0, at))
      const edits = editIntents.flatMap((intent, index) => {
        const edit = editFor(
          { ...start, tasks: start.tasks.map((t) => ({ ...t, status: t.removed === true ? t.status : "Planned" })) },
          intent,
          index
        )
        return edit === undefined ? [] : [edit]
      })
      const command = forkAt(log, at, edits, [])
      const first = Planner.decideEither(Planner.initialState, command)
      // Deciding the same fork twice gives the same events (a refused edit set is refused the same way).
      expect(Planner.decideEither(Planner.initialState, command)).toEqual(first)
      if (Either.isLeft(first)) return
      // The fork then runs on: live state against fold, and the log read back from JSON replays to the same state.
      const forkLog: Array<PlannerEvent> = [...first.right]
      let live = Planner.fold(forkLog)
      let now = T0 + 2e9
      for (const intent of more) {
        now += intent._tag === "continue" ? intent.advance : 10
        const next = resolve(live, intent, now)
        if (next === undefined) continue
        const outcome = Planner.decideAndEvolve(live, next)
        if (Either.isLeft(outcome)) continue
        forkLog.push(...outcome.right.events)
        live = outcome.right.state
        expect(Planner.fold(forkLog)).toEqual(live)
      }
      const stored = forkLog.map((event) => JSON.parse(JSON.stringify(encodeEvent(event))))
      const read = stored.map((e) => Either.getOrThrow(decodeEvent(e.type, e.version, e.data)))
      expect(Planner.fold(read)).toEqual(live)
    }
  )

  it("random runs do edit their plans (the properties above are not only about refusals)", () => {
    const samples = fc.sample(logArb, { numRuns: 200, seed: 42 })
    const edited = samples.filter(([plan, config, intents]) =>
      runLog(plan, config, intents).log.some((event) => event._tag === "PlanEdited")
    ).length
    expect(edited).toBeGreaterThan(20)
  })
})
