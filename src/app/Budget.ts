/**
 * The budget on the app's side: metering the model calls made for a session (see `infra/LlmUsage`), pricing them from
 * the user's price table, and checking each call against the session's limit before it is made.
 *
 * `metered(effect, options)` runs `effect` with a meter that admits a call only while the spend so far (the session's,
 * as its state says, plus what this piece of work has used) and the call's estimate stay within the limits. It gives
 * back what the effect gave, every call's usage (as `ModelUsage`, ready for `RecordUsage`), and the need of the call
 * it refused, if it refused one: the caller turns that into the budget question. With the `snapshot` its budget was
 * read at (`budgetFor`), every call takes a hold on the budget before it is made (`infra/BudgetHolds`, on the store
 * and so shared by every process using it), and the calls other work has in flight for the same tree, or has not yet
 * recorded in the log as that snapshot read it, count too: tasks running at once, in one process or in several,
 * cannot together cross a budget that each alone would fit.
 *
 * Prices: `PLANNER_LLM_PRICES` holds a JSON object, or the path of a file holding one, mapping model names to dollars
 * per million tokens: `{"gpt-4o-mini": {"input": 0.15, "output": 0.6}, "*": {"input": 1, "output": 2}}`. A model is
 * found by its name, then its name without a provider prefix or tag, then `*`. Without a table only tokens are counted.
 */
import * as Fs from "node:fs"
import { Clock, Config, Data, Effect, Either, Exit, FiberRef, Option } from "effect"
import * as Budget from "../domain/Budget.js"
import { RecordUsage } from "../domain/Commands.js"
import type * as Planner from "../domain/Planner.js"
import * as SubPlans from "../domain/SubPlans.js"
import * as BudgetHolds from "../infra/BudgetHolds.js"
import { fileProblem } from "../infra/FileProblem.js"
import * as LlmUsage from "../infra/LlmUsage.js"
import type { PlannerService } from "./PlannerService.js"

export interface Price {
  /** Dollars per million input tokens. */
  readonly input: number
  /** Dollars per million output tokens. */
  readonly output: number
}

export type Prices = ReadonlyMap<string, Price>

export class PriceTableError extends Data.TaggedError("PriceTableError")<{ readonly reason: string }> {
  override get message() {
    return `PLANNER_LLM_PRICES cannot be used: ${this.reason}. Give a JSON object such as {"gpt-4o-mini": {"input": 0.15, "output": 0.6}} (dollars per million tokens), or the path of a file holding one.`
  }
}

const isPrice = (value: unknown): value is Price =>
  typeof value === "object" &&
  value !== null &&
  "input" in value &&
  "output" in value &&
  typeof value.input === "number" &&
  typeof value.output === "number" &&
  Number.isFinite(value.input) &&
  Number.isFinite(value.output) &&
  value.input >= 0 &&
  value.output >= 0

/** Reads a price table: a JSON object of model name to `{ input, output }` dollars per million tokens. */
export const parsePrices = (text: string): Either.Either<Prices, string> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    return Either.left(`it is not JSON (${(error as Error).message})`)
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return Either.left("it is not a JSON object")
  }
  const prices = new Map<string, Price>()
  for (const [model, price] of Object.entries(parsed)) {
    if (!isPrice(price)) return Either.left(`the price of ${JSON.stringify(model)} is not {"input": N, "output": N}`)
    prices.set(model, { input: price.input, output: price.output })
  }
  return Either.right(prices)
}

/** The price table from `PLANNER_LLM_PRICES` (inline JSON or a file's path); undefined when it is not set. */
export const loadPrices: Effect.Effect<Prices | undefined, PriceTableError> = Effect.gen(function* () {
  const setting = yield* Config.option(Config.string("PLANNER_LLM_PRICES")).pipe(
    Effect.orElseSucceed(() => Option.none<string>())
  )
  if (Option.isNone(setting) || setting.value.trim().length === 0) return undefined
  const value = setting.value.trim()
  const text = value.startsWith("{")
    ? value
    : yield* Effect.try({
        try: () => Fs.readFileSync(value, "utf8"),
        catch: (error) =>
          new PriceTableError({
            reason: `the file ${value} cannot be read (${fileProblem(error).problem})`
          })
      })
  const parsed = parsePrices(text)
  if (Either.isLeft(parsed)) return yield* new PriceTableError({ reason: parsed.left })
  return parsed.right
})

