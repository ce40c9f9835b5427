/**
 * The commands that run plans: `run` (plan a request and run it), `answer` (record an answer and go on), `resume`
 * (go on after a pause, an interruption or a crash) and `fork` (a new session from the first events of another, run
 * like `resume`). They take the same execution options and end the same way (see `Drive`).
 *
 * Each checks its input first, with only the store loaded, so a mistake is reported at once; the runner, the workers
 * and the executors (`Running`) are loaded after that.
 */
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Effect, Either, Option } from "effect"
import { defaultConfig, type FailurePolicy, type PlannerConfig } from "../../domain/Config.js"
import * as Parser from "../../domain/Parser.js"
import * as Planner from "../../domain/Planner.js"
import { unstorableText } from "../../domain/SchemaGuard.js"
import { type Attachment, attachmentFromText } from "../../domain/Task.js"
import { chooseSpec, type ExecutorSpec, specText } from "./Executors.js"
import { toFailure, usage } from "./Failure.js"
import { checkLlmSettings, llmConfigured } from "./LlmChoice.js"
import { err, outputMode, plural, shellQuote } from "./Output.js"
import { checkPresets, parsePresets } from "./Presets.js"
import * as Prompt from "./Prompt.js"
import { readPlan, readRequest, storable, storableArgument } from "./Request.js"
import type { RunSettings } from "./Running.js"
import { existingState, existingStateAt, programName, sessionFacts } from "./Session.js"
import { plannerLayer, resolveExistingStore, resolveStore, type StoreTarget } from "./Store.js"

/**
 * `--budget-tokens` and `--budget-usd` as config fields. A dollar budget needs a price table (`PLANNER_LLM_PRICES`),
 * or no call could be priced and the limit would never be checked.
 */
const budgetLimits = (flags: RunFlags) =>
  Effect.gen(function* () {
    const limits: { budgetTokens?: number; budgetUsd?: number } = {}
    if (Option.isSome(flags.budgetTokens)) {
      yield* checkRange("--budget-tokens", flags.budgetTokens.value, 1, 1_000_000_000_000)
      limits.budgetTokens = flags.budgetTokens.value
    }
    if (Option.isSome(flags.budgetUsd)) {
      const usd = flags.budgetUsd.value
      if (!Number.isFinite(usd) || usd <= 0)
        return yield* usage(`--budget-usd must be a positive amount of dollars, not ${usd}.`)
      const AppBudget = yield* Effect.promise(() => import("../Budget.js"))
      const prices = yield* AppBudget.loadPrices.pipe(Effect.mapError((error) => usage(error.message)))
      if (prices === undefined) {
        return yield* usage(
          '--budget-usd needs prices: set PLANNER_LLM_PRICES to a JSON object such as {"gpt-4o-mini": {"input": 0.15, "output": 0.6}} (dollars per million tokens) or the path of a file holding one.'
        )
      }
      limits.budgetUsd = usd
    }
    return limits
  })

/** The options every run-like command takes. */
export interface ExecutionFlags {
  readonly db: Option.Option<string>
  readonly json: boolean
  readonly plain: boolean
  readonly verbose: boolean
  readonly executor: Option.Option<string>
  readonly allowShell: boolean
  readonly answers: ReadonlyArray<string>
  readonly nonInteractive: boolean
  readonly noCheckLinks: boolean
  readonly noLocalWorker: boolean
}

