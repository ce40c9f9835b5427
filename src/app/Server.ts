/**
 * `planner serve`: the dashboard and its JSON API, over the same store the CLI uses.
 *
 * Everything is read from the event log: the session list and boards are folds of it, time travel folds a prefix of
 * it, and the live view is the store's subscription sent as server-sent events (resumable with `Last-Event-ID`,
 * which is the event's sequence). The dashboard's pages are static files from `./dashboard/` (copied next to the
 * compiled server by `npm run build`); they render every string from users and LLMs as text, never as markup.
 *
 * It binds 127.0.0.1 by default. It has no authentication, so on loopback it also refuses requests whose `Host` is
 * not a loopback name (a DNS-rebinding page cannot read it), sends no CORS headers, and takes POSTs only as JSON
 * (a cross-origin page cannot send those without a preflight this server never grants).
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeHttpServerRequest } from "@effect/platform-node"
import { Clock, Console, Context, Data, Effect, Option, ParseResult, Schema, Stream } from "effect"
import { Continue, EditPlan } from "../domain/Commands.js"
import { encodeEvent } from "../domain/Events.js"
import { PlanEdit } from "../domain/PlanEdit.js"
import * as Planner from "../domain/Planner.js"
import { findUnstorableText, unstorableText } from "../domain/SchemaGuard.js"
import type { NodeKind } from "../domain/Task.js"
import type { AggregateInfo, EventStore, EventStoreError } from "../infra/EventStore.js"
import { Llm } from "../infra/Llm.js"
import { MemoryIndex } from "../infra/MemoryIndex.js"
import { type PlannerEventRecord, PlannerStore } from "../infra/PlannerStore.js"
import * as SessionSnapshots from "../infra/SessionSnapshots.js"
import type { ListedJob, WorkerAnnouncement } from "../infra/TaskQueue.js"
import * as Fork from "./Fork.js"
import * as HeldAttempts from "./HeldAttempts.js"
import * as LineageApi from "./LineageApi.js"
import * as MemoryApi from "./MemoryApi.js"
import { PlannerService } from "./PlannerService.js"
import * as Replan from "./Replan.js"
import * as Runner from "./Runner.js"
import * as SubPlanApi from "./SubPlanApi.js"
import { isDeadLocalWorker } from "./worker/WorkerIdentity.js"

export interface ServeOptions {
  readonly host: string
  readonly port: number
  /** The worker this process runs beside the server (`serve --worker`), which serves every session. */
  readonly workerId?: string
}

export const defaultHost = "127.0.0.1"
export const defaultPort = 4780

/** The server could not start: the address is taken or not ours, or the dashboard's files are missing. */
export class ServeError extends Schema.TaggedError<ServeError>()("ServeError", {
  host: Schema.String,
  port: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    const hint = /EADDRINUSE/.test(this.reason)
      ? ": another program listens there. Choose another port with --port (0 takes any free one)."
      : /EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN/.test(this.reason)
        ? ": this machine has no such address. Choose one of its own with --host (127.0.0.1 for this machine only)."
        : /EACCES/.test(this.reason)
          ? ": this user may not listen there. Choose a port above 1023 with --port."
          : ""
    return `Cannot serve the dashboard on ${this.host}:${this.port}: ${this.reason}${hint}`
  }
}

/**
 * A request the API cannot take as it is: malformed (400), not allowed from where it came (403), too large (413), not
 * JSON (415).
 */
class BadRequest extends Data.TaggedError("BadRequest")<{
  readonly status: 400 | 403 | 413 | 415
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}

const refusalTags = {
  400: "BadRequest",
  403: "Forbidden",
  413: "PayloadTooLarge",
  415: "UnsupportedMediaType"
} as const

/** The largest request body taken (answers are at most 50,000 characters; a body is a few of those at most). */
export const maxBodyBytes = 1024 * 1024

const tooLarge = () =>
  new BadRequest({
    status: 413,
    reason: `The request body is larger than ${maxBodyBytes / 1024 / 1024} MiB: send less (an answer is at most 50,000 characters).`
  })

// ---------------------------------------------------------------------------------------------------------------
// JSON views
// ---------------------------------------------------------------------------------------------------------------

/** The first words of a request, for the session list; "…" when there is more. */
const requestPreview = (request: string): string => {
  const lines = request.trim().split("\n")
  const words = (lines[0] ?? "").split(/\s+/).filter((word) => word !== "")
  const preview = words.slice(0, 16).join(" ")
  if (preview.length > 120) return `${preview.slice(0, 119)}…`
  return words.length > 16 || lines.length > 1 ? `${preview}…` : preview
}

/** What a session's state says about who works on it, beside what the task queue says (`Live`). */
interface Activity {
  readonly finished: boolean
  readonly waiting: boolean
  /** Its tasks the log has as running, with the worker that took each (to name a worker that is gone). */
  readonly running: ReadonlyArray<{ readonly taskId: number; readonly workerId: string | undefined }>
  /** The kinds of its tasks that have a job (dispatched or running, not as sub-plans): what a worker must take. */
  readonly kinds: ReadonlyArray<NodeKind>
  /** How many of its tasks in flight run as sub-plans (their child sessions do the work; they have no job). */
  readonly subPlans: number
}

const activityOf = (state: Planner.PlannerState): Activity => {
  const kinds = new Set<NodeKind>()
  const running: Array<{ readonly taskId: number; readonly workerId: string | undefined }> = []
  let subPlans = 0
  for (const task of state.tasks) {
    if (task.status === "Running") running.push({ taskId: task.id, workerId: task.lease?.workerId })
    if (Planner.hasJob(task)) kinds.add(task.kind)
    else if ((task.status === "Dispatched" || task.status === "Running") && task.childSessionId !== undefined) {
      subPlans += 1
    }
  }
  return {
    finished: Planner.isFinished(state),
    waiting: Planner.isWaiting(state),
    running,
    kinds: [...kinds],
    subPlans
  }
}

/** What the task queue says: the workers that hold a job of the session under a live lease (see `Runner.liveness`). */
interface Live {
  /** Live workers: a worker of this host whose process is gone holds nothing (as `planner show` has it). */
  readonly workers: ReadonlyArray<string>
  /** Workers of this host whose process is gone, still holding a job of the session under a lease. */
  readonly gone: ReadonlyArray<string>
  /** The attempts they hold: shown running (`Planner.withHeldAttempts`) while the log still has them dispatched. */
  readonly held: ReadonlyArray<Planner.HeldAttempt>
  /** The live workers that announced they serve this session (`TaskQueue.workers`), whatever they hold now. */
  readonly serving: ReadonlyArray<WorkerAnnouncement>
}

