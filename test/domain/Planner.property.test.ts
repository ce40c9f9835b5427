/**
 * Properties of the planner over random plans and random command sequences.
 *
 * Commands are generated as intents ("complete some in-flight task") resolved against the live state, so sequences
 * reach deep states (retries, clarifications, leases, compaction, completion) instead of being refused at once; raw
 * commands made from the command schema are mixed in to exercise refusals of impossible, late and unknown input.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import {
  AbandonTask,
  Cancel,
  ClaimTask,
  ClarificationProvided,
  CompactContext,
  Continue,
  ExtendLease,
  HandleExecutorEvent,
  Initialize,
  NeedsClarification,
  PlannerCommand,
  ReleaseTask,
  TaskCompleted,
  TaskFailed
} from "../../src/domain/Commands.js"
import { defaultConfig, PlannerConfig } from "../../src/domain/Config.js"
import { currentVersion, decodeEvent, encodeEvent, PlannerEvent, TasksPlanned } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import { Attachment, NodeKind, type TaskPlan, type TaskState } from "../../src/domain/Task.js"

const T0 = 1_700_000_000_000

const planArb: fc.Arbitrary<ReadonlyArray<TaskPlan>> = fc
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

const configArb = Arbitrary.make(PlannerConfig).map((config) => ({
  ...config,
  maxParallel: 1 + (config.maxParallel % 3),
  maxAttempts: 1 + (config.maxAttempts % 3),
  leaseMs: 1 + (config.leaseMs % 50_000)
}))

type Intent =
  | {
      readonly _tag: "complete" | "fail" | "ask" | "answer" | "claim" | "extend" | "release" | "abandon"
      readonly pick: number
      readonly flag: boolean
    }
  | { readonly _tag: "continue"; readonly advance: number }
  | { readonly _tag: "compact"; readonly count: number }
  | { readonly _tag: "cancel" }
  | { readonly _tag: "raw"; readonly command: PlannerCommand }

const intentArb: fc.Arbitrary<Intent> = fc.oneof(
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
  { weight: 2, arbitrary: Arbitrary.make(PlannerCommand).map((command) => ({ _tag: "raw" as const, command })) }
)

const pickFrom = <A>(items: ReadonlyArray<A>, pick: number): A | undefined =>
  items.length === 0 ? undefined : items[pick % items.length]

const inFlight = (task: TaskState) => task.status === "Dispatched" || task.status === "Running"
const workers = ["w1", "w2"]

/** Turns an intent into a concrete command for the current state, or undefined when it has nothing to act on. */
const resolve = (state: Planner.PlannerState, intent: Intent, at: number): PlannerCommand | undefined => {
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
    case "raw":
      return intent.command
  }
}

interface Run {
  readonly log: ReadonlyArray<PlannerEvent>
  /** The live state right after each command, with the log length at that point. */
  readonly snapshots: ReadonlyArray<{ readonly length: number; readonly state: Planner.PlannerState }>
}

/** Runs commands the way a runner does: decide, then evolve the live state by the events decided. */
const execute = (plan: ReadonlyArray<TaskPlan>, config: PlannerConfig, intents: ReadonlyArray<Intent>): Run => {
  const log: Array<PlannerEvent> = []
  const snapshots: Array<{ length: number; state: Planner.PlannerState }> = []
  let live = Planner.initialState
  let at = T0
  const apply = (command: PlannerCommand) => {
    const outcome = Planner.decideEither(live, command)
    if (Either.isLeft(outcome)) {
      // A refusal is typed, explains itself, and changes nothing.
      expect(outcome.left.message.length).toBeGreaterThan(0)
      return
    }
    const withState = Either.getOrThrow(Planner.decideAndEvolve(live, command))
    for (const event of outcome.right) {
      checkEvent(live, event, log)
      live = Planner.evolve(live, event)
      log.push(event)
    }
    // The state a decision hands back is the one its events fold to.
    expect(withState.events).toEqual(outcome.right)
    expect(withState.state).toEqual(live)
    checkState(live)
    snapshots.push({ length: log.length, state: live })
  }
  apply(new Initialize({ request: "generated", tasks: plan, config, at }))
  for (const intent of intents) {
    at += intent._tag === "continue" ? intent.advance : 1
    const command = resolve(live, intent, at)
    if (command !== undefined) apply(command)
  }
  return { log, snapshots }
}

