/**
 * `npm run bench`: bundles `scripts/bench.ts` (see `bundle.ts`) and runs it with Node, passing the arguments on; its
 * exit code is the benchmark's. A signal given to this process is passed to the benchmark, which cleans up after
 * itself (PostgreSQL, temp files, child processes).
 */
import { spawn } from "node:child_process"
import { bundle } from "./bundle.js"

const file = await bundle("scripts/bench.ts")
const child = spawn(process.execPath, [file, ...process.argv.slice(2)], { stdio: "inherit" })
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal))
child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)))
