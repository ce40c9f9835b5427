/**
 * Sub-plans in the app: the writer's reactions that make a tree of sessions move as one (see `domain/SubPlans`).
 *
 * `layer` decorates the writer (`PlannerService`): after a command is recorded, what it means for the rest of the tree
 * is recorded too, through the same decorated writer, so it carries on up and down the tree:
 * - an expanded task was dispatched: its child session is started (its task's description planned as a root's request
 *   is, by the LLM of the process when one is configured, else the parser: `planChild`; with the parent's settings
 *   and executor, `TasksPlanned.subPlanOf` naming the parent);
 * - a child's plan ended: its outcome is reported to the parent's task (`SubPlans.outcomeForParent`);
 * - an expanded task ended without its child (the parent was cancelled, the task skipped or aborted): the child is
 *   cancelled.
 * Each reaction is idempotent (the child's id is a function of its parent and task; a repeated outcome or cancel
 * changes nothing), so `reconcile` can run them all again from the logs: `resume` does, which repairs whatever a
 * process that died between a child's end and its parent's update left undone.
 *
 * Tracing: every event of a tree carries the root's id as its correlation id, and a child's first events name the
 * parent's dispatch of the task as their cause (the parent's outcome names the child's `PlanningCompleted`).
 */
import { Clock, Deferred, Effect, Either, Exit, FiberId, Layer, Option, Schema, Stream } from "effect"
import * as DomainBudget from "../domain/Budget.js"
import { Cancel, HandleExecutorEvent, Initialize, TaskFailed } from "../domain/Commands.js"
import { PlannerError } from "../domain/Errors.js"
import { type PlannerEvent, TaskExpanded, TasksPlanned } from "../domain/Events.js"
import * as Planner from "../domain/Planner.js"
import * as SubPlans from "../domain/SubPlans.js"
import type { TaskState } from "../domain/Task.js"
import type { EventStore, ReadError } from "../infra/EventStore.js"
import { Llm } from "../infra/Llm.js"
import { type PlannerEventRecord, PlannerStore } from "../infra/PlannerStore.js"
import * as SessionSnapshots from "../infra/SessionSnapshots.js"
import * as AppBudget from "./Budget.js"
import {
  type Handled,
  type HandleError,
  make as makeWriter,
  PlannerService,
  type PlannerServiceOptions,
  type PlannerServiceShape,
  type Tracing
} from "./PlannerService.js"
import { planRequest } from "./Planning.js"

/** The root of the tree a session belongs to, from its id alone (child ids are `parent~task`). */
export const rootOf = (sessionId: string): string => sessionId.split("~", 1)[0] ?? sessionId

const isChildId = (sessionId: string): boolean => sessionId.includes("~")

/** Refusals that only mean "already done": a reaction that finds its work done changes nothing. */
const alreadyDone = (error: HandleError): boolean =>
  error._tag === "SessionAlreadyStarted" ||
  error._tag === "SessionFinished" ||
  error._tag === "StaleAttempt" ||
  error._tag === "InvalidTransition"

/** The id of the first of `events` that passes `test`, as stored. */
const idOf = (handled: Handled, test: (event: PlannerEvent) => boolean): string | undefined => {
  const index = handled.events.findIndex(test)
  return index < 0 ? undefined : handled.eventIds[index]
}

/**
 * The moment a session was at right after its event `sequence`, for its children: until its next event (a child's
 * events before that are part of it); the end of time when it has none.
 */
const momentAfter = (store: PlannerStore["Type"], sessionId: string, sequence: number) =>
  Effect.map(store.momentOf(sessionId, sequence + 1), (next) => next ?? Number.POSITIVE_INFINITY)

/**
 * A child's events from before `cutoff` (see `momentAfter`), read no further than its first event at or after it. An
 * event that cannot be read is judged by its stored moment: one past the cutoff does not stop a fork or time travel of
 * the parent from before it. A log with rows missing is never read past.
 */
