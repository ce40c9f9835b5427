/**
 * The deterministic request parser: plain text in, tasks and their dependencies out, with no model and no I/O. The
 * same request always gives the same plan, so a recorded `TasksPlanned` can be explained from its request alone. The
 * work is split by job under ./parser/: Blocks (lines, list items, code), Sentences (sentences and connector clauses),
 * Actions (action lists, filler, conditions), Steps (steps and how each relates to the ones before), Dependencies
 * (who waits for whom), Attachments, Classify; this module puts them together. Quality is measured by `npm run eval`
 * (docs/planning.md).
 *
 * Limits. A raw request longer than `MAX_REQUEST_CHARS` (counted as `String.length`, UTF-16 code units, the measure
 * the planner's own check uses) fails with `RequestTooLarge`; a request with nothing to do in it (empty, blank, only
 * punctuation or list markers) fails with `EmptyRequest`. Neither ever becomes a task.
 *
 * Normalising. CRLF, CR, U+2028, U+2029 and U+0085 end lines; control characters become spaces; each line's
 * indentation is measured (tabs to stops of 4), then every run of whitespace in it becomes one space and it is trimmed.
 *
 * Blocks. Each line is one of:
 * - a list item: a bullet (`-`, `*`, `+`, `•` and similar) or a number (`1.`, `2)`, `(3)`, `a)`, `1.2.`, `4 -`,
 *   `5:`, `Step 6:`, `Task 7.`, case-insensitive), followed by a space; the marker and a `[ ]`/`[x]` checkbox are
 *   stripped. Nested items are tasks of their own, in reading order;
 * - a Markdown heading (`# Plan`);
 * - a continuation: a line indented deeper than the list item before it joins that item, unless the item ends in
 *   `:` (what follows an introduction is its content, not part of it);
 * - a fenced code block (three backticks or tildes): it joins the block before it, kept verbatim (its lines, their
 *   indentation and backquotes as written) as a backtick fence on lines of its own at the end of the description, so
 *   the shell executor runs exactly what was written; no other rule ever looks inside it;
 * - otherwise a line of its own.
 * A block ending in `:` ("Here is the plan:", "Notes:") or a Markdown heading introduces or labels other blocks and is
 * not a task, unless the request has nothing else (then "Fix the following:" alone is still a task, not an error).
 *
 * Tasks. Every block is one task, except when the request is a single plain paragraph (one block, not a list item):
 * then a leading "Here is the plan:"-style introduction is dropped and the paragraph is split
 * - at an inline enumeration starting the paragraph or following a colon: `1) a 2) b`, `(1) a, (2) b`,
 *   `Step 1: a Step 2: b` (numbered 1, 2, 3... in one style); its items are not split further;
 * - otherwise at sentence ends (`.`, `!`, `?`, `...` followed by whitespace), never inside a URL, a backtick span, a
 *   single- or double-quoted string ('Paid, thanks.'; an apostrophe inside a word opens none) or parentheses, and
 *   never after an abbreviation ("e.g.", "i.e.", "Dr.", "vs."; "etc.", "Inc.", "U.S.", "a.m." only before a capital
 *   or a connector; "No.", "Fig.", "v." before a number; an initial such as "J. R. R. Tolkien" only before a
 *   connector or a verb). Periods without whitespace after them (`spec.pdf`, `v1.2`, `3.14`, URLs) never split;
 * - and within a sentence, where a clause begins with a sequencing connector: "then", "and then", "next",
 *   "after that", "afterwards", "finally", "lastly", "subsequently", "firstly"/"secondly"/"thirdly", after a comma,
 *   semicolon or dash ("Add login, then write tests"); "and then", "and finally" and the like also without one; a
 *   bare "then" ("Build it then deploy") too, except after words that make it part of the clause ("only then",
 *   "was then", "will then"). After a comma, "first" splits only when a comma follows it, "second" and "third" also
 *   in a paragraph that has a "first" step ("First add login, second write tests"). A "then" that answers a
 *   condition ("If the build fails, then roll back") never splits;
 * - and each clause at an action list (./parser/Actions.ts): commas, semicolons, "and", "as well as" split it only
 *   into actions, parts that start with a verb and say more than it ("pay the bill, book a car and buy stocks" are
 *   three tasks, "buy apples, pears and milk" one). A condition is kept on every action listed after it ("If I get
 *   the job, book a hotel and show me the news"; "Check my balance; if there is enough, pay Bob and text him"),
 *   unless a "then" answers it inside one action ("Run tests and if they pass, then deploy"). A clause that only sets the scene ("I am planning a trip to Oslo",
 *   "Here is my voice command", "Thank you") is not a task when the request has others.
 *
 * Dependencies (./parser/Dependencies.ts). Steps run in the order written unless the words say otherwise: actions
 * listed before an ordering word ("enroll, order a pizza, and then drive") run in parallel and the next step waits for
 * all of them; "also", "additionally" make a step independent; "meanwhile", "at the same time", "in parallel" put it
 * beside the step before; "after X"/"once X" make it wait for the step that does X; "before X" and "but first" put it
 * before the step it names; "it", "them", "the results", "the booking details" make it wait for the step referred to.
 * Tasks are numbered so every dependency comes first.
 *
 * Descriptions keep their text, including URLs and paths, minus the list marker and a leading connector (and its
 * comma), whatever the shape of the request: "Then write tests" becomes "write tests" (the case is kept as written).
 * Filler that leaves a command is dropped too ("Also, I want to book a car", "Kindly help me book a car" give "book a
 * car"; "If it rains, I'd like to book a taxi" gives "If it rains, book a taxi"), and so is trailing courtesy ("for
 * me", ", please assist me"); the request itself is recorded whole with the plan.
 * "second"/"third" are connectors at the start only before a comma, or in a paragraph that has a "first" step. A
 * connector is kept when nothing would be left without it. Dangling ", and" / "and then" at the end are dropped, and
 * so is one final sentence period (never "...", and never the period of an abbreviation such as "etc."); "?" and "!"
 * are kept. Text with no letter, digit or emoji in it is never a task.
 *
 * Kinds (`classify`), first match wins, ignoring a polite lead-in ("please", "can you", "we need to", ...):
 * 1. `Clarification`: a question (ends with `?`, also before closing brackets or quotes), or an ambiguity marker
 *    outside code and URLs: "TBD", "TBC", "to be decided", "unclear", "not clear", "not sure", "unsure", "clarify",
 *    "clarification", "confirm with", "check with the user", "ask the user", "which one", "ambiguous", "(?)", "??".
 *    It comes first because running a command or writing code under an open question is the costly mistake.
 * 2. `ToolCall`: a backtick code span, a leading tool verb (run, rerun, execute, exec, install, reinstall, uninstall,
 *    invoke, call), a `$ ` prompt, or a leading lower-case command name (`npm`, `git`, `cargo`, `docker`, ...).
 * 3. `UnitTest`: a test-writing verb (write, add, create, implement, update, extend, expand, improve, fix, cover,
 *    generate) about tests ("tests", "unit test", "a test", "test cases", "test coverage"), or a task that starts
 *    with "unit tests" / "tests for".
 * 4. `Refactor`: a leading refactor, restructure, reorganise/reorganize, or the word "refactor" anywhere.
 * 5. `Retrieval`: a leading read, fetch, retrieve, download, get, grab, pull, load, open, consult, scrape, crawl,
 *    browse, visit or "look up", with at least one attachment (link, image or file).
 * 6. `Analysis`: a leading analyse/analyze, review, investigate, inspect, evaluate, assess, audit, examine,
 *    diagnose, study, compare, research, triage.
 * 7. `CodeImplementation`: a leading implement, code or program; or a leading generic verb (add, build, create,
 *    write, develop, fix, make, update, change, ...) whose object names code (function, endpoint, login, schema,
 *    migration, bug, feature, ...) or which refers to a source file (`src/app.ts`).
 * 8. `Processing`: everything else, including whatever is ambiguous.
 *
 * Attachments (`extractAttachments`), in order of appearance, no duplicates:
 * - `Link`: `http(s)://` URLs; sentence punctuation (`.`, `,`, `;`, `:`, `!`, `?`, `*`, `…`), closing quotes and
 *   closing brackets without a matching opener inside the URL are not part of it, so "spec.pdf." gives ".../spec.pdf"
 *   and "(see https://x.org/a_(b))" keeps the balanced parenthesis.
 * - `FileRef`: paths that start with `./`, `../` or `~/`; relative paths with a `/` whose last segment is a file
 *   name with an extension (`src/main.rs`, `docs/README.md`, `.github/workflows/ci.yml`) or a well-known name
 *   (`docker/Dockerfile`); absolute paths ending in such a file name (`/abs/path.ext`) or under a system root
 *   (`/etc/hosts`). Not paths: URLs, dates (`1/2/2024`), fractions (`3/4`, `1/2.5`), `and/or`, `km/h`, and
 *   scheme-less host names (`example.com/spec.pdf`). A bare file name without a `/` (`spec.pdf`) is not attached:
 *   it cannot be told from a domain or a version.
 * - `ImageRef` instead of either, when the URL's path or the file ends in .png, .jpg, .jpeg, .gif, .webp, .svg,
 *   .bmp or .avif.
 * Each task's attachments are extracted from its own description, so every attachment is on the task that names it.
 */