const notLive: Live = { workers: [], gone: [], held: [], serving: [] }

/**
 * Whether a live process serves a session, as the page shows it:
 * - `held`: a worker holds one of its jobs under a lease it keeps renewing;
 * - `waiting`: everything left waits for a person's answer;
 * - `server`: this server's own worker (`serve --worker`) serves it;
 * - `queued`: no worker holds its tasks now, but for each of their kinds a live worker announced it takes them
 *   (busy elsewhere, or about to take them): they wait their turn (the announcements `planner show` reads too);
 * - `stalled`: the log has tasks running, or a worker of this host whose process is gone holds some, and no live
 *   worker holds them (the runner was killed);
 * - `subplans`: what is left of it runs as sub-plans, in child sessions of their own (see each for who serves it);
 * - `unserved`: its tasks wait for a worker, and none is known to serve it;
 * - `finished`.
 */
export type Serving =
  | { readonly kind: "finished" | "waiting" | "unserved" | "subplans" }
  | { readonly kind: "held" | "stalled" | "server" | "queued"; readonly workers: ReadonlyArray<string> }

export const serving = (activity: Activity, live: Live, serverWorker: string | undefined): Serving => {
  if (activity.finished) return { kind: "finished" }
  if (live.workers.length > 0) return { kind: "held", workers: live.workers }
  if (activity.waiting) return { kind: "waiting" }
  if (serverWorker !== undefined) return { kind: "server", workers: [serverWorker] }
  const servers = live.serving.filter((worker) => activity.kinds.some((kind) => worker.kinds.includes(kind)))
  if (
    activity.kinds.length > 0 &&
    activity.kinds.every((kind) => servers.some((worker) => worker.kinds.includes(kind)))
  ) {
    return { kind: "queued", workers: servers.map((worker) => worker.workerId) }
  }
  if (activity.running.length > 0 || live.gone.length > 0) {
    const gone = activity.running.flatMap((task) => (task.workerId === undefined ? [] : [task.workerId]))
    return { kind: "stalled", workers: [...new Set([...gone, ...live.gone])] }
  }
  if (activity.kinds.length === 0 && activity.subPlans > 0) return { kind: "subplans" }
  return { kind: "unserved" }
}

/**
 * The workers holding a live lease on a job, by session, from one look at the queue (all sessions, or one), and those
 * that announced they serve it. An announcement of one of this host's processes that is gone does not count.
 */
const liveWorkers = (sessionId?: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    const now = yield* Clock.currentTimeMillis
    const jobs = yield* service.queue.list(sessionId)
    // Advisory: a registry that cannot be read leaves the page as it was before workers announced themselves.
    const announced = yield* HeldAttempts.liveAnnouncements(service.queue, now).pipe(
      Effect.tapError((error) => Effect.logDebug(`could not read the workers' announcements: ${error.message}`)),
      Effect.orElseSucceed((): ReadonlyArray<WorkerAnnouncement> => [])
    )
    const bySession = new Map<string, Array<ListedJob>>()
    for (const job of jobs) {
      const ofSession = bySession.get(job.sessionId)
      if (ofSession === undefined) bySession.set(job.sessionId, [job])
      else ofSession.push(job)
    }
    return (id: string): Live => {
      const held = HeldAttempts.heldAttempts(bySession.get(id) ?? [], now)
      const workers: Array<string> = []
      const gone: Array<string> = []
      for (const workerId of new Set(held.map((attempt) => attempt.workerId))) {
        if (isDeadLocalWorker(workerId)) gone.push(workerId)
        else workers.push(workerId)
      }
      return { workers, gone, held, serving: announced.filter((worker) => HeldAttempts.servesSession(worker, id)) }
    }
  })

/** What the server knows of itself: the worker it runs, if any (`serve --worker`). */
class ServerInfo extends Context.Reference<ServerInfo>()("event-sourced-planner/Server/ServerInfo", {
  defaultValue: (): { readonly workerId: string | undefined } => ({ workerId: undefined })
}) {}

const serverWorker = Effect.map(ServerInfo, (info) => info.workerId)

const sessionView = (sessionId: string, logState: Planner.PlannerState, worker: string | undefined, live: Live) => {
  const state = Planner.withHeldAttempts(logState, live.held)
  return {
    id: sessionId,
    lastSequence: state.version,
    waiting: Planner.isWaiting(state),
    counts: Planner.countByStatus(state),
    served: serving(activityOf(state), live, worker),
    state
  }
}

/** The session as the API shows it, with whether a live process serves it. */
const viewOf = (sessionId: string, state: Planner.PlannerState) =>
  Effect.gen(function* () {
    const worker = yield* serverWorker
    const live = Planner.isFinished(state) ? notLive : (yield* liveWorkers(sessionId))(sessionId)
    return sessionView(sessionId, state, worker, live)
  })

const eventView = (record: PlannerEventRecord) => {
  const { type, version, data } = encodeEvent(record.event)
  return {
    sequence: record.sequence,
    position: record.position,
    type,
    version,
    createdAt: record.createdAt,
    metadata: record.metadata,
    data
  }
}

const errorJson = (status: number, tag: string, message: string) =>
  HttpServerResponse.unsafeJson(
    { error: { tag, message } },
    // The body of a refused upload is not read: the connection closes instead of waiting for the rest.
    status === 413 ? { status, headers: { connection: "close" } } : { status }
  )

/** Every failure of a handler, as the JSON error the API documents. */
const errorResponse = (error: {
  readonly _tag: string
  readonly message: string
}): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  switch (error._tag) {
    case "UnknownSession":
      return Effect.succeed(errorJson(404, error._tag, error.message))
    case "ForkOutOfRange":
      return Effect.succeed(errorJson(400, error._tag, error.message))
    case "BadRequest":
      return Effect.succeed(
        error instanceof BadRequest
          ? errorJson(error.status, refusalTags[error.status], error.message)
          : errorJson(400, "BadRequest", error.message)
      )
    case "RequestError":
      return Effect.succeed(errorJson(400, "BadRequest", "The request body could not be read."))
    case "EventStoreError":
    case "SnapshotUnreadable":
    case "TaskQueueError":
    case "MemoryIndexError":
    case "CorruptEvent":
      return Effect.logError("the dashboard API could not read the store", error).pipe(
        Effect.as(errorJson(500, error._tag, error.message))
      )
    default:
      // The planner refused the command (or lost every retry of a race): the state does not allow it now.
      return Effect.succeed(errorJson(409, error._tag, error.message))
  }
}

