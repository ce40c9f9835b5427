/** A root session whose task 2 is expanded into a child session (#16), for the dashboard's tree tests. */
import { startPlan, task } from "./fixtures.js"

export const script = { rules: [], default: { complete: "done: {description}" } }

export const plan = [
  task(1, "Processing", "Write the notes"),
  task(2, "Processing", "Build the release. Then test it. Then publish it.", [1]),
  task(3, "Processing", "Tell the team", [2])
]

/** A root with task 2 expanded into a child session (not started until task 2 is dispatched). */
export const startTree = startPlan("Release it", plan, {}, [2])