/** A model's price: by its name, its name without a provider prefix or tag, or the table's `*`. */
export const priceFor = (prices: Prices | undefined, model: string): Price | undefined => {
  if (prices === undefined) return undefined
  const bare = (model.split("/").pop() ?? model).split(":")[0] ?? model
  return prices.get(model) ?? prices.get(bare) ?? prices.get("*")
}

/** What `input` and `output` tokens of `model` cost, in dollars; undefined without a price. */
export const cost = (prices: Prices | undefined, model: string, input: number, output: number): number | undefined => {
  const price = priceFor(prices, model)
  if (price === undefined) return undefined
  return Math.round(((input * price.input + output * price.output) / 1e6) * 1e6) / 1e6
}

export interface MeterOptions {
  /** The session's budget as its state has it (limits and the spend recorded so far); undefined: no limit. */
  readonly budget: Budget.BudgetState | undefined
  readonly prices: Prices | undefined
  readonly purpose: Budget.UsagePurpose
  readonly taskId?: number
  readonly attempt?: number
  /** `budget` is a tree's (see `budgetFor`): a refused call's need carries the tree's figures for the question. */
  readonly tree?: boolean
  /**
   * Where `budget` came from (see `budgetFor`): the calls this process has in flight for the same tree, and usage
   * recorded after `budget` was read, are counted against it too (see `Ledger`). Without it, only this work's calls are.
   */
  readonly snapshot?: Snapshot
}

/** What a budget was read from: the session spending it, the tree's root, and the version of each session read. */
export interface Snapshot {
  readonly sessionId: string
  readonly root: string
  readonly versions: ReadonlyMap<string, number>
}

/** How long a hold lasts once its call answered: until its usage is recorded, and then for checks read before that. */
const recordedGrace = 60 * 60 * 1000

/** The budget each hold of another work takes (see `infra/BudgetHolds`), as usage for a budget read at `snapshot`. */
const unseen = (
  live: ReadonlyArray<BudgetHolds.Hold>,
  snapshot: Snapshot,
  own: ReadonlyArray<string>
): ReadonlyArray<Budget.ModelUsage> =>
  live.flatMap((hold) =>
    own.includes(hold.id) ||
    (hold.recordedVersion !== undefined && (snapshot.versions.get(hold.sessionId) ?? -1) >= hold.recordedVersion)
      ? []
      : [
          {
            purpose: "execution" as const,
            model: "in flight",
            inputTokens: hold.tokens,
            outputTokens: 0,
            counted: "tokenizer" as const,
            ...(hold.usd === undefined ? {} : { usd: hold.usd })
          }
        ]
  )

/** Answered calls whose holds wait for their usage to reach the log. */
interface HeldCalls {
  readonly holds: BudgetHolds.BudgetHoldsService
  readonly ids: ReadonlyArray<string>
}

/** The holds each metered work's usage came from, by its usage array (what `record` is given). */
const heldFor = new WeakMap<ReadonlyArray<Budget.ModelUsage>, HeldCalls>()

/** The holds a command takes to the log with the usage it carries (a child's `Initialize`), until the writer records it. */
const carriedBy = new WeakMap<object, HeldCalls>()

/** The calls' usage is in the log from `version` of their session on: a check that read it needs no hold. */
const settleRecorded = (held: HeldCalls, version: number, now: number): Effect.Effect<void> =>
  held.holds.recorded(held.ids, version, now + recordedGrace).pipe(Effect.catchAll(holdsFailed))

