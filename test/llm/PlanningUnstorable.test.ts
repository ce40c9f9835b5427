/**
 * A model's plan holding text no store keeps (a NUL, a lone UTF-16 surrogate) is the model's fault, not the request's:
 * the parser plans instead and the recorded source says why, over a real HTTP server speaking both protocols.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as Planning from "../../src/app/Planning.js"
import * as Parser from "../../src/domain/Parser.js"
import { unstorableText } from "../../src/domain/SchemaGuard.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { Reply } from "./support/FakeOpenAiServer.js"
import { apis, goodPlan, llmLayer, request, settingsFor } from "./support/layers.js"

const withText = (text: string) => ({
  tasks: goodPlan.tasks.map((task, index) => (index === 1 ? { ...task, description: `Implement ${text} it` } : task))
})

describe.each(apis)("an unstorable plan over the %s protocol", (api) => {
  for (const [name, text, problem] of [
    ["a NUL", "a\u0000b", "NUL character"],
    ["a lone surrogate", "a\uD800b", "lone UTF-16 surrogate"]
  ] as const) {
    it.scopedLive(`${name} in a task makes the parser plan, with the reason recorded`, () =>
      Effect.gen(function* () {
        const server = yield* FakeOpenAiServer.make
        server.enqueue(Reply.json(withText(text)))
        const plan = yield* Planning.planRequest(request).pipe(Effect.provide(llmLayer(api, settingsFor(server))))
        expect(plan.tasks).toEqual(Either.getOrThrow(Parser.parse(request)))
        expect(plan.source._tag).toBe("Parser")
        const reason = plan.source._tag === "Parser" ? (plan.source.reason ?? "") : ""
        expect(reason).toContain(problem)
        expect(reason).toContain("tasks[1].description")
        // The reason itself is storable: it names the character, it does not carry it.
        expect(unstorableText(reason)).toBeUndefined()
      })
    )
  }
})