export interface RunFlags extends ExecutionFlags {
  readonly request: Option.Option<string>
  readonly file: Option.Option<string>
  /** `--plan FILE`: run this plan (the `planner plan --json` format) instead of planning a request. */
  readonly plan: Option.Option<string>
  /** `--from-memory`: reuse a closely matching past successful plan (#17). */
  readonly fromMemory: boolean
  readonly attach: ReadonlyArray<string>
  readonly maxParallel: number
  readonly maxAttempts: number
  readonly onFailure: FailurePolicy
  /** `--max-replans N`: recorded with the plan when `onFailure` is `replan`. */
  readonly maxReplans: number
  readonly tokenBudget: number
  /** `--budget-tokens N`, `--budget-usd X`: the most the session may spend on models (see `Budget`). */
  readonly budgetTokens: Option.Option<number>
  readonly budgetUsd: Option.Option<number>
  readonly profile: string
  readonly systemPrompt: Option.Option<string>
  readonly errorCharLimit: number
  /** `--expand`: every multi-step task runs as a sub-plan, nested at most `--max-depth` deep. */
  readonly expand: boolean
  readonly maxDepth: number
}

const running = Effect.promise(() => import("./Running.js"))

/**
 * Runs a command body with the store, every error ending as an exit code and one line. `existing`: the command works
 * on a session that must already be there, so a SQLite file that does not exist is not created (`resolveExistingStore`).
 */
const withStore = <A, E, R>(
  flags: ExecutionFlags,
  existing: boolean,
  body: (store: StoreTarget) => Effect.Effect<A, E, R>
) => {
  const store = existing ? resolveExistingStore(flags.db) : resolveStore(flags.db)
  return body(store).pipe(Effect.provide(plannerLayer(store)), Effect.mapError(toFailure))
}

const settings = (
  flags: ExecutionFlags,
  store: StoreTarget,
  spec: ExecutorSpec,
  presets: ReadonlyMap<number, string>
): RunSettings => ({
  spec,
  allowShell: flags.allowShell,
  checkLinks: !flags.noCheckLinks,
  drive: {
    mode: outputMode(flags),
    interactive: !flags.nonInteractive && Prompt.canPrompt(),
    verbose: flags.verbose,
    localWorker: !flags.noLocalWorker,
    presets,
    hints: {
      program: programName(),
      store: store.flag,
      execution: `${flags.allowShell ? " --allow-shell" : ""}${flags.noCheckLinks ? " --no-check-links" : ""}`,
      executor: spec._tag === "Auto" ? "" : ` --executor ${shellQuote(specText(spec))}`
    }
  }
})

const checkRange = (name: string, value: number, min: number, max: number) =>
  Number.isInteger(value) && value >= min && value <= max
    ? Effect.void
    : Effect.fail(usage(`${name} must be a whole number from ${min} to ${max}; got ${value}.`))

/** `--attach` values as attachments: URLs as links, anything else a file that must exist. */
const requestAttachments = (values: ReadonlyArray<string>) =>
  Effect.forEach(values, (value) => {
    const attachment = attachmentFromText(value.trim())
    if (attachment.value.length === 0) return Effect.fail(usage("--attach needs a path or a URL."))
    const problem = unstorableText(attachment.value)
    if (problem !== undefined)
      return Effect.fail(
        usage(`--attach ${JSON.stringify(attachment.value)} holds ${problem}: give a plain path or URL.`)
      )
    if (attachment.kind !== "Link" && !/^(https?|data):/i.test(attachment.value)) {
      if (!Fs.existsSync(NodePath.resolve(attachment.value))) {
        return Effect.fail(
          usage(`--attach ${attachment.value}: there is no such file; give an existing path or a URL.`)
        )
      }
    }
    return Effect.succeed<Attachment>(attachment)
  })

/** `--from-memory`: the plan of a closely matching past successful session, said on standard error; or none. */
const reusedPlan = (request: string, json: boolean) =>
  Effect.gen(function* () {
    const { reusablePlan } = yield* Effect.promise(() => import("../MemoryPlanning.js"))
    const { indexLayer } = yield* Effect.promise(() => import("./MemoryCommands.js"))
    const found = yield* Effect.provide(reusablePlan(request), indexLayer)
    if (Option.isNone(found)) {
      if (!json) yield* err("No closely matching successful plan in memory: planning the request instead.")
      return undefined
    }
    if (!json) {
      yield* err(
        `Reusing the plan of session ${found.value.fromSession.sessionId} from memory (${plural(found.value.tasks.length, "task")}).`
      )
    }
    return found.value
  })