const eventsBefore = (store: PlannerStore["Type"], sessionId: string, cutoff: number) =>
  Effect.gen(function* () {
    const records: Array<PlannerEventRecord> = []
    const read = yield* Effect.either(
      Stream.runForEach(
        Stream.takeWhile(store.read(sessionId), (record) => record.event.at < cutoff),
        (record) => Effect.sync(() => records.push(record))
      )
    )
    if (Either.isLeft(read)) {
      const error = read.left
      if (error._tag !== "CorruptEvent" || error.expectedSequence !== undefined) return yield* Effect.fail(error)
      const moment = yield* store.momentOf(sessionId, error.sequence)
      if (moment === undefined || moment < cutoff) return yield* Effect.fail(error)
    }
    return records
  })

/**
 * The id of the event that dispatched `taskId` of `parentId` last: what its child's first events name as their cause,
 * whoever starts the child (the writer's reaction, a run serving the tree, `reconcile`).
 */
export const dispatchCause = (store: PlannerStore["Type"], parentId: string, taskId: number) =>
  Effect.map(store.load(parentId), (records) => {
    for (let index = records.length - 1; index >= 0; index--) {
      const record = records[index]
      if (record?.event._tag === "TaskDispatched" && record.event.taskId === taskId) return record.metadata.eventId
    }
    return undefined
  })