/** Invariants of each event, checked against the state just before it. */
const checkEvent = (before: Planner.PlannerState, event: PlannerEvent, log: ReadonlyArray<PlannerEvent>) => {
  expect(Planner.isFinished(before), `${event._tag} after the plan ended`).toBe(false)
  if (event._tag === "TaskDispatched") {
    const task = Planner.task(before, event.taskId)
    for (const dep of task?.dependsOn ?? []) {
      expect(Planner.task(before, dep)?.status, `task ${event.taskId} dispatched before dependency ${dep}`).toBe(
        "Completed"
      )
    }
    expect(event.attempt).toBe((task?.attempt ?? 0) + 1)
  }
  if (event._tag === "TaskStatusUpdated" && event.status === "Completed") {
    const already = log.some(
      (e) => e._tag === "TaskStatusUpdated" && e.status === "Completed" && e.taskId === event.taskId
    )
    expect(already, `task ${event.taskId} completed twice`).toBe(false)
  }
  if (event._tag === "PlanningCompleted") {
    expect(
      log.some((e) => e._tag === "PlanningCompleted"),
      "PlanningCompleted twice"
    ).toBe(false)
  }
}

const checkState = (state: Planner.PlannerState) => {
  // The index `evolve` keeps up to date is the one built from the tasks themselves.
  expect(state.index).toEqual(Planner.indexTasks(state.tasks))
  const running = state.tasks.filter(inFlight).length
  expect(running).toBeLessThanOrEqual(state.config.maxParallel)
  if (Planner.isFinished(state)) {
    expect(state.tasks.every((task) => ["Completed", "Failed", "Skipped", "Cancelled"].includes(task.status))).toBe(
      true
    )
  }
}

const roundTrip = (event: PlannerEvent) => {
  const encoded = encodeEvent(event)
  const stored = JSON.parse(JSON.stringify({ type: encoded.type, version: encoded.version, data: encoded.data }))
  return decodeEvent(stored.type, stored.version, stored.data)
}

/** Marks a value to remove in `replaceAt`. */
const dropped = Symbol("dropped")
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
type JsonPath = ReadonlyArray<string | number>
/** Every path in a JSON value, the empty path (the value itself) included. */
const jsonPaths = (value: unknown, path: JsonPath = []): Array<JsonPath> => [
  path,
  ...(Array.isArray(value)
    ? value.flatMap((item, index) => jsonPaths(item, [...path, index]))
    : isObject(value)
      ? Object.entries(value).flatMap(([key, item]) => jsonPaths(item, [...path, key]))
      : [])
]
const valueAt = (value: unknown, path: JsonPath): unknown =>
  path.reduce<unknown>((current, key) => (current as Record<string | number, unknown>)[key], value)
/** A copy of `value` with the value at `path` replaced (or removed, for `dropped`). */
const replaceAt = (value: unknown, path: JsonPath, replacement: unknown): unknown => {
  const [key, ...rest] = path
  if (key === undefined) return replacement
  if (Array.isArray(value) && typeof key === "number") {
    const next = replaceAt(value[key], rest, replacement)
    return rest.length === 0 && next === dropped
      ? value.filter((_, index) => index !== key)
      : value.map((item, index) => (index === key ? next : item))
  }
  const record = value as Record<string, unknown>
  const next = replaceAt(record[key], rest, replacement)
  return rest.length === 0 && next === dropped
    ? Object.fromEntries(Object.entries(record).filter(([name]) => name !== key))
    : { ...record, [key]: next }
}

