/**
 * The `planner` command line: the commands, their options and their help. Each command's work lives in a module of
 * `./cli/`, loaded when that command runs, so a command that only reads the store does not load the runner, the
 * workers or the LLM clients.
 *
 * Exit codes: 0 completed; 1 the plan failed or was cancelled; 2 bad usage or input; 3 waiting for answers; 4 the
 * store or another required service cannot be reached. See `./cli/Failure.ts`.
 */
import { Args, CliConfig, Command, HelpDoc, Options } from "@effect/cli"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Usage from "@effect/cli/Usage"
import { Effect } from "effect"
import { type CompactionProfile, compactionProfiles, defaultConfig, defaultMaxReplans } from "../domain/Config.js"
import { defaultMaxDepth } from "../domain/SubPlanLink.js"
import { nodeKinds } from "../domain/Task.js"
import { stripAnsi } from "./cli/Output.js"
import { replanOptions } from "./cli/ReplanFlags.js"
import { version } from "./cli/RootHelp.js"
import { defaultGatherMs, maxGatherMs } from "./Linger.js"

/** The options whose value is a whole number, named as typed (`--at`). */
const wholeNumberOptions = new Set<string>()

/**
 * An option whose value is a whole number. @effect/cli reads it with `Number`, so `--at 0x5`, `--limit 1e1` and
 * `--port " 80"` would pass as 5, 10 and 80; `notWholeNumber` refuses them before the library parses.
 */
function wholeNumber(name: string): Options.Options<number> {
  wholeNumberOptions.add(`--${name}`)
  return Options.integer(name)
}

/** Decimal digits, a minus sign allowed, that JavaScript holds exactly. */
const isWholeNumber = (text: string): boolean => /^-?\d+$/.test(text) && Number.isSafeInteger(Number(text))

/** A positional whole number, held to the same digits as `wholeNumber`'s options. */
const wholeNumberArg = (name: string): Args.Args<number> =>
  Args.text({ name }).pipe(
    Args.mapEffect((text) =>
      isWholeNumber(text) ? Effect.succeed(Number(text)) : Effect.fail(HelpDoc.p(`'${text}' is not a whole number`))
    )
  )

/** The first whole-number option given something other than decimal digits (a minus sign allowed), with its value. */
export const notWholeNumber = (args: ReadonlyArray<string>): readonly [string, string] | undefined =>
  optionValues(args).find(([option, value]) => wholeNumberOptions.has(option) && !isWholeNumber(value))

export { CliExit, CliFailure, ExitCode } from "./cli/Failure.js"

export { rootHelp } from "./cli/RootHelp.js"

/** A command's help: what it does, then examples. */
const help = (summary: string, details: ReadonlyArray<string>, examples: ReadonlyArray<string>) =>
  HelpDoc.blocks([
    HelpDoc.p(summary),
    ...details.map((detail) => HelpDoc.p(detail)),
    HelpDoc.p(Span.strong("Examples")),
    ...examples.map((example) => HelpDoc.p(Span.code(`  ${example}`)))
  ])

// --- Options shared by commands -------------------------------------------------------------------------------------

const db = Options.text("db").pipe(
  Options.withPseudoName("PATH|URL"),
  Options.withDescription(
    "The store: a SQLite file, or a postgres://user:password@host/db URL. Default: $PLANNER_DATABASE_URL, else ./.planner/planner.db (a SQLite file is created by run, worker and serve)."
  ),
  Options.optional
)
const json = Options.boolean("json").pipe(
  Options.withDescription(
    'Print JSON instead of text. An error is then one JSON object on standard error, {"error":{"code":2,"message":"..."}}, with the same exit code.'
  )
)
const plain = Options.boolean("plain").pipe(
  Options.withDescription(
    "One line per event instead of the live view (also when NO_COLOR is set or output is not a terminal)"
  )
)
const verbose = Options.boolean("verbose").pipe(
  Options.withDescription("More detail: worker ids, dispatches, debug logs, and stack traces on errors")
)
const executor = Options.text("executor").pipe(
  Options.withPseudoName("auto|echo|script:PATH"),
  Options.withDescription(
    "Who does the tasks. auto: shell commands for ToolCall tasks, the LLM for the others when one is configured, otherwise you (each step is asked as a question). echo: every task completes with its own description. script:PATH: outcomes from a JSON script file. Default: what the session ran with, else auto."
  ),
  Options.optional
)
const allowShell = Options.boolean("allow-shell").pipe(
  Options.withDescription("Run ToolCall tasks' shell commands without asking for approval of each one first")
)
const answers = Options.text("answer").pipe(
  Options.withPseudoName("TASK_ID=TEXT"),
  Options.withDescription("Answer a task's question in advance: used the first time that task asks. Repeatable."),
  Options.repeated
)
const nonInteractive = Options.boolean("non-interactive").pipe(
  Options.withDescription("Never ask at the terminal: stop with exit code 3 when answers are needed")
)
const noCheckLinks = Options.boolean("no-check-links").pipe(
  Options.withDescription("Do not check that linked URLs answer before a task runs (offline use)")
)
const noLocalWorker = Options.boolean("no-local-worker").pipe(
  Options.withDescription("Run no tasks in this process: wait for `planner worker` processes to run them")
)
const execution = {
  db,
  json,
  plain,
  verbose,
  executor,
  allowShell,
  answers,
  nonInteractive,
  noCheckLinks,
  noLocalWorker
}