/** Wraps a writer so that what a command means for the session's tree is recorded too. */
export const decorate = (inner: PlannerServiceShape, store: PlannerStore["Type"]): PlannerServiceShape => {
  /** Runs a reaction; its failure is logged, not passed on: the command itself was recorded, and `reconcile` retries. */
  const react = (what: string, effect: Effect.Effect<unknown, HandleError>) =>
    effect.pipe(
      Effect.catchAll((error) =>
        alreadyDone(error) ? Effect.void : Effect.logWarning(`sub-plans: ${what} was not recorded: ${error.message}`)
      )
    )

  /** Starts the child of `parentId`'s expanded `task` (nothing when it has started already). */
  const startChild = (parentId: string, parent: Planner.PlannerState, task: TaskState, causationId?: string) =>
    Effect.gen(function* () {
      const childId = task.childSessionId
      if (childId === undefined) return
      // Started already (a repeated dispatch, another process): planning it again would only waste a model call.
      if ((yield* inner.state(childId)).status !== "NotStarted") return
      const at = yield* Clock.currentTimeMillis
      const tracing: Tracing = {
        correlationId: parent.subPlanOf?.rootSessionId ?? parentId,
        ...(causationId === undefined ? {} : { causationId })
      }
      const started = yield* Effect.either(
        execute(childId, yield* planChild(parentId, parent, task, at, inner), tracing)
      )
      if (Either.isRight(started) || alreadyDone(started.left)) return
      // The task's description cannot be planned (it is empty of steps, too large): the task fails, as it would had
      // an executor refused it.
      if (!Schema.is(PlannerError)(started.left)) return yield* Effect.fail(started.left)
      yield* execute(
        parentId,
        new HandleExecutorEvent({
          event: new TaskFailed({
            taskId: task.id,
            error: `the sub-plan could not be planned: ${started.left.message}`,
            retryable: false
          }),
          at
        }),
        tracing
      )
    })

  /** Reports a finished child's outcome to its parent's task. */
  const reportToParent = (childId: string, child: Planner.PlannerState, causationId?: string) =>
    Effect.gen(function* () {
      const link = child.subPlanOf
      const outcome = SubPlans.outcomeForParent(child)
      if (link === undefined || outcome === undefined) return
      yield* execute(link.sessionId, new HandleExecutorEvent({ event: outcome, at: yield* Clock.currentTimeMillis }), {
        correlationId: link.rootSessionId,
        ...(causationId === undefined ? {} : { causationId })
      })
    }).pipe(Effect.annotateLogs({ childId }))

  /** Cancels a child whose task ended without it. */
  const stopChild = (parentId: string, parent: Planner.PlannerState, task: TaskState, causationId?: string) =>
    Effect.gen(function* () {
      const childId = task.childSessionId
      if (childId === undefined) return
      const child = yield* inner.state(childId)
      if (child.status !== "Running") return
      yield* execute(
        childId,
        new Cancel({
          reason: `task ${task.id} of session ${parentId} was ${task.status.toLowerCase()}`,
          at: yield* Clock.currentTimeMillis
        }),
        {
          correlationId: parent.subPlanOf?.rootSessionId ?? parentId,
          ...(causationId === undefined ? {} : { causationId })
        }
      )
    })

  /** What a recorded command means for the tree. */
  const after = (sessionId: string, handled: Handled): Effect.Effect<void> => {
    if (handled.events.length === 0) return Effect.void
    const state = handled.state
    const reactions: Array<Effect.Effect<void>> = []
    const touched = new Set<number>()
    for (const event of handled.events) if ("taskId" in event) touched.add(event.taskId)
    for (const task of SubPlans.childrenInFlight(state)) {
      if (!touched.has(task.id)) continue
      const cause = idOf(handled, (event) => event._tag === "TaskDispatched" && event.taskId === task.id)
      reactions.push(react(`the start of sub-plan ${task.childSessionId}`, startChild(sessionId, state, task, cause)))
    }
    for (const task of SubPlans.childrenToStop(state)) {
      if (!touched.has(task.id)) continue
      const cause = idOf(handled, (event) => event._tag === "TaskStatusUpdated" && event.taskId === task.id)
      reactions.push(react(`the cancel of sub-plan ${task.childSessionId}`, stopChild(sessionId, state, task, cause)))
    }
    if (state.subPlanOf !== undefined && Planner.isFinished(state)) {
      const cause = idOf(handled, (event) => event._tag === "PlanningCompleted")
      if (cause !== undefined) {
        reactions.push(react(`the outcome of sub-plan ${sessionId}`, reportToParent(sessionId, state, cause)))
      }
    }
    return reactions.length === 0 ? Effect.void : Effect.all(reactions, { discard: true })
  }

  /** Every event of a tree is correlated with its root, whoever records it (a worker serving the child alone). */
  const correlated = (sessionId: string, tracing: Tracing): Tracing =>
    tracing.correlationId === undefined && isChildId(sessionId)
      ? { ...tracing, correlationId: rootOf(sessionId) }
      : tracing

  const execute: PlannerServiceShape["execute"] = (sessionId, command, tracing = {}) => {
    const traced = correlated(sessionId, tracing)
    // What a recorded command means for the tree must not be lost with its caller: a worker interrupted right after
    // its report went in (the run it served saw the plan end and stopped it) would otherwise leave a child's outcome
    // unreported and its parent waiting forever. The reactions are idempotent, so running them again after an
    // interrupted first go is harmless.
    return Effect.suspend(() => {
      let recorded: Handled | undefined
      let reacted = false
      const onRecorded = (handled: Handled) => {
        recorded = handled
        traced.onRecorded?.(handled)
      }
      return inner.execute(sessionId, command, { ...traced, onRecorded }).pipe(
        Effect.tap((handled) => after(sessionId, handled)),
        Effect.tap(() => (reacted = true)),
        Effect.onInterrupt(() =>
          recorded === undefined || reacted ? Effect.void : Effect.asVoid(Effect.forkDaemon(after(sessionId, recorded)))
        )
      )
    })
  }

  /** `execute`'s reactions, for each command of the batch that was recorded (the same reasons apply). */
  const executeAll: PlannerServiceShape["executeAll"] = (sessionId, commands, tracing = {}) => {
    const traced = correlated(sessionId, tracing)
    return Effect.suspend(() => {
      const recorded: Array<Handled> = []
      let reacted = false
      const onRecorded = (handled: Handled) => {
        recorded.push(handled)
        traced.onRecorded?.(handled)
      }
      const reactAll = Effect.suspend(() =>
        Effect.forEach(recorded.splice(0), (handled) => after(sessionId, handled), { discard: true })
      )
      return inner.executeAll(sessionId, commands, { ...traced, onRecorded }).pipe(
        Effect.tap(() => reactAll),
        Effect.tap(() => (reacted = true)),
        Effect.onInterrupt(() => (reacted ? Effect.void : Effect.asVoid(Effect.forkDaemon(reactAll))))
      )
    })
  }

  /**
   * A fork of a session with sub-plans gets children of its own: each copied expansion names the fork's child
   * (`INTO~TASK`) instead of the source's, and each child the source had by the fork point is forked in turn at that
   * moment (its events up to the time of the last event copied), its plan naming the new parent and root. A child not
   * started by then is started when the fork runs (`reconcile`).
   *
   * A child pruned since (`planner prune`) has no events to fork. One that had ended by the fork point is shared: the
   * fork's task keeps naming it (its tree and budget read it from its snapshot), and its outcome, from that snapshot,
   * is recorded on the fork's task once every other child exists (what the outcome sets off, such as the cancels of an
   * `abort`, reaches them), rather than a new child running it all again. One that had not ended by then is started
   * afresh, its state at that moment gone with its events.
   */
  const fork: PlannerServiceShape["fork"] = (into, source, origin) =>
    Effect.gen(function* () {
      const fromId = origin.fromSessionId
      const sourceState = Planner.fold(source.map((record) => record.event))
      const children = SubPlans.childrenOf(sourceState)
      // Before anything is written: a fork whose children cannot be cut leaves no half-made session. (The source's
      // next event may be one that cannot be read: a fork before it is the way past it, and only its moment is read.)
      const cutoff = children.length === 0 ? 0 : yield* momentAfter(store, fromId, origin.atSequence)
      const childLogs: Array<{ readonly taskId: number; readonly sessionId: string; readonly records: typeof source }> =
        []
      /** Children pruned since that had ended by the fork point, by session id: their final states. */
      const ended = new Map<string, Planner.PlannerState>()
      for (const child of children) {
        const records = yield* eventsBefore(store, child.sessionId, cutoff)
        if (records.length > 0) {
          childLogs.push({ ...child, records })
          continue
        }
        const pruned = yield* prunedState(child.sessionId)
        const end = yield* endedBy(store, pruned, child, cutoff, { sessionId: fromId, sequence: origin.atSequence })
        if (end !== undefined) ended.set(child.sessionId, end)
      }
      const remap = (childId: string) =>
        ended.has(childId) || !childId.startsWith(`${fromId}~`) ? childId : `${into}${childId.slice(fromId.length)}`
      const rewritten = source.map((record) => {
        const event = record.event
        if (event._tag === "TaskExpanded") {
          return {
            ...record,
            event: new TaskExpanded({ taskId: event.taskId, childSessionId: remap(event.childSessionId), at: event.at })
          }
        }
        return record
      })
      const handled = yield* inner.fork(into, rewritten, origin)
      for (const { records, ...child } of childLogs) {
        const link = SubPlans.childLink(into, handled.state, child.taskId)
        const relinked = records.map((record) => {
          if (record.event._tag !== "TasksPlanned" || record.event.subPlanOf === undefined) return record
          const { _tag: _, ...fields } = record.event
          return {
            ...record,
            event: new TasksPlanned({
              ...fields,
              subPlanOf: { ...link, maxDepth: fields.subPlanOf?.maxDepth ?? link.maxDepth }
            })
          }
        })
        yield* fork(remap(child.sessionId), relinked, {
          fromSessionId: child.sessionId,
          atSequence: relinked.length,
          reason: `forked with its parent ${into}`
        })
      }
      if (ended.size === 0) return handled
      // The shared children's outcomes, once every forked child exists. Recorded as `reconcile` would record them, and
      // marked as coming from the pruned child's snapshot; a crash before this leaves them to `reconcile`.
      const waiting = SubPlans.childrenInFlight(yield* inner.state(into))
      for (const task of waiting) {
        const end = task.childSessionId === undefined ? undefined : ended.get(task.childSessionId)
        const outcome = end === undefined ? undefined : SubPlans.outcomeForParent(end)
        if (outcome === undefined) continue
        const at = yield* Clock.currentTimeMillis
        yield* execute(into, new HandleExecutorEvent({ event: outcome, at }), {
          correlationId: handled.state.subPlanOf?.rootSessionId ?? into,
          extra: { outcomeFromSnapshotOf: task.childSessionId }
        }).pipe(Effect.catchIf(alreadyDone, () => Effect.void))
      }
      return { ...handled, state: yield* inner.state(into) }
    })

  return { ...inner, execute, executeAll, fork }
}

