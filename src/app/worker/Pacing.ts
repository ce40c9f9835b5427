/**
 * The pace of a worker's periodic checks (the dead-worker sweep, the writer's sweep for reports nobody records):
 * every `interval` while a check finds something to watch or the worker has been busy since the check before, and
 * less often while neither, the wait doubling up to `quiet`. Each check is a statement: an idle worker that looked
 * every second for what it could only find while work is going on cost the database three statements a second, for
 * as long as it ran (62 ms of the workers' CPU and 21 ms of PostgreSQL's a second for four idle workers here).
 *
 * `Activity` is how the worker tells its checks that it was busy: each attempt it starts or ends is a `touch`, and each
 * check asks whether there was one since it last asked (`since`).
 */
import { Duration, Effect } from "effect"

export interface Activity {
  /** The worker did something (took, ran, reported or recorded an attempt). */
  readonly touch: () => void
  /** A reader of its own: whether the worker did something since this reader last asked (or was made). */
  readonly since: () => () => boolean
}

export const makeActivity = (): Activity => {
  let count = 0
  return {
    touch: () => {
      count += 1
    },
    since: () => {
      let seen = count
      return () => {
        const busy = count !== seen
        seen = count
        return busy
      }
    }
  }
}

/**
 * Runs `check` for ever: first after `interval`, then after `interval` again when it returned true (it found something
 * to watch) or `busy()` says the worker was busy since, else after twice the last wait, up to `quiet`.
 */
export const paced = <R>(options: {
  readonly interval: Duration.DurationInput
  readonly quiet: Duration.DurationInput
  readonly check: Effect.Effect<boolean, never, R>
  readonly busy: () => boolean
}): Effect.Effect<never, never, R> =>
  Effect.suspend(() => {
    const base = Math.max(1, Duration.toMillis(Duration.decode(options.interval)))
    const most = Math.max(base, Duration.toMillis(Duration.decode(options.quiet)))
    let wait = base
    return Effect.forever(
      Effect.suspend(() => Effect.sleep(Duration.millis(wait))).pipe(
        Effect.zipRight(options.check),
        Effect.flatMap((watching) =>
          Effect.sync(() => {
            // Asked whatever the check found, so that what it says is always about the last interval.
            const busy = options.busy()
            wait = watching || busy ? base : Math.min(most, wait * 2)
          })
        )
      )
    )
  })
