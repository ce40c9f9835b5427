/**
 * Which event store a command uses: `--db postgres://...` or `--db PATH`, else `PLANNER_DATABASE_URL`, else the
 * embedded SQLite file `./.planner/planner.db`, created by the first command that records a session (`run`, `worker`,
 * `serve`; the others read a missing file as an empty store, see `resolveExistingStore`). The store's layer is loaded
 * on demand, so a SQLite command never loads the PostgreSQL driver and the reverse.
 */
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Effect, Layer, Option, Redacted } from "effect"
import type { EventStore } from "../../infra/EventStore.js"
import * as PlannerStore from "../../infra/PlannerStore.js"
import type { PlannerServiceOptions } from "../PlannerService.js"
import * as SubPlans from "../SubPlans.js"
import { type CliFailure, unavailable, usage } from "./Failure.js"
import { isPostgresUrl, maskUrl, registerUrlSecret, shellQuote, withoutRawPassword } from "./Output.js"

export const defaultDatabase = "./.planner/planner.db"
export const databaseVariable = "PLANNER_DATABASE_URL"
/** `full` syncs every SQLite commit to disk (see `SqliteEventStoreConfig.synchronous`); `normal` is the default. */
export const synchronousVariable = "PLANNER_SQLITE_SYNCHRONOUS"

export type StoreTarget =
  | {
      /** `--db` or the environment variable names no usable store: refused with exit code 2 when it is opened. */
      readonly _tag: "Invalid"
      readonly problem: string
      readonly label: string
      readonly flag: string
    }
  | {
      readonly _tag: "Sqlite"
      readonly filename: string
      /** How to name it in messages: the path as given. */
      readonly label: string
      /** The `--db` flag to repeat in printed commands; empty for the default and the environment variable. */
      readonly flag: string
      /** No file is there: read as an empty store in memory, and nothing created (see `resolveExistingStore`). */
      readonly missing?: true
      /** From `PLANNER_SQLITE_SYNCHRONOUS`; the store's default when unset. */
      readonly synchronous?: "normal" | "full"
      /** The command only reads: a file this user may not write is opened read only (see `forReading`). */
      readonly reading?: true
    }
  | {
      readonly _tag: "Postgres"
      readonly url: Redacted.Redacted
      /** The URL with its password masked. */
      readonly label: string
      readonly flag: string
    }

/** `scheme://` at the start of a value: a URL, not a path. */
const urlScheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//

/** Why `given` (from `where`) names no store, or undefined when it is a PostgreSQL URL or a SQLite path. */
const storeProblem = (given: string, where: string): string | undefined => {
  if (given.trim() === "") {
    return `${where} is empty: give a SQLite file path (for example ./.planner/planner.db) or a postgres://user:password@host/db URL.`
  }
  const scheme = urlScheme.exec(given)?.[1]
  if (scheme !== undefined && !isPostgresUrl(given)) {
    registerUrlSecret(given)
    const hint = /^postg/i.test(scheme) ? " (did you mean postgres://?)" : ""
    return `${where} ${maskUrl(given)} has the unknown URL scheme ${scheme}://${hint}: give a postgres:// URL, or a SQLite file path without a scheme.`
  }
  const malformed = malformedUrl(given)
  if (malformed !== undefined) {
    const hint = /^postg/i.test(malformed.scheme) ? " (did you mean postgres://?)" : ""
    return `${where} ${malformed.masked} is not a URL: a URL starts with scheme://${hint}. Give a postgres:// URL, or a SQLite file path (./${malformed.masked} for a file of that name).`
  }
  if (given.includes("\u0000")) return `${where} holds a NUL character: give a plain path or URL.`
  if (isPostgresUrl(given) && !URL.canParse(given)) {
    registerUrlSecret(given)
    return `${where} ${maskUrl(given)} is not a valid URL: check the host and port, and percent-encode special characters in the user name and password (@ as %40, / as %2F).`
  }
  return undefined
}

/**
 * A URL with its `//` missing: a scheme of two or more letters, a colon, then a single slash (`postgres:/x`,
 * `file:/tmp/x.db`) or, for a PostgreSQL-like scheme, anything (`postgres:x`, `postgresql:/db`). Used as a SQLite
 * path it would make a folder named `postgres:` without a word. One letter is a drive (`C:/x`), not a scheme. The
 * password of `user:password@` after it is registered as a secret and masked.
 */