/**
 * A session that is not in the log but was pruned (`planner prune`): its events are gone, its final state is kept. What
 * needs its events (history, time travel, the stream, actions) answers 410 saying so; the session itself is shown.
 */
const prunedOr = (error: Runner.UnknownSession) =>
  SessionSnapshots.isPruned(error.sessionId).pipe(
    Effect.orElseSucceed(() => false),
    Effect.flatMap((pruned) =>
      pruned
        ? Effect.succeed(
            errorJson(
              410,
              "Pruned",
              `The events of session ${error.sessionId} were pruned (planner prune): only its final state is kept, so its history, time travel and actions are gone. Fork or run it again from a newer session.`
            )
          )
        : errorResponse(error)
    )
  )

const withErrors = <E extends { readonly _tag: string; readonly message: string }, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.catchAll(handler, (error) => (error instanceof Runner.UnknownSession ? prunedOr(error) : errorResponse(error)))

// ---------------------------------------------------------------------------------------------------------------
// Request parsing
// ---------------------------------------------------------------------------------------------------------------

const sessionIdParam = Effect.map(HttpRouter.params, (params) => params.id ?? "")

/** A non-negative integer query parameter, or `fallback` when it is absent. */
const integerParam = (name: string, fallback: number | undefined, bounds: { min: number; max: number }) =>
  Effect.flatMap(HttpServerRequest.ParsedSearchParams, (params) => {
    const raw = params[name]
    if (raw === undefined) return Effect.succeed(fallback)
    const text = Array.isArray(raw) ? raw[0] : raw
    const value = typeof text === "string" && /^\d{1,15}$/.test(text) ? Number(text) : Number.NaN
    if (!Number.isSafeInteger(value) || value < bounds.min || value > bounds.max) {
      return Effect.fail(
        new BadRequest({
          status: 400,
          reason: `${name} must be a whole number from ${bounds.min} to ${bounds.max}, not ${JSON.stringify(text)}.`
        })
      )
    }
    return Effect.succeed(value)
  })

/**
 * Reads a request body of at most `maxBodyBytes`, stopping at the first byte over (413). Bodies that declare a larger
 * `Content-Length` never get here (see `checkRequest`); this catches chunked ones that grow past it.
 */
const readBody = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.async<string, BadRequest>((resume) => {
    const source = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let size = 0
    let done = false
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBodyBytes) {
        finish(Effect.fail(tooLarge()))
        // The rest is drained and dropped, never kept: the 413 goes out and the connection closes.
        source.resume()
      } else chunks.push(chunk)
    }
    const onEnd = () => finish(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
    const onError = () =>
      finish(Effect.fail(new BadRequest({ status: 400, reason: "The request body could not be read." })))
    const cleanup = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
    }
    const finish = (result: Effect.Effect<string, BadRequest>) => {
      if (done) return
      done = true
      cleanup()
      chunks.length = 0
      resume(result)
    }
    source.on("data", onData)
    source.once("end", onEnd)
    source.once("error", onError)
    return Effect.sync(cleanup)
  })

/**
 * The JSON body of a POST; an empty body is `{}`. Anything but `application/json` is refused before reading. The
 * refusals say what is wrong and where, never repeating the body (which may be large or not the sender's own).
 */
const jsonBody = <A, I>(schema: Schema.Schema<A, I>, expected: string) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const contentType = (request.headers["content-type"] ?? "").split(";", 1)[0]?.trim().toLowerCase()
    if (contentType !== "application/json") {
      return yield* new BadRequest({
        status: 415,
        reason: "Send the request body as JSON (Content-Type: application/json)."
      })
    }
    const text = yield* readBody(request)
    const json = yield* Effect.try({
      try: (): unknown => (text.trim() === "" ? {} : JSON.parse(text)),
      catch: () => new BadRequest({ status: 400, reason: `The request body is not valid JSON: send ${expected}.` })
    })
    // Text no store keeps as it is (a NUL, a lone surrogate) is refused here, with the shared check.
    const unstorable = findUnstorableText(json)
    if (unstorable !== undefined) {
      return yield* new BadRequest({
        status: 400,
        reason: `The text at ${unstorable.path.replace(/^\./, "") || "the top of the body"} holds ${unstorable.problem}, which cannot be stored: remove it and send it again.`
      })
    }
    return yield* Schema.decodeUnknown(schema, { onExcessProperty: "error" })(json).pipe(
      Effect.mapError((error) => {
        const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
        // Named by its field, with what it should be (`field "at": Expected number`), never with what was sent: a
        // refused body may hold a secret, and this message goes back and into logs.
        const should = issue === undefined ? "" : issue.message.replace(/,\s*actual[\s\S]*$/, "").slice(0, 200)
        const where =
          issue === undefined
            ? ""
            : issue.path.length === 0
              ? ` (${should})`
              : ` (field ${JSON.stringify(issue.path.join("."))}: ${should})`
        return new BadRequest({
          status: 400,
          reason: `The request body is not what this endpoint takes${where}: send ${expected}.`
        })
      })
    )
  })

const AnswerBody = Schema.Struct({
  taskId: Schema.Int.pipe(Schema.positive()),
  answer: Schema.String.pipe(Schema.maxLength(50_000))
})

const CancelBody = Schema.Struct({
  reason: Schema.optional(Schema.String.pipe(Schema.maxLength(2_000)))
})

const ResumeBody = Schema.Struct({})

const RetryBody = Schema.Struct({ taskId: Schema.Int.pipe(Schema.positive()) })

const ForkBody = Schema.Struct({ at: Schema.Int.pipe(Schema.positive()) })

const EditBody = Schema.Struct({ edits: Schema.Array(PlanEdit).pipe(Schema.minItems(1), Schema.maxItems(200)) })

// ---------------------------------------------------------------------------------------------------------------
// API handlers
// ---------------------------------------------------------------------------------------------------------------

/** A session as the list shows it; `problem` when its log cannot be read (it is listed, not skipped). */
interface SessionSummary {
  readonly id: string
  readonly createdAt: number
  readonly updatedAt: number
  readonly lastSequence: number
  readonly status: Planner.SessionStatus | "Unreadable"
  readonly waiting: boolean
  readonly counts: Readonly<Record<string, number>>
  readonly taskCount: number
  readonly request: string
  readonly problem?: string
  /** Its events were pruned (`planner prune`): what is shown comes from its final snapshot. */
  readonly pruned?: true
}

