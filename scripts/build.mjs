// `npm run build` (also run by `npm install` through `prepare`): three steps, each needed from a clean checkout.
//
// 1. tsc emits dist/ (the library: one ES module per source file, with .d.ts declarations) from tsconfig.build.json.
//    It emits even when the tree has type errors; then the build still completes and exits 1 at the end.
// 2. The dashboard's browser files are copied next to the compiled server (scripts/build-dashboard.mjs).
// 3. esbuild bundles the `planner` command (src/app/main.ts) into one CommonJS file, dist/cli/main.cjs. Node then
//    reads one file instead of hundreds of small modules; the parts a command may not need (each command's module,
//    the SQLite and PostgreSQL stores, the LLM clients, OpenTelemetry) stay lazy: esbuild wraps each in a function
//    that runs when it is first imported. A second, small bundle, dist/cli/plan.cjs (src/app/PlanMain.ts), answers
//    `planner plan` without an LLM: no @effect/cli and no other command's definitions (see bin/planner.js).
// 4. A V8 code cache for each bundle, dist/cli/main.cache and plan.cache: bin/planner.js compiles the bundle with it,
//    which skips parsing and compiling most of it (a good part of what is left of the start-up time). It is made by
//    running a two-task `run --executor echo` (and a `plan`) once, so it holds what commands run. It is only valid for the same bundle (its
//    first 20 bytes are the bundle's SHA-1) and the same Node.js; otherwise bin/planner.js writes a new one.
//
// See `npm run bench -- --only=cli` for the start-up figures.
//
// The bundle keeps out what cannot or need not be inlined: better-sqlite3 (a native addon), pg (its optional native
// binding is looked up at run time), and the OpenTelemetry SDK packages. Modules that locate files from their own URL
// (the dashboard's assets, package.json for the version, the tokenizer's encodings) get the URL their compiled file has
// in dist/, so they find the same files from the bundle.
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs"
import { readFile } from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const src = path.join(root, "src")
const dist = path.join(root, "dist")
const cliOut = path.join(dist, "cli")

const step = (name, command, args) => {
  const started = Date.now()
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" })
  if (result.error !== undefined) throw result.error
  console.log(
    `build: ${name} ${result.status === 0 ? "done" : `failed (exit ${result.status})`} in ${Date.now() - started} ms`
  )
  return result.status === 0
}

const tscBin = path.join(root, "node_modules", "typescript", "bin", "tsc")
const compiled = step("tsc", process.execPath, [tscBin, "-p", "tsconfig.build.json"])
if (!existsSync(path.join(dist, "app", "main.js"))) {
  console.error("build: tsc emitted nothing; see its errors above")
  process.exit(1)
}
if (!step("dashboard", process.execPath, [path.join(root, "scripts", "build-dashboard.mjs")])) process.exit(1)

/** `import.meta.url` of a source file, as the URL of its compiled file in dist/, computed from the bundle's path. */
const moduleUrlPlugin = {
  name: "module-url",
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!args.path.startsWith(src + path.sep)) return undefined
      const contents = await readFile(args.path, "utf8")
      if (!contents.includes("import.meta.url")) return undefined
      const compiledFile = path.join(dist, path.relative(src, args.path)).replace(/\.ts$/, ".js")
      const relative = path.relative(cliOut, compiledFile).split(path.sep).join("/")
      const url = `new URL(${JSON.stringify(relative)}, __plannerBundleUrl).href`
      return {
        contents: contents.replaceAll("import.meta.url", url),
        loader: "ts"
      }
    })
  }
}

/**
 * @effect/cli reads YAML, TOML and INI configuration files for `Options.fileParse`, which the planner does not use;
 * their parsers are a third of what every command would load. In the bundle they fail if ever called.
 */