/**
 * `command` records `usage` itself (a child's plan, whose planning call's usage is in its `Initialize`): the holds of
 * those calls go with it, and the writer settles them when it records the command (`recordedWith`). A command that is
 * never recorded (another process started the child first) leaves them to expire: that call's usage is in no log.
 */
export const carry = <C extends object>(command: C, usage: ReadonlyArray<Budget.ModelUsage>): C => {
  const held = heldFor.get(usage)
  if (held !== undefined) {
    heldFor.delete(usage)
    carriedBy.set(command, held)
  }
  return command
}

/** The writer recorded `command` at `version` of its session: the holds it carried count no more for checks that read it. */
export const recordedWith = (command: object, version: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    const held = carriedBy.get(command)
    if (held === undefined) return Effect.void
    carriedBy.delete(command)
    return Effect.flatMap(Clock.currentTimeMillis, (now) => settleRecorded(held, version, now))
  })

/** How many calls of this process's memory holds wait for their usage to be recorded (for tests). */
export const heldCalls = (): number => BudgetHolds.memory.unrecorded()

/** A failure of the holds is logged: the check against the log still stands, only other works' calls go unseen. */
const holdsFailed = (error: BudgetHolds.BudgetHoldsError) => Effect.logWarning(error.message)

export interface Metered<A> {
  readonly exit: Exit.Exit<A, unknown>
  /** Every call made, in order. */
  readonly usage: ReadonlyArray<Budget.ModelUsage>
  /** What the call the meter refused needed; undefined when every call was admitted. */
  readonly refused: Budget.BudgetNeed | undefined
}

const operationPurpose = (purpose: Budget.UsagePurpose, operation: string): Budget.UsagePurpose =>
  // The executor's failure path shortens its error with the model: that call is compaction, not the step.
  operation === "error" || operation === "summary" ? "compaction" : purpose

/**
 * Runs `effect` with a meter (see the module comment). Its failure or defect is in `exit`, with the usage of the calls
 * made before it.
 */