/** The list's status filter: a session status, `Waiting` (running, waiting for an answer) or `Unreadable`. */
const statusFilters = ["Running", "Waiting", "Succeeded", "Failed", "Cancelled", "Unreadable"] as const
const sortOrders = ["newest", "oldest", "updated"] as const

/** One of `allowed`, or `fallback` when the parameter is absent. */
const choiceParam = <const T extends string>(name: string, allowed: ReadonlyArray<T>, fallback: T | undefined) =>
  Effect.flatMap(HttpServerRequest.ParsedSearchParams, (params) => {
    const raw = params[name]
    const text = Array.isArray(raw) ? raw[0] : raw
    if (text === undefined || text === "") return Effect.succeed(fallback)
    const found = allowed.find((choice) => choice.toLowerCase() === String(text).toLowerCase())
    return found === undefined
      ? Effect.fail(
          new BadRequest({
            status: 400,
            reason: `${name} must be one of ${allowed.join(", ")}${String(text).length > 40 ? "" : `, not ${JSON.stringify(text)}`}.`
          })
        )
      : Effect.succeed(found)
  })

const textParam = (name: string, maxLength: number) =>
  Effect.flatMap(HttpServerRequest.ParsedSearchParams, (params) => {
    const raw = params[name]
    const text = (Array.isArray(raw) ? raw[0] : raw) ?? ""
    if (text.length > maxLength) {
      return Effect.fail(new BadRequest({ status: 400, reason: `${name} must be at most ${maxLength} characters.` }))
    }
    const unstorable = unstorableText(text)
    return unstorable === undefined
      ? Effect.succeed(text.trim())
      : Effect.fail(
          new BadRequest({
            status: 400,
            reason: `${name} holds ${unstorable}: remove it.`
          })
        )
  })

/** A session the list shows as unreadable, saying why: it is listed, never skipped. */
const unreadableEntry = (
  base: Pick<SessionSummary, "id" | "createdAt" | "updatedAt" | "lastSequence" | "pruned">,
  problem: string
): { readonly summary: SessionSummary; readonly request: string; readonly activity: undefined } => ({
  request: "",
  activity: undefined,
  summary: { ...base, status: "Unreadable", waiting: false, counts: {}, taskCount: 0, request: "", problem }
})

/**
 * Summaries of the sessions, kept while a session's last sequence is unchanged: filtering or searching the list folds
 * only the sessions that moved since the last request, not all of them.
 */
const makeSummaries = () => {
  const cache = new Map<
    string,
    { readonly summary: SessionSummary; readonly request: string; readonly activity: Activity | undefined }
  >()
  const summarize = (info: AggregateInfo) =>
    Effect.gen(function* () {
      const cached = cache.get(info.aggregateId)
      if (cached !== undefined && cached.summary.lastSequence === info.lastSequence) return cached
      const service = yield* PlannerService
      const base = {
        id: info.aggregateId,
        createdAt: info.firstCreatedAt,
        updatedAt: info.lastCreatedAt,
        lastSequence: info.lastSequence
      }
      const entry = yield* service.state(info.aggregateId).pipe(
        Effect.map((state) => ({
          request: state.request.toLowerCase(),
          activity: activityOf(state) as Activity | undefined,
          summary: {
            ...base,
            status: state.status,
            waiting: Planner.isWaiting(state),
            counts: Planner.countByStatus(state),
            taskCount: state.tasks.length,
            request: requestPreview(state.request)
          } satisfies SessionSummary
        })),
        // One unreadable session must not hide the others (the CLI's `sessions` lists it the same way).
        Effect.catchTag("CorruptEvent", (error) =>
          Effect.as(
            Effect.logWarning("the session list skipped an unreadable session", error),
            unreadableEntry(base, `event ${error.sequence} cannot be read: ${error.reason}`)
          )
        )
      )
      cache.set(info.aggregateId, entry)
      return entry
    })
  return {
    summarize,
    forget: (live: ReadonlySet<string>) => {
      for (const id of cache.keys()) if (!live.has(id)) cache.delete(id)
    }
  }
}

type Summaries = ReturnType<typeof makeSummaries>

const matchesStatus = (summary: SessionSummary, status: (typeof statusFilters)[number] | undefined): boolean => {
  if (status === undefined) return true
  if (status === "Waiting") return summary.status === "Running" && summary.waiting
  if (status === "Running") return summary.status === "Running" && !summary.waiting
  return summary.status === status
}

/**
 * Which of two sessions begun in the same millisecond began first (negative: `a`), by their first events' positions; a
 * store that gives none (one of one's own) puts those after the others, in id order, so that the order stays total.
 */
const begun = (a: AggregateInfo, b: AggregateInfo): number => {
  if (a.firstPosition !== undefined && b.firstPosition !== undefined) return a.firstPosition - b.firstPosition
  if (a.firstPosition !== undefined) return -1
  if (b.firstPosition !== undefined) return 1
  return a.aggregateId < b.aggregateId ? -1 : a.aggregateId > b.aggregateId ? 1 : 0
}

/** A pruned session as the list shows it, from its snapshot; one whose snapshot cannot be read says so. */
const prunedSummary = (
  pruned: SessionSnapshots.PrunedSession
): { readonly summary: SessionSummary; readonly request: string; readonly activity: undefined } => {
  const { state } = pruned
  const base = {
    id: pruned.sessionId,
    createdAt: pruned.createdAt,
    updatedAt: pruned.finishedAt,
    lastSequence: pruned.events,
    pruned: true as const
  }
  if (state === undefined) return unreadableEntry(base, pruned.problem ?? "its snapshot cannot be read")
  return {
    request: state.request.toLowerCase(),
    activity: undefined,
    summary: {
      ...base,
      status: state.status,
      waiting: false,
      counts: Planner.countByStatus(state),
      taskCount: state.tasks.length,
      request: requestPreview(state.request)
    }
  }
}

/** A session of the list: one with its log, or one pruned (`planner prune`) that kept its final snapshot. */
type Listed =
  | { readonly _tag: "Log"; readonly info: AggregateInfo }
  | { readonly _tag: "Pruned"; readonly session: SessionSnapshots.PrunedSession }

const idOf = (entry: Listed) => (entry._tag === "Log" ? entry.info.aggregateId : entry.session.sessionId)
const createdOf = (entry: Listed) => (entry._tag === "Log" ? entry.info.firstCreatedAt : entry.session.createdAt)
const updatedOf = (entry: Listed) => (entry._tag === "Log" ? entry.info.lastCreatedAt : entry.session.finishedAt)
const byId = (a: Listed, b: Listed) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0)