/**
 * Does again, from the logs, whatever the tree under `sessionId` should have had done by its reactions: children
 * started, outcomes reported, cancels carried down. Idempotent; `resume` runs it first. Returns the sessions of the
 * tree, root first.
 */
export const reconcile = (sessionId: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const store = yield* PlannerStore
    const seen: Array<string> = []
    const visit = (id: string): Effect.Effect<void, HandleError> =>
      Effect.gen(function* () {
        if (seen.includes(id)) return
        seen.push(id)
        let state = yield* service.state(id)
        if (state.status === "NotStarted") return
        const at = yield* Clock.currentTimeMillis
        // Children first: an outcome they report changes this session.
        for (const { sessionId: childId } of SubPlans.childrenOf(state)) yield* visit(childId)
        state = yield* service.state(id)
        for (const task of SubPlans.childrenInFlight(state)) {
          const childId = task.childSessionId ?? ""
          // A child pruned since its end (a fork's shared child) is read from its snapshot: never started again.
          const child = yield* stateOrSnapshotOf(service, childId)
          if (child.status === "NotStarted") {
            // Not started: the process died between the dispatch and the child's plan. A `Continue` through the
            // decorated writer would not dispatch it again, so start it here the way the writer would.
            const cause = yield* dispatchCause(store, id, task.id)
            yield* service.execute(childId, yield* planChild(id, state, task, at, service), {
              correlationId: state.subPlanOf?.rootSessionId ?? id,
              ...(cause === undefined ? {} : { causationId: cause })
            })
            yield* visit(childId)
          } else if (Planner.isFinished(child)) {
            const outcome = SubPlans.outcomeForParent(child)
            if (outcome !== undefined) {
              yield* service
                .execute(id, new HandleExecutorEvent({ event: outcome, at }), {
                  correlationId: state.subPlanOf?.rootSessionId ?? id
                })
                .pipe(Effect.catchIf(alreadyDone, () => Effect.void))
            }
          }
        }
        state = yield* service.state(id)
        for (const task of SubPlans.childrenToStop(state)) {
          const childId = task.childSessionId ?? ""
          const child = yield* service.state(childId)
          if (child.status === "Running") {
            yield* service
              .execute(
                childId,
                new Cancel({ reason: `task ${task.id} of session ${id} was ${task.status.toLowerCase()}`, at })
              )
              .pipe(Effect.catchIf(alreadyDone, () => Effect.void))
          }
        }
      })
    yield* visit(sessionId)
    return seen as ReadonlyArray<string>
  }).pipe(Effect.withSpan("SubPlans.reconcile", { attributes: { sessionId } }))