const malformedUrl = (given: string): { readonly scheme: string; readonly masked: string } | undefined => {
  const match = /^([A-Za-z][A-Za-z0-9+.-]+):(.*)$/s.exec(given)
  if (match === null) return undefined
  const scheme = match[1] as string
  const rest = match[2] as string
  // `scheme://` is a URL (a PostgreSQL one, or refused above for its scheme).
  if (rest.startsWith("//")) return undefined
  if (!(rest.startsWith("/") || /^postg/i.test(scheme))) return undefined
  return { scheme, masked: withoutRawPassword(given) }
}

/** The store a command uses, from `--db` and the environment. */
export const resolveStore = (db: Option.Option<string>, env: NodeJS.ProcessEnv = process.env): StoreTarget => {
  const fromEnv = env[databaseVariable]
  const explicit = Option.isSome(db)
  // An unset variable means the default store; one set to a blank value is a mistake like `--db ""`.
  const given = Option.getOrUndefined(db) ?? fromEnv?.trim()
  if (given !== undefined) {
    const problem = storeProblem(given, explicit ? "--db" : databaseVariable)
    if (problem !== undefined) return { _tag: "Invalid", problem, label: maskUrl(given), flag: "" }
  }
  if (given !== undefined && isPostgresUrl(given)) {
    registerUrlSecret(given)
    const label = maskUrl(given)
    return { _tag: "Postgres", url: Redacted.make(given), label, flag: explicit ? ` --db ${shellQuote(label)}` : "" }
  }
  const filename = given ?? defaultDatabase
  const flag = explicit ? ` --db ${shellQuote(filename)}` : ""
  const synchronous = env[synchronousVariable]?.trim().toLowerCase()
  if (synchronous === undefined || synchronous === "") return { _tag: "Sqlite", filename, label: filename, flag }
  if (synchronous !== "normal" && synchronous !== "full") {
    const problem = `${synchronousVariable} is ${JSON.stringify(env[synchronousVariable])}: set it to full (sync every commit to disk) or normal (the default), or unset it.`
    return { _tag: "Invalid", problem, label: filename, flag }
  }
  return { _tag: "Sqlite", filename, label: filename, flag, synchronous }
}

/**
 * Whether nothing is at `path` yet (a file or folder could be made there): not so when a file is in the way, nor for a
 * link, even one to nothing (an unmounted volume, say), which is opened and refused as it would have been.
 */
const absent = (path: string): boolean => {
  try {
    Fs.lstatSync(path)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT"
  }
}

/**
 * The store of a command that reads sessions or works on one that exists (everything but `run`, `worker` and
 * `serve`). A SQLite file that does not exist holds no session, so it is not created (a mistyped `--db` leaves no
 * empty database and folders behind): the command sees an empty store in memory, named as the file was, and says
 * there is no such session, or no session yet. A path that could never be a database (a file where a folder should
 * be, a permission refused) is still opened, and refused as for any command.
 */
export const resolveExistingStore = (db: Option.Option<string>, env: NodeJS.ProcessEnv = process.env): StoreTarget => {
  const target = resolveStore(db, env)
  return target._tag === "Sqlite" && target.filename !== ":memory:" && absent(target.filename)
    ? { ...target, filename: ":memory:", missing: true }
    : target
}

/**
 * For a command that checks or rebuilds what a store holds (`doctor`, `memory rebuild`): exit code 2 when the SQLite
 * file is not there, rather than an all-clear about an empty store that a mistyped path would get.
 */
export const requireDatabase = (target: StoreTarget): Effect.Effect<void, CliFailure> =>
  target._tag === "Sqlite" && target.missing === true
    ? Effect.fail(usage(`There is no database at ${target.label}: check the path (--db or ${databaseVariable}).`))
    : Effect.void

const folderProblem = (error: unknown): string => {
  const code = (error as NodeJS.ErrnoException).code
  switch (code) {
    case "EACCES":
    case "EPERM":
      return "permission denied"
    case "EEXIST":
    case "ENOTDIR":
      return "a file is in the way"
    case "EROFS":
      return "read-only file system"
    case "ENOENT":
      return "its parent cannot hold folders"
    default:
      return code ?? String(error)
  }
}

/**
 * Creates `folder` and the missing folders above it, one at a time. Not `mkdirSync(..., { recursive: true })`: on a
 * file system such as /proc, where mkdir answers ENOENT for a folder whose parent exists, Node's recursive mkdir
 * retries forever at full CPU (`--db /proc/nope/x.db` never ended).
 */
const makeFolders = (folder: string): void => {
  const missing: Array<string> = []
  let current = folder
  while (!Fs.existsSync(current)) {
    missing.push(current)
    const parent = NodePath.dirname(current)
    if (parent === current) break
    current = parent
  }
  for (const path of missing.reverse()) Fs.mkdirSync(path)
  if (!Fs.statSync(folder).isDirectory()) {
    throw Object.assign(new Error(`${folder} is not a folder`), { code: "ENOTDIR" })
  }
}

