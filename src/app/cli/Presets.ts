/** Answers given in advance: `--answer TASK_ID=TEXT`, repeatable. */
import { Effect } from "effect"
import { usage } from "./Failure.js"
import { storable } from "./Request.js"

/** Parses `--answer TASK_ID=TEXT` values. */
export const parsePresets = (values: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const presets = new Map<number, string>()
    for (const value of values) {
      const match = /^\s*(\d+)\s*=([\s\S]*)$/.exec(value)
      const taskId = Number(match?.[1])
      const text = match?.[2]?.trim() ?? ""
      if (match === null || !Number.isSafeInteger(taskId) || taskId < 1 || text.length === 0) {
        return yield* usage(
          `--answer expects TASK_ID=TEXT, for example --answer 3="deploy to staging"; got ${JSON.stringify(value)}.`
        )
      }
      if (presets.has(taskId)) return yield* usage(`--answer gives task ${taskId} two answers: keep one.`)
      yield* storable(`--answer ${taskId}=...`, text)
      presets.set(taskId, text)
    }
    return presets
  })

/** Fails when a preset names a task the session does not have. */
export const checkPresets = (presets: ReadonlyMap<number, string>, taskCount: number, what: string) =>
  Effect.gen(function* () {
    for (const taskId of presets.keys()) {
      if (taskId > taskCount) {
        return yield* usage(
          `--answer ${taskId}=...: ${what} has no task ${taskId} (its tasks are numbered 1 to ${taskCount}).`
        )
      }
    }
  })