/** The command that starts the child of `parentId`'s expanded `task`, planned by the parser. */
export const childInitialize = (parentId: string, parent: Planner.PlannerState, task: TaskState, at: number) =>
  new Initialize({
    request: task.description,
    attachments: task.attachments,
    source: { _tag: "Parser", reason: `sub-plan of task ${task.id} of session ${parentId}` },
    ...(parent.executor === undefined ? {} : { executor: parent.executor }),
    config: parent.config,
    subPlanOf: SubPlans.childLink(parentId, parent, task.id),
    at
  })

/**
 * The command that starts the child of `parentId`'s expanded `task`, planned as a root is: by the LLM when the caller
 * has one configured (the `Llm` in its context: a worker's, a run's, the server's), its plan call checked against the
 * tree's budget and its usage recorded with the child's plan; by the parser otherwise, or when the model's plan is not
 * usable (the reason is recorded as the plan's source, as for a root). The model's plan arrives inside the command, so
 * replaying the tree never calls the model. Steps the model marks as sub-plans are expanded in turn while the depth
 * bound allows. The child's id is fixed by its parent and task, so a second start (another process, a resume after a
 * crash before the record) is refused as already done: no second child, at most a wasted plan call.
 */
export const planChild = (
  parentId: string,
  parent: Planner.PlannerState,
  task: TaskState,
  at: number,
  service: Pick<PlannerServiceShape, "state">
): Effect.Effect<Initialize> =>
  Effect.suspend(() => {
    // The writer's reaction, a run serving the tree and `reconcile` may all start one child at once: the first plans
    // it, the others are given the same command (and their start is then refused as already done).
    const childId = task.childSessionId ?? SubPlans.childSessionId(parentId, task.id)
    const known = childPlans.get(childId)
    if (known !== undefined) return Deferred.await(known)
    const planned = Deferred.unsafeMake<Initialize>(FiberId.none)
    childPlans.set(childId, planned)
    if (childPlans.size > maxChildPlans) {
      const oldest = childPlans.keys().next().value
      if (oldest !== undefined) childPlans.delete(oldest)
    }
    return planChildNow(parentId, parent, task, at, service).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          // Cut short (its caller was interrupted): the parser's plan for whoever waits, and a fresh try next time.
          if (Exit.isFailure(exit)) childPlans.delete(childId)
          Deferred.unsafeDone(
            planned,
            Exit.isSuccess(exit) ? exit : Exit.succeed(childInitialize(parentId, parent, task, at))
          )
        })
      )
    )
  })