/** Creates the folder of a SQLite file, so the default `./.planner/` (or any new `--db` path) works on first use. */
const ensureFolder = (filename: string) =>
  Effect.try({
    try: () => {
      if (filename === ":memory:") return
      makeFolders(NodePath.dirname(NodePath.resolve(filename)))
    },
    catch: (error) =>
      unavailable(
        `Cannot create the folder for the database ${filename} (${folderProblem(error)}): choose a writable path with --db.`
      )
  })

/**
 * The target of a command that only reads (`sessions`, `show`, `history`, `replay`, `diff`, `doctor`, `stats`,
 * `recall`): a SQLite file this user may read but not write is opened read only rather than refused.
 */
export const forReading = (target: StoreTarget): StoreTarget =>
  target._tag === "Sqlite" ? { ...target, reading: true } : target

/** An opening error that says the file or its folder may not be written to. */
const cannotWrite = (reason: string): boolean =>
  /readonly database|read-only|unable to open database file|permission denied/i.test(reason)

/** The event store layer for a target. Opening and connection errors fail with exit code 4 and one clear line. */
export const storeLayer = (target: StoreTarget): Layer.Layer<EventStore, CliFailure> => {
  switch (target._tag) {
    case "Invalid":
      return Layer.fail(usage(target.problem))
    case "Sqlite":
      return Layer.unwrapEffect(
        Effect.gen(function* () {
          yield* ensureFolder(target.filename)
          const SqliteEventStore = yield* Effect.promise(() => import("../../infra/SqliteEventStore.js"))
          const config = {
            filename: target.filename,
            ...(target.synchronous === undefined ? {} : { synchronous: target.synchronous })
          }
          // For a command that only reads, a file this user may read but not write (another user's, in a read-only
          // folder or mount) is opened read only.
          return SqliteEventStore.layer(config).pipe(
            Layer.catchAll((error) =>
              target.reading === true && cannotWrite(error.reason) && Fs.existsSync(target.filename)
                ? SqliteEventStore.layer({ ...config, readonly: true }).pipe(
                    // Its own reason when it is not about permissions (a file that needs an upgrade, not a database).
                    Layer.mapError((readOnly) => (cannotWrite(readOnly.reason) ? error : readOnly))
                  )
                : Layer.fail(error)
            ),
            Layer.mapError((error) =>
              unavailable(
                `Cannot use the SQLite database ${target.label}: ${error.reason}. Check the path and its permissions, or choose another with --db.`
              )
            )
          )
        })
      )
    case "Postgres":
      return Layer.unwrapEffect(
        Effect.gen(function* () {
          const PgEventStore = yield* Effect.promise(() => import("../../infra/PgEventStore.js"))
          return PgEventStore.layer({ url: target.url }).pipe(
            Layer.mapError((error) => unavailable(postgresProblem(target.label, error.reason)))
          )
        })
      )
  }
}

/**
 * What to tell a user whose PostgreSQL store cannot be used, from the server's or the driver's reason: a server that
 * answered but refused (the login, a database that is not there, tables this role may not use) needs another fix than
 * one that cannot be reached. The server's messages are matched in English, its default; in another language the
 * reason is still given, with the general advice.
 */
export const postgresProblem = (label: string, reason: string): string => {
  const where = `(--db or ${databaseVariable})`
  const database = /database "([^"]+)" does not exist/.exec(reason)?.[1]
  if (database !== undefined) {
    return `The database ${database} does not exist on the PostgreSQL server at ${label}. Create it (createdb ${database}) or fix the URL ${where}.`
  }
  if (/password authentication failed|role "[^"]+" does not exist|no pg_hba\.conf entry/.test(reason)) {
    return `PostgreSQL at ${label} refused the login: ${reason}. Check the user name and password in the URL ${where}.`
  }
  if (/permission denied/.test(reason)) {
    return `The user in the URL may not use the planner's tables at ${label}: ${reason}. Connect as the user that created them, or have their owner grant this one SELECT, INSERT, UPDATE and DELETE on them and the use of their sequences.`
  }
  return `Cannot reach PostgreSQL at ${label}: ${reason}. Check that the server is running and the URL ${where}.`
}

/** The event store, `PlannerStore` and `PlannerService` (with `options`) for a target. */
export const plannerLayer = (target: StoreTarget, options: PlannerServiceOptions = {}) =>
  SubPlans.layer(options).pipe(Layer.provideMerge(PlannerStore.layer), Layer.provideMerge(storeLayer(target)))
