/**
 * A whole run with a language model, against a real HTTP server on 127.0.0.1 speaking both OpenAI protocols: the
 * model plans the request (with two branches that may run at the same time), the LLM executor performs every step,
 * and the recorded plan says which model made it. Replaying the log gives the state the run ended with.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import * as PlannerService from "../../src/app/PlannerService.js"
import * as Runner from "../../src/app/Runner.js"
import * as Planner from "../../src/domain/Planner.js"
import * as AttachmentChecker from "../../src/infra/AttachmentChecker.js"
import * as HeuristicCompactor from "../../src/infra/HeuristicCompactor.js"
import * as LlmExecutor from "../../src/infra/LlmExecutor.js"
import * as MemoryEventStore from "../../src/infra/MemoryEventStore.js"
import * as PlannerStore from "../../src/infra/PlannerStore.js"
import * as FakeOpenAiServer from "../llm/support/FakeOpenAiServer.js"
import { messagesOf, type RecordedRequest, Reply } from "../llm/support/FakeOpenAiServer.js"
import { apis, llmLayer, model, settingsFor } from "../llm/support/layers.js"
import { eventually } from "../support/clock.js"

const request =
  "Plan the export feature: collect the requirements, then draft the export API and the export screen, then review both drafts together."

/** The model's plan: one step, two independent branches after it, and a step that needs both. */
const plan = {
  tasks: [
    {
      id: "requirements",
      description: "Collect the requirements for the export feature",
      kind: "Processing",
      dependsOn: [],
      attachments: []
    },
    {
      id: "api",
      description: "Draft the export API",
      kind: "Processing",
      dependsOn: ["requirements"],
      attachments: []
    },
    {
      id: "screen",
      description: "Draft the export screen",
      kind: "Processing",
      dependsOn: ["requirements"],
      attachments: []
    },
    {
      id: "review",
      description: "Review both drafts together",
      kind: "Processing",
      dependsOn: ["api", "screen"],
      attachments: []
    }
  ]
}

/** The task a step request is about, from its idempotency key (`session/task/attempt`). */
const taskOf = (recorded: RecordedRequest): number => Number(String(recorded.headers["idempotency-key"]).split("/")[1])

const stepReply = Reply.dynamic((recorded) =>
  Reply.json({ outcome: "completed", result: `result of step ${taskOf(recorded)}`, question: "", reason: "" })
)

describe.each(apis)("a plan made and carried out by a model over the %s protocol", (api) => {
  it.scopedLive("its parallel branches run at the same time and the plan succeeds", () =>
    Effect.gen(function* () {
      const server = yield* FakeOpenAiServer.make
      // The model answers neither branch until it has been asked about both: the run can only succeed if the two
      // branch steps are in flight at the same time (a run that took them one by one gets a 500 after the wait).
      const bothBranchesAsked = Effect.runPromise(
        eventually(
          "both branch steps have reached the model at once",
          Effect.sync(() => [2, 3].every((id) => server.modelRequests().some((step) => taskOf(step) === id))),
          Duration.seconds(20)
        )
      )
      const branchReply = Reply.after(bothBranchesAsked, stepReply)
      server.enqueue(Reply.json(plan), stepReply, branchReply, branchReply, stepReply)
      const services = Layer.mergeAll(
        PlannerService.layer().pipe(Layer.provideMerge(PlannerStore.layer)),
        LlmExecutor.layerRegistry(),
        AttachmentChecker.layerNode({ checkLinks: false }),
        HeuristicCompactor.layer
      ).pipe(
        Layer.provideMerge(MemoryEventStore.layer()),
        // A held branch step must not be retried while it waits for the other.
        Layer.provideMerge(llmLayer(api, settingsFor(server, { requestTimeout: Duration.seconds(60) })))
      )

      const { result, records } = yield* Effect.gen(function* () {
        const { sessionId } = yield* Runner.start(request, { config: { maxParallel: 4 } })
        const result = yield* Runner.run(sessionId)
        return { result, records: yield* Runner.history(sessionId) }
      }).pipe(Effect.provide(services))

      expect(result.state.status).toBe("Succeeded")
      expect(server.pending()).toBe(0)
      const events = records.map((record) => record.event)
      expect(Planner.fold(events)).toEqual(result.state)

      // What the model planned is what was recorded, with the model named.
      const planned = events[0]
      expect(planned?._tag === "TasksPlanned" && planned.source).toEqual({ _tag: "Llm", model })
      expect(result.state.tasks.map((task) => [task.id, task.description, task.dependsOn])).toEqual([
        [1, "Collect the requirements for the export feature", []],
        [2, "Draft the export API", [1]],
        [3, "Draft the export screen", [1]],
        [4, "Review both drafts together", [2, 3]]
      ])
      expect(result.state.tasks.map((task) => task.result)).toEqual([1, 2, 3, 4].map((id) => `result of step ${id}`))

      // Both branches were dispatched before either completed...
      const indexOf = (test: (event: (typeof events)[number]) => boolean) => events.findIndex(test)
      const dispatched = [2, 3].map((id) => indexOf((e) => e._tag === "TaskDispatched" && e.taskId === id))
      const completed = [2, 3].map((id) =>
        indexOf((e) => e._tag === "TaskStatusUpdated" && e.status === "Completed" && e.taskId === id)
      )
      expect(Math.max(...dispatched)).toBeLessThan(Math.min(...completed))
      // ...and the model worked on both at once (the held replies above), each step asked exactly once.
      const steps = server.modelRequests().slice(1)
      expect(steps.map(taskOf).sort()).toEqual([1, 2, 3, 4])

      // The review step was given both branches' results.
      const review = steps.find((step) => taskOf(step) === 4)
      const prompt = messagesOf(review as RecordedRequest)
        .map((message) => message.text)
        .join("\n")
      expect(prompt).toContain("result of step 2")
      expect(prompt).toContain("result of step 3")
      expect(prompt).toContain(request)
    })
  )
})
