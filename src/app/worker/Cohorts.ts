/**
 * A worker's attempts started about together, session by session. Alike tasks started together end about together,
 * and their outcomes are then better recorded in one append than in one each: the writer's turn waits a moment for
 * the outcomes still to come (`PlannerService`'s `Tracing.awaiting`), and the take that comes with that append fills
 * their slots together again, so they stay in step.
 *
 * An outcome waits for the worker's other attempts of its session that started at most `windowMs` before or after it
 * and have not reported yet: those it can expect about now. Attempts started further apart are not waited for, so an
 * outcome next to a long task started earlier waits for nothing; a group that a hiccup split by a few milliseconds is
 * waited for across the split, and becomes one again. An attempt leaves when its outcome goes to the writer, or when
 * it ends any other way (given back, dropped), so nobody waits for it. A window of 0 groups nothing: every outcome goes
 * as it comes.
 */
import { type JobKey, jobKeyString } from "../../infra/TaskQueue.js"

export interface Cohorts {
  /** The attempt started, at `at` (epoch ms). */
  readonly started: (job: JobKey, at: number) => void
  /**
   * The attempt's outcome goes to the writer now: it leaves. Whether outcomes it can expect with it are still to
   * come, asked while the writer's turn waits.
   */
  readonly reporting: (key: JobKey) => () => boolean
  /** The attempt ended (whichever way): it leaves, if it had not yet. */
  readonly ended: (key: JobKey) => void
}

/** An outcome that expects nothing more with it: one started alone, or a report the writer records (it may wait). */
export const nothingToCome = () => false

export const make = (windowMs: number): Cohorts => {
  /** By session: its attempts here that have not reported yet, by job key, with the time each started. */
  const running = new Map<string, Map<string, number>>()
  const leave = (key: JobKey): number | undefined => {
    const attempts = running.get(key.sessionId)
    const keyString = jobKeyString(key)
    const at = attempts?.get(keyString)
    if (attempts === undefined || at === undefined) return undefined
    attempts.delete(keyString)
    if (attempts.size === 0) running.delete(key.sessionId)
    return at
  }
  return {
    started: (job, at) => {
      let attempts = running.get(job.sessionId)
      if (attempts === undefined) {
        attempts = new Map()
        running.set(job.sessionId, attempts)
      }
      // A job handed back to this worker while its attempt still runs keeps its start.
      const keyString = jobKeyString(job)
      if (!attempts.has(keyString)) attempts.set(keyString, at)
    },
    reporting: (key) => {
      const at = leave(key)
      if (at === undefined || windowMs <= 0 || !running.has(key.sessionId)) return nothingToCome
      return () => {
        const others = running.get(key.sessionId)
        if (others === undefined) return false
        for (const started of others.values()) if (Math.abs(started - at) <= windowMs) return true
        return false
      }
    },
    ended: (key) => {
      leave(key)
    }
  }
}
