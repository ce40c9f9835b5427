/**
 * A `--db` value that looks like a URL with its `//` missing (`postgres:/x`, `file:/tmp/x.db`, `postgresql:db`) is
 * bad usage, exit code 2, with the password masked: used as a SQLite path it made a folder `postgres:` without a word.
 * Paths stay paths, colons and drive letters included.
 */
import * as fs from "node:fs"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { Option } from "effect"
import { resolveStore } from "../../src/app/cli/Store.js"
import { cli, ensureBuilt, oneLine, tempFolder } from "./cli.js"

const target = (db: string) => resolveStore(Option.some(db), {})

describe("resolveStore: a URL with its // missing", () => {
  it("is refused with one line saying what a URL looks like", () => {
    for (const db of [
      "postgres:/x",
      "postgresql:/planner@localhost/db",
      "postgres:x",
      "file:/tmp/x.db",
      "sqlite:/a.db"
    ]) {
      const resolved = target(db)
      expect(resolved._tag, db).toBe("Invalid")
      if (resolved._tag === "Invalid")
        expect(resolved.problem, db).toContain("is not a URL: a URL starts with scheme://")
    }
    const postgres = target("postgres:/x")
    if (postgres._tag === "Invalid") expect(postgres.problem).toContain("(did you mean postgres://?)")
  })

  it("masks the password it holds", () => {
    const resolved = target("postgres:/planner:hunter2secret@localhost/db")
    expect(resolved._tag).toBe("Invalid")
    if (resolved._tag === "Invalid") {
      expect(resolved.problem).toContain("postgres:/planner:***@localhost/db")
      expect(resolved.problem).not.toContain("hunter2secret")
    }
  })

  it("refuses a postgres:// URL that does not parse, naming what to check, with the password masked", () => {
    for (const db of [
      "postgres://planner:hunter2secret@[bad/db",
      "postgresql://planner:hunter2secret@host:99999/db",
      "postgres://planner:hunter2secret@host:port/db"
    ]) {
      const resolved = target(db)
      expect(resolved._tag, db).toBe("Invalid")
      if (resolved._tag === "Invalid") {
        expect(resolved.problem, db).toMatch(
          /^--db postgres(ql)?:\/\/planner:\*\*\*@.* is not a valid URL: check the host/
        )
        expect(resolved.problem, db).not.toContain("hunter2secret")
      }
    }
    // A password with a space, or with an @ as well as a bad port, is masked whole: up to the last @.
    for (const [db, masked] of [
      ["postgres://planner:hunter2 secret@host:port/db", "postgres://planner:***@host:port/db"],
      ["postgres://planner:hunter2@secret@host:port/db", "postgres://planner:***@host:port/db"],
      ["postgres:/planner:hunter2 se@cret@host/db", "postgres:/planner:***@host/db"]
    ] as const) {
      const resolved = target(db)
      expect(resolved._tag, db).toBe("Invalid")
      if (resolved._tag === "Invalid") {
        expect(resolved.problem, db).toContain(masked)
        expect(resolved.problem, db).not.toMatch(/hunter2|secret|cret/)
      }
    }
    // An @ in the password that is not percent-encoded still parses (the last @ ends it): the server decides.
    expect(target("postgres://planner:p@ss@localhost/db")._tag).toBe("Postgres")
  })

  it("leaves paths alone, colons, drive letters and the ./ escape included", () => {
    for (const db of ["./postgres:/x", "C:/data/planner.db", "my:db.sqlite", "/tmp/a:b/planner.db", "planner.db"]) {
      expect(target(db)._tag, db).toBe("Sqlite")
    }
    expect(target("postgres://planner@localhost/db")._tag).toBe("Postgres")
  })
})

beforeAll(() => ensureBuilt(), 180_000)

describe("planner --db postgres:/x", { timeout: 120_000 }, () => {
  it("is exit code 2 with one line, and creates nothing", async () => {
    const cwd = tempFolder()
    const result = await cli(["run", "--executor", "echo", "--db", "postgres:/planner:hunter2secret@x", "Do it."], {
      cwd
    })
    expect(result.code).toBe(2)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(oneLine(result.stderr)).toMatch(/^planner: --db postgres:\/planner:\*\*\*@x is not a URL/)
    expect(result.stderr + result.stdout).not.toContain("hunter2secret")
    expect(fs.readdirSync(cwd)).toEqual([])
  })
})
