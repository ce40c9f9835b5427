/**
 * Changing plans (#15): `planner edit SESSION` edits a live session's plan; `planner fork SESSION --at SEQ` starts a new
 * session from a point of another, with the same edits if any; `planner rerun SESSION --task N` runs task N and what
 * depends on it again in a new session. The forks reuse the results of the completed tasks no edit reaches (see
 * `Fork` and `Edits.planFork`), and say which tasks they reuse and which they run before anything runs; `--dry-run`
 * stops there, having recorded nothing.
 */
import { Clock, Effect, Option } from "effect"
import { EditPlan } from "../../domain/Commands.js"
import { describeEdit } from "../../domain/Edits.js"
import type { PlanEdit } from "../../domain/PlanEdit.js"
import * as Planner from "../../domain/Planner.js"
import * as Fork from "../Fork.js"
import { PlannerService } from "../PlannerService.js"
import { type EditFlagValues, hasEdits, parseEdits } from "./EditFlags.js"
import { toFailure, usage } from "./Failure.js"
import { out } from "./Output.js"
import { resultJson, taskLines } from "./Render.js"
import type { ReplanFlagValues } from "./ReplanFlags.js"
import { type ExecutionFlags, prepareContinue } from "./RunCommands.js"
import { existingState, programName } from "./Session.js"
import { plannerLayer, resolveExistingStore, type StoreTarget } from "./Store.js"

const withStore = <A, E, R>(db: Option.Option<string>, body: (store: StoreTarget) => Effect.Effect<A, E, R>) => {
  const store = resolveExistingStore(db)
  return body(store).pipe(Effect.provide(plannerLayer(store)), Effect.mapError(toFailure))
}

export interface EditCommandFlags extends EditFlagValues {
  readonly db: Option.Option<string>
  readonly json: boolean
  readonly sessionId: string
}

/** `planner edit SESSION ...`: the edits go through the writer as one `EditPlan`, recorded as one `PlanEdited`. */
export const edit = (flags: EditCommandFlags) =>
  withStore(flags.db, (store) =>
    Effect.gen(function* () {
      const before = yield* existingState(flags.sessionId, store)
      if (!hasEdits(flags)) {
        return yield* usage(
          "Nothing to edit: give --add, --set, --kind, --remove, --depends or --set-answer (see `planner edit --help`)."
        )
      }
      if (Planner.isFinished(before)) {
        return yield* usage(
          `Session ${flags.sessionId} has finished (${before.status}): its plan cannot change. Fork it with the same edits: ${programName()} fork ${flags.sessionId} --at ${before.version} ...${store.flag}`
        )
      }
      const edits = yield* parseEdits(flags)
      const service = yield* PlannerService
      const at = yield* Clock.currentTimeMillis
      const { state, events } = yield* service.execute(flags.sessionId, new EditPlan({ edits, at }))
      const recorded = events.flatMap((event) => (event._tag === "PlanEdited" ? event.edits : []))
      if (flags.json) {
        return yield* out(JSON.stringify({ ...resultJson(flags.sessionId, state), edits: recorded }))
      }
      const lines = [
        `Edited session ${flags.sessionId}:`,
        ...recorded.map((recordedEdit) => `  ${describeEdit(recordedEdit)}`),
        "",
        ...state.tasks.flatMap((task) => taskLines(task)),
        "",
        `A run of this session picks the changes up; if none is running, continue it with: ${programName()} resume ${flags.sessionId}${store.flag}`
      ]
      yield* out(lines.join("\n"))
    })
  )

// --- Forks ----------------------------------------------------------------------------------------------------------

type ForkPreview = Fork.ForkPreview

/** What a fork will do with each task, for the lines printed before it runs. */
export interface ForkPreviewLines {
  readonly sourceId: string
  readonly at: number
  readonly preview: ForkPreview
  readonly descriptions: ReadonlyMap<number, string>
}

/** "reuse", "re-run" (completed in the source, run again), "run" (had not completed), "removed". */
const taskFate = (preview: ForkPreview, id: number): string =>
  preview.reused.includes(id)
    ? "reuse"
    : preview.rerun.includes(id)
      ? "re-run"
      : preview.run.includes(id)
        ? "run"
        : "removed"

export const previewText = ({ sourceId, at, preview, descriptions }: ForkPreviewLines): string => {
  const ids = [...descriptions.keys()].sort((a, b) => a - b)
  const list = (values: ReadonlyArray<number>) => (values.length === 0 ? "none" : values.join(", "))
  const firstRuns = preview.run.filter((id) => !preview.rerun.includes(id))
  return [
    `Fork of ${sourceId} at event ${at}: reuses ${list(preview.reused)}; re-runs ${list(preview.rerun)}${firstRuns.length === 0 ? "" : `; runs ${list(firstRuns)} for the first time`}.`,
    ...ids.map((id) => `${String(id).padStart(3)}. ${taskFate(preview, id).padEnd(7)} ${descriptions.get(id) ?? ""}`)
  ].join("\n")
}

