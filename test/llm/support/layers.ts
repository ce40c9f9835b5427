/** Settings and layers pointing the real LLM layers at a `FakeOpenAiServer`. */
import { Duration, type Layer, Option, Redacted } from "effect"
import * as ChatCompletionsLlm from "../../../src/infra/ChatCompletionsLlm.js"
import type { Llm } from "../../../src/infra/Llm.js"
import { type LlmApi, type LlmSettings, makeSettings } from "../../../src/infra/LlmConfig.js"
import * as OpenAiLlm from "../../../src/infra/OpenAiLlm.js"
import type { FakeOpenAiServer } from "./FakeOpenAiServer.js"

/** A key shaped like a real one, so a leak anywhere would be found by searching for it. */
export const apiKey = "sk-test-7Hq2vXk9Lm4Rp8Wz3Nd6Ys1Tc5Bf0Ga"

export const model = "test-model"

export const apis: ReadonlyArray<LlmApi> = ["responses", "chat"]

/**
 * Settings for tests: short backoff, the breaker out of the way unless a test wants it, and a timeout no answer from
 * the local server comes near on a loaded machine. A test about timeouts sets its own, and drives it with the
 * TestClock or points it at requests that are never answered.
 */
export const settingsFor = (server: FakeOpenAiServer, overrides: Partial<LlmSettings> = {}): LlmSettings =>
  makeSettings({
    baseUrl: server.url,
    model,
    apiKey: Option.some(Redacted.make(apiKey)),
    requestTimeout: Duration.seconds(20),
    maxRetries: 2,
    retryBaseDelay: Duration.millis(20),
    maxRetryDelay: Duration.seconds(5),
    breakerFailures: 100,
    breakerCooldown: Duration.seconds(30),
    ...overrides
  })

export const llmLayer = (api: LlmApi, settings: LlmSettings): Layer.Layer<Llm> =>
  api === "chat" ? ChatCompletionsLlm.layer({ ...settings, api }) : OpenAiLlm.layer({ ...settings, api })

/** One step of a plan as the model proposes it (`subPlan`: the model marks it as a sub-plan). */
export const draftStep = (id: string, description: string, dependsOn: ReadonlyArray<string>, subPlan = false) => ({
  id,
  description,
  kind: "Processing",
  dependsOn,
  attachments: [],
  subPlan
})

/** A good plan as the model would propose it: one step first, two independent ones, then one needing both. */
export const goodPlan = {
  tasks: [
    {
      id: "read",
      description: "Read the spec at https://example.com/spec.pdf and list the constraints",
      kind: "Retrieval",
      dependsOn: [],
      attachments: [{ kind: "Link", value: "https://example.com/spec.pdf" }]
    },
    {
      id: "api",
      description: "Implement the login endpoint in src/auth.ts",
      kind: "CodeImplementation",
      dependsOn: ["read"],
      attachments: []
    },
    {
      id: "form",
      description: "Build the login form",
      kind: "CodeImplementation",
      dependsOn: ["read"],
      attachments: []
    },
    {
      id: "test",
      description: "Write and run the login tests",
      kind: "UnitTest",
      dependsOn: ["api", "form"],
      attachments: []
    }
  ]
}

export const request =
  "Read the spec at https://example.com/spec.pdf. Then implement the login endpoint in src/auth.ts and the login form. Then write and run the tests."
