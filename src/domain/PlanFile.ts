/**
 * Plan files: a plan written or edited by hand, in the format `planner plan --json` prints, run with `planner run
 * --plan FILE` (`-` for standard input). So a user can state parallel branches without an LLM, review a plan before it
 * runs, and keep plans in version control.
 *
 * The format: `{ "request"?: string, "tasks": [{ "id", "description", "kind"?, "dependsOn"?, "attachments"? }] }`.
 * Every task is checked with the `TaskPlan` schema (ids are positive integers, kinds one of `NodeKind`, attachments
 * `{ kind, value }`), and the whole plan with the graph code: ids 1..n in order, every dependency names another task
 * once, no cycle. A missing `kind` is what the parser would give the description, missing `attachments` the links and
 * files it names, a missing `dependsOn` none, and a missing `request` the descriptions joined.
 */
import { Data, Either, ParseResult, Schema } from "effect"
import * as Graph from "./Graph.js"
import { extractAttachments } from "./parser/Attachments.js"
import { classify } from "./parser/Classify.js"
import { Attachment, NodeKind, TaskId, type TaskPlan } from "./Task.js"

/** Why a plan file cannot be run; `message` says what is wrong and where, in one line. */
export class InvalidPlanFile extends Data.TaggedError("InvalidPlanFile")<{
  /** Where the plan came from: a path, or "standard input". */
  readonly source: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.source} is not a plan planner can run: ${this.reason}. Fix it, or write one with \`planner plan --json "<request>" > plan.json\`.`
  }
}

const PlanFileTask = Schema.Struct({
  id: TaskId,
  description: Schema.NonEmptyTrimmedString,
  kind: Schema.optionalWith(NodeKind, { exact: true }),
  dependsOn: Schema.optionalWith(Schema.Array(TaskId), { exact: true }),
  attachments: Schema.optionalWith(Schema.Array(Attachment), { exact: true })
})

/** The schema of a plan file (see the module comment). */
export const PlanFileSchema = Schema.Struct({
  request: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true }),
  tasks: Schema.Array(PlanFileTask)
})

export interface PlanFile {
  readonly request: string
  readonly tasks: ReadonlyArray<TaskPlan>
}

const decode = Schema.decodeUnknownEither(PlanFileSchema)

/** The first problems the schema found, as `tasks.1.kind: expected ...`, in one line. */
const describeIssues = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .slice(0, 3)
    .map((issue) => {
      const path = issue.path.map(String).join(".")
      return `${path.length > 0 ? `${path}: ` : ""}${issue.message.replace(/\s+/g, " ")}`
    })
    .join("; ")

/** Reads a plan file's text: the tasks and the request to record with them, or why the file cannot be run. */
export const parsePlanFile = (text: string, source: string): Either.Either<PlanFile, InvalidPlanFile> => {
  const fail = (reason: string) => Either.left(new InvalidPlanFile({ source, reason }))
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return fail(`it is not JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  const decoded = decode(json, { onExcessProperty: "ignore" })
  if (Either.isLeft(decoded)) return fail(describeIssues(decoded.left))
  const tasks = decoded.right.tasks.map(
    (task): TaskPlan => ({
      id: task.id,
      description: task.description,
      kind: task.kind ?? classify(task.description),
      dependsOn: task.dependsOn ?? [],
      attachments: task.attachments ?? extractAttachments(task.description)
    })
  )
  const valid = Graph.validate(tasks)
  if (Either.isLeft(valid)) return fail(valid.left.reason)
  const request = decoded.right.request ?? tasks.map((task) => task.description).join(". ")
  return Either.right({ request, tasks })
}

/** A plan as a plan file: what `planner plan --json` prints, and what `parsePlanFile` reads back unchanged. */
export const toPlanFile = (request: string, tasks: ReadonlyArray<TaskPlan>): string =>
  JSON.stringify({ request, tasks }, null, 2)