/**
 * Every pruned session, for the list, kept between requests: a snapshot is read and decoded once, not on every
 * refresh of every open page.
 */
const makePrunedSessions = () => {
  let known = new Map<string, SessionSnapshots.PrunedSession>()
  return Effect.suspend(() =>
    Effect.map(SessionSnapshots.allPruned(known), (sessions) => {
      known = new Map(sessions.map((session) => [session.sessionId, session]))
      return sessions
    })
  )
}

/**
 * `GET /api/sessions?limit=&offset=&status=&q=&sort=`: one page of the sessions that match, and how many match
 * (`total`) out of how many there are (`all`). Pruned sessions are listed too, marked `pruned`, as `planner sessions`
 * lists them.
 */
const listSessions = (
  summaries: Summaries,
  prunedSessions: Effect.Effect<ReadonlyArray<SessionSnapshots.PrunedSession>, EventStoreError>
) =>
  Effect.gen(function* () {
    const store = yield* PlannerStore
    const limit = (yield* integerParam("limit", 100, { min: 1, max: 1_000 })) ?? 100
    const offset = (yield* integerParam("offset", 0, { min: 0, max: Number.MAX_SAFE_INTEGER })) ?? 0
    const status = yield* choiceParam("status", statusFilters, undefined)
    const sort = (yield* choiceParam("sort", sortOrders, "newest")) ?? "newest"
    const query = (yield* textParam("q", 500)).toLowerCase()
    const infos = [...(yield* store.sessions)]
    summaries.forget(new Set(infos.map((info) => info.aggregateId)))
    const inLog = new Set(infos.map((info) => info.aggregateId))
    const entries: Array<Listed> = [
      ...infos.map((info): Listed => ({ _tag: "Log", info })),
      // A session being pruned as we look may be in both for a moment: its log wins.
      ...(yield* prunedSessions)
        .filter((session) => !inLog.has(session.sessionId))
        .map((session): Listed => ({ _tag: "Pruned", session }))
    ]
    // Sessions begun (or last changed) in the same millisecond keep the log's order: the store lists them by their
    // last event, newest first, and a session begun later has a later first event.
    const byLastEvent = new Map(infos.map((info, index) => [info.aggregateId, index]))
    const tie = (a: Listed, b: Listed, later: boolean): number =>
      a._tag === "Log" && b._tag === "Log" ? (later ? begun(b.info, a.info) : begun(a.info, b.info)) : byId(a, b)
    const order: (a: Listed, b: Listed) => number =
      sort === "updated"
        ? (a, b) =>
            updatedOf(b) - updatedOf(a) ||
            (a._tag === "Log" && b._tag === "Log"
              ? (byLastEvent.get(a.info.aggregateId) ?? 0) - (byLastEvent.get(b.info.aggregateId) ?? 0)
              : byId(a, b))
        : sort === "oldest"
          ? (a, b) => createdOf(a) - createdOf(b) || tie(a, b, false)
          : (a, b) => createdOf(b) - createdOf(a) || tie(a, b, true)
    entries.sort(order)
    const summarizeAll = (list: ReadonlyArray<Listed>) =>
      Effect.forEach(
        list,
        (entry) =>
          entry._tag === "Log" ? summaries.summarize(entry.info) : Effect.succeed(prunedSummary(entry.session)),
        { concurrency: 4 }
      )
    const worker = yield* serverWorker
    const live = yield* liveWorkers()
    const shown = (entry: { readonly summary: SessionSummary; readonly activity: Activity | undefined }) => ({
      ...entry.summary,
      served: entry.activity === undefined ? undefined : serving(entry.activity, live(entry.summary.id), worker)
    })
    if (status === undefined && query === "") {
      // Nothing to match: only the page is read.
      const page = yield* summarizeAll(entries.slice(offset, offset + limit))
      return HttpServerResponse.unsafeJson({
        sessions: page.map(shown),
        total: entries.length,
        all: entries.length,
        offset,
        limit
      })
    }
    const matching = (yield* summarizeAll(entries)).filter(
      (entry) =>
        matchesStatus(entry.summary, status) &&
        (query === "" || entry.request.includes(query) || entry.summary.id.toLowerCase().includes(query))
    )
    return HttpServerResponse.unsafeJson({
      sessions: matching.slice(offset, offset + limit).map(shown),
      total: matching.length,
      all: entries.length,
      offset,
      limit
    })
  })

/**
 * The session's state, from its log: a session with no events there is unknown, or pruned (answered 410, see
 * `prunedOr`) even while this process still holds its state from before another process, or this one, pruned it.
 */
const logged = (sessionId: string) =>
  Effect.flatMap(PlannerStore, (store) => store.lastSequence(sessionId)).pipe(
    Effect.filterOrFail(
      (latest) => latest > 0,
      () => new Runner.UnknownSession({ sessionId })
    ),
    Effect.zipRight(Runner.existing(sessionId))
  )

const currentSession = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  // The log's length first: a session another process pruned may still be in this process's cache of states.
  const latest = yield* Effect.flatMap(PlannerStore, (store) => store.lastSequence(sessionId))
  if (latest > 0) return HttpServerResponse.unsafeJson(yield* viewOf(sessionId, yield* Runner.existing(sessionId)))
  // Pruned: its final state, from its snapshot (the CLI's `show` does the same).
  const snapshot = yield* SessionSnapshots.load(sessionId)
  if (Option.isNone(snapshot)) return yield* new Runner.UnknownSession({ sessionId })
  return HttpServerResponse.unsafeJson({
    ...sessionView(sessionId, snapshot.value, yield* serverWorker, notLive),
    pruned: true
  })
})

/** The session as it was right after event `at` (time travel); without `at`, as it is now. */
const sessionAt = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const service = yield* PlannerService
  // The log's length, counted without reading it: time travel reads only the first `at` events, so it still shows the
  // session before an event that cannot be read.
  const latest = yield* Effect.flatMap(PlannerStore, (store) => store.lastSequence(sessionId))
  if (latest === 0) return yield* new Runner.UnknownSession({ sessionId })
  const at = yield* integerParam("at", undefined, { min: 1, max: latest })
  const state = at === undefined ? yield* Runner.existing(sessionId) : yield* service.stateAt(sessionId, at)
  return HttpServerResponse.unsafeJson({
    ...(yield* viewOf(sessionId, state)),
    at: state.version,
    // The log may have grown since it was counted.
    latest: Math.max(latest, state.version)
  })
})

