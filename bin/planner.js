#!/usr/bin/env node
// The `planner` command. The program is bundled into dist/cli/ (built by `npm run build`, which `npm install` runs
// through the `prepare` script; see scripts/build.mjs). `--version` and the top-level help are answered without
// loading the rest.
const args = process.argv.slice(2)
const topLevel = args.length === 0 || (args.length === 1 && ["--help", "-h", "--version"].includes(args[0]))

const notBuilt = (error) => {
  if (error && error.code === "ERR_MODULE_NOT_FOUND") {
    console.error("planner: it is not built yet: run `npm run build` (or `npm install`) in the project folder first.")
    process.exit(4)
  }
  throw error
}

if (topLevel) {
  import("../dist/app/cli/RootHelp.js").then(({ rootHelp, version }) => {
    process.stdout.write(`${args[0] === "--version" ? version : rootHelp}\n`)
  }, notBuilt)
} else {
  import("../dist/cli/main.js").catch(notBuilt)
}