/**
 * Whether `run` offers a closely matching past successful plan (#17): to a person at a terminal (standard input and
 * output), never with --json, --non-interactive or --plan, nor with an LLM (which sees past plans as examples).
 */
const offersMemory = (flags: RunFlags, hasPlanFile: boolean): boolean =>
  !hasPlanFile &&
  !flags.json &&
  !flags.nonInteractive &&
  Prompt.canPrompt() &&
  process.stdout.isTTY === true &&
  !llmConfigured()

const offeredPlan = (request: string) =>
  Effect.flatMap(
    Effect.promise(() => import("./MemoryCommands.js")),
    (memory) => memory.offerReuse(request)
  )

/**
 * What `run` was given, checked before the store is opened: a request refused (empty, unreadable, bad options) leaves no
 * new database file behind.
 */
const checkRun = (flags: RunFlags) =>
  Effect.gen(function* () {
    yield* checkRange("--max-parallel", flags.maxParallel, 1, 1024)
    yield* checkRange("--max-attempts", flags.maxAttempts, 1, 100)
    yield* checkRange("--max-replans", flags.maxReplans, 0, 100)
    if (flags.onFailure === "replan" && !llmConfigured() && !flags.json) {
      yield* err(
        "Note: no LLM is configured, so --on-failure replan cannot revise the plan: a task that fails for good is handled as under continue (recorded in the log)."
      )
    }
    yield* checkRange("--token-budget", flags.tokenBudget, 1, 10_000_000)
    const budget = yield* budgetLimits(flags)
    yield* checkRange("--error-char-limit", flags.errorCharLimit, 1, 10_000_000)
    yield* checkRange("--max-depth", flags.maxDepth, 1, 20)
    const systemPrompt = Option.isSome(flags.systemPrompt)
      ? yield* storable("--system-prompt", flags.systemPrompt.value.trim())
      : defaultConfig.systemPrompt
    if (systemPrompt.length > 20_000) {
      return yield* usage(`--system-prompt is ${systemPrompt.length} characters long: keep it under 20000.`)
    }
    if (Option.isSome(flags.plan) && (Option.isSome(flags.request) || Option.isSome(flags.file))) {
      return yield* usage("Give either a request or --plan FILE, not both: the plan file holds its request.")
    }
    if (flags.fromMemory && Option.isSome(flags.plan)) {
      return yield* usage("Give either --plan FILE or --from-memory, not both.")
    }
    const planFile = Option.isSome(flags.plan) ? yield* readPlan(flags.plan.value) : undefined
    const request = planFile?.request ?? (yield* readRequest(flags.request, flags.file))
    const attachments = yield* requestAttachments(flags.attach)
    const presets = yield* parsePresets(flags.answers)
    const spec = yield* chooseSpec(flags.executor)
    yield* checkLlmSettings()
    // Without an LLM the plan is the parser's (unless one is reused from memory): the request is checked against it now.
    const parsed =
      planFile !== undefined || llmConfigured()
        ? undefined
        : yield* Either.match(Parser.parse(request), {
            onLeft: (error) => Effect.fail(usage(error.message)),
            onRight: Effect.succeed
          })
    const config: PlannerConfig = {
      ...defaultConfig,
      maxParallel: flags.maxParallel,
      maxAttempts: flags.maxAttempts,
      onFailure: flags.onFailure,
      ...(flags.onFailure === "replan" ? { maxReplans: flags.maxReplans } : {}),
      tokenBudget: flags.tokenBudget,
      ...budget,
      profile: flags.profile,
      systemPrompt,
      errorCharLimit: flags.errorCharLimit
    }
    return { planFile, request, attachments, presets, spec, parsed, config }
  })