const session = Args.text({ name: "session" }).pipe(Args.withDescription("The session id (see `planner sessions`)"))
const requestText = Args.text({ name: "request" }).pipe(
  Args.withDescription('The request in plain text (in quotes), or "-" to read it from standard input'),
  Args.optional
)
const file = Options.file("file").pipe(
  Options.withPseudoName("PATH"),
  Options.withDescription("Read the request from this file"),
  Options.optional
)

// --- Commands -------------------------------------------------------------------------------------------------------

const plan = Command.make("plan", { request: requestText, file, json }, (flags) =>
  Effect.flatMap(
    Effect.promise(() => import("./cli/PlanCommand.js")),
    (module) => module.plan(flags)
  )
).pipe(
  Command.withDescription(
    help(
      "Print the plan a request gets (tasks, kinds, dependencies, attachments) without running or storing anything.",
      [],
      [
        'planner plan "Add login with session cookies. Read the spec at https://example.com/spec.pdf. Then write unit tests."',
        'planner plan --json "Fetch the data. Then summarise it."',
        "planner plan --file request.txt",
        'echo "Write the code. Then test it." | planner plan -'
      ]
    )
  )
)

const run = Command.make(
  "run",
  {
    ...execution,
    request: requestText,
    file,
    plan: Options.text("plan").pipe(
      Options.withPseudoName("FILE"),
      Options.withDescription(
        "Run this plan instead of planning a request: the JSON `planner plan --json` prints, edited or written by hand (ids 1..n, kinds, dependsOn; no cycles). - reads standard input."
      ),
      Options.optional
    ),
    fromMemory: Options.boolean("from-memory").pipe(
      Options.withDescription(
        "Reuse the plan of the closest past successful session whose request closely matches this one (see `planner recall`), recorded in the plan's source; plans the request as usual when none does."
      )
    ),
    expand: Options.boolean("expand").pipe(
      Options.withDescription(
        "Run every task whose description is itself a multi-step request (the parser finds several steps in it) as a sub-plan: a child session of its own, run by the same workers, whose outcome is the task's."
      )
    ),
    maxDepth: wholeNumber("max-depth").pipe(
      Options.withPseudoName("N"),
      Options.withDescription(
        `How deep sub-plans may nest (a child of the session is depth 1). Default: ${defaultMaxDepth}.`
      ),
      Options.withDefault(defaultMaxDepth)
    ),
    attach: Options.text("attach").pipe(
      Options.withPseudoName("PATH|URL"),
      Options.withDescription("Attach a file or link to the whole request. Repeatable."),
      Options.repeated
    ),
    maxParallel: wholeNumber("max-parallel").pipe(
      Options.withPseudoName("N"),
      Options.withDescription(`How many tasks may run at once. Default: ${defaultConfig.maxParallel}.`),
      Options.withDefault(defaultConfig.maxParallel)
    ),
    maxAttempts: wholeNumber("max-attempts").pipe(
      Options.withPseudoName("N"),
      Options.withDescription(
        `How many times a task is tried before it fails for good. Default: ${defaultConfig.maxAttempts}.`
      ),
      Options.withDefault(defaultConfig.maxAttempts)
    ),
    onFailure: Options.choice("on-failure", ["continue", "abort", "replan"]).pipe(
      Options.withDescription(
        `After a task fails for good: continue skips what depends on it and runs the rest; abort cancels everything unfinished; replan asks the LLM for a revised plan for the task and what depends on it (without an LLM, or when its answer is unusable, it continues, and says why). Default: ${defaultConfig.onFailure}.`
      ),
      Options.withDefault(defaultConfig.onFailure)
    ),
    maxReplans: wholeNumber("max-replans").pipe(
      Options.withPseudoName("N"),
      Options.withDescription(
        `With --on-failure replan: at most N revised plans per session; a failure after that is handled as under continue. Default: ${defaultMaxReplans}.`
      ),
      Options.withDefault(defaultMaxReplans)
    ),
    budgetTokens: wholeNumber("budget-tokens").pipe(
      Options.withPseudoName("TOKENS"),
      Options.withDescription(
        "The most the session may spend on models, in tokens (input plus output, every call: planning, steps, compaction, replanning). A call that would cross it pauses its task with a question: answer yes (or yes N) to raise it, no to fail the task."
      ),
      Options.optional
    ),
    budgetUsd: Options.float("budget-usd").pipe(
      Options.withPseudoName("DOLLARS"),
      Options.withDescription(
        "The most the session may spend on models, in dollars, priced from PLANNER_LLM_PRICES (a JSON object, or a file, of model: {input, output} dollars per million tokens)."
      ),
      Options.optional
    ),
    tokenBudget: wholeNumber("token-budget").pipe(
      Options.withPseudoName("N"),
      Options.withDescription(
        `The rolling context passed between steps is compacted to stay under N tokens. Default: ${defaultConfig.tokenBudget}.`
      ),
      Options.withDefault(defaultConfig.tokenBudget)
    ),
    profile: Options.choice("profile", compactionProfiles).pipe(
      Options.withDescription(
        `What compaction keeps: coding (paths, names, commands, errors, decisions), analysis (findings, numbers, sources), general. Default: ${defaultConfig.profile}.`
      ),
      Options.withDefault(defaultConfig.profile as CompactionProfile)
    ),
    systemPrompt: Options.text("system-prompt").pipe(
      Options.withPseudoName("TEXT"),
      Options.withDescription(`Guides the LLM's planning and compaction. Default: "${defaultConfig.systemPrompt}"`),
      Options.optional
    ),
    errorCharLimit: wholeNumber("error-char-limit").pipe(
      Options.withPseudoName("N"),
      Options.withDescription(
        `Error messages are compacted to at most N characters before they are recorded. Default: ${defaultConfig.errorCharLimit}.`
      ),
      Options.withDefault(defaultConfig.errorCharLimit)
    )
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/RunCommands.js")),
      (module) => module.run(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Plan a request, record it as a new session and run it, showing each task as it starts, finishes, fails, retries or waits; then a summary with the session id.",
      [
        "Questions are asked at the terminal; without one (or with --non-interactive) the run stops with exit code 3 and prints the `planner answer` command for each question. Exit codes: 0 completed, 1 failed or cancelled, 2 bad usage or input, 3 waiting for answers, 4 store unreachable.",
        "--max-parallel, --max-attempts, --on-failure and the compaction settings (--token-budget, --profile, --system-prompt, --error-char-limit) are recorded with the plan: resume and fork keep them, show prints them."
      ],
      [
        'planner run --executor script:examples/demo.json "Add a login page. Then write tests for it."',
        'planner run --executor echo --json "Write the code. Then test it."',
        "planner run --allow-shell 'Run `npm test`. Then summarise the failures.'",
        'planner run --non-interactive --answer 3="staging" --executor script:examples/demo.json "Add a login page. Then write tests for it. Finally deploy it."',
        'planner run --db postgres://planner@localhost/planner --max-parallel 2 --on-failure abort "..."',
        'planner run --on-failure replan --max-replans 1 "Fetch the data. Then summarise it."',
        'planner run --token-budget 4000 --profile analysis --system-prompt "You plan data work." "Fetch the data. Then summarise it."',
        'planner plan --json "Fetch the data. Then summarise it." > plan.json && planner run --plan plan.json'
      ]
    )
  )
)

