/**
 * Every process the benchmark measures runs our code from a bundle, as the `planner` command runs from one
 * (`scripts/build.mjs`), not through vite-node, a development loader: a worker process run through it cost 0.1-0.5 ms
 * more CPU per task in interleaved pairs of the scale scenario (docs/performance.md, "every measured process from a
 * bundle"). The project's own modules (src, test, scripts) are bundled with esbuild; packages are imported from
 * node_modules as they are, so the bundles live under node_modules to find them. `import.meta.url` keeps meaning the
 * source file's own URL, as it did under vite-node, so that files found relative to a module (the project's root, the
 * dashboard's assets, a child's script) are the same.
 */
import { renameSync } from "node:fs"
import { readFile } from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import type { Plugin } from "esbuild"

/**
 * Node's own flags for the benchmark's process and the processes it measures from bundles (workers, children; not
 * the CLI start-up runs, which time `bin/planner.js` as a person starts it), from `BENCH_NODE_FLAGS` (separated by
 * white space): a diagnosis that needs them there, such as `--perf-basic-prof` for `perf` (docs/performance.md).
 */
export const nodeFlags = (): ReadonlyArray<string> =>
  process.env.BENCH_NODE_FLAGS?.split(/\s+/).filter((flag) => flag !== "") ?? []

const root = fileURLToPath(new URL("../..", import.meta.url))
const outDir = path.join(root, "node_modules", ".cache", "planner-bench")
const built = new Map<string, Promise<string>>()

/** The name each module's own URL gets; `define` points `import.meta.url` at it, so only real uses change. */
const sourceUrl = "__plannerBenchSourceUrl"

/** Each of the project's TypeScript modules that reads `import.meta` declares its own URL first. */
const sourceUrls: Plugin = {
  name: "source-urls",
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined
      const contents = await readFile(args.path, "utf8")
      if (!contents.includes("import.meta")) return undefined
      return {
        contents: `const ${sourceUrl} = ${JSON.stringify(pathToFileURL(args.path).href)};\n${contents}`,
        loader: "ts" as const
      }
    })
  }
}

/**
 * The bundle of a TypeScript entry point (a path from the project's root), built once per run; its path. It is written
 * beside its final name and renamed into place, so that a child started by another benchmark run at the same moment
 * never reads half a file.
 */
export const bundle = (entry: string): Promise<string> => {
  let found = built.get(entry)
  if (found === undefined) {
    const outfile = path.join(outDir, `${entry.replaceAll(/[\\/]/g, "_").replace(/\.ts$/, "")}.mjs`)
    const staging = `${outfile}.${process.pid}.tmp.mjs`
    found = import("esbuild").then(async (esbuild) => {
      await esbuild.build({
        entryPoints: [path.join(root, entry)],
        bundle: true,
        packages: "external",
        platform: "node",
        format: "esm",
        target: "node20",
        outfile: staging,
        define: { "import.meta.url": sourceUrl },
        plugins: [sourceUrls],
        logLevel: "error"
      })
      renameSync(staging, outfile)
      return outfile
    })
    built.set(entry, found)
  }
  return found
}
