/**
 * The dashboard's tree of sub-plans (#16) over plain HTTP, against the real server and a real SQLite store: a root
 * whose task 2 ran as a child session shows the child's tasks under task 2, the child names its parent task, and
 * `show --json`'s form of the tree (`SubPlanApi.withTree`) nests the same way.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { resultJson, taskJson } from "../../src/app/cli/Render.js"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as SubPlanApi from "../../src/app/SubPlanApi.js"
import * as SubPlanRun from "../../src/app/SubPlanRun.js"
import * as SubPlans from "../../src/app/SubPlans.js"
import { childSessionId } from "../../src/domain/SubPlans.js"
import { fetchJson, plannerWithScript, startServer } from "./fixtures.js"
import { plan, script, startTree } from "./subplanFixtures.js"

interface TreeTask {
  readonly id: number
  readonly description: string
  readonly status: string
  readonly subPlan?: TreeNode
}
interface TreeNode {
  readonly sessionId: string
  readonly status: string
  readonly tasks: ReadonlyArray<TreeTask>
  readonly parent?: { sessionId: string; taskId: number; rootSessionId: string; depth: number; description: string }
  readonly expanded?: boolean
}

describe("the dashboard's tree of sub-plans (#16)", { timeout: 60_000 }, () => {
  it.scopedLive("GET /subplans nests a child's tasks under its task and names a child's parent task", () =>
    Effect.gen(function* () {
      const root = yield* startTree
      const child = childSessionId(root, 2)
      const { url } = yield* startServer
      const treeOf = (id: string) => fetchJson(`${url}/api/sessions/${encodeURIComponent(id)}/subplans`)

      // Before task 2 is dispatched its child has not started: the task names it, with no tasks yet.
      const before = yield* treeOf(root)
      expect(before.status).toBe(200)
      expect((before.body as TreeNode).tasks[1]?.subPlan).toEqual({
        sessionId: child,
        status: "NotStarted",
        waiting: false,
        tasks: []
      })
      expect((yield* treeOf(child)).status).toBe(404)

      const done = yield* SubPlanRun.runTree(root)
      expect(done.state.status).toBe("Succeeded")

      const whole = (yield* treeOf(root)).body as TreeNode
      expect(whole.sessionId).toBe(root)
      expect(whole.status).toBe("Succeeded")
      expect(whole.parent).toBeUndefined()
      expect(whole.expanded).toBe(true)
      expect(whole.tasks.map((t) => [t.id, t.status, t.subPlan?.sessionId])).toEqual([
        [1, "Completed", undefined],
        [2, "Completed", child],
        [3, "Completed", undefined]
      ])
      const sub = whole.tasks[1]?.subPlan
      expect(sub?.status).toBe("Succeeded")
      expect(sub?.tasks.map((t) => t.description)).toEqual(["Build the release", "test it", "publish it"])
      expect(sub?.tasks.every((t) => t.status === "Completed")).toBe(true)

      const own = (yield* treeOf(child)).body as TreeNode
      expect(own.sessionId).toBe(child)
      expect(own.parent).toEqual({
        sessionId: root,
        taskId: 2,
        rootSessionId: root,
        depth: 1,
        description: plan[1]?.description,
        status: "Completed"
      })
      expect(own.expanded).toBe(false)
      expect(own.tasks).toHaveLength(3)

      expect((yield* treeOf("no-such-session")).status).toBe(404)

      // `show --json`: the same nesting, each task as the CLI writes it.
      const state = yield* Effect.flatMap(PlannerService.PlannerService, (service) => service.state(root))
      const tree = yield* SubPlans.tree(root, state)
      const json = SubPlanApi.withTree(resultJson(root, state), tree, taskJson)
      expect(json.tasks[1]).toMatchObject({ id: 2, attempts: 1, subPlan: { sessionId: child, status: "Succeeded" } })
      expect(json.tasks[1]?.subPlan?.tasks.map((t) => t.attempts)).toEqual([1, 1, 1])
      expect(json.tasks[0]?.subPlan).toBeUndefined()
    }).pipe(Effect.provide(plannerWithScript(script)))
  )
})
