/**
 * Random plans and command sequences for property tests, shared by the planner's own (Planner.property.test.ts) and
 * the task queue's projection (test/infra/Jobs.property.test.ts).
 *
 * Commands are generated as intents ("complete some in-flight task") resolved against the live state, so sequences
 * reach deep states (retries, clarifications, leases, compaction, completion) instead of being refused at once; raw
 * commands made from the command schema are mixed in to exercise refusals of impossible, late and unknown input.
 */
import { Arbitrary, FastCheck as fc } from "effect"
import {
  AbandonTask,
  Cancel,
  ClaimTask,
  ClarificationProvided,
  CompactContext,
  Continue,
  EditPlan,
  ExtendLease,
  HandleExecutorEvent,
  NeedsClarification,
  PlannerCommand,
  ReleaseTask,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { PlannerConfig } from "../../src/domain/Config.js"
import { AddTask, type PlanEdit, RemoveTask, SetDependencies, SetTask } from "../../src/domain/PlanEdit.js"
import type * as Planner from "../../src/domain/Planner.js"
import { Attachment, isTerminal, NodeKind, type TaskPlan, type TaskState } from "../../src/domain/Task.js"
export const T0 = 1_700_000_000_000

export const planArb: fc.Arbitrary<ReadonlyArray<TaskPlan>> = fc
  .array(
    fc.record({
      kind: fc.oneof(
        { weight: 6, arbitrary: fc.constant<NodeKind>("Processing") },
        { weight: 4, arbitrary: Arbitrary.make(NodeKind) }
      ),
      description: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim().length > 0),
      depMask: fc.array(fc.boolean(), { maxLength: 8 }),
      attachments: fc.array(Arbitrary.make(Attachment), { maxLength: 2 })
    }),
    { minLength: 1, maxLength: 8 }
  )
  .map((specs) =>
    specs.map((spec, index) => ({
      id: index + 1,
      description: spec.description,
      kind: spec.kind,
      // Only earlier tasks, so the graph is acyclic by construction.
      dependsOn: spec.depMask.slice(0, index).flatMap((on, dep) => (on ? [dep + 1] : [])),
      attachments: spec.attachments
    }))
  )

export const configArb = Arbitrary.make(PlannerConfig).map((config) => ({
  ...config,
  maxParallel: 1 + (config.maxParallel % 3),
  maxAttempts: 1 + (config.maxAttempts % 3),
  leaseMs: 1 + (config.leaseMs % 50_000)
}))

export type Intent =
  | {
      readonly _tag: "complete" | "fail" | "ask" | "answer" | "claim" | "extend" | "release" | "abandon"
      readonly pick: number
      readonly flag: boolean
    }
  | { readonly _tag: "continue"; readonly advance: number }
  | { readonly _tag: "compact"; readonly count: number }
  | { readonly _tag: "cancel" }
  /** A plan edit of planned tasks (see `Edits`): add, change, re-wire or remove one. */
  | { readonly _tag: "edit"; readonly pick: number; readonly which: number; readonly mask: ReadonlyArray<boolean> }
  | { readonly _tag: "raw"; readonly command: PlannerCommand }

export const intentArb: fc.Arbitrary<Intent> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      _tag: fc.constantFrom<"complete" | "fail" | "ask" | "answer" | "claim" | "extend" | "release" | "abandon">(
        "complete",
        "fail",
        "ask",
        "answer",
        "claim",
        "extend",
        "release",
        "abandon"
      ),
      pick: fc.nat(),
      flag: fc.boolean()
    })
  },
  {
    weight: 6,
    arbitrary: fc.record({ _tag: fc.constant("continue" as const), advance: fc.integer({ min: 0, max: 120_000 }) })
  },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("compact" as const), count: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "cancel" as const }) },
  {
    weight: 3,
    arbitrary: fc.record({
      _tag: fc.constant("edit" as const),
      pick: fc.nat(),
      which: fc.nat(),
      mask: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 })
    })
  },
  { weight: 2, arbitrary: Arbitrary.make(PlannerCommand).map((command) => ({ _tag: "raw" as const, command })) }
)

/**
 * A run of up to `maxLength` intents. fast-check's default size ("small") caps every array at 10 elements whatever its
 * `maxLength`, so "up to 60 intents" meant at most 10: too few to end most plans or to reach their later transitions.
 * The run's own length is sized to its bound; what is inside each intent keeps the default size.
 */
export const intentsArb = (maxLength: number): fc.Arbitrary<ReadonlyArray<Intent>> =>
  fc.array(intentArb, { maxLength, size: "max" })