const answer = Command.make(
  "answer",
  {
    ...execution,
    sessionId: session,
    taskId: wholeNumberArg("task").pipe(Args.withDescription("The id of the task that asked")),
    text: Args.text({ name: "text" }).pipe(Args.withDescription("The answer, in quotes"))
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/RunCommands.js")),
      (module) => module.answer(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Record the answer to a task's question and continue the session, like resume.",
      [
        'A person executor\'s question ("Do this step and report the result: ...") takes the result as its answer; start it with "failed:" to report that the step failed.'
      ],
      [
        'planner answer 20250101-120000-abc123 3 "staging"',
        'planner answer 20250101-120000-abc123 2 "done, 14 tests pass" --json'
      ]
    )
  )
)

const resume = Command.make("resume", { ...execution, sessionId: session }, (flags) =>
  Effect.flatMap(
    Effect.promise(() => import("./cli/RunCommands.js")),
    (module) => module.resume(flags)
  )
).pipe(
  Command.withDescription(
    help(
      "Continue a session that stopped: paused for answers, interrupted, or crashed. A task whose worker died runs again.",
      [],
      ["planner resume 20250101-120000-abc123", "planner resume 20250101-120000-abc123 --executor echo --plain"]
    )
  )
)

// --- Plan edits (#15): the same options for `edit` (a live session) and `fork` (a new one) ----------------------------

