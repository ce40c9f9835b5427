#!/usr/bin/env node
// The `planner` command. The program is bundled into dist/cli/main.cjs (built by `npm run build`, which `npm install`
// runs through the `prepare` script; see scripts/build.mjs). `--version` and the top-level help are answered without
// loading the rest. `planner plan` without an LLM, and with only the request, --json and --file (the common case,
// decided by dist/app/cli/PlanArgs.js), runs the small bundle dist/cli/plan.cjs: the same plan and the same errors
// without loading @effect/cli and every other command first. Any other `plan` command line goes to main.cjs.
//
// A bundle is compiled with the V8 code cache beside it (dist/cli/NAME.cache) when that cache was made from this very
// bundle (its first 20 bytes are the bundle's SHA-1) by this Node.js: that skips most of the parsing and compiling, a
// good part of the start-up time. Without a usable cache the bundle compiles as usual, and a new cache is written at
// exit when the folder is writable.
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import Module, { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"

const args = process.argv.slice(2)
const topLevel = args.length === 0 || (args.length === 1 && ["--help", "-h", "--version"].includes(args[0]))

const notBuilt = (error) => {
  if (error && (error.code === "ERR_MODULE_NOT_FOUND" || error.code === "ENOENT")) {
    console.error("planner: it is not built yet: run `npm run build` (or `npm install`) in the project folder first.")
    process.exit(4)
  }
  throw error
}

const run = (bundle) => {
  const file = fileURLToPath(new URL(`../dist/cli/${bundle}.cjs`, import.meta.url))
  const cacheFile = path.join(path.dirname(file), `${bundle}.cache`)
  let source
  try {
    source = fs.readFileSync(file, "utf8")
  } catch (error) {
    notBuilt(error)
  }
  const digest = createHash("sha1").update(source).digest()
  let cachedData
  try {
    const cache = fs.readFileSync(cacheFile)
    if (cache.subarray(0, digest.length).equals(digest)) cachedData = cache.subarray(digest.length)
  } catch {
    // No cache yet.
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData })
  if (cachedData === undefined || script.cachedDataRejected === true || process.env.PLANNER_WRITE_CODE_CACHE === "1") {
    // At exit the script holds the code of everything the command ran: that is what the next command needs.
    process.once("exit", () => {
      const temporary = `${cacheFile}.${process.pid}`
      try {
        fs.writeFileSync(temporary, Buffer.concat([digest, script.createCachedData()]))
        fs.renameSync(temporary, cacheFile)
      } catch {
        fs.rmSync(temporary, { force: true })
      }
    })
  }
  const module = new Module(file)
  module.filename = file
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file))
}

if (topLevel) {
  import("../dist/app/cli/RootHelp.js").then(({ rootHelp, version }) => {
    process.stdout.write(`${args[0] === "--version" ? version : rootHelp}\n`)
  }, notBuilt)
} else if (args[0] === "plan") {
  import("../dist/app/cli/PlanArgs.js").then(({ fastPlanArgs }) => {
    const isFile = (file) => fs.statSync(file, { throwIfNoEntry: false })?.isFile() === true
    run(fastPlanArgs(args, process.env, isFile) === undefined ? "main" : "plan")
  }, notBuilt)
} else {
  run("main")
}
