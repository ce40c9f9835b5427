/**
 * Executors do the work of tasks: a shell command, an LLM call, a person, or the user's own code. The runner hands an
 * executor one attempt of one task, with just the context it needs, and records the outcome it returns.
 *
 * An executor never fails its effect for an ordinary problem: a failed attempt is the `Failed` outcome, saying whether
 * trying again can help. A defect or an unexpected error is recorded by the runner as a retryable failure.
 */
import { Context, Data, type Effect } from "effect"
import type { Attachment, Clarification, NodeKind, TaskId } from "../domain/Task.js"

/** What an executor gets for one attempt of one task. */
export interface TaskContext {
  readonly sessionId: string
  readonly taskId: TaskId
  readonly kind: NodeKind
  readonly description: string
  readonly attachments: ReadonlyArray<Attachment>
  /** 1 for the first attempt; higher after retries, clarifications and lease expiries. */
  readonly attempt: number
  /** Every question this task asked and the answers given, oldest first. */
  readonly clarifications: ReadonlyArray<Clarification>
  /** The whole request, and the attachments given for all of it. */
  readonly request: string
  readonly requestAttachments: ReadonlyArray<Attachment>
  /** The rolling, compacted context of earlier steps. */
  readonly contextSummary: string
  /** The results of the tasks this one depends on. */
  readonly dependencyResults: ReadonlyArray<{
    readonly taskId: TaskId
    readonly description: string
    readonly result: string
  }>
  /**
   * The same for every delivery of this attempt and different for every other attempt: pass it to external systems
   * so a side effect repeated after a crash happens once.
   */
  readonly idempotencyKey: string
  /** Where file paths in the task are relative to. */
  readonly workingDirectory: string
}

export type Outcome = Data.TaggedEnum<{
  Completed: { readonly result: string }
  Failed: { readonly error: string; readonly retryable: boolean }
  NeedsClarification: { readonly question: string }
}>
export const Outcome = Data.taggedEnum<Outcome>()

export interface ExecutorService {
  /** A short name for logs and progress lines: "shell", "script", "llm", ... */
  readonly name: string
  readonly execute: (context: TaskContext) => Effect.Effect<Outcome>
}

/**
 * Routes tasks to executors by `NodeKind`. Users plug their own executors in as layers of this service; kinds with
 * no executor of their own go to `fallback`.
 */
export interface ExecutorRegistryService {
  readonly executorFor: (kind: NodeKind) => ExecutorService | undefined
}

export class ExecutorRegistry extends Context.Tag("event-sourced-planner/ExecutorRegistry")<
  ExecutorRegistry,
  ExecutorRegistryService
>() {}

/** A registry from explicit routes, with an optional executor for every other kind. */
export const makeRegistry = (
  routes: Partial<Record<NodeKind, ExecutorService>>,
  fallback?: ExecutorService
): ExecutorRegistryService => ({
  executorFor: (kind) => routes[kind] ?? fallback
})