const editOptions = {
  add: Options.text("add").pipe(
    Options.withPseudoName("TEXT"),
    Options.withDescription(
      "Add a task (the plan's next id), waiting for the tasks of the --after given with it. Repeatable: the n-th --after goes with the n-th --add."
    ),
    Options.repeated
  ),
  after: Options.text("after").pipe(
    Options.withPseudoName("IDS"),
    Options.withDescription("The tasks an added task waits for, comma-separated (2 or 2,3)"),
    Options.repeated
  ),
  addKind: Options.text("add-kind").pipe(
    Options.withPseudoName("KIND"),
    Options.withDescription(
      `The kind of an added task: ${nodeKinds.join(", ")} (Processing when not given). Repeatable: the n-th --add-kind goes with the n-th --add.`
    ),
    Options.repeated
  ),
  set: Options.text("set").pipe(
    Options.withPseudoName("TASK=TEXT"),
    Options.withDescription("A new description for a task that has not started. Repeatable."),
    Options.repeated
  ),
  kind: Options.text("kind").pipe(
    Options.withPseudoName("TASK=KIND"),
    Options.withDescription(`A new kind for a task that has not started: ${nodeKinds.join(", ")}. Repeatable.`),
    Options.repeated
  ),
  // Text, parsed by EditFlags: a repeated integer option refuses every value ("'9' is not a integer").
  remove: Options.text("remove").pipe(
    Options.withPseudoName("TASK"),
    Options.withDescription(
      "Take a task that has not started out of the plan; what waited for it waits for what it waited for. Repeatable."
    ),
    Options.repeated
  ),
  depends: Options.text("depends").pipe(
    Options.withPseudoName("TASK=IDS"),
    Options.withDescription("Replace a task's dependencies: 5=2,3 (5= for none). Repeatable."),
    Options.repeated
  ),
  setAnswer: Options.text("set-answer").pipe(
    Options.withPseudoName("TASK=TEXT"),
    Options.withDescription(
      "A different answer to the last answered question of a task; the task and what depends on it run again. Repeatable."
    ),
    Options.repeated
  )
}

const dryRun = Options.boolean("dry-run").pipe(
  Options.withDescription("Print which tasks would be reused and which would run, and stop: nothing is recorded")
)

const editCommand = Command.make("edit", { db, json, sessionId: session, ...editOptions }, (flags) =>
  Effect.flatMap(
    Effect.promise(() => import("./cli/EditCommands.js")),
    (module) => module.edit(flags)
  )
).pipe(
  Command.withDescription(
    help(
      "Change the plan of a session that has not finished, while it runs or while it waits: add tasks, change or remove tasks that have not started, change dependencies, or give a different answer. The edits are one event in the log; tasks they make ready are dispatched at once.",
      [
        "A task that is running or finished cannot be changed (fork the session to change it). Refusals (an unknown task, a cycle, a started task) exit with code 2 and say why. A run of the session picks the changes up; otherwise `planner resume` runs them."
      ],
      [
        'planner edit 20250101-120000-abc123 --add "Write the release notes" --after 2',
        'planner edit 20250101-120000-abc123 --set 3="Deploy to staging" --kind 3=ToolCall',
        "planner edit 20250101-120000-abc123 --remove 4 --depends 5=2,3"
      ]
    )
  )
)

const fork = Command.make(
  "fork",
  {
    ...execution,
    sessionId: session,
    at: wholeNumber("at").pipe(
      Options.withPseudoName("SEQ"),
      Options.withDescription("Start from the session as it was after this event (see `planner history`)")
    ),
    ...editOptions,
    dryRun,
    ...replanOptions
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/EditCommands.js")),
      (module) => module.fork(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Start a new session from a point of another and run it like resume: to retry a plan from a point, with a different answer, or with an edited plan (the edit options of `planner edit`). Before it runs, it prints which tasks it reuses and which it runs; --dry-run stops there.",
      [
        "Without edits, the first SEQ events are copied and tasks running at that point run again. With edits, the new session takes the plan as it was at SEQ, applies the edits, reuses the results of completed tasks no edit reaches, and runs only the edited tasks and what depends on them (and what had not completed). Either way the new session records where it came from (`planner sessions --tree`, `planner diff`)."
      ],
      [
        "planner fork 20250101-120000-abc123 --at 7",
        "planner fork 20250101-120000-abc123 --at 7 --answer 3=production",
        "planner fork 20250101-120000-abc123 --at 18 --set-answer 3=production --dry-run",
        'planner fork 20250101-120000-abc123 --at 18 --set 2="Write integration tests" --executor echo',
        "planner fork 20250101-120000-abc123 --at 0 --replan --planner parser"
      ]
    )
  )
)

const rerun = Command.make(
  "rerun",
  {
    ...execution,
    sessionId: session,
    task: wholeNumber("task").pipe(
      Options.withPseudoName("N"),
      Options.withDescription("The task to run again, with every task that depends on it")
    ),
    dryRun
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/EditCommands.js")),
      (module) => module.rerun(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Run task N and what depends on it again, in a new session forked from the end of this one; every other completed task keeps its result. Prints which tasks it reuses and which it runs first; --dry-run stops there.",
      [],
      [
        "planner rerun 20250101-120000-abc123 --task 2",
        "planner rerun 20250101-120000-abc123 --task 2 --dry-run --json"
      ]
    )
  )
)

const expandCommand = Command.make(
  "expand",
  {
    db,
    json,
    sessionId: session,
    taskId: wholeNumberArg("task").pipe(Args.withDescription("The id of a task that has not started")),
    maxDepth: wholeNumber("max-depth").pipe(
      Options.withPseudoName("N"),
      Options.withDescription(`How deep sub-plans may nest. Default: ${defaultMaxDepth}.`),
      Options.withDefault(defaultMaxDepth)
    )
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/ExpandCommand.js")),
      (module) => module.expand(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Run a task that has not started as a sub-plan: a child session planned from the task's description, run by the same workers; the task waits for it and takes its outcome. resume SESSION runs the whole tree.",
      [],
      ["planner expand 20250101-120000-abc123 2", "planner expand 20250101-120000-abc123 2 --max-depth 2"]
    )
  )
)

