/**
 * `npm run eval`: scores a planner on requests with gold plans and prints the figures of issue 14 (see
 * docs/planning.md for what each one means).
 *
 * Data: JSON Lines, one request per line: `{"request": "...", "steps": ["..."], "links": [[from, to], ...],
 * "type": "single" | "chain" | "dag"}` with 0-based step indices (`to` needs `from`). The default file,
 * data/taskbench/dev.jsonl, holds 28 requests from TaskBench's Daily-Life APIs domain: Shen et al., "TaskBench:
 * Benchmarking Large Language Models for Task Automation", arXiv:2311.18760; github.com/microsoft/JARVIS, MIT licence.
 *
 * Options (after `npm run eval --`):
 *   --file PATH               the JSON Lines file to score (default data/taskbench/dev.jsonl)
 *   --planner parser|llm      the deterministic parser (default), or the LLM configured by the PLANNER_LLM_*
 *                             environment (docs/llm.md), through the same planning code the app uses
 *   --json                    print the figures as JSON instead of a table
 *   --details                 also print each request's tasks and scores
 *
 * Exit codes: 0 scored; 2 bad options or an unreadable / malformed file (the message says which line).
 */
import { main } from "./eval/run.js"

// vite-node removes the script's own path from argv: everything after the runner is ours.
const { output, code } = await main(process.argv.slice(2))
if (code === 0) process.stdout.write(`${output}\n`)
else process.stderr.write(`${output}\n`)
process.exitCode = code
