/**
 * Properties of the planner over random plans and random command sequences.
 *
 * Commands are generated as intents ("complete some in-flight task") resolved against the live state, so sequences
 * reach deep states (retries, clarifications, leases, compaction, completion) instead of being refused at once; raw
 * commands made from the command schema are mixed in to exercise refusals of impossible, late and unknown input.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import { Initialize, type PlannerCommand } from "../../src/domain/Commands.js"
import { defaultConfig, type PlannerConfig } from "../../src/domain/Config.js"
import { currentVersion, decodeEvent, encodeEvent, PlannerEvent, TasksPlanned } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"
import { configArb, type Intent, inFlight, intentsArb, pickFrom, planArb, resolve, T0 } from "./plannerArbitraries.js"

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
    [planArb, configArb, intentsArb(60)],
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
    "a look with the queue's held attempts shows them running on their workers, and changes nothing else",
    [planArb, configArb, intentsArb(40), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 2 }), fc.nat()))],
    ([plan, config, intents, picks]) => {
      const { snapshots } = execute(plan, config, intents)
      for (const { state } of snapshots) {
        const before = state.tasks.map((task) => ({ ...task }))
        // Attempts held: tasks picked at random, at their current attempt or another one.
        const held = picks.flatMap(([pick, offset, lease]) => {
          const task = pickFrom(state.tasks, pick)
          return task === undefined
            ? []
            : [{ taskId: task.id, attempt: task.attempt + offset, workerId: `w${lease % 3}`, leaseExpiresAt: lease }]
        })
        const shown = Planner.withHeldAttempts(state, held)
        expect(shown.index).toEqual(Planner.indexTasks(shown.tasks))
        expect(state.tasks).toEqual(before)
        for (const task of state.tasks) {
          const holder = held.find((attempt) => attempt.taskId === task.id && attempt.attempt === task.attempt)
          const after = Planner.task(shown, task.id)
          if (holder === undefined || task.status !== "Dispatched") expect(after).toBe(task)
          else
            expect(after).toEqual({
              ...task,
              status: "Running",
              lease: { workerId: holder.workerId, expiresAt: holder.leaseExpiresAt }
            })
        }
      }
    },
    { fastCheck: { numRuns: 150 } }
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
    [planArb, configArb, intentsArb(40)],
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
