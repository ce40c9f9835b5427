/**
 * The version and the top-level help, without loading Effect: \`planner --version\` and \`planner --help\` answer at
 * once (bin/planner.js imports this module alone for them).
 */
import { createRequire } from "node:module"

export const version: string = (() => {
  try {
    const manifest: unknown = createRequire(import.meta.url)("../../../package.json")
    return typeof manifest === "object" && manifest !== null && "version" in manifest
      ? String(manifest.version)
      : "unknown"
  } catch {
    return "unknown"
  }
})()

/** `planner` and `planner --help`: the commands in one screen (each command's own help has its options). */
export const rootHelp = `planner ${version}: an event-sourced AI planner. Plain text in, tasks planned, dispatched and run, every
step recorded as an event, so any past state can be replayed and a stopped run resumed.

Usage: planner COMMAND [options]          planner COMMAND --help   (options and examples)

Running plans
  plan "<text>"                 print the plan a request gets, without running or storing anything
  run "<text>"                  plan a request, record it as a session and run it
  answer SESSION TASK "<text>"  answer a task's question and continue the session
  resume SESSION                continue a session that paused, was interrupted or crashed
  fork SESSION --at SEQ         a new session from a point of another (with edits: reusing what they don't reach)
  rerun SESSION --task N        run task N and what depends on it again in a new session, reusing the rest
  edit SESSION --add/--set/...  change the plan of a running or waiting session
  cancel SESSION                cancel a session
  expand SESSION TASK           run a task that has not started as a sub-plan (a child session)
  worker                        a long-lived worker running tasks from the store (Ctrl-C stops it)
  serve                         the dashboard in a browser, on http://127.0.0.1:4780/ (Ctrl-C stops it)

Reading sessions
  sessions                      list sessions: id, created, status, task counts, request; --tree: forks nested
  diff A B                      what differs between two sessions, task by task, and where their logs part
  history SESSION               the event log: sequence, time, type, gist
  replay SESSION --at SEQ       the state right after event SEQ (time travel)
  show SESSION                  the current state

Memory of past work
  recall "<text>"               the most similar past tasks and sessions, with results and outcomes
  stats                         success rate, attempts, duration and questions asked, per task kind
  memory rebuild                recompute the memory index from the log
  prune --finished-before DATE  remove old finished sessions' events, keeping final snapshots and memory
  doctor                        check the task queue against the event log; --repair rebuilds it from the log

Every command takes --db PATH|postgres://URL (default: $PLANNER_DATABASE_URL, else ./.planner/planner.db);
all but serve take --json. Exit codes: 0 completed, 1 failed or cancelled, 2 bad usage or input, 3 waiting for
answers, 4 store or service unreachable, 130 interrupted.

Examples
  planner run --executor script:examples/demo.json "Add a login page. Then write tests for it."
  planner sessions
  planner replay SESSION --at 5
  planner --version`