const cancel = Command.make(
  "cancel",
  {
    db,
    json,
    sessionId: session,
    reason: Options.text("reason").pipe(
      Options.withPseudoName("TEXT"),
      Options.withDescription("Why, recorded with the session"),
      Options.optional
    )
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/InspectCommands.js")),
      (module) => module.cancel(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Cancel a session: every unfinished task is cancelled and the plan ends. A run of it in another terminal stops with exit code 1.",
      [],
      ["planner cancel 20250101-120000-abc123", 'planner cancel 20250101-120000-abc123 --reason "wrong branch"']
    )
  )
)

const sessions = Command.make(
  "sessions",
  {
    db,
    json,
    limit: wholeNumber("limit").pipe(
      Options.withPseudoName("N"),
      Options.withDescription("Show at most N sessions, newest first. Default: 50."),
      Options.withDefault(50)
    ),
    offset: wholeNumber("offset").pipe(
      Options.withPseudoName("M"),
      Options.withDescription("Skip the M newest sessions first, for the next page. Default: 0."),
      Options.withDefault(0)
    ),
    tree: Options.boolean("tree").pipe(
      Options.withDescription(
        "Show each fork under the session it was forked from, with the event it was forked at. A fork whose origin is not on the page is shown at the top, its origin named."
      )
    )
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/InspectCommands.js")),
      (module) => module.sessions(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "List sessions, newest first: id, when created, status, task counts and the first words of the request.",
      [
        'One page at a time: --limit sessions after skipping --offset. The text ends with "showing X-Y of TOTAL"; --json prints {"total","offset","limit","sessions":[...]}.'
      ],
      [
        "planner sessions",
        "planner sessions --json --limit 5",
        "planner sessions --limit 20 --offset 20",
        "planner sessions --tree",
        "planner sessions --db postgres://planner@localhost/planner"
      ]
    )
  )
)

const diff = Command.make(
  "diff",
  {
    db,
    json,
    a: Args.text({ name: "a" }).pipe(Args.withDescription("The first session id (A)")),
    b: Args.text({ name: "b" }).pipe(Args.withDescription("The second session id (B)"))
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/DiffCommand.js")),
      (module) => module.diff(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Compare two sessions, task by task: what differs in their plans (description, kind, dependencies) and outcomes (status, result, error, answers), and the first event where their logs part (times and worker ids aside). Says when one was forked from the other.",
      [
        'Tasks are matched by id. --json prints {"a","b","identical","divergence":{"sequence","a","b"}|null,"tasks":[{"id","change","description","changes":[{"field","a","b"}]}]}. Exit code 0 whether or not they differ.'
      ],
      [
        "planner diff 20250101-120000-abc123 20250101-121500-def456",
        "planner diff 20250101-120000-abc123 20250101-121500-def456 --json"
      ]
    )
  )
)

const history = Command.make("history", { db, json, sessionId: session }, (flags) =>
  Effect.flatMap(
    Effect.promise(() => import("./cli/InspectCommands.js")),
    (module) => module.history(flags)
  )
).pipe(
  Command.withDescription(
    help(
      "Print a session's event log: sequence, time, event type and a one-line gist of each event.",
      [],
      ["planner history 20250101-120000-abc123", "planner history 20250101-120000-abc123 --json"]
    )
  )
)

const replay = Command.make(
  "replay",
  {
    db,
    json,
    sessionId: session,
    at: wholeNumber("at").pipe(
      Options.withPseudoName("SEQ"),
      Options.withDescription("Show the state right after this event (see `planner history`)")
    )
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/InspectCommands.js")),
      (module) => module.replay(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Time travel: print a session as it was right after event SEQ, rebuilt from its log.",
      [],
      ["planner replay 20250101-120000-abc123 --at 5", "planner replay 20250101-120000-abc123 --at 5 --json"]
    )
  )
)

const show = Command.make("show", { db, json, sessionId: session }, (flags) =>
  Effect.flatMap(
    Effect.promise(() => import("./cli/InspectCommands.js")),
    (module) => module.show(flags)
  )
).pipe(
  Command.withDescription(
    help(
      "Print a session's current state: its request, each task with its status and result, error or question, and the summary.",
      [],
      ["planner show 20250101-120000-abc123", "planner show 20250101-120000-abc123 --json"]
    )
  )
)

/** How long a worker's outcome may wait for those of the tasks it started with it (`planner worker`, `serve --worker`). */
const gatherMs = wholeNumber("gather-ms").pipe(
  Options.withPseudoName("MS"),
  Options.withDescription(
    `How long a task's outcome may wait for those of the tasks this worker started with it (within that many milliseconds), so that they are recorded together: fewer writes for many short tasks. 0 records each outcome as it comes; at most ${maxGatherMs}. Default: ${defaultGatherMs}.`
  ),
  Options.withDefault(defaultGatherMs)
)