const sessionEvents = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const store = yield* PlannerStore
  const last = yield* store.lastSequence(sessionId)
  if (last === 0) return yield* new Runner.UnknownSession({ sessionId })
  const after = (yield* integerParam("after", 0, { min: 0, max: Number.MAX_SAFE_INTEGER })) ?? 0
  const limit = (yield* integerParam("limit", 100, { min: 1, max: 1_000 })) ?? 100
  const records =
    after >= last ? [] : yield* store.load(sessionId, { fromSequence: after + 1, toSequence: after + limit })
  const lastReturned = records.at(-1)?.sequence ?? after
  return HttpServerResponse.unsafeJson({
    events: records.map(eventView),
    lastSequence: last,
    next: lastReturned < last ? lastReturned : null
  })
})

const answerTask = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const body = yield* jsonBody(AnswerBody, '{ "taskId": a task number, "answer": text of at most 50,000 characters }')
  const answer = body.answer.trim()
  if (answer === "") return yield* new BadRequest({ status: 400, reason: "The answer is empty." })
  yield* logged(sessionId)
  const handled = yield* Runner.answer(sessionId, body.taskId, answer)
  return HttpServerResponse.unsafeJson({
    ...(yield* viewOf(sessionId, handled.state)),
    appended: handled.events.length
  })
})

const cancelSession = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const body = yield* jsonBody(CancelBody, '{} or { "reason": text of at most 2,000 characters }')
  yield* logged(sessionId)
  const reason = body.reason?.trim()
  const handled = yield* Runner.cancel(sessionId, reason === undefined || reason === "" ? undefined : reason)
  return HttpServerResponse.unsafeJson({
    ...(yield* viewOf(sessionId, handled.state)),
    appended: handled.events.length
  })
})

/**
 * Moves a session forward as `planner resume` does before it runs anything: puts back the jobs its log implies, then
 * records `Continue`, which dispatches what is ready and the retries that fell due. The tasks then run in whichever
 * worker serves the session (this server's, with `serve --worker`, or a `planner worker` / `planner resume` elsewhere).
 * A replan a stopped process left pending is settled as `resume` settles it, in the background (it calls the model),
 * when this server has the run services (`serve --worker`, or an embedder's runtime): with the configured LLM, or
 * skipped with the reason when none is configured, as `resume` does. A bare `serve` has no LLM at all and leaves it
 * pending for the next driver of the session rather than skip it for want of a model it was never given.
 */
const moveOn = (sessionId: string) =>
  Effect.gen(function* () {
    const service = yield* PlannerService
    // As `Runner.run` does first: jobs the log implies that the queue lacks (a killed runner's memory queue) come back.
    yield* service.rebuildJobs(sessionId)
    const at = yield* Clock.currentTimeMillis
    const handled = yield* service.execute(sessionId, new Continue({ at }))
    const llm = yield* Effect.serviceOption(Llm)
    if (Option.isSome(llm)) {
      for (const taskId of Planner.pendingReplans(handled.state)) {
        yield* Effect.forkDaemon(Replan.settleOnce(sessionId, taskId, llm.value))
      }
    }
    return handled
  })

const resumeSession = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  yield* jsonBody(ResumeBody, "{}")
  const state = yield* logged(sessionId)
  if (Planner.isFinished(state)) {
    return yield* new BadRequest({
      status: 400,
      reason: `This session has already finished (${state.status}): fork it to run part of it again.`
    })
  }
  const handled = yield* moveOn(sessionId)
  return HttpServerResponse.unsafeJson({
    ...(yield* viewOf(sessionId, handled.state)),
    appended: handled.events.length
  })
})

/** A fork's answer: the new session, where it came from, and its state. */
const forkedResponse = (forked: Fork.Forked, appended: number) =>
  Effect.map(viewOf(forked.sessionId, forked.state), (view) =>
    HttpServerResponse.unsafeJson({ ...view, forkedFrom: forked.forkedFrom, appended }, { status: 201 })
  )

/** `POST /fork { at }`: a new session from the first `at` events (see `Fork`), moved forward at once. */
const forkSession = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const body = yield* jsonBody(ForkBody, '{ "at": the number of the last event to keep }')
  const forked = yield* Fork.fork(sessionId, body.at)
  const handled = yield* moveOn(forked.sessionId)
  return yield* forkedResponse({ ...forked, state: handled.state }, handled.events.length)
})

/**
 * `POST /retry { taskId }`: a failed task runs again, in a fork of the session from just before the task was first
 * dispatched (a finished log is never changed; its attempts and failures start afresh there). Tasks that ran after
 * that point run again too.
 */
const retryTask = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const body = yield* jsonBody(RetryBody, '{ "taskId": the number of a failed task }')
  const state = yield* logged(sessionId)
  const task = Planner.task(state, body.taskId)
  if (task === undefined) {
    return yield* new BadRequest({
      status: 400,
      reason: `This session has no task ${body.taskId}: its tasks are numbered 1 to ${state.tasks.length}.`
    })
  }
  if (task.status !== "Failed") {
    return yield* new BadRequest({
      status: 400,
      reason: `Task ${body.taskId} is ${task.status}, not Failed: only a failed task can be retried.`
    })
  }
  const store = yield* PlannerStore
  const records = yield* store.load(sessionId)
  const firstDispatch = records.find(
    (record) => record.event._tag === "TaskDispatched" && record.event.taskId === body.taskId
  )
  const at = Math.max(1, (firstDispatch?.sequence ?? 2) - 1)
  const forked = yield* Fork.fork(sessionId, at, { reason: `retrying task ${body.taskId} of ${sessionId}` })
  const handled = yield* moveOn(forked.sessionId)
  return yield* forkedResponse({ ...forked, state: handled.state }, handled.events.length)
})

/** `GET /lineage`: the session's origin and ancestors, and the forks made from it (see `LineageApi`). */
const sessionLineage = (origins: LineageApi.Origins) =>
  Effect.gen(function* () {
    const sessionId = yield* sessionIdParam
    yield* logged(sessionId)
    return HttpServerResponse.unsafeJson(yield* LineageApi.lineage(origins, sessionId))
  })

/** `GET /diff?with=ID`: what differs between ID (default: the session's origin) and this session. */
const sessionDiff = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const other = yield* textParam("with", 200)
  // Both logs are compared: a pruned side has none left.
  const state = yield* logged(sessionId)
  const baseId = other === "" ? state.forkedFrom?.sessionId : other
  if (baseId !== undefined) yield* logged(baseId)
  return HttpServerResponse.unsafeJson(yield* LineageApi.diffWith(sessionId, other === "" ? undefined : other))
})

