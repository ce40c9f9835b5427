/**
 * Given/when/then for the planner, after Emmett's `DeciderSpecification`: given the events so far, when a command
 * arrives, then exactly these events (or this refusal).
 */
import { expect } from "@effect/vitest"
import { Either } from "effect"
import type { PlannerCommand } from "../../src/domain/Commands.js"
import type { PlannerError } from "../../src/domain/Errors.js"
import type { PlannerEvent } from "../../src/domain/Events.js"
import * as Planner from "../../src/domain/Planner.js"
import type { TaskPlan } from "../../src/domain/Task.js"

export const given = (...history: ReadonlyArray<PlannerEvent | ReadonlyArray<PlannerEvent>>) => {
  const events = history.flat()
  return {
    when: (command: PlannerCommand) => {
      const state = Planner.fold(events)
      const outcome = Planner.decideEither(state, command)
      return {
        // biome-ignore lint/suspicious/noThenProperty: named after Emmett's given/when/then; this object is never awaited.
        then: (...expected: ReadonlyArray<PlannerEvent>) => {
          if (Either.isLeft(outcome))
            throw new Error(`expected events, got ${outcome.left._tag}: ${outcome.left.message}`)
          expect(outcome.right).toEqual(expected)
          // The decision must also replay: folding the new events onto the old log gives the decided state.
          return Planner.fold([...events, ...outcome.right])
        },
        thenNothing: () => {
          if (Either.isLeft(outcome))
            throw new Error(`expected no events, got ${outcome.left._tag}: ${outcome.left.message}`)
          expect(outcome.right).toEqual([])
        },
        thenFails: (expected: PlannerError) => {
          if (Either.isRight(outcome)) throw new Error(`expected ${expected._tag}, got ${outcome.right.length} events`)
          expect(outcome.left).toEqual(expected)
          expect(outcome.left.message.length).toBeGreaterThan(0)
        }
      }
    }
  }
}

/** Tasks for a test: `[description, dependsOn?, kind?]` each; ids are 1..n. */
export const tasks = (
  ...specs: ReadonlyArray<
    readonly [
      description: string,
      dependsOn?: ReadonlyArray<number>,
      kind?: TaskPlan["kind"],
      attachments?: TaskPlan["attachments"]
    ]
  >
): ReadonlyArray<TaskPlan> =>
  specs.map(([description, dependsOn, kind, attachments], index) => ({
    id: index + 1,
    description,
    kind: kind ?? "Processing",
    dependsOn: dependsOn ?? (index === 0 ? [] : [index]),
    attachments: attachments ?? []
  }))