export const metered = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: MeterOptions
): Effect.Effect<Metered<A>, never, R> =>
  Effect.gen(function* () {
    const usage: Array<Budget.ModelUsage> = []
    let refused: Budget.BudgetNeed | undefined
    const limits = options.budget
    const limited = limits !== undefined && (limits.tokens !== undefined || limits.usd !== undefined)
    const snapshot = limited ? options.snapshot : undefined
    const holds =
      snapshot === undefined
        ? undefined
        : Option.getOrElse(yield* Effect.serviceOption(BudgetHolds.BudgetHolds), () => BudgetHolds.memory)
    /** This work's holds; the last one is the call in flight until it answers. */
    const own: Array<string> = []
    const answered = new Set<string>()
    let inFlight: string | undefined
    const refuse = (seen: Budget.BudgetState, need: Budget.BudgetNeed) => {
      refused =
        options.tree === true && seen.tokens !== undefined
          ? { ...need, spent: Budget.totalTokens(seen.spent), limit: seen.tokens }
          : need
      return false
    }
    const meter: LlmUsage.Meter = {
      limited,
      admit: (estimate) =>
        Effect.gen(function* () {
          const tokens = estimate.promptTokens + estimate.outputAllowance
          const usd = cost(options.prices, estimate.model, estimate.promptTokens, estimate.outputAllowance)
          const need: Budget.BudgetNeed = usd === undefined ? { tokens } : { tokens, usd }
          const mine = Budget.addUsage(limits, usage)
          if (holds === undefined || snapshot === undefined) {
            return Budget.wouldCross(mine, need) === undefined ? true : refuse(mine, need)
          }
          const now = yield* Clock.currentTimeMillis
          const id = crypto.randomUUID()
          let seen = mine
          // The check and the hold are one step under the budget's lock: two calls, of this process or of any other
          // on the store, can never both take the last of a budget.
          const held = yield* holds
            .admit(snapshot.root, now, (live) => {
              seen = Budget.addUsage(mine, unseen(live, snapshot, own))
              return Budget.wouldCross(seen, need) === undefined
                ? {
                    id,
                    root: snapshot.root,
                    sessionId: snapshot.sessionId,
                    tokens,
                    usd,
                    recordedVersion: undefined,
                    expiresAt: now + estimate.within
                  }
                : undefined
            })
            .pipe(
              Effect.catchAll((error) =>
                Effect.as(holdsFailed(error), Budget.wouldCross(mine, need) === undefined ? ("unheld" as const) : false)
              )
            )
          if (held === "unheld") return true
          if (!held) return refuse(seen, need)
          own.push(id)
          inFlight = id
          return true
        }),
      record: (call) =>
        Effect.gen(function* () {
          const usd = cost(options.prices, call.model, call.inputTokens, call.outputTokens)
          usage.push({
            purpose: operationPurpose(options.purpose, call.operation),
            model: call.model,
            inputTokens: call.inputTokens,
            outputTokens: call.outputTokens,
            counted: call.counted,
            ...(call.estimatedTokens === undefined ? {} : { estimatedTokens: call.estimatedTokens }),
            ...(usd === undefined ? {} : { usd }),
            ...(options.taskId === undefined ? {} : { taskId: options.taskId }),
            ...(options.attempt === undefined ? {} : { attempt: options.attempt })
          })
          if (holds === undefined || inFlight === undefined) return
          // From now on the call holds what it used rather than its estimate, until that is recorded.
          const id = inFlight
          inFlight = undefined
          answered.add(id)
          const now = yield* Clock.currentTimeMillis
          yield* holds
            .answered(id, { tokens: call.inputTokens + call.outputTokens, usd }, now + recordedGrace)
            .pipe(Effect.catchAll(holdsFailed))
        })
    }
    // A call that never answered used nothing we know of; with no usage at all there is nothing to record either.
    const settle = Effect.suspend(() => {
      if (holds === undefined || own.length === 0) return Effect.void
      const kept = usage.length === 0 ? [] : own.filter((id) => answered.has(id))
      if (kept.length > 0) heldFor.set(usage, { holds, ids: kept })
      return holds.release(own.filter((id) => !kept.includes(id))).pipe(Effect.catchAll(holdsFailed))
    })
    const run = Effect.exit(Effect.locally(effect, LlmUsage.currentMeter, Option.some(meter)))
    // Without holds (no limit to keep across processes) there is nothing to settle: no finalizer on every attempt.
    const exit = yield* holds === undefined ? run : Effect.ensuring(run, settle)
    return { exit, usage, refused }
  })

/** `metered`, for an effect that cannot fail: its value, or its defect re-raised. */
export const meteredValue = <A, R>(
  effect: Effect.Effect<A, never, R>,
  options: MeterOptions
): Effect.Effect<
  {
    readonly value: A
    readonly usage: ReadonlyArray<Budget.ModelUsage>
    readonly refused: Budget.BudgetNeed | undefined
  },
  never,
  R
> =>
  Effect.flatMap(metered(effect, options), ({ exit, usage, refused }) =>
    Exit.isSuccess(exit) ? Effect.succeed({ value: exit.value, usage, refused }) : Effect.failCause(exit.cause as never)
  )

/** Whether a meter is set in this fiber (for tests). */
export const isMetered: Effect.Effect<boolean> = Effect.map(FiberRef.get(LlmUsage.currentMeter), Option.isSome)

/**
 * Records what calls made for a session used (`RecordUsage` through the writer). A failure to record is logged, not
 * raised: the work it metered is done, and its outcome must still be reported.
 */
