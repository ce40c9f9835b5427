/**
 * `npm run bench`: bundles `scripts/bench.ts` (see `bundle.ts`) and runs it with Node, passing the arguments on; its
 * exit code is the benchmark's. Ctrl-C reaches the benchmark from the terminal itself (one process group), and it
 * cleans up after itself (PostgreSQL, temp files, child processes): this process only waits for it. A SIGTERM sent to
 * this process alone is passed on.
 */
import { spawn } from "node:child_process"
import { constants } from "node:os"
import { bundle, nodeFlags } from "./bundle.js"

const file = await bundle("scripts/bench.ts")
const child = spawn(process.execPath, [...nodeFlags(), file, ...process.argv.slice(2)], { stdio: "inherit" })
process.on("SIGINT", () => undefined)
process.on("SIGTERM", () => child.kill("SIGTERM"))
child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128 + (constants.signals[signal] ?? 0))))
