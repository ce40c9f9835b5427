#!/usr/bin/env bash
# The package as a consumer gets it: packs it (`npm pack`), installs the tarball into a scratch project in a temp
# folder, type-checks examples/library there with `skipLibCheck: false` and runs it. CI runs this after the tests
# (.ci/run); by hand: `bash scripts/check-library-example.sh`.
#
# The scratch project gets only what a consumer would: the tarball's contents, and its dependencies and peer
# dependencies (and theirs, transitively) at the versions the lockfile installed in this repo's node_modules, copied
# as hard links (fast, no network, no native build). Nothing else: no @types/node, no @types/pg, no TypeScript in
# the scratch project (the repo's own compiler checks it), so a public type that needs one of them fails here.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/planner-library-example-XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
started=$SECONDS
say() { echo "check-library-example: $*"; }

cd "$root"
# The tarball packs dist/: build it first when it is missing or older than the sources.
if [ ! -f dist/index.js ] || [ -n "$(find src -newer dist/index.js -print -quit)" ]; then
  say "building dist/"
  npm run build >/dev/null 2>&1 || [ -f dist/index.js ] || { say "npm run build failed"; exit 1; }
fi
tarball="$(npm pack --silent --ignore-scripts --pack-destination "$scratch" | tail -n 1)"
say "packed $tarball ($(du -h "$scratch/$tarball" | cut -f1))"

mkdir -p "$scratch/project/node_modules/event-sourced-planner"
tar -xzf "$scratch/$tarball" -C "$scratch/project/node_modules/event-sourced-planner" --strip-components=1

# The installed package's dependency closure, as npm would resolve it from the lockfile's versions.
node - "$root" "$scratch/project/node_modules" <<'EOF'
const fs = require("node:fs")
const path = require("node:path")
const [root, target] = process.argv.slice(2)
const modules = path.join(root, "node_modules")
const read = (dir) => JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
const installed = read(path.join(target, "event-sourced-planner"))
const wanted = (pkg) => {
  const optionalPeers = new Set(
    Object.entries(pkg.peerDependenciesMeta ?? {})
      .filter(([, meta]) => meta.optional)
      .map(([name]) => name)
  )
  return [
    ...Object.keys(pkg.dependencies ?? {}).map((name) => [name, true]),
    // Optional dependencies for other platforms are not installed here.
    ...Object.keys(pkg.optionalDependencies ?? {}).map((name) => [name, false]),
    ...Object.keys(pkg.peerDependencies ?? {})
      .filter((name) => !optionalPeers.has(name))
      .map((name) => [name, true])
  ]
}
/** Where Node finds `name` from the package folder `dir`: its own node_modules, then each parent's, then the top. */
const resolve = (dir, name) => {
  for (let at = dir; at.startsWith(`${modules}${path.sep}`); at = path.dirname(at)) {
    const candidate = path.join(at, "node_modules", name)
    if (fs.existsSync(path.join(candidate, "package.json"))) return candidate
  }
  const top = path.join(modules, name)
  return fs.existsSync(path.join(top, "package.json")) ? top : undefined
}
const topLevel = new Set()
const seen = new Set()
const missing = []
const visit = (dir, pkg) => {
  for (const [name, required] of wanted(pkg)) {
    const found = resolve(dir, name)
    if (found === undefined) {
      if (required) missing.push(`${name} (for ${pkg.name})`)
      continue
    }
    if (seen.has(found)) continue
    seen.add(found)
    // Nested packages come with the top-level package that holds them.
    if (found === path.join(modules, name)) topLevel.add(name)
    const dependency = read(found)
    const range = installed.peerDependencies?.[name]
    if (range !== undefined && pkg === installed) console.log(`peer ${name}@${dependency.version} (wants ${range})`)
    visit(found, dependency)
  }
}
visit(modules, installed)
if (missing.length > 0) {
  console.error(`not in ${modules}: ${missing.join(", ")}`)
  process.exit(1)
}
for (const name of topLevel) {
  fs.mkdirSync(path.dirname(path.join(target, name)), { recursive: true })
  // Hard links: as fast as a symlink, but the copy's real path is in the scratch project, so it cannot see the
  // repo's node_modules (its @types/node above all) when a module or a declaration is resolved from it.
  require("node:child_process").execFileSync("cp", ["-al", path.join(modules, name), path.join(target, name)])
}
console.log(`installed ${topLevel.size} packages`)
EOF

cp examples/library/package.json examples/library/tsconfig.json examples/library/main.ts "$scratch/project/"
if [ -e "$scratch/project/node_modules/@types/node" ] || [ -e "$scratch/project/node_modules/@types/pg" ]; then
  say "a dependency brings @types/node or @types/pg; the check would prove nothing"
  exit 1
fi

say "type-checking examples/library (skipLibCheck: false)"
(cd "$scratch/project" && node "$root/node_modules/typescript/bin/tsc" -p tsconfig.json)

say "running it"
output="$(cd "$scratch/project" && node dist/main.js)"
echo "$output"
grep -q ": Succeeded, " <<<"$output" || { say "the example's plan did not succeed"; exit 1; }
say "passed in $((SECONDS - started)) s"