/** The children this process planned lately, by id (a bounded memory: a child is started once, soon after). */
const childPlans = new Map<string, Deferred.Deferred<Initialize>>()
const maxChildPlans = 1_000

const planChildNow = (
  parentId: string,
  parent: Planner.PlannerState,
  task: TaskState,
  at: number,
  service: Pick<PlannerServiceShape, "state">
): Effect.Effect<Initialize> =>
  Effect.gen(function* () {
    const byParser = childInitialize(parentId, parent, task, at)
    const llm = yield* Effect.serviceOption(Llm)
    if (Option.isNone(llm) || llm.value.provider._tag === "Heuristic") return byParser
    const spendable = yield* AppBudget.budgetFor(service, parentId, parent)
    const childId = task.childSessionId ?? SubPlans.childSessionId(parentId, task.id)
    const planned = yield* planRequest(task.description, task.attachments, {
      systemPrompt: parent.config.systemPrompt,
      budget: spendable.budget,
      prices: yield* AppBudget.pricesOrWarn,
      // The call holds its part of the tree's budget until the child's plan records what it used (the writer settles
      // the hold when it records this command: `AppBudget.carry`).
      snapshot: { ...spendable.snapshot, sessionId: childId },
      tree: spendable.tree
    }).pipe(Effect.provideService(Llm, llm.value), Effect.either)
    // A description the planner refuses (empty of steps, too large) is refused by the parser's plan too, with the
    // reason the task then fails with.
    if (Either.isLeft(planned)) return byParser
    const plan = planned.right
    const source =
      plan.source._tag === "Parser"
        ? {
            _tag: "Parser" as const,
            reason: `sub-plan of task ${task.id} of session ${parentId}: ${plan.source.reason}`
          }
        : plan.source
    const link = byParser.subPlanOf ?? SubPlans.childLink(parentId, parent, task.id)
    // The model's own sub-plan steps, while the tree may grow one level more.
    const expand =
      link.depth + 1 > link.maxDepth
        ? []
        : (plan.subPlans ?? []).map((taskId) => ({ taskId, childSessionId: SubPlans.childSessionId(childId, taskId) }))
    const start = new Initialize({
      request: task.description,
      attachments: task.attachments,
      tasks: plan.tasks,
      source,
      ...(plan.usage === undefined || plan.usage.length === 0 ? {} : { usage: plan.usage }),
      ...(parent.executor === undefined ? {} : { executor: parent.executor }),
      config: parent.config,
      subPlanOf: link,
      ...(expand.length === 0 ? {} : { expand }),
      at
    })
    return AppBudget.carry(start, plan.usage ?? [])
  })

