/**
 * Follows one session for `Runner.run`: its events as they are stored, each with the session's state right after it.
 * It subscribes to that session's stream alone (the store filters by session), never to the whole store, as the
 * dashboard's live view (`Server`) and the library's `Runner.observe` do on their own (`progressAfter` is the one
 * stage `Runner.observe` runs over the store's stream).
 */
import { Channel, Chunk, Effect, Stream } from "effect"
import * as Planner from "../domain/Planner.js"
import { EventStore, type ReadError } from "../infra/EventStore.js"
import { type PlannerEventRecord, PlannerStore } from "../infra/PlannerStore.js"

/** One step of a session's progress: an event as stored, and the session right after it. */
export interface Progress {
  readonly record: PlannerEventRecord
  readonly state: Planner.PlannerState
}

/** Where following starts: a state of the session, and a global position taken before that state was read. */
export interface FollowFrom {
  readonly state: Planner.PlannerState
  readonly afterPosition: number
}

/**
 * The session's steps after `from.state`, in the chunks the store delivers them: the runner looks at the state once
 * per chunk (`Stream.runForEachChunk`), so a stage that rechunks or buffers here would cost it a look per event.
 * Events the state already holds are skipped by sequence. One stage over the store's stream: it runs for every event
 * of a followed session.
 */
export const follow = (sessionId: string, from: FollowFrom): Stream.Stream<Progress, ReadError, PlannerStore> =>
  Stream.unwrap(
    Effect.map(PlannerStore, (store) => {
      let followed = from.state
      return store.subscribe({ sessionId, afterPosition: from.afterPosition }).pipe(
        Stream.mapChunks((chunk) => {
          const steps: Array<Progress> = []
          for (const record of chunk) {
            if (record.sequence <= followed.version) continue
            followed = Planner.evolve(followed, record.event)
            steps.push({ record, state: followed })
          }
          return Chunk.unsafeFromArray(steps)
        })
      )
    })
  )

/**
 * Folds a session's events from `state` on, chunk by chunk, into the steps after sequence `after`, up to and including
 * the step that finishes the plan, and ends there (also when that step is at or before `after`): one stage over the
 * store's stream, a pass per chunk (a fold, a filter and a cut as three stages cost the followed session's every chunk
 * three times the fiber work). `Runner.observe` is it over the session's whole log.
 */
export const progressAfter = (after: number) => {
  const step = (
    state: Planner.PlannerState
  ): Channel.Channel<Chunk.Chunk<Progress>, Chunk.Chunk<PlannerEventRecord>, ReadError, ReadError, unknown, unknown> =>
    Channel.readWithCause({
      onInput: (records: Chunk.Chunk<PlannerEventRecord>) => {
        const steps: Array<Progress> = []
        let current = state
        for (const record of records) {
          current = Planner.evolve(current, record.event)
          if (record.sequence > after) steps.push({ record, state: current })
          // The plan is over (a finished session takes no more commands): nothing more comes, shown or not.
          if (Planner.isFinished(current)) {
            return steps.length === 0 ? Channel.void : Channel.write(Chunk.unsafeFromArray(steps))
          }
        }
        return steps.length === 0
          ? step(current)
          : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(steps)), step(current))
      },
      onFailure: Channel.failCause,
      onDone: () => Channel.void
    })
  return step
}

/** A consistent starting point: the store's head position, then the session's state (so nothing falls between). */
export const startingPoint = <E, R>(state: Effect.Effect<Planner.PlannerState, E, R>) =>
  Effect.gen(function* () {
    const afterPosition = yield* Effect.flatMap(EventStore, (events) => events.headPosition)
    return { afterPosition, state: yield* state } satisfies FollowFrom
  })
