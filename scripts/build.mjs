// `npm run build` (also run by `npm install` through `prepare`): three steps, each needed from a clean checkout.
//
// 1. tsc emits dist/ (the library: one ES module per source file, with .d.ts declarations) from tsconfig.build.json.
//    It emits even when the tree has type errors; then the build still completes and exits 1 at the end.
// 2. The dashboard's browser files are copied next to the compiled server (scripts/build-dashboard.mjs).
// 3. esbuild bundles the `planner` command (src/app/main.ts) into dist/cli/: one file for what every command loads,
//    and one chunk per lazily loaded part (each command's module, the SQLite and PostgreSQL stores, the LLM clients,
//    OpenTelemetry). Node then reads a handful of files instead of hundreds of small modules, and only code that can
//    run: that is most of the CLI's start-up time (see `npm run bench -- --only=cli`).
//
// The bundle keeps out what cannot or need not be inlined: better-sqlite3 (a native addon), pg (its optional native
// binding is looked up at run time), and the OpenTelemetry SDK packages. Modules that locate files from their own URL
// (the dashboard's assets, package.json for the version, the tokenizer's encodings) get the URL their compiled file has
// in dist/, so they find the same files from the bundle.
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs"
import { readFile } from "node:fs/promises"
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

/** `import.meta.url` of a source file, as the URL of its compiled file in dist/, computed from the bundle's chunk. */
const moduleUrlPlugin = {
  name: "module-url",
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!args.path.startsWith(src + path.sep)) return undefined
      const contents = await readFile(args.path, "utf8")
      if (!contents.includes("import.meta.url")) return undefined
      const compiledFile = path.join(dist, path.relative(src, args.path)).replace(/\.ts$/, ".js")
      const relative = path.relative(cliOut, compiledFile).split(path.sep).join("/")
      return {
        contents: contents.replaceAll("import.meta.url", `new URL(${JSON.stringify(relative)}, import.meta.url).href`),
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

// Built beside dist/cli/ and moved in file by file, the entry last: commands started by other processes meanwhile (tests
// run in parallel, each may rebuild) always find a complete bundle. Chunk names carry a hash of their content.
const started = Date.now()
const staging = path.join(dist, `.cli-build-${process.pid}`)
rmSync(staging, { recursive: true, force: true })
const esbuild = await import("esbuild")
await esbuild.build({
  absWorkingDir: root,
  entryPoints: { main: "src/app/main.ts" },
  outdir: staging,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // Chunks beside the entry, so every chunk's import.meta.url is in the same folder.
  chunkNames: "[name]-[hash]",
  minify: true,
  // Error classes and services keep their names in messages and stack traces.
  keepNames: true,
  // Bundled CommonJS packages call require() for Node's own modules.
  banner: {
    js: 'import { createRequire as __plannerRequire } from "node:module"; const require = __plannerRequire(import.meta.url);'
  },
  external: ["better-sqlite3", "pg", "pg-native", "@opentelemetry/*"],
  plugins: [moduleUrlPlugin, unusedParsersPlugin],
  legalComments: "none",
  logLevel: "warning"
})
mkdirSync(cliOut, { recursive: true })
const built = readdirSync(staging)
for (const name of built) if (name !== "main.js") renameSync(path.join(staging, name), path.join(cliOut, name))
renameSync(path.join(staging, "main.js"), path.join(cliOut, "main.js"))
rmSync(staging, { recursive: true, force: true })
// Chunks of earlier builds: kept for an hour, for commands that started before this build and load them lazily.
for (const name of readdirSync(cliOut)) {
  const file = path.join(cliOut, name)
  if (!built.includes(name) && Date.now() - statSync(file).mtimeMs > 3_600_000) rmSync(file, { force: true })
}
console.log(`build: cli bundle done in ${Date.now() - started} ms`)
if (!compiled) {
  console.error("build: dist/ is complete, but tsc reported type errors (above)")
  process.exit(1)
}