export const run = (flags: RunFlags) =>
  Effect.flatMap(checkRun(flags), ({ planFile, request, attachments, presets, spec, parsed, config }) =>
    withStore(flags, false, (store) =>
      Effect.gen(function* () {
        const reused = flags.fromMemory
          ? yield* reusedPlan(request, flags.json)
          : offersMemory(flags, planFile !== undefined)
            ? yield* offeredPlan(request)
            : undefined
        const planned = reused?.tasks ?? planFile?.tasks ?? parsed
        if (planned !== undefined) yield* checkPresets(presets, planned.length, "the plan")
        const { start } = yield* running
        const given =
          reused !== undefined
            ? { tasks: reused.tasks, source: reused.source }
            : planFile === undefined || Option.isNone(flags.plan)
              ? undefined
              : {
                  tasks: planFile.tasks,
                  source: { _tag: "PlanFile" as const, path: flags.plan.value }
                }
        // The bound applies to `--expand` and to the steps an LLM plan marks as sub-plans (#16).
        const runSettings = { ...settings(flags, store, spec, presets), maxDepth: flags.maxDepth }
        yield* start(
          request,
          attachments,
          config,
          flags.expand ? { ...runSettings, expandMaxDepth: flags.maxDepth } : runSettings,
          given
        )
      })
    )
  )

export interface AnswerFlags extends ExecutionFlags {
  readonly sessionId: string
  readonly taskId: number
  readonly text: string
}

/**
 * Checks what a command continuing `sessionId` was given; the session's state and the settings to run it with. With
 * `at` (a fork), the state right after that event, read from the log's first `at` events alone.
 */
export const prepareContinue = (flags: ExecutionFlags, store: StoreTarget, sessionId: string, at?: number) =>
  Effect.gen(function* () {
    const state =
      at === undefined ? yield* existingState(sessionId, store) : (yield* existingStateAt(sessionId, store, at)).state
    const presets = yield* parsePresets(flags.answers)
    yield* checkPresets(presets, state.tasks.length, `session ${sessionId}`)
    const facts = yield* sessionFacts(sessionId)
    const spec = yield* chooseSpec(flags.executor, facts.executor)
    return { state, run: settings(flags, store, spec, presets) }
  })

export const answer = (flags: AnswerFlags) =>
  withStore(flags, true, (store) =>
    Effect.gen(function* () {
      const { state, run } = yield* prepareContinue(flags, store, flags.sessionId)
      const text = yield* storableArgument("The answer", flags.text.trim())
      if (text.length === 0) return yield* usage("The answer is empty: give the text to answer with.")
      if (Planner.isFinished(state)) {
        return yield* usage(
          `Session ${flags.sessionId} has already finished (${state.status}): there is no question to answer; fork it to run part of it again.`
        )
      }
      if (Planner.task(state, flags.taskId) === undefined) {
        return yield* usage(
          `Session ${flags.sessionId} has no task ${flags.taskId}: its tasks are numbered 1 to ${state.tasks.length} (see \`planner show ${flags.sessionId}${store.flag}\`).`
        )
      }
      // A question asked inside a sub-plan is answered with the root's id and the task id it showed.
      const { findQuestion } = yield* Effect.promise(() => import("../SubPlans.js"))
      const holder = Option.getOrElse(yield* findQuestion(flags.sessionId, flags.taskId), () => flags.sessionId)
      const { answerAndContinue } = yield* running
      yield* answerAndContinue(flags.sessionId, flags.taskId, text, run, holder)
    })
  )

export interface ResumeFlags extends ExecutionFlags {
  readonly sessionId: string
}

export const resume = (flags: ResumeFlags) =>
  withStore(flags, true, (store) =>
    Effect.gen(function* () {
      const { run } = yield* prepareContinue(flags, store, flags.sessionId)
      const { continueSession } = yield* running
      yield* continueSession(flags.sessionId, run)
    })
  )
