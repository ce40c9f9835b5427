/**
 * The plan-edit options of `planner edit` and `planner fork` (#15), turned into the planner's `PlanEdit`s:
 *
 *   --add "TEXT" [--after 2,3] [--add-kind Analysis]
 *                                a new task (its id is the plan's next one), after those tasks, of that kind
 *                                (Processing when not given); repeat them to add several (the n-th --after and the
 *                                n-th --add-kind go with the n-th --add; an --add without an --after waits for nothing)
 *   --set 3="TEXT"               task 3's new description
 *   --kind 3=Analysis            task 3's new kind
 *   --remove 4                   take task 4 out; what waited for it waits for what 4 waited for
 *   --depends 5=2,3              task 5 now waits for tasks 2 and 3 only (`5=` for none)
 *   --set-answer 3="TEXT"        a different answer to task 3's (last answered) question
 *
 * Only the shape is checked here (numbers, `N=` forms, kinds, storable text); whether the plan allows an edit (a task
 * that has started, a cycle, an unknown task) is decided by the planner, whose typed refusal ends the command with
 * exit code 2.
 */
import { Effect } from "effect"
import type { PlanEdit, SetTask } from "../../domain/PlanEdit.js"
import { type NodeKind, nodeKinds } from "../../domain/Task.js"
import { type CliFailure, usage } from "./Failure.js"
import { storable } from "./Request.js"

export interface EditFlagValues {
  readonly add: ReadonlyArray<string>
  readonly after: ReadonlyArray<string>
  readonly addKind: ReadonlyArray<string>
  readonly set: ReadonlyArray<string>
  readonly kind: ReadonlyArray<string>
  readonly remove: ReadonlyArray<string>
  readonly depends: ReadonlyArray<string>
  readonly setAnswer: ReadonlyArray<string>
}

export const noEdits: EditFlagValues = {
  add: [],
  after: [],
  addKind: [],
  set: [],
  kind: [],
  remove: [],
  depends: [],
  setAnswer: []
}

/** Whether any edit option was given. */
export const hasEdits = (flags: EditFlagValues): boolean =>
  flags.add.length + flags.set.length + flags.kind.length + flags.remove.length + flags.depends.length > 0 ||
  flags.setAnswer.length > 0

const taskNumber = (option: string, text: string) => {
  const trimmed = text.trim()
  return /^\d{1,9}$/.test(trimmed) && Number(trimmed) >= 1
    ? Effect.succeed(Number(trimmed))
    : Effect.fail(usage(`${option}: "${text}" is not a task number (1, 2, ...).`))
}

/** "2,3" or "2 3" or "" as task numbers. */
const taskNumbers = (option: string, text: string) =>
  Effect.forEach(
    text
      .split(/[\s,]+/)
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
    (part) => taskNumber(option, part)
  )

/** `N=VALUE`, split at the first `=`. */
const assignment = (option: string, text: string, example: string) =>
  Effect.gen(function* () {
    const split = text.indexOf("=")
    if (split < 1) return yield* usage(`${option} takes TASK=VALUE, like ${option} ${example}; got "${text}".`)
    const taskId = yield* taskNumber(option, text.slice(0, split))
    return { taskId, value: text.slice(split + 1) }
  })

const nonEmpty = (option: string, text: string) =>
  Effect.gen(function* () {
    const value = yield* storable(option, text.trim())
    if (value.length === 0) return yield* usage(`${option}: the text is empty; give the text in quotes.`)
    return value
  })

/** A kind by its name, in any case. */
const kindNamed = (option: string, text: string): Effect.Effect<NodeKind, CliFailure> => {
  const kind = nodeKinds.find((candidate) => candidate.toLowerCase() === text.trim().toLowerCase())
  return kind === undefined
    ? Effect.fail(usage(`${option}: "${text}" is not a kind; use one of ${nodeKinds.join(", ")}.`))
    : Effect.succeed(kind)
}

/** The edits the options ask for, in the order the planner applies them: adds, changes, dependencies, answers, removals. */
export const parseEdits = (flags: EditFlagValues) =>
  Effect.gen(function* () {
    const edits: Array<PlanEdit> = []
    if (flags.after.length > flags.add.length) {
      return yield* usage(
        `--after is given ${flags.after.length} times but --add ${flags.add.length}: each --after goes with the --add before it.`
      )
    }
    if (flags.addKind.length > flags.add.length) {
      return yield* usage(
        `--add-kind is given ${flags.addKind.length} times but --add ${flags.add.length}: each --add-kind goes with the --add before it.`
      )
    }
    for (const [index, text] of flags.add.entries()) {
      const description = yield* nonEmpty("--add", text)
      const after = flags.after[index]
      const dependsOn = after === undefined ? [] : yield* taskNumbers("--after", after)
      const addKind = flags.addKind[index]
      const kind = addKind === undefined ? "Processing" : yield* kindNamed("--add-kind", addKind)
      edits.push({ _tag: "AddTask", description, kind, dependsOn, attachments: [], dependents: [] })
    }
    const changes = new Map<number, { description?: string; kind?: NodeKind }>()
    for (const text of flags.set) {
      const { taskId, value } = yield* assignment("--set", text, '3="Write the tests first"')
      changes.set(taskId, { ...changes.get(taskId), description: yield* nonEmpty("--set", value) })
    }
    for (const text of flags.kind) {
      const { taskId, value } = yield* assignment("--kind", text, "3=Analysis")
      changes.set(taskId, { ...changes.get(taskId), kind: yield* kindNamed("--kind", value) })
    }
    for (const [taskId, change] of changes) {
      const edit: SetTask = {
        _tag: "SetTask",
        taskId,
        ...(change.description === undefined ? {} : { description: change.description }),
        ...(change.kind === undefined ? {} : { kind: change.kind })
      }
      edits.push(edit)
    }
    for (const text of flags.depends) {
      const { taskId, value } = yield* assignment("--depends", text, "5=2,3")
      edits.push({ _tag: "SetDependencies", taskId, dependsOn: yield* taskNumbers("--depends", value) })
    }
    for (const text of flags.setAnswer) {
      const { taskId, value } = yield* assignment("--set-answer", text, '3="production"')
      edits.push({ _tag: "SetAnswer", taskId, answer: yield* nonEmpty("--set-answer", value) })
    }
    for (const text of flags.remove) {
      edits.push({ _tag: "RemoveTask", taskId: yield* taskNumber("--remove", text), rewire: true })
    }
    return edits
  })