export const pickFrom = <A>(items: ReadonlyArray<A>, pick: number): A | undefined =>
  items.length === 0 ? undefined : items[pick % items.length]

export const inFlight = (task: TaskState) => task.status === "Dispatched" || task.status === "Running"
export const workers = ["w1", "w2"]

/** Turns an intent into a concrete command for the current state, or undefined when it has nothing to act on. */
export const resolve = (state: Planner.PlannerState, intent: Intent, at: number): PlannerCommand | undefined => {
  const pick = (filter: (task: TaskState) => boolean, p: number) => pickFrom(state.tasks.filter(filter), p)
  const report = (event: HandleExecutorEvent["event"]) => new HandleExecutorEvent({ event, at })
  switch (intent._tag) {
    case "complete": {
      const task = pick(inFlight, intent.pick)
      return (
        task &&
        report(
          new TaskCompleted({
            taskId: task.id,
            result: `result of ${task.id}`,
            ...(intent.flag ? { attempt: task.attempt } : {})
          })
        )
      )
    }
    case "fail": {
      const task = pick(inFlight, intent.pick)
      return task && report(new TaskFailed({ taskId: task.id, error: `error ${task.attempt}`, retryable: intent.flag }))
    }
    case "ask": {
      const task = pick(inFlight, intent.pick)
      const attachment = intent.flag ? task?.attachments[0] : undefined
      return (
        task &&
        report(
          new NeedsClarification({
            taskId: task.id,
            question: `question ${task.attempt}?`,
            ...(attachment === undefined ? {} : { attachment })
          })
        )
      )
    }
    case "answer": {
      const task = pick((t) => t.status === "NeedsClarification", intent.pick)
      return task && report(new ClarificationProvided({ taskId: task.id, answer: `answer at ${at}` }))
    }
    case "claim": {
      const task = pick((t) => t.status === "Dispatched" || t.status === "Running", intent.pick)
      return (
        task &&
        new ClaimTask({ taskId: task.id, attempt: task.attempt, workerId: workers[intent.flag ? 0 : 1] ?? "w1", at })
      )
    }
    case "extend":
    case "release":
    case "abandon": {
      const task = pick((t) => t.status === "Running", intent.pick)
      if (task === undefined) return undefined
      const args = { taskId: task.id, attempt: task.attempt, workerId: task.lease?.workerId ?? "w1", at }
      if (intent._tag === "abandon") return new AbandonTask({ ...args, reason: "worker gone" })
      return intent._tag === "extend" ? new ExtendLease(args) : new ReleaseTask(args)
    }
    case "continue":
      return new Continue({ at })
    case "compact": {
      const ids = state.tasks
        .filter((t) => t.status === "Completed" && !t.compacted)
        .slice(0, intent.count)
        .map((t) => t.id)
      return new CompactContext({
        maxTokens: 100,
        summary: `summary of ${ids.join(",")} at ${at}`,
        removedTaskIds: ids,
        at
      })
    }
    case "cancel":
      return new Cancel({ at })
    case "edit": {
      const edit = editFor(state, intent, at)
      return edit && new EditPlan({ edits: [edit], at })
    }
    case "raw":
      return intent.command
  }
}

/** One plan edit for the state: mostly valid (planned tasks, dependencies that can complete), sometimes refused. */
export const editFor = (
  state: Planner.PlannerState,
  intent: { readonly pick: number; readonly which: number; readonly mask: ReadonlyArray<boolean> },
  at: number
): PlanEdit | undefined => {
  const planned = state.tasks.filter((t) => t.status === "Planned" && t.removed !== true)
  const alive = state.tasks.filter((t) => t.removed !== true && (t.status === "Completed" || !isTerminal(t.status)))
  const chosen = alive.filter((_, index) => intent.mask[index % intent.mask.length] === true).map((t) => t.id)
  const task = pickFrom(planned, intent.pick)
  switch (intent.which % 4) {
    case 0:
      return AddTask.make({
        description: `added at ${at}`,
        dependsOn: chosen.slice(0, 3),
        ...(task === undefined || intent.pick % 2 === 0 ? {} : { dependents: [task.id] })
      })
    case 1:
      return task && SetTask.make({ taskId: task.id, description: `changed at ${at}` })
    case 2:
      return task && SetDependencies.make({ taskId: task.id, dependsOn: chosen.filter((id) => id < task.id) })
    default:
      return task && RemoveTask.make({ taskId: task.id, rewire: intent.pick % 3 !== 0 })
  }
}
