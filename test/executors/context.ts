/** A `TaskContext` for executor tests: every field filled with something plausible, overridable. */
import type { Clarification } from "../../src/domain/Task.js"
import type { TaskContext } from "../../src/infra/Executor.js"

export const taskContext = (overrides: Partial<TaskContext> = {}): TaskContext => ({
  sessionId: "session-executors",
  taskId: 1,
  kind: "ToolCall",
  description: "Do the thing",
  attachments: [],
  attempt: 1,
  clarifications: [],
  request: "Do the thing",
  requestAttachments: [],
  contextSummary: "",
  dependencyResults: [],
  idempotencyKey: "session-executors/1/1",
  workingDirectory: process.cwd(),
  ...overrides
})

/** A question and the answer a person gave to it. */
export const answered = (question: string, answer: string): Clarification => ({ question, answer })