/** `GET /subplans`: the session's tree of sub-plans and, for a child, its parent task (#16, see `SubPlanApi`). */
const sessionSubPlans = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  yield* logged(sessionId)
  return HttpServerResponse.unsafeJson(yield* SubPlanApi.sessionTree(sessionId))
})

/** `GET /api/memory?q=&kind=&limit=`: the most similar past tasks and sessions, as `planner recall --json` (#17). */
const memorySearch = Effect.gen(function* () {
  const text = yield* textParam("q", 2_000)
  const limit = (yield* integerParam("limit", 20, { min: 1, max: 100 })) ?? 20
  const kind = yield* choiceParam("kind", MemoryApi.recallKinds, undefined)
  return HttpServerResponse.unsafeJson(yield* MemoryApi.recall({ text, limit, kind }))
})

/** `GET /api/sessions/:id/memory`: the tasks not ended whose similar past tasks usually asked a question (#17). */
const sessionMemory = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  yield* logged(sessionId)
  return HttpServerResponse.unsafeJson(yield* MemoryApi.sessionFlags(sessionId))
})

/** `POST /edit { edits }`: plan edits through the writer, as `planner edit` records them (#15). */
const editSession = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const body = yield* jsonBody(
    EditBody,
    '{ "edits": [ plan edits, such as { "_tag": "AddTask", "description": text } ] }'
  )
  const state = yield* logged(sessionId)
  if (Planner.isFinished(state)) {
    return yield* new BadRequest({
      status: 400,
      reason: `This session has already finished (${state.status}): fork it to change its plan.`
    })
  }
  const service = yield* PlannerService
  const at = yield* Clock.currentTimeMillis
  const handled = yield* service.execute(sessionId, new EditPlan({ edits: body.edits, at }))
  return HttpServerResponse.unsafeJson({
    ...(yield* viewOf(sessionId, handled.state)),
    appended: handled.events.length
  })
})

const encoder = new TextEncoder()

/**
 * The session's events after a sequence, as server-sent events: `id` is the sequence, so a browser that reconnects
 * sends `Last-Event-ID` and misses nothing. The position is taken from the header, else from `?after=`, else the
 * session's current end (only new events). Fed by the store's subscription, so it also sees events other processes
 * append.
 */
const sessionStream = Effect.gen(function* () {
  const sessionId = yield* sessionIdParam
  const store = yield* PlannerStore
  const request = yield* HttpServerRequest.HttpServerRequest
  const last = yield* store.lastSequence(sessionId)
  if (last === 0) return yield* new Runner.UnknownSession({ sessionId })
  const lastEventId = request.headers["last-event-id"]
  const fromHeader =
    lastEventId !== undefined && /^\d{1,15}$/.test(lastEventId.trim()) ? Number(lastEventId.trim()) : undefined
  const after =
    fromHeader ?? (yield* integerParam("after", undefined, { min: 0, max: Number.MAX_SAFE_INTEGER })) ?? last
  // Subscribing after the global position of event `after` skips the history the client already has.
  const from = after === 0 ? [] : yield* store.load(sessionId, { fromSequence: after, toSequence: after })
  const afterPosition = from[0]?.position
  const events = store.subscribe({ sessionId, ...(afterPosition === undefined ? {} : { afterPosition }) }).pipe(
    Stream.filter((record) => record.sequence > after),
    Stream.map(
      (record) => `id: ${record.sequence}\nevent: planner-event\ndata: ${JSON.stringify(eventView(record))}\n\n`
    ),
    // A store failure ends the response; the browser reconnects with Last-Event-ID and resumes.
    Stream.catchAll((error) =>
      Stream.fromEffect(Effect.logWarning("a dashboard event stream stopped", error)).pipe(Stream.drain)
    )
  )
  // Comments keep idle connections from being dropped by proxies and let the server notice closed ones.
  const keepAlive = Stream.tick("15 seconds").pipe(Stream.map(() => ": keep-alive\n\n"))
  const body = Stream.concat(Stream.make("retry: 1000\n\n"), Stream.merge(events, keepAlive, { haltStrategy: "left" }))
  return HttpServerResponse.stream(
    Stream.map(body, (text) => encoder.encode(text)),
    {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    }
  )
})

// ---------------------------------------------------------------------------------------------------------------
// The dashboard's files
// ---------------------------------------------------------------------------------------------------------------

interface Asset {
  readonly body: Uint8Array
  readonly contentType: string
  readonly etag: string
}

const contentTypes: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml"
}

/** Beside this module: `src/app/dashboard` when run from the sources, `dist/app/dashboard` once built. */
export const assetsDirectory = fileURLToPath(new URL("./dashboard/", import.meta.url))

const loadAssets = (options: ServeOptions) =>
  Effect.tryPromise({
    try: async () => {
      const assets = new Map<string, Asset>()
      for (const name of await fs.readdir(assetsDirectory)) {
        const contentType = contentTypes[path.extname(name)]
        if (contentType === undefined) continue
        const body = await fs.readFile(path.join(assetsDirectory, name))
        const etag = `"${createHash("sha1").update(body).digest("base64url").slice(0, 20)}"`
        assets.set(name, { body, contentType, etag })
      }
      if (!assets.has("index.html")) throw new Error("index.html is missing")
      return assets
    },
    catch: (error) =>
      new ServeError({
        host: options.host,
        port: options.port,
        reason: `the dashboard's files are not in ${assetsDirectory} (${error instanceof Error ? error.message : String(error)}): run \`npm run build\`.`
      })
  })

const assetResponse = (asset: Asset) =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
    request.headers["if-none-match"] === asset.etag
      ? HttpServerResponse.empty({ status: 304, headers: { etag: asset.etag } })
      : HttpServerResponse.uint8Array(asset.body, {
          contentType: asset.contentType,
          // Revalidated on every load (cheap with the ETag), so a rebuilt dashboard is never served stale.
          headers: { etag: asset.etag, "cache-control": "no-cache" }
        })
  )

// ---------------------------------------------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------------------------------------------

const securityHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-resource-policy": "same-origin"
}

const isLoopback = (host: string): boolean => {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase()
  return bare === "localhost" || bare === "::1" || /^127(?:\.\d{1,3}){3}$/.test(bare)
}

/** The host name of a `Host` header, without its port. */
const hostName = (header: string): string =>
  header.startsWith("[") ? header.slice(0, header.indexOf("]") + 1) : (header.split(":", 1)[0] ?? "")

