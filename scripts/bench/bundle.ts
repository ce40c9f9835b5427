/**
 * Every process the benchmark measures runs our code from a bundle, as the `planner` command ships
 * (`scripts/build.mjs`: esbuild, one file), not through vite-node's module runner, which is a development tool: a
 * worker process run through it cost 0.2-0.5 ms more CPU per task in interleaved pairs of the scale scenario
 * (docs/performance.md, "every measured process from a bundle"). The project's own modules (src, test, scripts) are
 * bundled; packages are imported from node_modules as they are, so the bundles live under node_modules to find them.
 * `import.meta.url` keeps meaning the source file's own URL, as it did under vite-node, so that files found relative
 * to a module (the project's root, the dashboard's assets, a child's script) are the same.
 */
import { readFile } from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import type { Plugin } from "esbuild"

const root = fileURLToPath(new URL("../..", import.meta.url))
const outDir = path.join(root, "node_modules", ".cache", "planner-bench")
const built = new Map<string, Promise<string>>()

/** Spelled in two parts, so that this file, bundled too, keeps its own text. */
const metaUrl = ["import", "meta", "url"].join(".")

/** `import.meta.url` in the project's TypeScript files, replaced by each file's own URL. */
const sourceUrls: Plugin = {
  name: "source-urls",
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined
      const contents = await readFile(args.path, "utf8")
      if (!contents.includes(metaUrl)) return undefined
      return {
        contents: contents.replaceAll(metaUrl, JSON.stringify(pathToFileURL(args.path).href)),
        loader: "ts" as const
      }
    })
  }
}

/** The bundle of a TypeScript entry point (a path from the project's root), built once per run; its path. */
export const bundle = (entry: string): Promise<string> => {
  let found = built.get(entry)
  if (found === undefined) {
    const outfile = path.join(outDir, `${entry.replaceAll(/[\\/]/g, "_").replace(/\.ts$/, "")}.mjs`)
    found = import("esbuild").then(async (esbuild) => {
      await esbuild.build({
        entryPoints: [path.join(root, entry)],
        bundle: true,
        packages: "external",
        platform: "node",
        format: "esm",
        target: "node20",
        outfile,
        plugins: [sourceUrls],
        logLevel: "error"
      })
      return outfile
    })
    built.set(entry, found)
  }
  return found
}