describe("Planner properties", () => {
  it.prop(
    "fold of the log equals the live state after every command, and every prefix replays to the state of its time",
    [planArb, configArb, fc.array(intentArb, { maxLength: 60 })],
    ([plan, config, intents]) => {
      const { log, snapshots } = execute(plan, config, intents)
      for (const { length, state } of snapshots) {
        expect(Planner.fold(log.slice(0, length))).toEqual(state)
      }
      expect(Planner.fold(log)).toEqual(snapshots.at(-1)?.state)
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "the task index stays the one built from the tasks under any events, in any order (a foreign log included)",
    [
      planArb,
      fc.array(
        fc.tuple(
          Arbitrary.make(PlannerEvent).filter((event) => "taskId" in event),
          fc.nat()
        ),
        { maxLength: 80 }
      )
    ],
    ([plan, events]) => {
      let state = Planner.evolve(
        Planner.initialState,
        new TasksPlanned({
          request: "generated",
          attachments: [],
          tasks: plan,
          config: defaultConfig,
          source: { _tag: "Parser" },
          at: T0
        })
      )
      for (const [event, pick] of events) {
        // Aimed at the plan's own tasks: an event about a task that does not exist changes nothing.
        const aimed = Object.assign(Object.create(Object.getPrototypeOf(event)), event, {
          taskId: (pick % plan.length) + 1
        }) as PlannerEvent
        state = Planner.evolve(state, aimed)
        expect(state.index).toEqual(Planner.indexTasks(state.tasks))
      }
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "a run replays identically after every event is stored as JSON and read back",
    [planArb, configArb, fc.array(intentArb, { maxLength: 40 })],
    ([plan, config, intents]) => {
      const { log } = execute(plan, config, intents)
      const decoded = log.map((event) => Either.getOrThrow(roundTrip(event)))
      expect(decoded).toEqual(log)
      expect(Planner.fold(decoded)).toEqual(Planner.fold(log))
    },
    { fastCheck: { numRuns: 100 } }
  )

  it.prop("every event made from the schemas survives a JSON round trip", [Arbitrary.make(PlannerEvent)], ([event]) => {
    expect(Either.getOrThrow(roundTrip(event))).toEqual(event)
  })

  it.prop(
    "decoding a stored event gives what the event's own schema gives: the same class instance, or a failure",
    [
      Arbitrary.make(PlannerEvent).chain((event) => {
        const data: unknown = JSON.parse(JSON.stringify(encodeEvent(event).data))
        // Also the payload with one value anywhere in it (a field, an array element) dropped, replaced by a value
        // of another type or an out-of-range number, or given a key no schema names.
        const paths = jsonPaths(data)
        return fc.oneof(
          fc.constant({ type: event._tag, data }),
          fc
            .tuple(fc.constantFrom(...paths), fc.constantFrom<unknown>(dropped, null, "text", true, -1, 0, 1.5, [], {}))
            .map(([path, value]) => ({ type: event._tag, data: replaceAt(data, path, value) })),
          fc
            .constantFrom(...paths.filter((path) => isObject(valueAt(data, path))))
            .map((path) => ({ type: event._tag, data: replaceAt(data, [...path, "unexpected"], 1) }))
        )
      })
    ],
    ([{ type, data }]) => {
      const ours = decodeEvent(type, currentVersion(type), data)
      const schema = Schema.decodeUnknownEither(PlannerEvent)(data)
      expect(Either.isRight(ours), JSON.stringify(data)).toBe(Either.isRight(schema))
      if (Either.isRight(ours) && Either.isRight(schema)) {
        expect(ours.right).toStrictEqual(schema.right)
        expect(Object.getPrototypeOf(ours.right)).toBe(Object.getPrototypeOf(schema.right))
        expect(Object.keys(ours.right)).toEqual(Object.keys(schema.right))
      }
    },
    { fastCheck: { numRuns: 2_000 } }
  )

  it.prop(
    "a plan that is driven to the end completes exactly once, with every task final",
    [planArb, configArb],
    ([plan, config]) => {
      // Drive honestly: keep completing whatever is in flight, answering questions, and continuing past retries.
      const intents: Array<Intent> = []
      for (let i = 0; i < plan.length * 4; i++) {
        intents.push(
          { _tag: "answer", pick: i, flag: true },
          { _tag: "complete", pick: i, flag: false },
          { _tag: "continue", advance: 120_000 }
        )
      }
      const { log, snapshots } = execute(plan, config, intents)
      const final = snapshots.at(-1)?.state
      expect(final?.status).toBe("Succeeded")
      expect(log.filter((event) => event._tag === "PlanningCompleted").length).toBe(1)
    },
    { fastCheck: { numRuns: 100 } }
  )
})