/** The checks every request passes first; see the module comment. */
const checkRequest = (loopbackOnly: boolean) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const host = request.headers.host
    if (loopbackOnly && host !== undefined && !isLoopback(hostName(host))) {
      return yield* new BadRequest({
        status: 403,
        reason: `This dashboard only answers to a loopback host name, not ${JSON.stringify(host)}.`
      })
    }
    const declared = request.headers["content-length"]
    if (declared !== undefined && (!/^\d{1,15}$/.test(declared.trim()) || Number(declared) > maxBodyBytes)) {
      return yield* tooLarge()
    }
    const origin = request.headers.origin
    if (request.method !== "GET" && request.method !== "HEAD" && origin !== undefined) {
      const sameOrigin = host !== undefined && (origin === `http://${host}` || origin === `https://${host}`)
      if (!sameOrigin) {
        return yield* new BadRequest({ status: 403, reason: "Cross-origin requests are not accepted." })
      }
    }
  })

/** The API's routes; each server has its own (the session list's summaries are kept per server). */
export const makeRouter = () =>
  HttpRouter.empty.pipe(
    HttpRouter.get("/api/sessions", withErrors(listSessions(makeSummaries(), makePrunedSessions()))),
    HttpRouter.get("/api/sessions/:id", withErrors(currentSession)),
    HttpRouter.get("/api/sessions/:id/state", withErrors(sessionAt)),
    HttpRouter.get("/api/sessions/:id/events", withErrors(sessionEvents)),
    HttpRouter.get("/api/sessions/:id/stream", withErrors(sessionStream)),
    HttpRouter.get("/api/sessions/:id/memory", withErrors(sessionMemory)),
    HttpRouter.get("/api/memory", withErrors(memorySearch)),
    HttpRouter.get("/api/sessions/:id/lineage", withErrors(sessionLineage(LineageApi.makeOrigins()))),
    HttpRouter.get("/api/sessions/:id/diff", withErrors(sessionDiff)),
    HttpRouter.get("/api/sessions/:id/subplans", withErrors(sessionSubPlans)),
    // A command that reached the store is not abandoned halfway because the browser went away.
    HttpRouter.post("/api/sessions/:id/answer", withErrors(answerTask), { uninterruptible: true }),
    HttpRouter.post("/api/sessions/:id/cancel", withErrors(cancelSession), { uninterruptible: true }),
    HttpRouter.post("/api/sessions/:id/resume", withErrors(resumeSession), { uninterruptible: true }),
    HttpRouter.post("/api/sessions/:id/retry", withErrors(retryTask), { uninterruptible: true }),
    HttpRouter.post("/api/sessions/:id/fork", withErrors(forkSession), { uninterruptible: true }),
    HttpRouter.post("/api/sessions/:id/edit", withErrors(editSession), { uninterruptible: true })
  )

/** The whole application: the API, the pages and their files, behind the request checks. */
export const makeApp = (
  assets: ReadonlyMap<string, Asset>,
  options: { readonly loopbackOnly: boolean; readonly workerId?: string }
) => {
  const index = assets.get("index.html")
  const page =
    index === undefined ? Effect.succeed(HttpServerResponse.text("Not found", { status: 404 })) : assetResponse(index)
  const withPages = makeRouter().pipe(
    HttpRouter.get("/", page),
    HttpRouter.get("/sessions/:id", page),
    HttpRouter.get(
      "/assets/:name",
      Effect.flatMap(HttpRouter.params, (params) => {
        const asset = params.name === undefined || params.name === "index.html" ? undefined : assets.get(params.name)
        return asset === undefined
          ? Effect.succeed(HttpServerResponse.text("Not found", { status: 404 }))
          : assetResponse(asset)
      })
    )
  )
  return Effect.gen(function* () {
    yield* checkRequest(options.loopbackOnly)
    return yield* withPages
  }).pipe(
    Effect.catchTags({
      BadRequest: errorResponse,
      RouteNotFound: (error) =>
        Effect.succeed(
          error.request.url.startsWith("/api/")
            ? errorJson(
                404,
                "NotFound",
                `There is no ${error.request.method} ${error.request.url.split("?", 1)[0]} in this API.`
              )
            : HttpServerResponse.text("Not found", { status: 404 })
        )
    }),
    Effect.map(HttpServerResponse.setHeaders(securityHeaders)),
    Effect.provideService(ServerInfo, { workerId: options.workerId })
  )
}

const formatUrl = (address: HttpServer.Address): string =>
  address._tag === "UnixAddress"
    ? `unix:${address.path}`
    : `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`

/**
 * Starts the server in the current scope and returns its URL (port 0 picks a free port). Closing the scope closes
 * every connection, live streams included.
 */
export const start = (options: ServeOptions) =>
  Effect.gen(function* () {
    const assets = yield* loadAssets(options)
    const nodeServer = http.createServer()
    const server = yield* NodeHttpServer.make(() => nodeServer, { host: options.host, port: options.port }).pipe(
      Effect.mapError(
        (error) =>
          new ServeError({
            host: options.host,
            port: options.port,
            reason: error.cause instanceof Error ? error.cause.message : String(error.cause)
          })
      )
    )
    // Runs before the server's own close, which would otherwise wait forever for open event streams.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        nodeServer.close()
        nodeServer.closeAllConnections()
      })
    )
    const app = makeApp(assets, {
      loopbackOnly: isLoopback(options.host),
      ...(options.workerId === undefined ? {} : { workerId: options.workerId })
    })
    // One memory index for the server's life: the live one `planner serve` provides, else one on the store (#17).
    const memory = yield* MemoryApi.serverIndex
    yield* HttpServer.serveEffect(app).pipe(
      Effect.provideService(HttpServer.HttpServer, server),
      Effect.provideService(MemoryIndex, memory)
    )
    return { url: formatUrl(server.address) }
  })

/** Serves the dashboard until interrupted, after printing where. */
export const serve = (
  options: ServeOptions
): Effect.Effect<never, ServeError, PlannerService | PlannerStore | EventStore> =>
  Effect.scoped(
    Effect.gen(function* () {
      const { url } = yield* start(options)
      yield* Console.log(`Dashboard: ${url}/`)
      if (!isLoopback(options.host)) {
        yield* Console.log(
          `Listening on ${options.host}: anyone who can reach it can read every session and answer or cancel them (there is no authentication).`
        )
      }
      return yield* Effect.never
    })
  ).pipe(Effect.withSpan("Server.serve", { attributes: { host: options.host, port: options.port } }))
