/** The dashboard's calls to the JSON API. A failure is an `ApiError` carrying the API's `{ error: { tag, message } }`. */

export class ApiError extends Error {
  /** @param {number} status @param {string} tag @param {string} message */
  constructor(status, tag, message) {
    super(message)
    this.status = status
    this.tag = tag
  }
}

async function request(path, init) {
  let response
  try {
    response = await fetch(path, { ...init, headers: { accept: "application/json", ...init?.headers } })
  } catch {
    throw new ApiError(0, "Unreachable", "The planner server cannot be reached. Is `planner serve` still running?")
  }
  const body = await response.json().catch(() => undefined)
  if (!response.ok) {
    const error = body?.error
    throw new ApiError(response.status, error?.tag ?? "HttpError", error?.message ?? `HTTP ${response.status}`)
  }
  return body
}

const sessionPath = (id) => `/api/sessions/${encodeURIComponent(id)}`

const post = (path, body) =>
  request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })

/** One page of the sessions: `{ sessions, total, all, offset, limit }`; `query` holds limit, offset, status, q, sort. */
export const listSessions = (query = {}) => {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value))
  }
  const text = params.toString()
  return request(`/api/sessions${text === "" ? "" : `?${text}`}`)
}
export const getSession = (id) => request(sessionPath(id))
export const getStateAt = (id, sequence) => request(`${sessionPath(id)}/state?at=${sequence}`)
export const getEvents = (id, after, limit = 1000) => request(`${sessionPath(id)}/events?after=${after}&limit=${limit}`)
export const answer = (id, taskId, text) => post(`${sessionPath(id)}/answer`, { taskId, answer: text })
export const cancel = (id) => post(`${sessionPath(id)}/cancel`, {})
export const resume = (id) => post(`${sessionPath(id)}/resume`, {})
export const retry = (id, taskId) => post(`${sessionPath(id)}/retry`, { taskId })
export const fork = (id, at) => post(`${sessionPath(id)}/fork`, { at })
/** The memory of past work: `{ query, hits }`, as `planner recall --json`; `kind` may be "" (everything). */
export const recall = (q, kind = "", limit = 20) =>
  request(`/api/memory?${new URLSearchParams({ q, limit: String(limit), ...(kind === "" ? {} : { kind }) })}`)
/** `{ flags: [{ taskId, asked, of }] }`: tasks not ended whose similar past tasks usually asked a question. */
export const getMemoryFlags = (id) => request(`${sessionPath(id)}/memory`)
/** #15: where a session came from and its forks; what differs between it and its origin (or `other`). */
/** #15: plan edits (`{ _tag: "AddTask" | "SetTask" | "RemoveTask" | "SetDependencies", ... }`), as `planner edit`. */
export const editPlan = (id, edits) => post(`${sessionPath(id)}/edit`, { edits })
export const getLineage = (id) => request(`${sessionPath(id)}/lineage`)
export const getDiff = (id, other) =>
  request(`${sessionPath(id)}/diff${other === undefined ? "" : `?with=${encodeURIComponent(other)}`}`)

/** Every event of a session after `after`, page by page. */
export async function getAllEvents(id, after = 0) {
  const events = []
  let next = after
  for (;;) {
    const page = await getEvents(id, next)
    events.push(...page.events)
    if (page.next === null || page.events.length === 0) return events
    next = page.next
  }
}

/** The session's live event stream (server-sent events), starting after `after`. */
export const openStream = (id, after) => new EventSource(`${sessionPath(id)}/stream?after=${after}`)
