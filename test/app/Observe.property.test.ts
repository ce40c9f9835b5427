/**
 * `Runner.observe`'s one stage (`progressAfter`): whatever chunks the store delivers a session's events in, it gives
 * the steps after the given sequence, each with the state its prefix folds to, up to and including the event that
 * finishes the plan, and then ends. Random plans and command sequences (the planner's own arbitraries), random
 * chunkings and random starting sequences.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, FastCheck as fc, Stream } from "effect"
import { progressAfter } from "../../src/app/SessionFollower.js"
import { Initialize, type PlannerCommand } from "../../src/domain/Commands.js"
import type { PlannerEvent } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import type { PlannerEventRecord } from "../../src/infra/PlannerStore.js"
import { configArb, intentsArb, planArb, resolve, T0 } from "../domain/plannerArbitraries.js"

/** The log of a random run: decide and evolve, as the writer does. */
const logOf = (
  tasks: Parameters<typeof Initialize.make>[0]["tasks"],
  config: Parameters<typeof Initialize.make>[0]["config"],
  intents: ReadonlyArray<Parameters<typeof resolve>[1]>
) => {
  const log: Array<PlannerEvent> = []
  let state = Planner.initialState
  const apply = (command: PlannerCommand) => {
    const decided = Planner.decideAndEvolve(state, command)
    if (Either.isLeft(decided)) return
    log.push(...decided.right.events)
    state = decided.right.state
  }
  apply(new Initialize({ request: "generated", tasks, config, at: T0 }))
  let at = T0
  for (const intent of intents) {
    at += intent._tag === "continue" ? intent.advance : 1
    const command = resolve(state, intent, at)
    if (command !== undefined) apply(command)
  }
  return log
}

const recordsOf = (log: ReadonlyArray<PlannerEvent>): ReadonlyArray<PlannerEventRecord> =>
  log.map((event, index) => ({
    position: index + 1,
    sessionId: "s",
    sequence: index + 1,
    event,
    metadata: { eventId: `e${index + 1}` },
    createdAt: T0 + index
  }))

/** Cuts `records` into chunks at the given points. */
const chunked = <A>(records: ReadonlyArray<A>, cuts: ReadonlyArray<number>) => {
  const points = [...new Set(cuts.map((cut) => cut % (records.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Chunk.Chunk<A>> = []
  let from = 0
  for (const point of [...points, records.length]) {
    chunks.push(Chunk.unsafeFromArray(records.slice(from, point)))
    from = point
  }
  return chunks
}

describe("Runner.observe's stage", () => {
  it("gives the steps after a sequence, each with its prefix's state, up to the plan's end, whatever the chunks", () =>
    fc.assert(
      fc.property(
        planArb,
        configArb,
        intentsArb(40),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.nat(),
        (tasks, config, intents, cuts, afterPick) => {
          const records = recordsOf(logOf(tasks, config, intents))
          const after = afterPick % (records.length + 2)
          const steps = Chunk.toReadonlyArray(
            Effect.runSync(
              Stream.runCollect(
                Stream.pipeThroughChannel(
                  Stream.fromChunks(...chunked(records, cuts)),
                  progressAfter(after)(Planner.initialState)
                )
              )
            )
          )
          // What it should give: fold the prefixes, stop at the first finished state.
          const expected: Array<{ readonly sequence: number; readonly state: Planner.PlannerState }> = []
          let state = Planner.initialState
          for (const record of records) {
            state = Planner.evolve(state, record.event)
            if (record.sequence > after) expected.push({ sequence: record.sequence, state })
            if (Planner.isFinished(state)) break
          }
          expect(steps.map((step) => ({ sequence: step.record.sequence, state: step.state }))).toEqual(expected)
        }
      ),
      { numRuns: 150 }
    ))
})