const worker = Command.make(
  "worker",
  {
    db,
    json,
    verbose,
    executor,
    allowShell,
    noCheckLinks,
    kinds: Options.text("kinds").pipe(
      Options.withPseudoName("KIND,..."),
      Options.withDescription(`The task kinds to serve, comma-separated: ${nodeKinds.join(", ")}. Default: all.`),
      Options.optional
    ),
    concurrency: wholeNumber("concurrency").pipe(
      Options.withPseudoName("N"),
      Options.withDescription("How many tasks it runs at once. Default: 4."),
      Options.withDefault(4)
    ),
    gatherMs
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/WorkerCommand.js")),
      (module) => module.worker(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Run a long-lived worker against the store: it takes dispatched tasks of the given kinds from any session and runs them. SIGINT or SIGTERM stop it cleanly (exit code 0): the tasks it holds are given back.",
      [],
      [
        "planner worker --kinds ToolCall --allow-shell",
        "planner worker --kinds Processing,Analysis --concurrency 2 --db postgres://planner@db-host/planner",
        "planner worker --executor script:examples/demo.json --json"
      ]
    )
  )
)

const serve = Command.make(
  "serve",
  {
    db,
    host: Options.text("host").pipe(
      Options.withPseudoName("ADDRESS"),
      Options.withDescription(
        "The address to listen on. Default 127.0.0.1; another address lets anyone who can reach it read and answer every session (there is no authentication)."
      ),
      Options.withDefault("127.0.0.1")
    ),
    port: wholeNumber("port").pipe(
      Options.withPseudoName("N"),
      Options.withDescription("The port to listen on; 0 picks a free one. Default: 4780."),
      Options.withDefault(4780)
    ),
    worker: Options.boolean("worker").pipe(
      Options.withDescription(
        "Also run tasks in this process, from every session (as `planner worker` does), with the executor options below: plans can then be driven from the browser alone"
      )
    ),
    executor,
    allowShell,
    noCheckLinks,
    gatherMs
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/ServeCommand.js")),
      (module) => module.serve(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Serve the dashboard: the sessions, their task boards live, their history and any past state, over the same store as the other commands. SIGINT or SIGTERM stop it (exit code 0).",
      [],
      [
        "planner serve",
        "planner serve --port 8080",
        "planner serve --worker --executor script:examples/demo.json",
        "planner serve --db postgres://planner@db-host/planner"
      ]
    )
  )
)

// --- Memory of past work (#17) --------------------------------------------------------------------------------------

const recall = Command.make(
  "recall",
  {
    db,
    json,
    text: Args.text({ name: "text" }).pipe(Args.withDescription("What to look for, in quotes")),
    limit: wholeNumber("limit").pipe(
      Options.withPseudoName("N"),
      Options.withDescription("Show at most N past tasks and sessions, most similar first. Default: 10."),
      Options.withDefault(10)
    ),
    kind: Options.text("kind").pipe(
      Options.withPseudoName("task|session|KIND"),
      Options.withDescription(`Only tasks, only sessions, or only tasks of one kind: ${nodeKinds.join(", ")}.`),
      Options.optional
    )
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/MemoryCommands.js")),
      (module) => module.recall(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "List the past tasks and finished sessions most similar to some text, with their results and outcomes: the store's own full-text search (and embeddings when PLANNER_EMBEDDINGS_MODEL is set).",
      [],
      ['planner recall "write tests for the login endpoint"', 'planner recall "deploy" --kind session --limit 3 --json']
    )
  )
)

const stats = Command.make("stats", { db, json }, (flags) =>
  Effect.flatMap(
    Effect.promise(() => import("./cli/MemoryCommands.js")),
    (module) => module.stats(flags)
  )
).pipe(
  Command.withDescription(
    help(
      "What past work says, per task kind and overall: success rate, mean attempts and duration, and how often tasks asked for clarification.",
      [],
      ["planner stats", "planner stats --json"]
    )
  )
)

const memoryRebuild = Command.make("rebuild", { db, json }, (flags) =>
  Effect.flatMap(
    Effect.promise(() => import("./cli/MemoryCommands.js")),
    (module) => module.rebuild(flags)
  )
).pipe(Command.withDescription(help("Recompute the memory index from the event log.", [], ["planner memory rebuild"])))

const prune = Command.make(
  "prune",
  {
    db,
    json,
    finishedBefore: Options.text("finished-before").pipe(
      Options.withPseudoName("DATE"),
      Options.withDescription("Sessions that finished before this date (YYYY-MM-DD, UTC, or an ISO date and time)")
    ),
    dryRun: Options.boolean("dry-run").pipe(
      Options.withDescription("Say what would be removed and kept, and remove nothing")
    )
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/MemoryCommands.js")),
      (module) => module.prune(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Remove the events of finished sessions older than a date, keeping each one's final snapshot and its memory, so show, recall and stats still work. A session that a running fork or sub-plan still needs is kept. Says what it removed.",
      [],
      [
        "planner prune --finished-before 2025-01-01 --dry-run",
        "planner prune --finished-before 2025-01-01",
        "planner prune --finished-before 2025-06-30T12:00:00Z --json"
      ]
    )
  )
)

