/**
 * The peer of the orchestration benchmark: the same chain of tasks run by LangGraph.js, each step doing what the echo
 * executor does (its result is its own description), one step after another, with
 * LangGraph's SQLite checkpointer (`@langchain/langgraph-checkpoint-sqlite`, the same better-sqlite3) on a file, so
 * every step is checkpointed as every step of ours is recorded. The state carries the last result and a count, so
 * a checkpoint stays the same size however far the chain is.
 *
 * What is timed is `invoke` alone: building and compiling the graph, and opening the database, are not.
 */
import * as path from "node:path"
import { Annotation, END, START, StateGraph } from "@langchain/langgraph"
import { SqliteSaver } from "@langchain/langgraph-checkpoint-sqlite"
import { nowMs, tempDir } from "./common.js"

const State = Annotation.Root({
  last: Annotation<string>(),
  done: Annotation<number>()
})

export interface PeerRun {
  readonly tasks: number
  readonly wallMs: number
  readonly cpuMs: number
  readonly executorMs: number
}

/** Runs a chain of `tasks` steps through LangGraph.js with its SQLite checkpointer, on a fresh file. */
export const langGraphChain = async (tasks: number): Promise<PeerRun> => {
  const folder = tempDir("langgraph")
  const saver = SqliteSaver.fromConnString(path.join(folder.dir, "checkpoints.db"))
  try {
    let executorMs = 0
    // One node that runs the next step and loops back until the chain is done: LangGraph's way of running a long
    // chain (a graph of 1,000 distinct nodes costs it far more per step, as every step looks at every channel).
    const graph = new StateGraph(State)
      .addNode("step", (state: typeof State.State) => {
        const start = nowMs()
        const update = { last: `step ${state.done + 1} of the benchmark plan`, done: state.done + 1 }
        executorMs += nowMs() - start
        return update
      })
      .addEdge(START, "step")
      .addConditionalEdges("step", (state: typeof State.State) => (state.done < tasks ? "step" : END))
    const app = graph.compile({ checkpointer: saver })
    const started = nowMs()
    const cpuBefore = process.cpuUsage()
    const final = await app.invoke(
      { last: "", done: 0 },
      { configurable: { thread_id: `chain-${tasks}` }, recursionLimit: tasks + 10 }
    )
    const wallMs = nowMs() - started
    const cpu = process.cpuUsage(cpuBefore)
    if (final.done !== tasks) throw new Error(`the LangGraph chain ran ${final.done} of ${tasks} steps`)
    return { tasks, wallMs, cpuMs: (cpu.user + cpu.system) / 1_000, executorMs }
  } finally {
    saver.db.close()
    folder.remove()
  }
}
