/**
 * Why the planner refused a command. These cross process boundaries (HTTP answers, CLI output), so they are
 * schema-defined, and each says in one line what was wrong and what to do.
 */
import { Schema } from "effect"
import { TaskId } from "./Task.js"

export class EmptyRequest extends Schema.TaggedError<EmptyRequest>()("EmptyRequest", {}) {
  override get message() {
    return 'The request is empty or says nothing to do: describe what should be done, for example "Add a login page. Then write tests."'
  }
}

export class RequestTooLarge extends Schema.TaggedError<RequestTooLarge>()("RequestTooLarge", {
  size: Schema.Int,
  limit: Schema.Int
}) {
  override get message() {
    return `The request has ${this.size} characters, over the limit of ${this.limit}: split it into smaller requests or attach long material as a file.`
  }
}

export class InvalidPlan extends Schema.TaggedError<InvalidPlan>()("InvalidPlan", {
  reason: Schema.String
}) {
  override get message() {
    return `The plan is not valid: ${this.reason}.`
  }
}

export class SessionNotStarted extends Schema.TaggedError<SessionNotStarted>()("SessionNotStarted", {}) {
  override get message() {
    return "This session has no plan yet: initialize it with a request first."
  }
}

export class SessionAlreadyStarted extends Schema.TaggedError<SessionAlreadyStarted>()("SessionAlreadyStarted", {}) {
  override get message() {
    return "This session already has a plan: start a new session for a new request."
  }
}

export class SessionFinished extends Schema.TaggedError<SessionFinished>()("SessionFinished", {
  outcome: Schema.String
}) {
  override get message() {
    return `This session has already finished (${this.outcome}): fork it to run part of it again.`
  }
}

export class UnknownTask extends Schema.TaggedError<UnknownTask>()("UnknownTask", {
  taskId: Schema.Int
}) {
  override get message() {
    return `There is no task ${this.taskId} in this session: list the session's tasks to find the right id.`
  }
}

export class InvalidTransition extends Schema.TaggedError<InvalidTransition>()("InvalidTransition", {
  taskId: TaskId,
  status: Schema.String,
  action: Schema.String
}) {
  override get message() {
    return `Task ${this.taskId} is ${this.status}, so it cannot ${this.action}.`
  }
}

export class StaleAttempt extends Schema.TaggedError<StaleAttempt>()("StaleAttempt", {
  taskId: TaskId,
  attempt: Schema.Int,
  current: Schema.Int
}) {
  override get message() {
    return `Attempt ${this.attempt} of task ${this.taskId} is no longer current (attempt ${this.current} is): its outcome was discarded.`
  }
}

export class TaskAlreadyClaimed extends Schema.TaggedError<TaskAlreadyClaimed>()("TaskAlreadyClaimed", {
  taskId: TaskId,
  workerId: Schema.String
}) {
  override get message() {
    return `Task ${this.taskId} is already claimed by worker ${this.workerId}.`
  }
}

export class InvalidCompaction extends Schema.TaggedError<InvalidCompaction>()("InvalidCompaction", {
  reason: Schema.String
}) {
  override get message() {
    return `The context cannot be compacted that way: ${this.reason}.`
  }
}

export class DepthExceeded extends Schema.TaggedError<DepthExceeded>()("DepthExceeded", {
  taskId: TaskId,
  depth: Schema.Int,
  maxDepth: Schema.Int
}) {
  override get message() {
    return `Task ${this.taskId} cannot be expanded: its sub-plan would be at depth ${this.depth}, over the limit of ${this.maxDepth} (raise it with --max-depth).`
  }
}

export class TaskNotEditable extends Schema.TaggedError<TaskNotEditable>()("TaskNotEditable", {
  taskId: TaskId,
  status: Schema.String
}) {
  override get message() {
    return `Task ${this.taskId} is ${this.status}: only tasks that have not started can be edited; fork the session to change it (planner fork SESSION --at SEQ).`
  }
}

export class EditCreatesCycle extends Schema.TaggedError<EditCreatesCycle>()("EditCreatesCycle", {
  cycle: Schema.Array(TaskId)
}) {
  override get message() {
    return `The edit would make tasks ${this.cycle.join(" -> ")} wait for each other forever: drop one of those dependencies.`
  }
}

export class TaskHasDependents extends Schema.TaggedError<TaskHasDependents>()("TaskHasDependents", {
  taskId: TaskId,
  dependents: Schema.Array(TaskId)
}) {
  override get message() {
    return `Task ${this.taskId} cannot be removed: task${this.dependents.length === 1 ? "" : "s"} ${this.dependents.join(", ")} depend${this.dependents.length === 1 ? "s" : ""} on it; remove with rewire, or change their dependencies in the same edit.`
  }
}

export class InvalidEdit extends Schema.TaggedError<InvalidEdit>()("InvalidEdit", {
  reason: Schema.String
}) {
  override get message() {
    return `The plan cannot be edited that way: ${this.reason}.`
  }
}

/** The input problems the parser reports. */
export type RequestError = EmptyRequest | RequestTooLarge

export const PlannerError = Schema.Union(
  EmptyRequest,
  DepthExceeded,
  RequestTooLarge,
  InvalidPlan,
  SessionNotStarted,
  SessionAlreadyStarted,
  SessionFinished,
  UnknownTask,
  InvalidTransition,
  StaleAttempt,
  TaskAlreadyClaimed,
  InvalidCompaction,
  TaskNotEditable,
  EditCreatesCycle,
  TaskHasDependents,
  InvalidEdit
)
export type PlannerError = typeof PlannerError.Type