const doctor = Command.make(
  "doctor",
  {
    db,
    json,
    repair: Options.boolean("repair").pipe(
      Options.withDescription("Rebuild the sessions whose jobs differ from their logs, then check again")
    )
  },
  (flags) =>
    Effect.flatMap(
      Effect.promise(() => import("./cli/DoctorCommand.js")),
      (module) => module.doctor(flags)
    )
).pipe(
  Command.withDescription(
    help(
      "Check the task queue against the event log: for every session, the jobs its log implies against the jobs the queue holds. Says which are missing and which are left over; exits 1 when they differ.",
      [
        "With --repair it rebuilds those sessions' jobs from their logs (the leases of jobs it keeps stay). Run the repair with no planner or worker writing to the store: a dispatch made while it reads a log could be dropped until the next resume."
      ],
      ["planner doctor", "planner doctor --repair", "planner doctor --db postgres://localhost/planner --json"]
    )
  )
)

const memory = Command.make("memory").pipe(
  Command.withDescription(help("The memory index of past work.", [], ["planner memory rebuild"])),
  Command.withSubcommands([memoryRebuild])
)

export const planner = Command.make("planner").pipe(
  Command.withSubcommands([
    plan,
    run,
    answer,
    resume,
    fork,
    rerun,
    editCommand,
    cancel,
    expandCommand,
    sessions,
    diff,
    history,
    replay,
    show,
    worker,
    serve,
    recall,
    stats,
    memory,
    prune,
    doctor
  ])
)

/** Each command's usage and help, for refusing unknown options and for tests. */
const described = <Name extends string, R, E, A>(command: Command.Command<Name, R, E, A>) => ({
  usage: Command.getUsage(command),
  help: () => withoutGenericHelp(stripAnsi(HelpDoc.toAnsiText(Command.getHelp(command, helpConfig))))
})

/**
 * @effect/cli's own words for a value's type, which it prints above every option's description ("A user-defined piece
 * of text.", "A true or false value."): each says nothing the usage line does not (`--db PATH|URL`, `--json`).
 */
const genericHelp = new Set([
  "A user-defined piece of text.",
  "A true or false value.",
  "An integer.",
  "A floating point number."
])

/** A command's usage line as people type it: `$ planner run ...`, with optional repeatable options in brackets. */
const usageAsTyped = (line: string): string =>
  line
    .replace(/^\$ /, "$ planner ")
    .replace(
      /(^|\s)(--[a-z][a-z-]* [^\s[\]]+\.\.\.)(?=\s|$)/g,
      (_, space: string, option: string) => `${space}[${option}]`
    )

/**
 * Help text without @effect/cli's generic lines (with or without terminal styles), and the blank line after each; a
 * command's help without the bare program name the library puts above its name and version, and its usage line as
 * people type it (see `usageAsTyped`).
 */
export const withoutGenericHelp = (text: string): string => {
  const lines = text.split("\n")
  const plain = (index: number) => stripAnsi(lines[index] ?? "").trim()
  const kept: Array<string> = []
  const start = plain(0) === "planner" && plain(1) === "" && plain(2).startsWith("planner ") ? 2 : 0
  for (let index = start; index < lines.length; index++) {
    const line = plain(index)
    if (!genericHelp.has(line)) {
      const command = /^\$ ([a-z]+)/.exec(line)?.[1]
      kept.push(command !== undefined && commandNames.includes(command) ? usageAsTyped(line) : (lines[index] ?? ""))
      continue
    }
    if (plain(index + 1) === "") index++
  }
  return kept.join("\n")
}

/** Each option given a value on the command line, with that value (`--opt value` or `--opt=value`), in order. */
export const optionValues = (args: ReadonlyArray<string>): ReadonlyArray<readonly [string, string]> =>
  args.flatMap((arg, index): ReadonlyArray<readonly [string, string]> => {
    if (!arg.startsWith("--")) return []
    const at = arg.indexOf("=")
    if (at >= 0) return [[arg.slice(0, at), arg.slice(at + 1)]]
    const next = args[index + 1]
    return next === undefined ? [] : [[arg, next]]
  })

/** The options given `value` on the command line, in order. */
const optionsGiven = (args: ReadonlyArray<string>, value: string): ReadonlyArray<string> =>
  optionValues(args).flatMap(([option, given]) => (given === value ? [option] : []))

/** The command-line values of `option`. */
const valuesOf = (args: ReadonlyArray<string>, option: string): ReadonlyArray<string> =>
  optionValues(args).flatMap(([name, value]) => (name === option ? [value] : []))

/**
 * @effect/cli's usage errors in plain words, naming the option they are about: the library says "'x' is not a integer"
 * or "Expected one of the following cases: a, b" without saying of which option, names the type as it does inside,
 * and "Expected to find option: '--at'" or "Expected a value following option: '--at'" read like a parser's trace.
 * `args` (the command line after the subcommand) and `usage` (the subcommand's usage line) say which option it was.
 */
