/**
 * `SessionDiff` and `Lineage` (#15), the pure parts of `planner diff`, `sessions --tree` and the dashboard's lineage:
 * property tests over random plans and logs (the generators of the planner's own property tests), and examples.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { flatten, lineageTree } from "../../src/app/Lineage.js"
import { diffSessions, firstDivergence, sameEvent } from "../../src/app/SessionDiff.js"
import { Initialize, type PlannerCommand } from "../../src/domain/Commands.js"
import { type PlannerEvent, SessionForked } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import { configArb, intentsArb, planArb, resolve, T0 } from "../domain/plannerArbitraries.js"

/** A log made by the planner itself from a random plan and random commands. */
const logArb = fc
  .record({ plan: planArb, config: configArb, intents: intentsArb(40) })
  .map(({ plan, config, intents }) => {
    const log: Array<PlannerEvent> = []
    let state = Planner.initialState
    let at = T0
    const apply = (command: PlannerCommand) => {
      const decided = Planner.decideAndEvolve(state, command)
      if (Either.isLeft(decided)) return
      log.push(...decided.right.events)
      state = decided.right.state
    }
    apply(new Initialize({ request: "generated", tasks: plan, config, at }))
    for (const intent of intents) {
      at += intent._tag === "continue" ? intent.advance : 1
      const command = resolve(state, intent, at)
      if (command !== undefined) apply(command)
    }
    return log
  })

const side = (sessionId: string, events: ReadonlyArray<PlannerEvent>) => ({
  sessionId,
  state: Planner.fold(events),
  events
})

/** The same events at other times: what two runs of one thing look like. */
const shifted = (events: ReadonlyArray<PlannerEvent>, by: number): ReadonlyArray<PlannerEvent> =>
  events.map((event) => {
    const copy = Object.assign(Object.create(Object.getPrototypeOf(event)), event) as Record<string, unknown>
    for (const key of ["at", "leaseExpiresAt", "retryAt", "runAt"]) {
      if (typeof copy[key] === "number") copy[key] = (copy[key] as number) + by
    }
    return copy as unknown as PlannerEvent
  })

describe("SessionDiff", () => {
  it.prop(
    "a session does not differ from itself, nor from a run of the same events at other times",
    [logArb],
    ([log]) => {
      expect(diffSessions(side("a", log), side("b", log)).identical).toBe(true)
      const later = diffSessions(side("a", log), side("b", shifted(log, 60_000)))
      expect(later.divergence).toBeUndefined()
      expect(later.tasks.every((task) => task.change === "same")).toBe(true)
    }
  )

  it.prop(
    "a copy fork parts from its origin right after the copied events, whatever it did next",
    [logArb, fc.nat(), logArb],
    ([log, cut, other]) => {
      const at = 1 + (cut % log.length)
      const fork = [...log.slice(0, at), new SessionForked({ fromSessionId: "a", atSequence: at, at: T0 }), ...other]
      const divergence = firstDivergence(log, fork)
      expect(divergence?.sequence).toBe(at + 1)
      expect(divergence?.b?.type).toBe("SessionForked")
      expect(divergence?.a?.event).toBe(log[at])
    }
  )

  it.prop("a log that is a prefix of another parts where the shorter ends", [logArb, fc.nat()], ([log, cut]) => {
    const at = cut % (log.length + 1)
    const divergence = firstDivergence(log.slice(0, at), log)
    if (at === log.length) expect(divergence).toBeUndefined()
    else expect(divergence).toMatchObject({ sequence: at + 1, a: undefined, b: { event: log[at] } })
  })

  it.prop(
    "every task of either session is listed once, and a differing field is really different",
    [logArb, logArb],
    ([a, b]) => {
      const diff = diffSessions(side("a", a), side("b", b))
      const stateA = Planner.fold(a)
      const stateB = Planner.fold(b)
      expect(diff.tasks.map((task) => task.id)).toEqual(
        Array.from({ length: Math.max(stateA.tasks.length, stateB.tasks.length) }, (_, i) => i + 1)
      )
      for (const task of diff.tasks) {
        const left = stateA.tasks[task.id - 1]
        const right = stateB.tasks[task.id - 1]
        if (left === undefined) expect(task.change).toBe("onlyB")
        else if (right === undefined) expect(task.change).toBe("onlyA")
        else {
          for (const change of task.changes) expect(change.a).not.toEqual(change.b)
          expect(task.change === "same").toBe(
            left.description === right.description &&
              left.kind === right.kind &&
              left.status === right.status &&
              left.result === right.result &&
              JSON.stringify([...left.dependsOn].sort()) === JSON.stringify([...right.dependsOn].sort()) &&
              JSON.stringify(left.clarifications.map((c) => c.answer).filter((x) => x !== undefined)) ===
                JSON.stringify(right.clarifications.map((c) => c.answer).filter((x) => x !== undefined)) &&
              (left.status === "Completed" || left.error === right.error)
          )
        }
      }
    }
  )

  it("times and worker ids are not differences; anything else is", () => {
    const claim = (workerId: string, at: number, attempt = 1) =>
      ({ _tag: "TaskClaimed", taskId: 1, attempt, workerId, leaseExpiresAt: at + 1000, at }) as unknown as PlannerEvent
    expect(sameEvent(claim("w1", 1), claim("w2", 99))).toBe(true)
    expect(sameEvent(claim("w1", 1), claim("w1", 1, 2))).toBe(false)
  })
})

describe("Lineage", () => {
  const origin = (sessionId: string, sequence: number) => ({ sessionId, sequence })
  const items = [
    { id: "c", origin: origin("b", 3) },
    { id: "b", origin: origin("a", 5) },
    { id: "a", origin: undefined },
    { id: "d", origin: origin("elsewhere", 2) },
    { id: "e", origin: origin("a", 7) }
  ]

  it("puts each fork under its origin, keeps the given order, and a fork of a session not given at the top", () => {
    const forest = lineageTree(
      items,
      (item) => item.id,
      (item) => item.origin
    )
    const shown = flatten(forest).map(
      ({ node, depth }) => `${"-".repeat(depth)}${node.item.id}${node.originElsewhere ? "*" : ""}`
    )
    expect(shown).toEqual(["a", "-b", "--c", "-e", "d*"])
  })

  it.prop(
    "every item appears exactly once, even when origins loop",
    [fc.array(fc.tuple(fc.nat(6), fc.option(fc.nat(6))), { maxLength: 12 })],
    ([pairs]) => {
      const unique = [...new Map(pairs.map(([id, from]) => [id, from] as const)).entries()]
      const forest = lineageTree(
        unique,
        ([id]) => String(id),
        ([, from]) => (from === null ? undefined : origin(String(from), 1))
      )
      expect(
        flatten(forest)
          .map(({ node }) => node.item[0])
          .sort()
      ).toEqual(unique.map(([id]) => id).sort())
    }
  )
})
