/**
 * The deterministic parser: how a request becomes tasks, what kind each task is, and what it has attached. The
 * reference implementation's parser defects (pitfalls 7 and 8 in the notes, "The planner") each have a test here.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { EmptyRequest, RequestTooLarge } from "../../src/domain/Errors.js"
import * as Graph from "../../src/domain/Graph.js"
import * as Parser from "../../src/domain/Parser.js"
import { TaskPlan } from "../../src/domain/Task.js"

const SEED =
  "Add login with session cookies. Use basic auth. Read API spec at https://example.com/spec.pdf. Then write unit tests."

const plan = (text: string): ReadonlyArray<TaskPlan> => {
  const parsed = Parser.parse(text)
  if (Either.isLeft(parsed)) throw new Error(`expected a plan for ${JSON.stringify(text)}, got ${parsed.left._tag}`)
  return parsed.right
}
const descriptions = (text: string): ReadonlyArray<string> => plan(text).map((task) => task.description)
const failure = (text: string) => {
  const parsed = Parser.parse(text)
  if (Either.isRight(parsed)) throw new Error(`expected a failure for ${JSON.stringify(text)}`)
  return parsed.left
}
const links = (text: string): ReadonlyArray<string> =>
  Parser.extractAttachments(text).flatMap((attachment) => (attachment.kind === "Link" ? [attachment.value] : []))
const files = (text: string): ReadonlyArray<string> =>
  Parser.extractAttachments(text).flatMap((attachment) => (attachment.kind === "FileRef" ? [attachment.value] : []))

describe("Parser.parse: the seed example", () => {
  it("gives four chained tasks with the connector dropped and the link on the task that names it", () => {
    expect(plan(SEED)).toEqual([
      {
        id: 1,
        description: "Add login with session cookies",
        kind: "CodeImplementation",
        dependsOn: [],
        attachments: []
      },
      { id: 2, description: "Use basic auth", kind: "Processing", dependsOn: [1], attachments: [] },
      {
        id: 3,
        description: "Read API spec at https://example.com/spec.pdf",
        kind: "Retrieval",
        dependsOn: [2],
        attachments: [{ kind: "Link", value: "https://example.com/spec.pdf" }]
      },
      { id: 4, description: "write unit tests", kind: "UnitTest", dependsOn: [3], attachments: [] }
    ])
  })

  it("every task decodes with the TaskPlan schema", () => {
    for (const task of plan(SEED)) expect(Either.isRight(Schema.decodeUnknownEither(TaskPlan)(task))).toBe(true)
  })
})

describe("Parser.parse: limits", () => {
  it("fails with EmptyRequest on empty, blank and marker-only input, never with a task", () => {
    for (const text of [
      "",
      " ",
      "\n\n",
      " \t\r\n \u00a0 ",
      "-",
      "- \n* \n+ \n1.\n2)",
      "...",
      "???",
      "---\n***",
      "```\n```"
    ]) {
      expect(failure(text)).toEqual(new EmptyRequest())
    }
  })

  it("fails with RequestTooLarge over MAX_REQUEST_CHARS, counting the raw input before normalising", () => {
    expect(Parser.MAX_REQUEST_CHARS).toBe(100_000)
    const tooLong = "a".repeat(Parser.MAX_REQUEST_CHARS + 1)
    expect(failure(tooLong)).toEqual(new RequestTooLarge({ size: tooLong.length, limit: Parser.MAX_REQUEST_CHARS }))
    // Whitespace that normalising would remove still counts, and an oversized blank request is too large, not empty.
    const padded = `Add login${" ".repeat(Parser.MAX_REQUEST_CHARS)}`
    expect(failure(padded)).toEqual(new RequestTooLarge({ size: padded.length, limit: Parser.MAX_REQUEST_CHARS }))
    expect(failure(" ".repeat(Parser.MAX_REQUEST_CHARS + 1))._tag).toBe("RequestTooLarge")
  })

  it("accepts a request of exactly MAX_REQUEST_CHARS", () => {
    const text = `Write a report ${"x".repeat(Parser.MAX_REQUEST_CHARS - 15)}`
    expect(text.length).toBe(Parser.MAX_REQUEST_CHARS)
    expect(plan(text)).toHaveLength(1)
  })
})

describe("Parser.parse: normalising", () => {
  it("treats CRLF, CR and LF alike and collapses tabs and runs of spaces", () => {
    const expected = ["Design the schema", "Write the migration", "Document it"]
    expect(descriptions("Design the schema\nWrite the migration\nDocument it")).toEqual(expected)
    expect(descriptions("Design the schema\r\nWrite the migration\r\nDocument it\r\n")).toEqual(expected)
    expect(descriptions("Design the schema\rWrite the migration\rDocument it")).toEqual(expected)
    expect(descriptions("  Design\tthe    schema  \n\n\n Write  the\t\tmigration\n\tDocument it   ")).toEqual(expected)
  })

  it("never leaves control characters or line breaks in a description", () => {
    expect(descriptions("Add\u0000login\u0007 with\u000bcookies")).toEqual(["Add login with cookies"])
  })
})

describe("Parser.parse: lists", () => {
  it("makes each bullet one task and strips its marker", () => {
    for (const marker of ["-", "*", "+", "•"]) {
      expect(descriptions(`${marker} Fetch data\n${marker} Transform it\n${marker}   Publish it`)).toEqual([
        "Fetch data",
        "Transform it",
        "Publish it"
      ])
    }
    expect(descriptions("- [ ] write docs\n- [x] ship it")).toEqual(["write docs", "ship it"])
  })

  it("strips numbered markers: 1., 2), Step 3:, case-insensitively, and (4), a), 5 -, 6:", () => {
    expect(descriptions("1. Plan the release\n2) Tag it\nStep 3: Announce it\nSTEP 4 - Celebrate")).toEqual([
      "Plan the release",
      "Tag it",
      "Announce it",
      "Celebrate"
    ])
    expect(descriptions("(1) plan\n(2) build\na) test\nb) ship\n5 - document\n6: retire")).toEqual([
      "plan",
      "build",
      "test",
      "ship",
      "document",
      "retire"
    ])
    expect(descriptions("step one: plan\nStep Two. build\nTask 3) ship")).toEqual(["plan", "build", "ship"])
  })

  it("does not read numbers, decimals or dashes inside text as markers", () => {
    expect(descriptions("1.5 liters of water\n2024 was a good year\n-v flag is verbose")).toEqual([
      "1.5 liters of water",
      "2024 was a good year",
      "-v flag is verbose"
    ])
  })

  it("drops an introduction ending in a colon, and Markdown headings", () => {
    expect(descriptions("Here is the plan:\n- Fetch data\n- Publish it")).toEqual(["Fetch data", "Publish it"])
    expect(descriptions("# Backend\n- Add API\n## Frontend\n- Add form\nNotes:")).toEqual(["Add API", "Add form"])
    expect(descriptions("1. Setup:\n   install deps\n   configure env\n2. Build")).toEqual([
      "install deps",
      "configure env",
      "Build"
    ])
  })

  it("keeps a lone introduction as a task rather than calling the request empty", () => {
    expect(descriptions("Fix the following:")).toEqual(["Fix the following:"])
  })

  it("joins continuation lines indented under a bullet to that bullet's task", () => {
    expect(descriptions("- Add login\n  with session cookies\n- Write tests\n    covering logout\n- Deploy")).toEqual([
      "Add login with session cookies",
      "Write tests covering logout",
      "Deploy"
    ])
    expect(descriptions("1. Add login\n\n   with cookies\n2. Deploy")).toEqual(["Add login with cookies", "Deploy"])
  })

  it("makes nested items tasks of their own, in reading order", () => {
    expect(descriptions("- Build the API\n  - add GET\n  - add POST\n- Deploy")).toEqual([
      "Build the API",
      "add GET",
      "add POST",
      "Deploy"
    ])
  })

  it("does not split a list item at its sentences or connectors: the list already says what a step is", () => {
    expect(descriptions("- Add login. Use basic auth.\n- Write tests, then deploy")).toEqual([
      "Add login. Use basic auth",
      "Write tests, then deploy"
    ])
  })

  it("splits a one-line inline enumeration, but not a lone numbered item", () => {
    expect(descriptions("1. Add login. 2. Write tests. 3. Deploy.")).toEqual(["Add login", "Write tests", "Deploy"])
    expect(descriptions("Here is the plan: 1) fetch the data, 2) clean it, and 3) plot it.")).toEqual([
      "fetch the data",
      "clean it",
      "plot it"
    ])
    expect(descriptions("Steps: (1) build (2) ship")).toEqual(["build", "ship"])
    expect(descriptions("Step 1: plan. Step 2: build.")).toEqual(["plan", "build"])
    expect(descriptions("1. Just one item, then more")).toEqual(["Just one item, then more"])
  })

  it("joins a fenced code block to the step before it, its lines verbatim on lines of their own", () => {
    // Issue 18: a block's commands are never joined; the shell executor runs them line by line as written.
    expect(plan("Run this:\n```bash\nnpm ci\nif [ -f x ]; then\n  echo `date`\nfi\n```\n- Deploy")).toMatchObject([
      { description: "Run this:\n```bash\nnpm ci\nif [ -f x ]; then\n  echo `date`\nfi\n```", kind: "ToolCall" },
      { description: "Deploy" }
    ])
    expect(descriptions("```\nmake build\n```")).toEqual(["```\nmake build\n```"])
    // Under an indented list item the fence's own indentation is not part of the code; a ``` inside gets a longer fence.
    expect(descriptions("- Build it:\n  ~~~\n  make   all\n  echo ```\n  ~~~")).toEqual([
      "Build it:\n````\nmake   all\necho ```\n````"
    ])
  })
})

describe("Parser.parse: several lines", () => {
  it("makes each non-empty line one task, whatever its indentation", () => {
    expect(descriptions("Add login\n\nWrite tests\n\n\nDeploy")).toEqual(["Add login", "Write tests", "Deploy"])
    expect(descriptions("Add login\n    Write tests\n  Deploy")).toEqual(["Add login", "Write tests", "Deploy"])
  })

  it("does not split a line into sentences when there are several lines", () => {
    expect(descriptions("Add login. Use basic auth.\nThen write tests")).toEqual([
      "Add login. Use basic auth",
      "write tests"
    ])
  })

  it("mixes lines and list items in order", () => {
    expect(descriptions("Prepare the release\n- Tag it\n- Push it\nAnnounce it")).toEqual([
      "Prepare the release",
      "Tag it",
      "Push it",
      "Announce it"
    ])
  })

  it("drops a leading connector from a line too", () => {
    expect(descriptions("Add login\nThen write tests\nFinally, deploy")).toEqual(["Add login", "write tests", "deploy"])
  })
})

describe("Parser.parse: a single paragraph", () => {
  it("is not one task for any input: sentences are tasks", () => {
    expect(descriptions("Add login. Use basic auth! Is the cookie secure? Write docs.")).toEqual([
      "Add login",
      "Use basic auth!",
      "Is the cookie secure?",
      "Write docs"
    ])
  })

  it("splits at every sequencing connector and drops it with its comma", () => {
    const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
      ["Add login, then write tests", ["Add login", "write tests"]],
      ["Add login; then write tests", ["Add login", "write tests"]],
      ["Add login and then write tests", ["Add login", "write tests"]],
      ["Add login, and then, write tests", ["Add login", "write tests"]],
      ["Add login. Then write tests.", ["Add login", "write tests"]],
      ["Add login. Next, write tests.", ["Add login", "write tests"]],
      ["Add login, next write tests", ["Add login", "write tests"]],
      ["Add login. After that, write tests.", ["Add login", "write tests"]],
      ["Add login, after that write tests", ["Add login", "write tests"]],
      ["Add login. Afterwards write tests.", ["Add login", "write tests"]],
      ["Add login, finally write tests", ["Add login", "write tests"]],
      ["Add login and finally write tests", ["Add login", "write tests"]],
      ["Add login. Lastly, write tests.", ["Add login", "write tests"]],
      ["First, add login. Second, write tests. Third, deploy.", ["add login", "write tests", "deploy"]],
      ["First add login, second write tests, third deploy", ["add login", "write tests", "deploy"]],
      ["Firstly add login; secondly write tests", ["add login", "write tests"]],
      ["ADD LOGIN, THEN WRITE TESTS", ["ADD LOGIN", "WRITE TESTS"]],
      ["Build it then deploy", ["Build it", "deploy"]],
      ["Add login — then write tests", ["Add login", "write tests"]],
      ["Fix the bug; then, afterwards, deploy", ["Fix the bug", "deploy"]],
      ["add login. then write tests", ["add login", "write tests"]]
    ]
    for (const [text, expected] of cases) expect(descriptions(text), text).toEqual(expected)
  })

  it("keeps sentences that do not begin with a connector as separate tasks", () => {
    expect(descriptions("Add login with session cookies. Use basic auth. Write docs")).toHaveLength(3)
  })

  it("does not split where a connector word is not sequencing", () => {
    const whole = [
      "If the build fails, then roll back",
      "When the tests pass, then deploy",
      "Run tests and if they pass, then deploy",
      "Deploy, and only then announce it",
      "The app was then deployed",
      "We will then celebrate",
      "Put the logo next to the title",
      "Add a button, next to the logo",
      "Plan the release, next week deploy",
      "Use the first, second and third option",
      "Second opinion needed on the design",
      "Next.js app setup",
      "It finally works"
    ]
    for (const text of whole) expect(descriptions(text), text).toEqual([text])
  })

  it("never splits at abbreviations, versions, decimals, file names or URLs", () => {
    expect(descriptions("Use a tool, e.g. Vitest or i.e. Jest, as Dr. Smith says vs. Mr. Jones")).toHaveLength(1)
    expect(descriptions("Upgrade to v1.2.3 and Node 20.1 at 3.5 GHz")).toHaveLength(1)
    expect(descriptions("See No. 5 and Fig. 3 for details")).toHaveLength(1)
    expect(descriptions("Read spec.pdf and docs/api.md from https://example.com/v1.2/spec.pdf?x=1.5")).toHaveLength(1)
    // An action list splits at "and", but never at the abbreviation: "etc." stays with its list of objects.
    expect(descriptions("Install deps, tools, etc. and run the build")).toEqual([
      "Install deps, tools, etc.",
      "run the build"
    ])
    expect(descriptions("Install deps, tools, etc. Then run the build")).toEqual([
      "Install deps, tools, etc.",
      "run the build"
    ])
    expect(descriptions("Meet at 3 p.m. Then leave")).toEqual(["Meet at 3 p.m.", "leave"])
  })

  it("splits after a version, a number or a URL that ends a sentence", () => {
    expect(descriptions("Upgrade Node to 20.1. Then rerun the suite.")).toEqual([
      "Upgrade Node to 20.1",
      "rerun the suite"
    ])
    expect(descriptions("Read https://x.org/a.html. Summarise it.")).toEqual([
      "Read https://x.org/a.html",
      "Summarise it"
    ])
  })

  it("never splits inside backticks, double quotes or parentheses", () => {
    expect(descriptions('Show "Saved. Done." and stop')).toEqual(['Show "Saved. Done." and stop'])
    expect(descriptions("Run `cd app. && make. && ls` now")).toEqual(["Run `cd app. && make. && ls` now"])
    expect(descriptions("Add login (with cookies. Then tests.) and docs")).toEqual([
      "Add login (with cookies. Then tests.) and docs"
    ])
  })

  it("drops a 'Here is the plan:' introduction", () => {
    expect(descriptions("Here is the plan: add login, then write tests.")).toEqual(["add login", "write tests"])
    expect(descriptions("Please do the following: add login. Write tests.")).toEqual(["add login", "Write tests"])
  })

  it("drops a piece that is only a connector, unless it is the whole request", () => {
    expect(descriptions("Add login. Then.")).toEqual(["Add login"])
    expect(descriptions("Then")).toEqual(["Then"])
  })
})

describe("Parser.parse: descriptions", () => {
  it("drops one final sentence period, keeps ? and !, ellipses and abbreviation periods", () => {
    expect(descriptions("Add login.")).toEqual(["Add login"])
    expect(descriptions("- Add login.\n- Deploy!\n- Secure?\n- Wait...\n- Buy milk, eggs, etc.")).toEqual([
      "Add login",
      "Deploy!",
      "Secure?",
      "Wait...",
      "Buy milk, eggs, etc."
    ])
  })

  it("keeps URLs and paths whole, and the case of the text as written", () => {
    expect(descriptions("then update ./docs/API.md from https://Example.com/A.pdf.")).toEqual([
      "update ./docs/API.md from https://Example.com/A.pdf"
    ])
  })

  it("numbers tasks 1..n, each depending on the one before", () => {
    const tasks = plan("- a1\n- b2\n- c3\n- d4")
    expect(tasks.map((task) => [task.id, task.dependsOn])).toEqual([
      [1, []],
      [2, [1]],
      [3, [2]],
      [4, [3]]
    ])
  })
})

describe("Parser.classify", () => {
  it("ToolCall: code in backticks or a leading tool verb, also after please", () => {
    for (const text of [
      "Check `npm test` output",
      "Run the test suite",
      "execute the migration",
      "Install the dependencies",
      "Invoke the deploy hook",
      "Call the payments API",
      "Please run the linter",
      "Kindly install Node 20",
      "npm run build",
      "git push origin main",
      "$ make release"
    ]) {
      expect(Parser.classify(text), text).toBe("ToolCall")
    }
  })

  it("Clarification: a question or an ambiguity marker", () => {
    for (const text of [
      "Which database should we use?",
      'Is the cookie "secure?"',
      "Use Postgres (?)",
      "Database TBD",
      "The expiry is unclear",
      "Not sure about the schema",
      "Clarify the scope",
      "Confirm with the team before deploy",
      "Ask the user for the target",
      "Pick which one fits",
      "Cache size to be decided"
    ]) {
      expect(Parser.classify(text), text).toBe("Clarification")
    }
  })

  it("Clarification takes priority over ToolCall, but markers inside code or URLs do not count", () => {
    expect(Parser.classify("Should we run `npm audit fix`?")).toBe("Clarification")
    expect(Parser.classify("Run the deploy script against the TBD environment")).toBe("Clarification")
    expect(Parser.classify("Run `grep -r TBD src`")).toBe("ToolCall")
    expect(Parser.classify("Run `echo ready?`")).toBe("ToolCall")
    expect(Parser.classify("Fetch https://x.org/unclear-spec.pdf")).toBe("Retrieval")
  })

  it("phase-2 kinds, conservatively", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["write unit tests", "UnitTest"],
      ["Add tests for the login flow", "UnitTest"],
      ["Write a unit test for the parser", "UnitTest"],
      ["Unit tests for the parser", "UnitTest"],
      ["Refactor the parser", "Refactor"],
      ["Please restructure the modules", "Refactor"],
      ["Do a small refactor of auth", "Refactor"],
      ["Read API spec at https://example.com/spec.pdf", "Retrieval"],
      ["Fetch ./data/input.csv", "Retrieval"],
      ["Look up https://x.org/rates", "Retrieval"],
      ["Analyze the logs", "Analysis"],
      ["Review the unit tests", "Analysis"],
      ["Investigate the memory leak", "Analysis"],
      ["Implement caching", "CodeImplementation"],
      ["Add login with session cookies", "CodeImplementation"],
      ["Build a REST endpoint for users", "CodeImplementation"],
      ["Update src/main.rs to handle errors", "CodeImplementation"]
    ]
    for (const [text, kind] of cases) expect(Parser.classify(text), text).toBe(kind)
  })

  it("Processing for everything else, including what is ambiguous", () => {
    for (const text of [
      "Use basic auth",
      "Write a blog post",
      "Update the README",
      "Fetch the data",
      "Summarise the report",
      "Test the idea with a friend",
      "Create a slide deck"
    ]) {
      expect(Parser.classify(text), text).toBe("Processing")
    }
  })

  it("gives every parsed task the kind classify gives its description", () => {
    for (const task of plan(`${SEED} Run \`npm test\`. Is it green? Refactor it.`)) {
      expect(task.kind).toBe(Parser.classify(task.description))
    }
  })
})

describe("Parser.extractAttachments", () => {
  it("keeps sentence punctuation out of a URL (pitfall 7)", () => {
    expect(links("Read https://example.com/spec.pdf.")).toEqual(["https://example.com/spec.pdf"])
    expect(
      links("See https://a.org/b, https://c.org/d; https://e.org/f: https://g.org/h! https://i.org/j? https://k.org/l…")
    ).toEqual([
      "https://a.org/b",
      "https://c.org/d",
      "https://e.org/f",
      "https://g.org/h",
      "https://i.org/j",
      "https://k.org/l"
    ])
  })

  it("drops unbalanced closing brackets and quotes but keeps balanced ones", () => {
    expect(links("(see https://x.org/a_(b))")).toEqual(["https://x.org/a_(b)"])
    expect(links("(see https://x.org/a).")).toEqual(["https://x.org/a"])
    expect(
      links("[docs](https://u.org/v) and <https://s.org/t> and \"https://q.org/r\" and 'https://p.org/o'.")
    ).toEqual(["https://u.org/v", "https://s.org/t", "https://q.org/r", "https://p.org/o"])
    expect(links("https://x.org/list[1] and https://y.org/{id}")).toEqual([
      "https://x.org/list[1]",
      "https://y.org/{id}"
    ])
  })

  it("keeps query strings, fragments, ports and case", () => {
    expect(links("Open HTTPS://Example.com:8080/a/b?x=1&y=2#top, please")).toEqual([
      "HTTPS://Example.com:8080/a/b?x=1&y=2#top"
    ])
  })

  it("ignores schemes without a host", () => {
    expect(Parser.extractAttachments("the https:// prefix and http://. are not links")).toEqual([])
  })

  it("recognises relative, explicit and absolute file paths", () => {
    expect(
      files(
        "Edit src/main.rs, ./docs/api.md, ../x/y.ts and docs/README.md; also /abs/path.ext, /etc/hosts, ~/notes/todo.txt, ./scripts/deploy, .github/workflows/ci.yml, docker/Dockerfile."
      )
    ).toEqual([
      "src/main.rs",
      "./docs/api.md",
      "../x/y.ts",
      "docs/README.md",
      "/abs/path.ext",
      "/etc/hosts",
      "~/notes/todo.txt",
      "./scripts/deploy",
      ".github/workflows/ci.yml",
      "docker/Dockerfile"
    ])
  })

  it("finds paths in backticks, quotes and brackets, and without a line number", () => {
    expect(files('Open `src/app.ts`, "lib/a.js", (docs/b.md) and src/c.ts:42')).toEqual([
      "src/app.ts",
      "lib/a.js",
      "docs/b.md",
      "src/c.ts"
    ])
  })

  it("does not mistake dates, fractions, and/or, units, URLs or host names for paths", () => {
    expect(
      Parser.extractAttachments(
        "On 1/2/2024 do 3/4 of it and/or 1/2.5 more at 50 km/h via TCP/IP, w/o example.com/spec.pdf or spec.pdf, src/, a//b.ts"
      )
    ).toEqual([])
    expect(files("Read https://example.com/docs/api.md")).toEqual([])
  })

  it("marks image URLs and image paths as ImageRef", () => {
    expect(
      Parser.extractAttachments(
        "Compare https://x.org/shot.PNG?size=2 with ./img/a.jpg, assets/b.jpeg, c/d.gif, e/f.webp, g/h.svg and https://x.org/page"
      )
    ).toEqual([
      { kind: "ImageRef", value: "https://x.org/shot.PNG?size=2" },
      { kind: "ImageRef", value: "./img/a.jpg" },
      { kind: "ImageRef", value: "assets/b.jpeg" },
      { kind: "ImageRef", value: "c/d.gif" },
      { kind: "ImageRef", value: "e/f.webp" },
      { kind: "ImageRef", value: "g/h.svg" },
      { kind: "Link", value: "https://x.org/page" }
    ])
  })

  it("lists each attachment once per task, in order of appearance", () => {
    expect(
      Parser.extractAttachments("Diff src/a.ts against https://x.org/a, then src/a.ts and https://x.org/a.")
    ).toEqual([
      { kind: "FileRef", value: "src/a.ts" },
      { kind: "Link", value: "https://x.org/a" }
    ])
  })

  it("puts each attachment on the task whose description contains it", () => {
    const tasks = plan("Read https://a.org/spec. Compare it with src/spec.ts, then post https://b.org/x.png")
    expect(tasks.map((task) => task.attachments)).toEqual([
      [{ kind: "Link", value: "https://a.org/spec" }],
      [{ kind: "FileRef", value: "src/spec.ts" }],
      [{ kind: "ImageRef", value: "https://b.org/x.png" }]
    ])
  })
})

// --- Properties ---------------------------------------------------------------------------------------------------

const connectorish = new Set([
  "then",
  "next",
  "after",
  "afterwards",
  "afterward",
  "finally",
  "lastly",
  "subsequently",
  "first",
  "firstly",
  "second",
  "secondly",
  "third",
  "thirdly",
  "and"
])
const wordArb = fc.stringMatching(/^[a-z]{2,8}$/).filter((word) => !connectorish.has(word))
const itemArb = fc
  .tuple(fc.constantFrom("Add", "Fix", "Write", "Review", "Ship", "Plan"), fc.array(wordArb, { maxLength: 5 }))
  .map(([verb, words]) => [verb, ...words].join(" "))

/** Text made of the pieces a request is made of, so the structural rules are exercised, not only noise. */
const requestLikeArb = fc
  .array(
    fc.oneof(
      wordArb,
      fc.constantFrom(
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "\n\n",
        "- ",
        "* ",
        "• ",
        "1. ",
        "2) ",
        "Step 3: ",
        "(4) ",
        ". ",
        "! ",
        "? ",
        ", ",
        "; ",
        ":",
        "...",
        "e.g. ",
        "etc. ",
        " then ",
        ", then ",
        "Then ",
        " and then ",
        "Next, ",
        "Finally ",
        "First, ",
        "second ",
        "if ",
        "`npm test`",
        "`",
        '"',
        "(",
        ")",
        "[",
        "]",
        "https://example.com/spec.pdf",
        "https://x.org/a_(b)",
        "http://",
        "src/main.rs",
        "./docs/a.png",
        "../x/y.ts",
        "/etc/hosts",
        "1/2/2024",
        "and/or",
        "v1.2",
        "TBD",
        "run",
        "Please ",
        "# ",
        "```",
        "    ",
        "\u00a0",
        "🙂"
      )
    ),
    { maxLength: 40 }
  )
  .map((pieces) => pieces.join(""))