export const plainUsage = (text: string, args: ReadonlyArray<string> = [], usage = "", subcommand?: string): string => {
  // `planner memory bogus`: the library lists the top-level commands, not the subcommand's own.
  if (subcommand !== undefined && /^Invalid subcommand for /.test(text)) {
    const given = args.find((arg) => !arg.startsWith("-"))
    // Its commands, as its help's examples show them (`planner memory rebuild`).
    const own = [
      ...new Set(
        [...(commandHelp(subcommand) ?? "").matchAll(new RegExp(`planner ${subcommand} ([a-z]+)`, "g"))].map(
          (match) => match[1]
        )
      )
    ]
    if (given !== undefined && own.length > 0) {
      return `planner ${subcommand} has no command ${given}: use ${own.map((name) => `planner ${subcommand} ${name}`).join(" or ")}`
    }
  }
  // `--db a --db b`: the library takes the first and calls the second an unknown argument.
  const unknown = /^Received unknown argument: '(--[a-z][a-z-]*)'$/.exec(text)?.[1]
  if (unknown !== undefined && args.filter((arg) => arg === unknown || arg.startsWith(`${unknown}=`)).length > 1) {
    return `${unknown} is given more than once: give it once`
  }
  const wrongType = /^'(.*)' is not a (integer|float)$/s.exec(text)
  const [option] = wrongType === null ? [] : optionsGiven(args, wrongType[1] ?? "")
  if (wrongType !== null && option !== undefined) {
    return `${option} needs ${wrongType[2] === "integer" ? "a whole number" : "a number"}; got '${wrongType[1]}'`
  }
  const notFile = /^Expected path '(.*)' to be a regular file$/s.exec(text)
  const [fileOption] = notFile === null ? [] : optionsGiven(args, notFile[1] ?? "")
  if (notFile !== null && fileOption !== undefined) {
    return `${fileOption} ${notFile[1]} is not a file (a folder?): give the path of a file`
  }
  const cases = /^Expected one of the following cases: (.*)$/s.exec(text)?.[1]?.split(", ")
  if (cases !== undefined) {
    // The option whose usage lists these cases, among those given a value that is not one of them.
    const named = new RegExp(`(--[a-z][a-z-]*) ${cases.map((one) => one.replace(/[^\w-]/g, "\\$&")).join(" \\| ")}\\b`)
    const choice = named.exec(usage)?.[1]
    const given = choice === undefined ? undefined : valuesOf(args, choice).find((value) => !cases.includes(value))
    if (choice !== undefined && given !== undefined)
      return `${choice} must be one of ${cases.join(", ")}; got '${given}'`
  }
  return text
    .replace(/ is not a integer\b/g, " is not a whole number")
    .replace(/ is not a float\b/g, " is not a number")
    .replace(/^Expected to find option: '([^']+)'/, "Missing option $1")
    .replace(/^Expected a value following option: '([^']+)'/, "$1 needs a value")
}

/** How help is shown: the commands' own options without @effect/cli's built-in ones; usage lines name each option's value (`--at SEQ`). */
export const helpConfig = CliConfig.make({ showBuiltIns: false, showTypes: true })

const commands = {
  plan: described(plan),
  run: described(run),
  answer: described(answer),
  resume: described(resume),
  fork: described(fork),
  rerun: described(rerun),
  edit: described(editCommand),
  cancel: described(cancel),
  expand: described(expandCommand),
  sessions: described(sessions),
  diff: described(diff),
  history: described(history),
  replay: described(replay),
  show: described(show),
  worker: described(worker),
  serve: described(serve),
  recall: described(recall),
  stats: described(stats),
  memory: described(memoryRebuild),
  prune: described(prune),
  doctor: described(doctor)
}

/** A command's help as plain text. */
export const commandHelp = (command: string): string | undefined =>
  Object.hasOwn(commands, command) ? commands[command as keyof typeof commands].help() : undefined

export const commandNames: ReadonlyArray<string> = Object.keys(commands)

/** Options every command accepts besides its own. */
const builtInOptions = ["--help", "-h", "--version", "--wizard", "--completions", "--log-level"]

/**
 * The options `command` takes, read from its usage. @effect/cli hands an unknown `--option` to an optional text
 * argument (`run --bogus "text"` would plan "--bogus"), so unknown options are refused before it parses.
 */
/** A command's usage line, as plain text (`[--on-failure continue | abort | replan] ...`). */
export const usageLine = (command: string): string | undefined =>
  Object.hasOwn(commands, command)
    ? HelpDoc.toAnsiText(Usage.getHelp(commands[command as keyof typeof commands].usage))
    : undefined

export const optionNames = (command: string): ReadonlySet<string> | undefined => {
  const usage = usageLine(command)
  if (usage === undefined) return undefined
  return new Set([...builtInOptions, ...(usage.match(/--[a-z][a-z-]*/g) ?? [])])
}

export const cli = Command.run(planner, { name: "planner", version })