import { Either } from "effect"
import { EmptyRequest, type RequestError, RequestTooLarge } from "./Errors.js"
import { extractAttachments } from "./parser/Attachments.js"
import { classify } from "./parser/Classify.js"
import { dependenciesOf } from "./parser/Dependencies.js"
import { stepsOf } from "./parser/Steps.js"
import type { TaskPlan } from "./Task.js"

export { extractAttachments } from "./parser/Attachments.js"
export { classify } from "./parser/Classify.js"

/** The longest request the parser accepts, in `String.length` units of the raw, unnormalised text. */
export const MAX_REQUEST_CHARS = 100_000

/**
 * Plans a request: one task per step, ids 1..n with every dependency before the task that waits for it. Fails with
 * `RequestTooLarge` over `MAX_REQUEST_CHARS` and with `EmptyRequest` when there is nothing to do.
 */
export const parse = (text: string): Either.Either<ReadonlyArray<TaskPlan>, RequestError> => {
  if (text.length > MAX_REQUEST_CHARS) {
    return Either.left(new RequestTooLarge({ size: text.length, limit: MAX_REQUEST_CHARS }))
  }
  const steps = dependenciesOf(stepsOf(text))
  if (steps.length === 0) return Either.left(new EmptyRequest())
  return Either.right(
    steps.map((step, index) => ({
      id: index + 1,
      description: step.description,
      kind: classify(step.description),
      dependsOn: step.dependsOn.map((dep) => dep + 1),
      attachments: extractAttachments(step.description)
    }))
  )
}
