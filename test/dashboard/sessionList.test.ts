/**
 * The session list's API over more sessions than one page: paging with a total, the status filter, search in the
 * requests and the sort orders, against the real server and a real SQLite store.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Runner from "../../src/app/Runner.js"
import { fetchJson, plannerWithScript, startPlan, startServer, task } from "./fixtures.js"

interface ListBody {
  readonly sessions: ReadonlyArray<{
    readonly id: string
    readonly status: string
    readonly request: string
    readonly createdAt: number
  }>
  readonly total: number
  readonly all: number
  readonly offset: number
  readonly limit: number
}

const list = (url: string, query: string) =>
  Effect.map(fetchJson(`${url}/api/sessions${query}`), (response) => {
    expect(response.status, query).toBe(200)
    return response.body as ListBody
  })

describe("the session list API", () => {
  it.scopedLive(
    "pages past 100 sessions with a correct total, filters by status, searches the requests and sorts",
    () =>
      Effect.gen(function* () {
        const ids: Array<string> = []
        for (let index = 0; index < 105; index++) {
          ids.push(
            yield* startPlan(`Request number ${index} ${index % 10 === 0 ? "about kittens" : "about work"}`, [
              task(1, "Processing", `Step of ${index}`)
            ])
          )
        }
        // Two of them finish.
        const finished = [ids[3] ?? "", ids[7] ?? ""]
        for (const id of finished) expect((yield* Runner.run(id)).state.status).toBe("Succeeded")
        const { url } = yield* startServer

        const first = yield* list(url, "")
        expect([first.sessions.length, first.total, first.all, first.offset, first.limit]).toEqual([
          100, 105, 105, 0, 100
        ])
        const second = yield* list(url, "?offset=100")
        expect([second.sessions.length, second.total]).toEqual([5, 105])
        const everyId = [...first.sessions, ...second.sessions].map((session) => session.id)
        expect(new Set(everyId).size).toBe(105)
        expect(new Set(everyId)).toEqual(new Set(ids))
        // Newest first by default; oldest first on request.
        const createdAt = (body: ListBody) => body.sessions.map((session) => session.createdAt)
        expect(createdAt(first)).toEqual([...createdAt(first)].sort((a, b) => b - a))
        const oldest = yield* list(url, "?sort=oldest&limit=105")
        expect(createdAt(oldest)).toEqual([...createdAt(oldest)].sort((a, b) => a - b))
        expect(oldest.sessions[0]?.createdAt).toBe(Math.min(...createdAt(oldest)))
        // Recently updated first: the two that ran come first.
        const updated = yield* list(url, "?sort=updated&limit=2")
        expect(new Set(updated.sessions.map((session) => session.id))).toEqual(new Set(finished))

        const succeeded = yield* list(url, "?status=Succeeded")
        expect([succeeded.total, succeeded.all]).toEqual([2, 105])
        expect(new Set(succeeded.sessions.map((session) => session.id))).toEqual(new Set(finished))
        const running = yield* list(url, "?status=running&limit=50&offset=100")
        expect([running.total, running.sessions.length]).toEqual([103, 3])

        const kittens = yield* list(url, "?q=KITTENS&limit=5")
        expect([kittens.total, kittens.sessions.length]).toEqual([11, 5])
        expect(kittens.sessions.every((session) => session.request.includes("kittens"))).toBe(true)
        const kittensPage3 = yield* list(url, "?q=kittens&limit=5&offset=10")
        expect(kittensPage3.sessions).toHaveLength(1)
        const none = yield* list(url, "?q=nothing%20like%20this")
        expect([none.total, none.sessions.length]).toEqual([0, 0])

        for (const bad of ["?status=Sleeping", "?sort=sideways", "?limit=0", "?offset=-1", `?q=${"x".repeat(501)}`]) {
          const response = yield* fetchJson(`${url}/api/sessions${bad}`)
          expect(response.status, bad).toBe(400)
        }
      }).pipe(Effect.provide(plannerWithScript({ rules: [], default: { complete: "done" } }))),
    120_000
  )

  it.scoped("sessions begun in the same millisecond keep the order they began in, whichever the sort", () =>
    Effect.gen(function* () {
      // The test clock stands still: every event of every session has the same time.
      const ids: Array<string> = []
      for (let index = 0; index < 12; index++) {
        ids.push(yield* startPlan(`Request ${index}`, [task(1, "Processing", `Step of ${index}`)]))
      }
      const { url } = yield* startServer
      const order = (body: ListBody) => body.sessions.map((session) => session.id)
      expect(order(yield* list(url, "?limit=12"))).toEqual([...ids].reverse())
      expect(order(yield* list(url, "?sort=oldest&limit=12"))).toEqual(ids)
      expect(order(yield* list(url, "?sort=updated&limit=12"))).toEqual([...ids].reverse())
      // Paged: each page goes on where the last one stopped.
      const pages = [
        yield* list(url, "?limit=5"),
        yield* list(url, "?limit=5&offset=5"),
        yield* list(url, "?offset=10")
      ]
      expect(pages.flatMap(order)).toEqual([...ids].reverse())
    }).pipe(Effect.provide(plannerWithScript({ rules: [], default: { complete: "done" } })))
  )
})
