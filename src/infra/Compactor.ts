/**
 * The compactor folds finished steps' results into the rolling context summary that later steps receive, under the
 * plan's token budget, and shortens error messages before they are recorded. What it returns goes into a
 * `CompactContext` command, so a replay reads the summary from the event and never compacts again.
 *
 * Layers: `HeuristicCompactor.layer` (no model: keeps recent results and error lines) and `LlmCompactor.layer` (asks
 * the `Llm` with the plan's system prompt and profile, and enforces the budget itself).
 */
import { Context, type Effect } from "effect"
import type { TaskId } from "../domain/Task.js"

/** One finished step whose result is to be folded into the summary. */
export interface CompactionEntry {
  readonly taskId: TaskId
  readonly text: string
}

export interface CompactionInput {
  /** The rolling summary so far ("" at the start). */
  readonly summary: string
  /** Results to fold in, oldest first. */
  readonly entries: ReadonlyArray<CompactionEntry>
  /** The new summary has at most this many tokens. */
  readonly budget: number
  /** "coding", "analysis", or any other name (treated as general). */
  readonly profile: string
  readonly systemPrompt: string
}

export interface CompactionResult {
  readonly summary: string
  /** The entries folded into `summary`: every entry given, once, in the order given. */
  readonly removedTaskIds: ReadonlyArray<TaskId>
}

export interface CompactorService {
  /** Never fails: a compactor that cannot reach its model falls back to the heuristic. */
  readonly compact: (input: CompactionInput) => Effect.Effect<CompactionResult>
  /** Keeps error types, file paths and line numbers, drops repeated stack frames; at most `limit` characters. */
  readonly compactError: (message: string, limit: number) => Effect.Effect<string>
}

export class Compactor extends Context.Tag("event-sourced-planner/Compactor")<Compactor, CompactorService>() {}

/** The ids of the entries, each once, in order. */
export const entryIds = (entries: ReadonlyArray<CompactionEntry>): ReadonlyArray<TaskId> => [
  ...new Set(entries.map((entry) => entry.taskId))
]