export const record = (
  service: Pick<PlannerService["Type"], "execute">,
  sessionId: string,
  usage: ReadonlyArray<Budget.ModelUsage>,
  causationId?: string
): Effect.Effect<void> =>
  usage.length === 0
    ? Effect.void
    : Effect.gen(function* () {
        const at = yield* Clock.currentTimeMillis
        const handled = yield* service.execute(
          sessionId,
          new RecordUsage({ usage, at }),
          causationId === undefined ? {} : { causationId }
        )
        const held = heldFor.get(usage)
        if (held !== undefined) {
          heldFor.delete(usage)
          yield* settleRecorded(held, handled.state.version, at)
        }
      }).pipe(
        Effect.catchAll((error) =>
          // A plan that ended meanwhile (cancelled while the call was in flight) records nothing more.
          error._tag === "SessionFinished"
            ? Effect.logDebug(`the model usage of session ${sessionId} was not recorded: ${error.message}`)
            : Effect.logWarning(`the model usage of session ${sessionId} could not be recorded: ${error.message}`)
        ),
        Effect.ensuring(
          Effect.suspend(() => {
            // Not recorded (the plan ended, the store failed): nothing in the log will ever show it.
            const held = heldFor.get(usage)
            if (held === undefined) return Effect.void
            heldFor.delete(usage)
            return held.holds.release(held.ids).pipe(Effect.catchAll(holdsFailed))
          })
        )
      )

/** The price table for a long-lived process: a table that cannot be read is reported once, and calls are not priced. */
export const pricesOrWarn: Effect.Effect<Prices | undefined> = loadPrices.pipe(
  Effect.catchAll((error) => Effect.as(Effect.logWarning(error.message), undefined))
)

/** A budget with some more usage counted in (what this piece of work used before its next call). */
export const afterUsage = (
  budget: Budget.BudgetState | undefined,
  usage: ReadonlyArray<Budget.ModelUsage> | undefined
): Budget.BudgetState | undefined =>
  budget === undefined || usage === undefined || usage.length === 0 ? budget : Budget.addUsage(budget, usage)

/**
 * The budget a session's calls are checked against. A session in a tree of sub-plans spends the tree's budget (see
 * `Budget.treeBudget`): its root's limit and raises, and every session's spend, read through the writer. A session with
 * no limit, or alone, is checked against its own state, with no read.
 */
export const budgetFor = (
  service: Pick<PlannerService["Type"], "state">,
  sessionId: string,
  state: Planner.PlannerState
): Effect.Effect<{
  readonly budget: Budget.BudgetState | undefined
  readonly tree: boolean
  readonly snapshot: Snapshot
}> => {
  const limited = state.budget?.tokens !== undefined || state.budget?.usd !== undefined
  const rootId = state.subPlanOf?.rootSessionId
  const alone: Snapshot = { sessionId, root: rootId ?? sessionId, versions: new Map([[sessionId, state.version]]) }
  if (!limited || (rootId === undefined && SubPlans.childrenOf(state).length === 0)) {
    return Effect.succeed({ budget: state.budget, tree: false, snapshot: alone })
  }
  return Effect.gen(function* () {
    const root = rootId === undefined ? state : yield* service.state(rootId)
    const versions = new Map<string, number>([
      [rootId ?? sessionId, root.version],
      [sessionId, state.version]
    ])
    const members: Array<Budget.TreeMember> = []
    const visit = (parent: Planner.PlannerState): Effect.Effect<void, unknown> =>
      Effect.forEach(
        SubPlans.childrenOf(parent),
        (child) =>
          Effect.gen(function* () {
            const childState = child.sessionId === sessionId ? state : yield* service.state(child.sessionId)
            versions.set(child.sessionId, childState.version)
            if (childState.status === "NotStarted") return
            members.push({
              budget: childState.budget,
              configTokens: childState.config.budgetTokens,
              configUsd: childState.config.budgetUsd
            })
            yield* visit(childState)
          }),
        { discard: true }
      )
    yield* visit(root)
    const snapshot: Snapshot = { sessionId, root: rootId ?? sessionId, versions }
    return { budget: Budget.treeBudget(root.budget, members), tree: true, snapshot }
  }).pipe(
    // The tree could not be read: the session's own budget is checked, which is the tree's share it has recorded.
    Effect.catchAll((error) =>
      Effect.as(
        Effect.logWarning(`the budget of the tree of session ${sessionId} could not be read: ${String(error)}`),
        { budget: state.budget, tree: false, snapshot: alone }
      )
    )
  )
}
