// Copies the dashboard's browser files (plain ES modules, CSS, HTML) next to the compiled server, which serves them
// from `dist/app/dashboard/`. They need no bundling: browsers load the modules as they are.
import { cpSync, existsSync, rmSync } from "node:fs"
import { fileURLToPath } from "node:url"

const source = fileURLToPath(new URL("../src/app/dashboard/", import.meta.url))
const target = fileURLToPath(new URL("../dist/app/dashboard/", import.meta.url))

if (!existsSync(source)) {
  console.error(`build-dashboard: ${source} is missing`)
  process.exit(1)
}
rmSync(target, { recursive: true, force: true })
cpSync(source, target, { recursive: true })
console.log(`build-dashboard: copied ${source} to ${target}`)
