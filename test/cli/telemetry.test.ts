/**
 * The built `planner` command exports its traces when the standard `OTEL_*` variables name an OTLP endpoint: a real
 * HTTP server on 127.0.0.1 plays the collector.
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { cli, ensureBuilt, tempFolder } from "./cli.js"

beforeAll(() => ensureBuilt(), 180_000)

const received: Array<{ readonly path: string; readonly body: string }> = []
const server = createServer((request, response) => {
  let body = ""
  request.setEncoding("utf8")
  request.on("data", (chunk: string) => {
    body += chunk
  })
  request.on("end", () => {
    received.push({ path: request.url ?? "", body })
    response.writeHead(200, { "content-type": "application/json" })
    response.end("{}")
  })
})
let endpoint = ""
beforeAll(
  () =>
    new Promise<void>((resolve) => {
      server.listen(0, "127.0.0.1", () => {
        endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
        resolve()
      })
    })
)
afterAll(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
)

/** Span names in the OTLP/JSON bodies received. */
const spanNames = (): Array<string> =>
  received.flatMap((request) => [...request.body.matchAll(/"name":"([^"]+)"/g)].map((match) => match[1] ?? ""))

describe("planner with OpenTelemetry", () => {
  it("a run posts its spans to the configured collector before the command exits", async () => {
    const run = await cli(["run", "--executor", "echo", "Write the code. Then test it."], {
      cwd: tempFolder(),
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "planner-cli-test"
      }
    })
    expect(run.code).toBe(0)
    expect(received.length).toBeGreaterThan(0)
    expect(received.every((request) => request.path === "/v1/traces")).toBe(true)
    const names = spanNames()
    for (const name of ["Runner.run", "Worker.work", "Executor.execute", "PlannerService.execute"]) {
      expect(names).toContain(name)
    }
    expect(received.map((request) => request.body).join("")).toContain("planner-cli-test")
  })

  it("without an endpoint nothing is sent", async () => {
    const before = received.length
    const run = await cli(["run", "--executor", "echo", "Write the code."], { cwd: tempFolder() })
    expect(run.code).toBe(0)
    expect(received.length).toBe(before)
  })
})
