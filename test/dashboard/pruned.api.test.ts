/**
 * Pruned sessions (`planner prune`: events removed, final state kept) in the dashboard's API, as `planner sessions` and
 * `planner show` have them: listed and marked, filtered, sorted and paged with the others, shown from their snapshot;
 * what needs their events answers 410 saying they were pruned; a snapshot that cannot be read is listed as unreadable
 * without hiding the others. Against the real server and a real SQLite store.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { subPlanLines } from "../../src/app/cli/TreeRender.js"
import * as Fork from "../../src/app/Fork.js"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as SubPlanApi from "../../src/app/SubPlanApi.js"
import * as SubPlanRun from "../../src/app/SubPlanRun.js"
import * as SubPlans from "../../src/app/SubPlans.js"
import * as Planner from "../../src/domain/Planner.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import * as SessionSnapshots from "../../src/infra/SessionSnapshots.js"
import { freshSqliteFile } from "../infra/fixtures/databases.js"
import { byTheClock } from "../support/clock.js"
import { fetchJson, plannerOnFile, plannerWithScript, postJson, startPlan, startServer, task } from "./fixtures.js"
import { startTree } from "./subplanFixtures.js"

const script = {
  rules: [
    { match: "expiry", outcomes: [{ ask: "How long should cookies live?" }] },
    { match: "flaky", outcomes: [{ fail: "the disk is full", retryable: false }] }
  ],
  default: { complete: "done: {description}" }
}

interface Listed {
  readonly id: string
  readonly status: string
  readonly pruned?: boolean
  readonly problem?: string
  readonly request: string
  readonly counts: Record<string, number>
}

interface Page {
  readonly sessions: ReadonlyArray<Listed>
  readonly total: number
  readonly all: number
}

/** The error of an answer; one that is not an error says what it was instead, so that a failure reads well. */
const errorOf = (body: unknown) =>
  (body as { error?: { tag: string; message: string } }).error ?? {
    tag: "(not an error)",
    message: JSON.stringify(body).slice(0, 300)
  }

/** A session of one task run to its end. */
const finished = (request: string) =>
  Effect.gen(function* () {
    const sessionId = yield* startPlan(request, [task(1, "Processing", request)])
    expect((yield* Runner.run(sessionId)).state.status).toBe("Succeeded")
    // Sessions begun in different milliseconds, so that their order is the order made.
    yield* Effect.sleep("5 millis")
    return sessionId
  })