/** A session and the sessions under it, as they are now: the tree `planner show` and the dashboard draw. */
export interface Tree {
  readonly sessionId: string
  readonly state: Planner.PlannerState
  /** By the parent's task id. */
  readonly children: ReadonlyMap<number, Tree>
  /**
   * Time travel (`treeAt`): the tasks whose child had started by that moment and was pruned since, before it ended
   * then: its state at that moment went with its events, so it is not among `children`, and not "not started" either.
   */
  readonly prunedSince?: ReadonlyArray<number>
}

/**
 * A session of a tree, read through the writer; one whose log is empty may have been pruned once its tree finished
 * (`planner prune`): its final state is then its snapshot's (one that cannot be read leaves it as not started).
 */
const stateOrSnapshot = (id: string) => Effect.flatMap(PlannerService, (service) => stateOrSnapshotOf(service, id))

/** `stateOrSnapshot` through a writer at hand. */
const stateOrSnapshotOf = (service: Pick<PlannerServiceShape, "state">, id: string) =>
  Effect.flatMap(service.state(id), (current) =>
    SessionSnapshots.orSnapshot(id, current).pipe(Effect.catchTag("SnapshotUnreadable", () => Effect.succeed(current)))
  )

/**
 * The tree under `sessionId`, read through the writer; with `atSequence`, the root as it was after that event and
 * each child as it was at the same moment (its events recorded no later than the root's event `atSequence`).
 */
export const tree = (sessionId: string, state?: Planner.PlannerState) =>
  Effect.gen(function* () {
    const build = (id: string, known?: Planner.PlannerState): Effect.Effect<Tree, HandleError, PlannerService> =>
      Effect.gen(function* () {
        const current = known ?? (yield* stateOrSnapshot(id))
        const children = new Map<number, Tree>()
        for (const child of SubPlans.childrenOf(current)) {
          const sub = yield* build(child.sessionId)
          if (sub.state.status !== "NotStarted") children.set(child.taskId, sub)
        }
        return { sessionId: id, state: current, children }
      })
    return yield* build(sessionId, state)
  })

/**
 * What a whole tree spent against its root's budget (see `Budget.treeBudget`), and how many sub-plans it has; undefined
 * for a session without sub-plans or without any spend or limit.
 */
export const treeSpend = (
  whole: Tree
): { readonly budget: DomainBudget.BudgetState; readonly subPlans: number } | undefined => {
  const members: Array<DomainBudget.TreeMember> = []
  const walk = (node: Tree) => {
    for (const child of node.children.values()) {
      members.push({
        budget: child.state.budget,
        configTokens: child.state.config.budgetTokens,
        configUsd: child.state.config.budgetUsd
      })
      walk(child)
    }
  }
  walk(whole)
  if (members.length === 0) return undefined
  const budget = DomainBudget.treeBudget(whole.state.budget, members)
  return budget === undefined ? undefined : { budget, subPlans: members.length }
}

/**
 * The sessions of a tree where task `taskId` waits for an answer: `sessionId` itself when its task does; else the one
 * session under it with such a task. None, or several (then the caller must name the session), are reported as such.
 */
export const findQuestion = (sessionId: string, taskId: number) =>
  Effect.gen(function* () {
    const whole = yield* tree(sessionId)
    const own = Planner.task(whole.state, taskId)
    if (own?.status === "NeedsClarification") return Option.some(sessionId)
    const found: Array<string> = []
    const walk = (node: Tree) => {
      for (const child of node.children.values()) {
        if (Planner.task(child.state, taskId)?.status === "NeedsClarification") found.push(child.sessionId)
        walk(child)
      }
    }
    walk(whole)
    return found.length === 1 ? Option.some(found[0] ?? sessionId) : Option.none<string>()
  })