export const previewJson = ({ sourceId, at, preview }: ForkPreviewLines) => ({
  dryRun: true,
  sourceSessionId: sourceId,
  at,
  reused: preview.reused,
  rerun: preview.rerun,
  run: preview.run
})

/** The descriptions of the source's tasks as of `at`, with the edits' added tasks and new descriptions. */
const describeTasks = (plan: Planner.PlannerState, edits: ReadonlyArray<PlanEdit>): ReadonlyMap<number, string> => {
  const descriptions = new Map(plan.tasks.map((task) => [task.id, task.description] as const))
  let next = plan.tasks.length + 1
  for (const change of edits) {
    if (change._tag === "AddTask") descriptions.set(change.id ?? next++, change.description)
    if (change._tag === "SetTask" && change.description !== undefined)
      descriptions.set(change.taskId, change.description)
  }
  return descriptions
}

export interface ForkCommandFlags extends ExecutionFlags, EditFlagValues, ReplanFlagValues {
  readonly sessionId: string
  readonly at: number
  readonly dryRun: boolean
}

interface ForkChanges {
  readonly edits: ReadonlyArray<PlanEdit>
  readonly rerun: ReadonlyArray<number>
}

/** Prints the preview; then, unless it is a dry run, forks and runs the new session. */
const previewThenFork = (
  flags: ExecutionFlags & { readonly dryRun: boolean },
  store: StoreTarget,
  sourceId: string,
  at: number,
  changes: ForkChanges
) =>
  Effect.gen(function* () {
    // The source as it was at `at`, from its first `at` events alone (`--at` is checked here).
    const { state: source, run } = yield* prepareContinue(flags, store, sourceId, at)
    // Decided by the planner as the fork will be, writing nothing; a refused edit fails here (exit code 2).
    const preview = yield* Fork.preview(sourceId, at, changes)
    const lines: ForkPreviewLines = { sourceId, at, preview, descriptions: describeTasks(source, changes.edits) }
    if (flags.dryRun) {
      return yield* out(
        flags.json ? JSON.stringify(previewJson(lines)) : `${previewText(lines)}\nDry run: nothing was recorded.`
      )
    }
    if (!flags.json) yield* out(previewText(lines))
    const running = yield* Effect.promise(() => import("./Running.js"))
    if (changes.edits.length + changes.rerun.length === 0) {
      // No change: the copy fork (the first `at` events as they are; attempts running then run again).
      return yield* running.forkAndContinue(sourceId, at, run)
    }
    // Through the writer: the plan at `at`, what is reused, the edits and the first dispatches, in one append.
    const forked = yield* Fork.fork(sourceId, at, changes)
    yield* running.continueForked(forked.sessionId, sourceId, at, run)
  })

/** `planner fork SESSION --at SEQ [edits] [--dry-run]`. */
export const fork = (flags: ForkCommandFlags) =>
  withStore(flags.db, (store) =>
    Effect.gen(function* () {
      if (flags.replan) {
        // `--at 0 --replan`: the same request planned again by another planner (helper replan's module).
        const { replanForkCommand } = yield* Effect.promise(() => import("./ReplanForkCommand.js"))
        return yield* replanForkCommand(flags, store)
      }
      // Options of a replan fork, given without it: a copy fork would ignore them.
      const replanOnly = (
        [
          ["--planner", flags.planner],
          ["--model", flags.model],
          ["--system-prompt", flags.replanSystemPrompt]
        ] as const
      )
        .filter(([, value]) => Option.isSome(value))
        .map(([name]) => name)
      if (replanOnly.length > 0) {
        return yield* usage(
          `${replanOnly.length === 1 ? replanOnly[0] : `${replanOnly.slice(0, -1).join(", ")} and ${replanOnly.at(-1)}`} ${replanOnly.length === 1 ? "goes" : "go"} with --replan, which plans the request again: add --replan (with --at 0), or leave ${replanOnly.length === 1 ? "it" : "them"} out to fork the plan as it is.`
        )
      }
      // Only the first `at` events are read (see `previewThenFork`): a fork before an event that cannot be read is the
      // way past it.
      const edits = yield* parseEdits(flags)
      yield* previewThenFork(flags, store, flags.sessionId, flags.at, { edits, rerun: [] })
    })
  )

export interface RerunFlags extends ExecutionFlags {
  readonly sessionId: string
  readonly task: number
  readonly dryRun: boolean
}

/** `planner rerun SESSION --task N [--dry-run]`: a fork at the session's end with task N to run again. */
export const rerun = (flags: RerunFlags) =>
  withStore(flags.db, (store) =>
    Effect.gen(function* () {
      const state = yield* existingState(flags.sessionId, store)
      if (Planner.task(state, flags.task) === undefined) {
        return yield* usage(
          `Session ${flags.sessionId} has no task ${flags.task}: its tasks are numbered 1 to ${state.tasks.length} (see \`planner show ${flags.sessionId}${store.flag}\`).`
        )
      }
      yield* previewThenFork(flags, store, flags.sessionId, state.version, { edits: [], rerun: [flags.task] })
    })
  )