describe("pruned sessions in the dashboard API", () => {
  it.scopedLive(
    "are listed, marked and filtered with the others, shown from their snapshot, and 410 where events are needed",
    () =>
      Effect.gen(function* () {
        const login = yield* finished("Write the login page")
        const report = yield* finished("Summarise the report")
        // Still running (waiting for an answer): not pruned.
        const running = yield* startPlan("Set the cookie expiry", [task(1, "Analysis", "Set the cookie expiry")])
        expect((yield* Runner.run(running)).waiting).toBe(true)
        const result = yield* SessionSnapshots.prune(Number.MAX_SAFE_INTEGER)
        expect(result.pruned.map((one) => one.sessionId).sort()).toEqual([login, report].sort())
        const { url } = yield* startServer
        const list = (query = "") =>
          Effect.map(fetchJson(`${url}/api/sessions${query}`), (response) => {
            expect(response.status, query).toBe(200)
            return response.body as Page
          })

        const all = yield* list()
        expect(all.total).toBe(3)
        expect(all.sessions.map((session) => session.id)).toEqual([running, report, login])
        expect(all.sessions.find((session) => session.id === login)).toMatchObject({
          status: "Succeeded",
          pruned: true,
          request: "Write the login page",
          counts: { Completed: 1 }
        })
        expect(all.sessions.find((session) => session.id === running)?.pruned).toBeUndefined()
        expect((yield* list("?sort=oldest")).sessions.map((session) => session.id)).toEqual([login, report, running])
        const succeeded = yield* list("?status=Succeeded")
        expect([succeeded.total, succeeded.all]).toEqual([2, 3])
        expect((yield* list("?q=login")).sessions.map((session) => session.id)).toEqual([login])
        const second = yield* list("?limit=1&offset=1")
        expect(second.sessions.map((session) => session.id)).toEqual([report])
        expect(second.total).toBe(3)

        const shown = yield* fetchJson(`${url}/api/sessions/${login}`)
        expect(shown.status).toBe(200)
        expect(shown.body).toMatchObject({ id: login, pruned: true, state: { status: "Succeeded" } })
        for (const path of ["/events", "/state?at=1", "/stream"]) {
          const response = yield* fetchJson(`${url}/api/sessions/${login}${path}`)
          expect([response.status, errorOf(response.body).tag], path).toEqual([410, "Pruned"])
          expect(errorOf(response.body).message).toContain(`The events of session ${login} were pruned`)
        }
        const fork = yield* postJson(`${url}/api/sessions/${login}/fork`, { at: 1 })
        expect([fork.status, errorOf(fork.body).tag]).toEqual([410, "Pruned"])
        // A session that never was is still unknown.
        const unknown = yield* fetchJson(`${url}/api/sessions/no-such-session/events`)
        expect([unknown.status, errorOf(unknown.body).tag]).toEqual([404, "UnknownSession"])

        // A snapshot that cannot be read: listed as unreadable, the others still there.
        // The store's own connection (the SQLite store layer provides it, though its type does not say so).
        const sql = yield* Effect.flatMap(Effect.serviceOption(SqlClient.SqlClient), (found) => found)
        yield* sql`UPDATE session_snapshots SET state = '{cut' WHERE session_id = ${report}`
        // A new server: a server keeps the snapshots it read (they do not change once written).
        const again = yield* startServer
        const damaged = (yield* fetchJson(`${again.url}/api/sessions`)).body as Page
        expect(damaged.total).toBe(3)
        expect(damaged.sessions.find((session) => session.id === report)).toMatchObject({
          status: "Unreadable",
          pruned: true,
          problem: "its snapshot cannot be read"
        })
        expect(damaged.sessions.find((session) => session.id === login)?.status).toBe("Succeeded")
        const unreadable = (yield* fetchJson(`${again.url}/api/sessions?status=Unreadable`)).body as Page
        expect(unreadable.sessions.map((session) => session.id)).toEqual([report])
        const opened = yield* fetchJson(`${again.url}/api/sessions/${report}`)
        expect([opened.status, errorOf(opened.body).tag]).toEqual([500, "SnapshotUnreadable"])
        expect(errorOf(opened.body).message).toContain(`The final snapshot of pruned session ${report} cannot be read`)
        // What needs its events still says it was pruned.
        const events = yield* fetchJson(`${again.url}/api/sessions/${report}/events`)
        expect([events.status, errorOf(events.body).tag]).toEqual([410, "Pruned"])
      }).pipe(Effect.provide(plannerWithScript(script))),
    60_000
  )

  it.scopedLive(
    "refuses every action and every read of its events with 410, though this process still holds its state",
    () =>
      Effect.gen(function* () {
        // A failed session (retry would fork it) and a fork of it that finished later and is kept.
        const failed = yield* startPlan("Clear the flaky cache", [task(1, "Processing", "Clear the flaky cache")])
        expect((yield* Runner.run(failed)).state.status).toBe("Failed")
        yield* Effect.sleep("5 millis")
        const fork = yield* Fork.fork(failed, 1)
        yield* Effect.sleep("5 millis")
        const forkEnd = (yield* Runner.run(fork.sessionId)).state
        expect(forkEnd.status).toBe("Failed")
        const result = yield* SessionSnapshots.prune(forkEnd.finishedAt ?? 0)
        expect(result.pruned.map((one) => one.sessionId)).toEqual([failed])
        const { url } = yield* startServer
        const session = `${url}/api/sessions/${failed}`

        const shown = yield* fetchJson(session)
        expect(shown.body).toMatchObject({ id: failed, pruned: true, state: { status: "Failed" } })
        for (const path of ["/memory", "/lineage", "/diff", "/subplans", "/state"]) {
          const response = yield* fetchJson(`${session}${path}`)
          expect([response.status, errorOf(response.body).tag], path).toEqual([410, "Pruned"])
        }
        // The kept fork is shown and has its lineage; a diff with its pruned origin says the origin was pruned.
        const forkUrl = `${url}/api/sessions/${fork.sessionId}`
        expect((yield* fetchJson(forkUrl)).status).toBe(200)
        const lineage = yield* fetchJson(`${forkUrl}/lineage`)
        expect(lineage.status).toBe(200)
        // Its pruned origin is named with its final status, from its snapshot, and marked: before, "Unknown".
        expect(lineage.body).toMatchObject({
          origin: { sessionId: failed, sequence: 1 },
          ancestors: [{ sessionId: failed, status: "Failed", atSequence: 1, pruned: true }]
        })
        for (const path of ["/diff", `/diff?with=${failed}`]) {
          const diff = yield* fetchJson(`${forkUrl}${path}`)
          expect([diff.status, errorOf(diff.body).tag], path).toEqual([410, "Pruned"])
          expect(errorOf(diff.body).message, path).toContain(`The events of session ${failed} were pruned`)
        }
        const actions: ReadonlyArray<readonly [string, unknown]> = [
          ["answer", { taskId: 1, answer: "an hour" }],
          ["cancel", {}],
          ["resume", {}],
          ["retry", { taskId: 1 }],
          ["edit", { edits: [{ _tag: "AddTask", description: "Clear it again" }] }],
          ["fork", { at: 1 }]
        ]
        for (const [action, body] of actions) {
          const response = yield* postJson(`${session}/${action}`, body)
          expect([response.status, errorOf(response.body).tag], action).toEqual([410, "Pruned"])
          expect(errorOf(response.body).message, action).toContain(`The events of session ${failed} were pruned`)
        }
        // Nothing was written: the pruned session is still listed once, from its snapshot.
        const listed = (yield* fetchJson(`${url}/api/sessions?status=Failed`)).body as Page
        expect(listed.sessions.map((one) => [one.id, one.pruned])).toEqual([
          [fork.sessionId, undefined],
          [failed, true]
        ])
      }).pipe(Effect.provide(plannerWithScript(script))),
    60_000
  )

  it.scopedLive("a sub-plan is kept while its tree runs, and once pruned its tree shows it from its snapshot", () =>
    Effect.gen(function* () {
      const filename = yield* freshSqliteFile
      const planner = plannerOnFile(filename, {
        rules: [
          {
            match: "Tell the team",
            outcomes: [{ ask: "Where should the team hear of it?" }, { complete: "Told them: {answer}" }]
          }
        ],
        default: { complete: "done: {description}" }
      })
      const { root, child } = yield* Effect.gen(function* () {
        // Task 2 runs as a child session; task 3, after it, asks a question: the root waits with its child finished.
        const root = yield* startTree
        const child = childSessionId(root, 2)
        expect((yield* SubPlanRun.runTree(root)).waiting).toBe(true)
        const whileRunning = yield* SessionSnapshots.prune(Number.MAX_SAFE_INTEGER)
        expect(whileRunning.pruned).toEqual([])
        expect(whileRunning.kept).toEqual([{ sessionId: child, reason: `its parent session ${root} is still running` }])

        yield* Runner.answer(root, 3, "on the team channel")
        yield* Effect.sleep("5 millis")
        const rootEnd = (yield* SubPlanRun.runTree(root)).state
        expect(rootEnd.status).toBe("Succeeded")
        // The child finished first: pruned, its root kept.
        const result = yield* SessionSnapshots.prune(rootEnd.finishedAt ?? 0)
        expect(result.pruned.map((one) => one.sessionId)).toEqual([child])
        return { root, child }
      }).pipe(Effect.provide(planner))

      // A server started later, over the same file: it never held the child's state.
      const tree = yield* Effect.scoped(
        Effect.flatMap(startServer, ({ url }) => fetchJson(`${url}/api/sessions/${root}/subplans`))
      ).pipe(Effect.provide(planner))
      expect(tree.status).toBe(200)
      const task2 = (tree.body as { tasks: ReadonlyArray<{ id: number; subPlan?: unknown }> }).tasks[1]
      // Before, "NotStarted" with no tasks: the child's log is empty.
      expect(task2?.subPlan).toMatchObject({
        sessionId: child,
        status: "Succeeded",
        tasks: [{ status: "Completed" }, { status: "Completed" }, { status: "Completed" }]
      })

      // Time travel on the tree (`show ROOT --at N`): the child, finished by the root's last event, is there from its
      // snapshot; just before its task was dispatched (the child named by the expansion, not begun) it is not: the
      // snapshot, which is of its end, is not shown in its place.
      const [atEnd, beforeDispatch] = yield* Effect.gen(function* () {
        const records = yield* Effect.flatMap(PlannerStore, (store) => store.load(root))
        const dispatched = records.find(
          (record) => record.event._tag === "TaskDispatched" && record.event.taskId === 2
        )?.sequence
        expect(dispatched).toBeDefined()
        const last = records[records.length - 1]?.sequence ?? 0
        return [yield* SubPlans.treeAt(root, last), yield* SubPlans.treeAt(root, (dispatched ?? 1) - 1)] as const
      }).pipe(Effect.provide(planner))
      expect(atEnd.children.get(2)?.state).toMatchObject({ status: "Succeeded", tasks: { length: 3 } })
      expect(beforeDispatch.state.tasks[1]?.childSessionId).toBe(child)
      expect(beforeDispatch.children.size).toBe(0)

      // A fork of the tree from just before task 2 took its child's outcome (the child had ended by then): the child's
      // events are gone, so its outcome comes from its snapshot, and no new child runs its steps again.
      yield* Effect.gen(function* () {
        const store = yield* PlannerStore
        const records = yield* store.load(root)
        const completed = records.find(
          (record) =>
            record.event._tag === "TaskStatusUpdated" &&
            record.event.taskId === 2 &&
            record.event.status === "Completed"
        )?.sequence
        expect(completed).toBeDefined()
        const forked = yield* Fork.fork(root, (completed ?? 1) - 1)
        expect(forked.state.tasks[1]).toMatchObject({
          status: "Completed",
          result: atEnd.children.get(2)?.state.summary
        })
        // The fork shares the ended child: its task names it, and the fork's tree shows it from its snapshot.
        expect(forked.state.tasks[1]?.childSessionId).toBe(child)
        expect((yield* SubPlans.tree(forked.sessionId)).children.get(2)?.state.status).toBe("Succeeded")
        // The outcome's event says where it came from.
        const forkLog = yield* store.load(forked.sessionId)
        const outcome = forkLog.find(
          (record) =>
            record.event._tag === "TaskStatusUpdated" &&
            record.event.taskId === 2 &&
            record.event.status === "Completed"
        )
        expect(outcome?.metadata.extra).toMatchObject({ outcomeFromSnapshotOf: child })
        // Nothing starts a child later either, under either id: resuming the fork's tree looks for children to start.
        yield* SubPlans.reconcile(forked.sessionId)
        expect(yield* store.load(childSessionId(forked.sessionId, 2))).toEqual([])
        expect(yield* store.load(child)).toEqual([])

        // A process that died between the fork's copy and the outcome (the copy made by the plain writer, which knows
        // nothing of sub-plans): resuming the tree takes the outcome from the snapshot; the child is not run again.
        const plain = yield* PlannerService.make()
        const copied = Runner.newSessionId(yield* Clock.currentTimeMillis)
        const upTo = (completed ?? 1) - 1
        yield* plain.fork(copied, records.slice(0, upTo), { fromSessionId: root, atSequence: upTo })
        expect((yield* SubPlans.tree(copied)).state.tasks[1]).toMatchObject({
          status: "Dispatched",
          childSessionId: child
        })
        yield* SubPlans.reconcile(copied)
        expect((yield* Runner.existing(copied)).tasks[1]).toMatchObject({ status: "Completed" })
        expect(yield* store.load(child)).toEqual([])
      }).pipe(Effect.provide(planner))
    })
  )

  it.scoped(
    "time travel on a tree to a moment a pruned sub-plan was running says it was pruned since, not that it had not started",
    () =>
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        // Task 1 runs as a child of three slow steps; task 2, beside it, records its start and its end meanwhile. The
        // test's clock moves only when told, so the child starts at its moment 0 and ends at 1.5 s, task 2 at 0.5 s.
        const slow = { complete: "done: {description}" }
        const planner = plannerOnFile(filename, {
          rules: [
            { match: "Wait", delayMs: 500, outcomes: [slow] },
            { match: "release", delayMs: 500, outcomes: [slow] },
            { match: "test it", delayMs: 500, outcomes: [slow] },
            { match: "publish", delayMs: 500, outcomes: [slow] },
            { match: "Announce", delayMs: 500, outcomes: [slow] }
          ],
          default: slow
        })
        yield* Effect.gen(function* () {
          const root = yield* startPlan(
            "Release it, and wait",
            [
              task(1, "Processing", "Build the release. Then test it. Then publish it."),
              task(2, "Processing", "Wait"),
              // After the child, so that the root ends after it and pruning takes the child alone.
              task(3, "Processing", "Announce it", [1])
            ],
            {},
            [1]
          )
          const child = childSessionId(root, 1)
          const running = yield* Effect.fork(SubPlanRun.runTree(root))
          const end = (yield* byTheClock(running)).state
          expect(end.status).toBe("Succeeded")
          expect((yield* SessionSnapshots.prune(end.finishedAt ?? 0)).pruned.map((one) => one.sessionId)).toEqual([
            child
          ])
          // Just before task 2's outcome: the child had started (its steps take 1.5 s, task 2 half a second) and not ended.
          const records = yield* Effect.flatMap(PlannerStore, (store) => store.load(root))
          const waited = records.find(
            (record) =>
              record.event._tag === "TaskStatusUpdated" &&
              record.event.taskId === 2 &&
              record.event.status === "Completed"
          )?.sequence
          expect(waited).toBeDefined()
          const then = yield* SubPlans.treeAt(root, (waited ?? 1) - 1)
          expect(then.children.size).toBe(0)
          expect(then.prunedSince).toEqual([1])
          const text = then.state.tasks.flatMap(subPlanLines(then))
          expect(text).toEqual([expect.stringContaining(`sub-plan ${child}: pruned since`)])
          const json = SubPlanApi.withTree({ tasks: then.state.tasks }, then, (one) => ({ id: one.id }))
          expect(json.tasks[0]?.subPlan).toEqual({
            sessionId: child,
            status: "Unknown",
            waiting: false,
            tasks: [],
            prunedSince: true
          })
          // At the end the child is there, from its snapshot.
          const last = records[records.length - 1]?.sequence ?? 0
          expect((yield* SubPlans.treeAt(root, last)).children.get(1)?.state.status).toBe("Succeeded")
        }).pipe(Effect.provide(planner))
      }),
    30_000
  )

  it.scoped(
    "a fork takes a pruned child's failure after its sibling child is forked, so an abort reaches the sibling: no orphan runs on",
    () =>
      Effect.gen(function* () {
        const filename = yield* freshSqliteFile
        // Under abort: task 1's child fails after 800 ms; task 2's child, slow, is still running then (by the test's
        // clock, which moves only when told).
        const planner = plannerOnFile(filename, {
          rules: [
            { match: "Check the input", delayMs: 800, outcomes: [{ fail: "the input is broken", retryable: false }] },
            { match: "Build", delayMs: 2_000, outcomes: [{ complete: "built" }] }
          ],
          default: { complete: "done" }
        })
        yield* Effect.gen(function* () {
          const root = yield* startPlan(
            "Check, and build",
            [task(1, "Processing", "Check the input"), task(2, "Processing", "Build it. Then ship it.")],
            { onFailure: "abort" },
            [1, 2]
          )
          const service = yield* PlannerService.PlannerService
          const sibling = childSessionId(root, 2)
          expect((yield* byTheClock(yield* Effect.fork(SubPlanRun.runTree(root)))).state.status).toBe("Failed")
          const failed = childSessionId(root, 1)
          // The sibling and the root stay (each the source of a running fork); the failed child is pruned.
          yield* Fork.fork(sibling, 1)
          yield* Fork.fork(root, 1)
          const pruned = yield* SessionSnapshots.prune(Number.MAX_SAFE_INTEGER)
          expect(pruned.pruned.map((one) => one.sessionId)).toEqual([failed])
          // Just before task 1's failure reached the root: its child had ended, its sibling was running.
          const records = yield* Effect.flatMap(PlannerStore, (store) => store.load(root))
          const outcome = records.find(
            (record) => record.event._tag === "TaskStatusUpdated" && record.event.taskId === 1
          )?.sequence
          expect(outcome).toBeDefined()
          const forked = yield* Fork.fork(root, (outcome ?? 1) - 1)
          expect(forked.state.status).toBe("Failed")
          const forkedSibling = childSessionId(forked.sessionId, 2)
          expect(Planner.isFinished(yield* service.state(forkedSibling))).toBe(true)
          expect(yield* service.queue.list(forkedSibling)).toEqual([])
        }).pipe(Effect.provide(planner))
      }),
    30_000
  )

  it.scopedLive("a pruned fork is still listed in its origin's lineage, with its final status, and marked", () =>
    Effect.gen(function* () {
      // An origin that finishes after its fork: the fork can be pruned while the origin is kept.
      const origin = yield* startPlan("Write the login page", [task(1, "Processing", "Write the login page")])
      yield* Effect.sleep("5 millis")
      const beforeFork = yield* Clock.currentTimeMillis
      const fork = yield* Fork.fork(origin, 1)
      const forkEnd = (yield* Runner.run(fork.sessionId)).state
      yield* Effect.sleep("5 millis")
      expect((yield* Runner.run(origin)).state.status).toBe("Succeeded")
      // Pruned: what finished before the fork's end and a millisecond.
      const result = yield* SessionSnapshots.prune((forkEnd.finishedAt ?? 0) + 1)
      expect(result.pruned.map((one) => one.sessionId)).toEqual([fork.sessionId])
      const { url } = yield* startServer
      const lineage = yield* fetchJson(`${url}/api/sessions/${origin}/lineage`)
      expect(lineage.status).toBe(200)
      expect(lineage.body).toMatchObject({
        sessionId: origin,
        ancestors: [],
        forks: [{ sessionId: fork.sessionId, status: "Succeeded", atSequence: 1, pruned: true, forks: [] }]
      })
      // When the fork began, not its origin's start, which its state carries from the origin's plan.
      const forkCreated = (lineage.body as { forks: ReadonlyArray<{ createdAt: number }> }).forks[0]?.createdAt ?? 0
      expect(forkCreated).toBeGreaterThanOrEqual(beforeFork)
      expect(forkCreated).toBeLessThanOrEqual(forkEnd.finishedAt ?? 0)
      const list = yield* fetchJson(`${url}/api/sessions`)
      const listed = (list.body as { sessions: ReadonlyArray<{ id: string; createdAt: number }> }).sessions
      expect(listed.find((session) => session.id === fork.sessionId)?.createdAt).toBe(forkCreated)

      // A snapshot kept before its start time was (migration 0008) has none: its state's start serves, for a fork
      // its origin's.
      const sql = yield* Effect.flatMap(Effect.serviceOption(SqlClient.SqlClient), (found) => found)
      yield* sql`UPDATE session_snapshots SET created_at = NULL WHERE session_id = ${fork.sessionId}`
      const again = yield* startServer
      const relisted = (yield* fetchJson(`${again.url}/api/sessions`)).body as {
        sessions: ReadonlyArray<{ id: string; createdAt: number }>
      }
      const old = relisted.sessions.find((session) => session.id === fork.sessionId)
      expect(old?.createdAt).toBe(forkEnd.startedAt)
      expect(old?.createdAt).toBeLessThan(beforeFork)
    }).pipe(Effect.provide(plannerWithScript(script)))
  )
})