const anyTextArb = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ unit: "grapheme", maxLength: 200 }),
  requestLikeArb
)

const checkPlan = (text: string) => {
  const parsed = Parser.parse(text)
  if (Either.isLeft(parsed)) {
    expect(["EmptyRequest", "RequestTooLarge"]).toContain(parsed.left._tag)
    if (parsed.left._tag === "EmptyRequest") expect(text.length).toBeLessThanOrEqual(Parser.MAX_REQUEST_CHARS)
    return
  }
  const tasks = parsed.right
  expect(tasks.length).toBeGreaterThan(0)
  // Since issue 14 a plan may branch ("A, B, and then C"); it is still a valid graph, each dependency before its task.
  expect(Either.isRight(Graph.validate(tasks))).toBe(true)
  tasks.forEach((task, index) => {
    expect(task.id).toBe(index + 1)
    for (const dep of task.dependsOn) expect(dep).toBeLessThan(task.id)
    expect(task.description.length).toBeGreaterThan(0)
    expect(task.description).toBe(task.description.trim())
    // Line breaks only inside a fenced code block, which is kept as written.
    expect(task.description.replace(/(^|\n)(`{3,})[^\n]*\n[\s\S]*?\n\2(?=\n|$)/g, "")).not.toMatch(/[\n\r]/)
    expect(Either.isRight(Schema.decodeUnknownEither(TaskPlan)(task))).toBe(true)
    expect(task.kind).toBe(Parser.classify(task.description))
    expect(task.attachments).toEqual(Parser.extractAttachments(task.description))
    const keys = task.attachments.map((attachment) => `${attachment.kind} ${attachment.value}`)
    expect(new Set(keys).size).toBe(keys.length)
    for (const attachment of task.attachments) expect(task.description).toContain(attachment.value)
  })
}

describe("Parser properties", () => {
  it.prop("for any input, parse fails with a typed error or returns a valid plan", [anyTextArb], ([text]) => {
    checkPlan(text)
  })

  it.prop("every URL and path an attachment names appears in the text it came from", [anyTextArb], ([text]) => {
    for (const attachment of Parser.extractAttachments(text)) {
      expect(text).toContain(attachment.value)
      if (attachment.kind === "Link") expect(attachment.value).toMatch(/^https?:\/\/\S+$/i)
      expect(attachment.value).not.toMatch(/[.,;:!?]$/)
    }
  })

  it.prop("parse is deterministic", [anyTextArb], ([text]) => {
    expect(Parser.parse(text)).toEqual(Parser.parse(`${text}`))
    expect(Parser.parse(text)).toEqual(Parser.parse(text.slice(0)))
  })

  it.prop(
    "a bulleted or numbered list of n distinct items gives n tasks, one per item, markers stripped",
    [
      fc.uniqueArray(itemArb, { minLength: 1, maxLength: 12 }),
      fc.constantFrom("- ", "* ", "+ ", "• ", "1. ", "1) ", "Step 1: "),
      fc.boolean()
    ],
    ([items, marker, withIntro]) => {
      const lines = items.map((item, index) => `${marker.replace("1", String(index + 1))}${item}`)
      const text = `${withIntro ? "Here is the plan:\n" : ""}${lines.join("\n")}`
      expect(descriptions(text)).toEqual(items)
    }
  )

  it.prop("line endings and the width of whitespace do not change the plan", [requestLikeArb], ([text]) => {
    // Outside code: a fenced block keeps its lines exactly as written, spaces included.
    fc.pre(!/```|~~~/.test(text))
    const widened = text.replace(/\r\n?/g, "\n").replace(/\n/g, "\r\n").replace(/ /g, "  ")
    expect(Parser.parse(widened)).toEqual(Parser.parse(text.replace(/\r\n?/g, "\n")))
  })

  it.prop(
    "a URL followed by sentence punctuation or a closing bracket is extracted without it",
    [
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
      fc.constantFrom(".", ",", ";", ":", "!", "?", ")", "].", "'", "”", "...")
    ],
    ([url, after]) => {
      // fast-check's URLs may themselves end in punctuation; the rule is about what follows a URL.
      const trimmed = url.replace(/[.,;:!?'()[\]{}*]+$/, "")
      fc.pre(/^https?:\/\/[^/?#]*[a-z0-9]/i.test(trimmed) && !/[()[\]{}'"`<>]/.test(trimmed))
      expect(links(`Read ${trimmed}${after} Then test it`)).toEqual([trimmed])
    }
  )
})
