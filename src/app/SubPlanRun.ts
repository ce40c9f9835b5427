/**
 * Running a tree of sessions as one (`planner run`, `resume`, `answer` on a plan with sub-plans): `Runner.run` for the
 * root, and beside it a `Runner.run` for every child session as it starts, each with a worker of this process serving
 * it (unless workers elsewhere do) and its questions asked the same way as the root's. The run ends when the root's
 * plan ends (a child's end reaches its parent's task through the writer, see `SubPlans`), or when the whole tree waits
 * for answers nobody here gave: every session still running has nothing in flight but questions and children that
 * wait in turn.
 */
import { Clock, Deferred, Effect } from "effect"
import * as Planner from "../domain/Planner.js"
import * as SubPlans from "../domain/SubPlans.js"
import type { ReadError } from "../infra/EventStore.js"
import { PlannerStore } from "../infra/PlannerStore.js"
import { raceFirstScoped } from "../infra/Racing.js"
import { PlannerService } from "./PlannerService.js"
import * as Runner from "./Runner.js"
import { dispatchCause, planChild, reconcile, type Tree, tree } from "./SubPlans.js"

/** True when nothing in the tree under `sessionId` can move without an answer (see the module comment). */
export const isStuck = (sessionId: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const visit = (id: string): Effect.Effect<boolean, ReadError> =>
      Effect.gen(function* () {
        const state = yield* service.state(id)
        if (state.status !== "Running") return false
        const { counts } = state.index
        const children = SubPlans.childrenInFlight(state)
        if (counts.Dispatched + counts.Running + counts.RetryScheduled > children.length) return false
        for (const child of children) {
          if (!(yield* visit(child.childSessionId ?? ""))) return false
        }
        return counts.NeedsClarification > 0 || children.length > 0
      })
    return yield* visit(sessionId)
  })

/** `Runner.run` over the whole tree under `sessionId`; the result is the root's. */
export const runTree = (sessionId: string, options: Runner.RunOptions = {}) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const store = yield* PlannerStore
    // What a process that died left undone in the tree (a child not started, an outcome not reported) is done first.
    yield* reconcile(sessionId)
    const served = new Set<string>([sessionId])
    /** Children whose own run ended waiting: once the whole tree is stuck, the run ends waiting. */
    let gaveUp = 0
    const stuck = yield* Deferred.make<void>()
    const checkStuck = Effect.suspend(() =>
      gaveUp === 0
        ? Effect.void
        : Effect.flatMap(isStuck(sessionId), (yes) => (yes ? Deferred.succeed(stuck, undefined) : Effect.void))
    ).pipe(
      Effect.catchAll(() => Effect.void),
      Effect.provideService(PlannerService, service)
    )
    const { onProgress, onClarification, ...rest } = options

    /** Serves the children `state` waits for that nobody here serves yet. */
    const serve = (parentId: string, state: Planner.PlannerState): Effect.Effect<void, never, never> =>
      Effect.forEach(
        SubPlans.childrenInFlight(state),
        (task) => {
          const childId = task.childSessionId ?? ""
          if (served.has(childId)) return Effect.void
          served.add(childId)
          return Effect.asVoid(Effect.forkIn(Effect.provide(runChild(parentId, state, task, childId), services), scope))
        },
        { discard: true }
      )

    const runChild = (
      parentId: string,
      parent: Planner.PlannerState,
      task: NonNullable<ReturnType<typeof Planner.task>>,
      childId: string
    ) =>
      Effect.gen(function* () {
        // The writer starts the child when it records the dispatch, perhaps not yet: starting it again changes nothing.
        if ((yield* service.state(childId)).status === "NotStarted") {
          const cause = yield* dispatchCause(store, parentId, task.id)
          const start = yield* planChild(parentId, parent, task, yield* Clock.currentTimeMillis, service)
          yield* service
            .execute(childId, start, {
              correlationId: parent.subPlanOf?.rootSessionId ?? parentId,
              ...(cause === undefined ? {} : { causationId: cause })
            })
            .pipe(Effect.ignore)
        }
        const result = yield* Runner.run(childId, {
          ...rest,
          onProgress: (progress) => serve(childId, progress.state),
          ...(onClarification === undefined
            ? {}
            : {
                onClarification: (child, question) =>
                  onClarification(child, `(sub-plan ${childId} of task ${task.id}) ${question}`)
              })
        })
        if (result.waiting) {
          gaveUp += 1
          yield* checkStuck
        }
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning(`sub-plan ${childId} stopped being served`, cause)),
        Effect.provideService(PlannerService, service)
      )

    const scope = yield* Effect.scope
    // The progress callbacks have no requirements: the children's runs get this run's services.
    const services = yield* Effect.context<Effect.Effect.Context<ReturnType<typeof Runner.run>> | PlannerService>()
    const initial = yield* service.state(sessionId)
    yield* serve(sessionId, initial)
    const root = Runner.run(sessionId, {
      ...rest,
      ...(onClarification === undefined ? {} : { onClarification }),
      onProgress: (progress) =>
        Effect.zipRight(
          onProgress === undefined ? Effect.void : onProgress(progress),
          Effect.zipRight(serve(sessionId, progress.state), checkStuck)
        )
    })
    return yield* raceFirstScoped(
      root,
      Effect.zipRight(
        Deferred.await(stuck),
        Effect.map(
          service.state(sessionId),
          (state) => ({ sessionId, state, waiting: true }) satisfies Runner.RunResult
        )
      )
    )
  }).pipe(Effect.scoped, Effect.withSpan("SubPlanRun.runTree", { attributes: { sessionId } }))

/** A question waiting for an answer inside a sub-plan of a tree. */
export interface TreeQuestion {
  readonly sessionId: string
  readonly taskId: number
  readonly question: string
}

/** The questions waiting in the sub-plans under `sessionId` (not its own: those the session's state shows). */
export const questionsBelow = (sessionId: string) =>
  Effect.gen(function* () {
    const whole = yield* tree(sessionId)
    const found: Array<TreeQuestion> = []
    const walk = (node: Tree) => {
      for (const child of node.children.values()) {
        for (const task of Planner.pendingClarifications(child.state)) {
          found.push({
            sessionId: child.sessionId,
            taskId: task.id,
            question: task.clarifications.at(-1)?.question ?? ""
          })
        }
        walk(child)
      }
    }
    walk(whole)
    return found as ReadonlyArray<TreeQuestion>
  })