const unusedParsersPlugin = {
  name: "unused-parsers",
  setup(build) {
    build.onResolve({ filter: /^(yaml|toml|ini)$/ }, (args) => ({ path: args.path, namespace: "unused-parser" }))
    build.onLoad({ filter: /.*/, namespace: "unused-parser" }, (args) => ({
      contents: `const unused = () => { throw new Error("planner: the ${args.path} parser is not part of this build") }
export const parse = unused
export const stringify = unused
export default { parse: unused, stringify: unused }`,
      loader: "js"
    }))
  }
}

// Built beside dist/cli/ and moved in with a rename: commands started by other processes meanwhile (tests run in
// parallel, each may rebuild) always find a complete bundle.
const started = Date.now()
const staging = path.join(dist, `.cli-build-${process.pid}`)
rmSync(staging, { recursive: true, force: true })
const esbuild = await import("esbuild")
const bundle = (entry, name) =>
  esbuild.build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: path.join(staging, `${name}.cjs`),
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    minify: true,
    // Error classes and services keep their names in messages and stack traces.
    keepNames: true,
    // The bundle's own URL, for the module-url plugin (a module may name its own `require`, as the tokenizer does).
    banner: { js: 'var __plannerBundleUrl = require("node:url").pathToFileURL(__filename);' },
    external: ["better-sqlite3", "pg", "pg-native", "@opentelemetry/*"],
    plugins: [moduleUrlPlugin, unusedParsersPlugin],
    legalComments: "none",
    logLevel: "warning",
    metafile: true
  })
await bundle("src/app/main.ts", "main")
// `planner plan` on its own (src/app/PlanMain.ts): its start-up is the point, so a package that would make it slow
// again (the command line library, an LLM client, a store driver) fails the build rather than creeping in unseen.
const planBundle = await bundle("src/app/PlanMain.ts", "plan")
const planInputs = Object.keys(Object.values(planBundle.metafile.outputs)[0]?.inputs ?? {})
const unwanted = planInputs.filter((input) =>
  /node_modules\/(@effect\/(cli|platform|ai|ai-openai|sql)|better-sqlite3|pg|@opentelemetry)\//.test(input)
)
if (unwanted.length > 0) {
  console.error(`build: the plan bundle must not hold ${unwanted.join(", ")}`)
  process.exit(1)
}
mkdirSync(cliOut, { recursive: true })
for (const name of ["main.cjs", "plan.cjs"]) renameSync(path.join(staging, name), path.join(cliOut, name))
rmSync(staging, { recursive: true, force: true })
// What earlier builds left: the split ES module bundle.
for (const name of readdirSync(cliOut)) if (name.endsWith(".js")) rmSync(path.join(cliOut, name), { force: true })
console.log(`build: cli bundle done in ${Date.now() - started} ms`)

// The code caches, from one run of each bundle as people run it (bin/planner.js writes them when told to), without an
// LLM, so `plan` runs the plan bundle.
const training = mkdtempSync(path.join(os.tmpdir(), "planner-build-"))
try {
  const env = { ...process.env, PLANNER_WRITE_CODE_CACHE: "1" }
  for (const name of Object.keys(env)) if (name.startsWith("PLANNER_LLM_")) delete env[name]
  const request = "Write the code. Then test it."
  const runs = [
    { cache: "main.cache", args: ["run", "--executor", "echo", "--db", path.join(training, "planner.db"), request] },
    { cache: "plan.cache", args: ["plan", request] }
  ]
  for (const { cache, args } of runs) {
    const trained = spawnSync(process.execPath, [path.join(root, "bin", "planner.js"), ...args], {
      cwd: training,
      env,
      encoding: "utf8"
    })
    if (trained.status !== 0 || !existsSync(path.join(cliOut, cache)))
      console.warn(`build: no code cache ${cache} (the command exited ${trained.status}): ${trained.stderr.trim()}`)
    else console.log(`build: code cache ${cache} done`)
  }
} finally {
  rmSync(training, { recursive: true, force: true })
}
if (!compiled) {
  console.error("build: dist/ is complete, but tsc reported type errors (above)")
  process.exit(1)
}