/** The writer, decorated for sub-plans: what the CLI, the server and the library use. */
export const layer = (
  options: PlannerServiceOptions = {}
): Layer.Layer<PlannerService, never, PlannerStore | EventStore> =>
  Layer.effect(
    PlannerService,
    Effect.flatMap(PlannerStore, (store) => Effect.map(makeWriter(options), (inner) => decorate(inner, store)))
  )

/**
 * A child pruned since (its events gone; `end`, its snapshot, see `prunedState`), when it had ended by `cutoff`, a
 * moment of its parent (see `momentAfter`): its final state. A child ends before its task's outcome is recorded,
 * possibly within the same millisecond: when the parent's event right after the moment (`next`) is its task's
 * outcome, it had ended.
 */
const endedBy = (
  store: PlannerStore["Type"],
  end: Planner.PlannerState | undefined,
  child: { readonly taskId: number },
  cutoff: number,
  next?: { readonly sessionId: string; readonly sequence: number }
) =>
  Effect.gen(function* () {
    if (end?.finishedAt === undefined) return undefined
    if (end.finishedAt < cutoff) return end
    if (next === undefined) return undefined
    const [record] = yield* store
      .load(next.sessionId, { fromSequence: next.sequence + 1, toSequence: next.sequence + 1 })
      .pipe(Effect.orElseSucceed(() => []))
    return record?.event._tag === "TaskStatusUpdated" && record.event.taskId === child.taskId ? end : undefined
  })

/** A pruned session's final state, from its snapshot; undefined when it has none, or none that can be read. */
const prunedState = (sessionId: string) =>
  SessionSnapshots.load(sessionId).pipe(
    Effect.map(Option.getOrUndefined),
    Effect.catchTag("SnapshotUnreadable", () => Effect.succeed(undefined))
  )

/**
 * The tree under `sessionId` as it was right after its event `sequence` (time travel on a tree): the root folded to
 * that event, and each child folded from the events it had recorded before the root's next event (the events of a
 * tree are recorded in time order along each parent-child link: a child's start after its task's dispatch, its end
 * before the task's outcome). A child started later is not there. A child pruned since (`planner prune`) is there
 * with its final snapshot when it had finished by then; one that had started and not finished by then is named in
 * `prunedSince`, its state at that moment gone with its events.
 */
export const treeAt = (sessionId: string, sequence: number) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore
    const records = yield* store.load(sessionId, { toSequence: sequence })
    // Read only when there are children to cut.
    const cutoff = yield* Effect.cached(momentAfter(store, sessionId, sequence))
    const build = (id: string, state: Planner.PlannerState): Effect.Effect<Tree, ReadError, PlannerStore> =>
      Effect.gen(function* () {
        const children = new Map<number, Tree>()
        const prunedSince: Array<number> = []
        for (const child of SubPlans.childrenOf(state)) {
          const moment = yield* cutoff
          const events = (yield* eventsBefore(store, child.sessionId, moment)).map((record) => record.event)
          if (events.length > 0) {
            children.set(child.taskId, yield* build(child.sessionId, Planner.fold(events)))
            continue
          }
          // The root's own next event tells a child that ended within the moment's millisecond; deeper, the moment.
          const next = id === sessionId ? { sessionId, sequence } : undefined
          const pruned = yield* prunedState(child.sessionId)
          const end = yield* endedBy(store, pruned, child, moment, next)
          if (end !== undefined) {
            children.set(child.taskId, yield* build(child.sessionId, end))
            continue
          }
          if (pruned?.startedAt !== undefined && pruned.startedAt < moment) prunedSince.push(child.taskId)
        }
        return { sessionId: id, state, children, ...(prunedSince.length === 0 ? {} : { prunedSince }) }
      })
    return yield* build(sessionId, Planner.fold(records.map((record) => record.event)))
  })
