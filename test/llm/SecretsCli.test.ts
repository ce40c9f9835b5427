/**
 * Issue #18, end to end: `planner run` with an LLM whose provider echoes the API key (whole, and masked as OpenAI
 * does) in every 401 body and in a response header, and with OpenTelemetry export to a real OTLP/HTTP collector on
 * 127.0.0.1. The key and its fragments appear nowhere: not in standard output or error, not in the SQLite store's
 * files, not in a single exported span. Both the Responses and the chat API.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { cli, ensureBuilt, sessionIdIn, tempFolder } from "../cli/cli.js"
import { collector } from "../support/otlpCollector.js"
import * as FakeOpenAiServer from "./support/FakeOpenAiServer.js"
import { Reply } from "./support/FakeOpenAiServer.js"
import { apiKey, apis, model } from "./support/layers.js"

beforeAll(() => ensureBuilt(), 180_000)

const openAiMasked = `${apiKey.slice(0, 8)}${"*".repeat(28)}${apiKey.slice(-4)}`
const shortMasked = `${apiKey.slice(0, 3)}...${apiKey.slice(-4)}`
const forbidden = [apiKey, apiKey.slice(8), apiKey.slice(8, 20), openAiMasked, shortMasked, apiKey.slice(-4)]

const echoing = Reply.dynamic((recorded) => {
  const authorization = String(recorded.headers.authorization)
  return Reply.status(
    401,
    { "x-echo-authorization": authorization },
    { error: { message: `Incorrect API key provided: ${openAiMasked}. Short: ${shortMasked}. Sent: ${authorization}` } }
  )
})

const leaks = (named: Record<string, string>): ReadonlyArray<string> =>
  Object.entries(named).flatMap(([name, text]) =>
    forbidden.flatMap((fragment) => {
      const at = text.indexOf(fragment)
      return at < 0 ? [] : [`${fragment} in ${name}: …${text.slice(Math.max(0, at - 120), at + 60)}…`]
    })
  )

describe.each(apis)("planner run with a provider echoing the key, over the %s API", { timeout: 300_000 }, (api) => {
  it("no output, store file or exported span carries the key or its fragments", () =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const cwd = tempFolder("planner-secrets-")
          const otlp = yield* collector
          const server = yield* FakeOpenAiServer.make
          for (let n = 0; n < 100; n += 1) server.enqueue(echoing)
          const db = path.join(cwd, "store.db")
          const env = {
            PLANNER_LLM_BASE_URL: server.url,
            PLANNER_LLM_MODEL: model,
            PLANNER_LLM_API: api,
            PLANNER_LLM_API_KEY: apiKey,
            PLANNER_LLM_MAX_RETRIES: "0",
            OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
            OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
            OTEL_BSP_SCHEDULE_DELAY: "100"
          }
          const run = yield* Effect.promise(() =>
            cli(["run", "--non-interactive", "--db", db, "Summarise the spec. Then write the report."], { cwd, env })
          )
          const sessionId = sessionIdIn(run.stdout)
          const json = yield* Effect.promise(() => cli(["show", sessionId, "--db", db, "--json"], { cwd, env }))
          const history = yield* Effect.promise(() => cli(["history", sessionId, "--db", db, "--json"], { cwd, env }))
          // The provider was asked (planning and the steps) and answered with the key every time.
          expect(server.modelRequests().length).toBeGreaterThanOrEqual(2)
          expect(run.stdout + run.stderr).toContain("Incorrect API key provided")
          const exported = otlp.bodies().join("\n")
          expect(exported).toContain("Llm.parseTasks")
          expect(exported).toContain("Llm.performStep")
          const storeFiles = fs
            .readdirSync(cwd)
            .filter((name) => name.startsWith("store.db"))
            .map((name) => fs.readFileSync(path.join(cwd, name)).toString("latin1"))
          expect(storeFiles.length).toBeGreaterThan(0)
          expect(
            leaks({
              "run stdout": run.stdout,
              "run stderr": run.stderr,
              "show --json": json.stdout + json.stderr,
              "history --json": history.stdout + history.stderr,
              "the store": storeFiles.join("\n"),
              "the exported spans": exported
            })
          ).toEqual([])
        })
      )
    ))
})
