/**
 * The dashboard API of #15 over plain HTTP, against the real server and a real SQLite store: plan edits through the
 * writer (and their refusals), a session's lineage, and the diff between a fork and its origin.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fork from "../../src/app/Fork.js"
import * as Runner from "../../src/app/Runner.js"
import { PlannerStore } from "../../src/infra/PlannerStore.js"
import { fetchJson, plannerWithScript, postJson, startPlan, startServer, task } from "./fixtures.js"

const script = { rules: [], default: { complete: "done: {description}" } }

const plan = [
  task(1, "Retrieval", "Fetch the rows"),
  task(2, "Processing", "Clean the rows", [1]),
  task(3, "Analysis", "Count the values", [2])
]

interface View {
  readonly state: { readonly tasks: ReadonlyArray<{ id: number; description: string; dependsOn: Array<number> }> }
  readonly appended: number
}

describe("the #15 dashboard API", { timeout: 60_000 }, () => {
  it.scopedLive("POST /edit records plan edits through the writer and refuses what would break the plan", () =>
    Effect.gen(function* () {
      const sessionId = yield* startPlan("Fetch, clean and count.", plan)
      const { url } = yield* startServer
      const edit = (edits: unknown) => postJson(`${url}/api/sessions/${sessionId}/edit`, { edits })
      const store = yield* PlannerStore
      const eventsBefore = (yield* store.load(sessionId)).length

      const added = yield* edit([{ _tag: "AddTask", description: "Write the summary", dependsOn: [2] }])
      expect(added.status).toBe(200)
      const view = added.body as View
      expect(view.appended).toBe(1)
      expect(view.state.tasks.at(-1)).toMatchObject({ id: 4, description: "Write the summary", dependsOn: [2] })

      // Refusals: a cycle (409, the planner's tag), a started task (409), a malformed body (400); nothing recorded.
      const cycle = yield* edit([{ _tag: "SetDependencies", taskId: 2, dependsOn: [3] }])
      expect(cycle.status).toBe(409)
      expect(cycle.body).toMatchObject({ error: { tag: "EditCreatesCycle" } })
      const started = yield* edit([{ _tag: "SetTask", taskId: 1, description: "Fetch again" }])
      expect(started.status).toBe(409)
      expect(started.body).toMatchObject({ error: { tag: "TaskNotEditable" } })
      const malformed = yield* edit([{ _tag: "Rewrite", taskId: 1 }])
      expect(malformed.status).toBe(400)
      const empty = yield* edit([])
      expect(empty.status).toBe(400)
      expect((yield* store.load(sessionId)).length).toBe(eventsBefore + 1)

      // A finished session is not edited: forking it is the way.
      const done = yield* Runner.run(sessionId)
      expect(done.state.status).toBe("Succeeded")
      const late = yield* edit([{ _tag: "AddTask", description: "Too late" }])
      expect(late.status).toBe(400)
      expect(JSON.stringify(late.body)).toContain("fork it")
      // A body of the wrong shape is refused naming the field and what was wrong with it.
      const badFork = yield* postJson(`${url}/api/sessions/${sessionId}/fork`, { at: "x" })
      expect(badFork.status).toBe(400)
      expect(JSON.stringify(badFork.body)).toContain(
        'The request body is not what this endpoint takes (field \\"at\\": Expected number)'
      )
    }).pipe(Effect.provide(plannerWithScript(script)))
  )

  it.scopedLive("GET /lineage names a fork's origin and an origin's forks; GET /diff compares them", () =>
    Effect.gen(function* () {
      const sessionId = yield* startPlan("Fetch, clean and count.", plan)
      const done = yield* Runner.run(sessionId)
      const forked = yield* Fork.fork(sessionId, done.state.version, {
        edits: [{ _tag: "SetTask", taskId: 3, description: "Count the values per region" }]
      })
      yield* Runner.run(forked.sessionId)
      const { url } = yield* startServer

      const origin = yield* fetchJson(`${url}/api/sessions/${sessionId}/lineage`)
      expect(origin.status).toBe(200)
      expect(origin.body).toMatchObject({
        sessionId,
        ancestors: [],
        forks: [{ sessionId: forked.sessionId, atSequence: done.state.version, status: "Succeeded", forks: [] }]
      })
      const fork = yield* fetchJson(`${url}/api/sessions/${forked.sessionId}/lineage`)
      expect(fork.body).toMatchObject({
        origin: { sessionId, sequence: done.state.version },
        ancestors: [{ sessionId, atSequence: done.state.version }],
        forks: []
      })

      const diff = yield* fetchJson(`${url}/api/sessions/${forked.sessionId}/diff`)
      expect(diff.status).toBe(200)
      const body = diff.body as {
        comparable: boolean
        forkedAt: number
        tasks: ReadonlyArray<{
          id: number
          change: string
          changes: ReadonlyArray<{ field: string }>
          reusedFrom?: { sessionId: string; sequence: number }
        }>
        divergence: { sequence: number } | null
      }
      expect(body.comparable).toBe(true)
      expect(body.forkedAt).toBe(done.state.version)
      expect(body.tasks.map((t) => t.change)).toEqual(["same", "same", "changed"])
      expect(body.tasks[2]?.changes.map((c) => c.field)).toEqual(["description", "result"])
      // Tasks 1 and 2 were taken over, naming the event of the origin that completed each.
      const completedAt = (yield* (yield* PlannerStore).load(sessionId)).flatMap((record) =>
        record.event._tag === "TaskStatusUpdated" && record.event.status === "Completed" ? [record.sequence] : []
      )
      expect(body.tasks.map((t) => t.reusedFrom)).toEqual([
        { sessionId, sequence: completedAt[0] },
        { sessionId, sequence: completedAt[1] },
        undefined
      ])
      expect(body.divergence?.sequence).toBeGreaterThan(1)
      // The origin is not a fork: nothing to compare it with unless asked.
      expect((yield* fetchJson(`${url}/api/sessions/${sessionId}/diff`)).body).toMatchObject({ comparable: false })
      const asked = yield* fetchJson(`${url}/api/sessions/${sessionId}/diff?with=${forked.sessionId}`)
      expect((asked.body as { tasks: ReadonlyArray<{ change: string }> }).tasks[2]?.change).toBe("changed")
      expect((yield* fetchJson(`${url}/api/sessions/nope/lineage`)).status).toBe(404)
    }).pipe(Effect.provide(plannerWithScript(script)))
  )
})
