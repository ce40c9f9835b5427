/**
 * The parser on the kinds of language requests are written in (issue 14): action lists, independence and order,
 * back-references, conditionals, abbreviations and quotes, connectors and filler. Each test is given a request, when
 * it is parsed, then the tasks and their dependencies are as stated. Properties at the end: deterministic, blind to
 * whitespace, and every plan is a valid acyclic graph.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as Graph from "../../src/domain/Graph.js"
import * as Parser from "../../src/domain/Parser.js"
import type { TaskPlan } from "../../src/domain/Task.js"

const plan = (text: string): ReadonlyArray<TaskPlan> => {
  const parsed = Parser.parse(text)
  if (Either.isLeft(parsed)) throw new Error(`expected a plan for ${JSON.stringify(text)}, got ${parsed.left._tag}`)
  return parsed.right
}
const descriptions = (text: string) => plan(text).map((task) => task.description)
/** Each task as `[description, dependsOn]`. */
const shape = (text: string) => plan(text).map((task) => [task.description, task.dependsOn] as const)

describe("given an action list", () => {
  it("when the parts are actions, then each is a task", () => {
    expect(
      descriptions(
        "I want to pay my electricity bill, find the best online store for laptops, list a pair of shoes on Ebay, book a car for tomorrow, and buy some Apple stocks"
      )
    ).toEqual([
      "pay my electricity bill",
      "find the best online store for laptops",
      "list a pair of shoes on Ebay",
      "book a car for tomorrow",
      "buy some Apple stocks"
    ])
    expect(descriptions("Consult a lawyer about my lease and record the consultation")).toEqual([
      "Consult a lawyer about my lease",
      "record the consultation"
    ])
    expect(descriptions("Renew my passport; book a flight to Oslo")).toEqual([
      "Renew my passport",
      "book a flight to Oslo"
    ])
    expect(descriptions("Order a pizza as well as book a table for two")).toEqual([
      "Order a pizza",
      "book a table for two"
    ])
  })

  it("when the parts are objects, then the list stays one task", () => {
    expect(descriptions("Buy apples, pears and milk")).toEqual(["Buy apples, pears and milk"])
    expect(descriptions("Search for hotels in Rome as well as flights to Rome")).toHaveLength(1)
    expect(descriptions("Buy eggs, flour and sugar, and bake a cake")).toEqual([
      "Buy eggs, flour and sugar",
      "bake a cake"
    ])
    // A lone verb is not an action of its own: "search and replace" is one.
    expect(descriptions("Search and replace the old names")).toEqual(["Search and replace the old names"])
  })

  it("when a leading phrase is not an action, then it belongs to the first action", () => {
    expect(descriptions("For my friend's birthday, I want to deliver a present to Gallery 38")).toEqual([
      "For my friend's birthday, deliver a present to Gallery 38"
    ])
  })
})

describe("given words that say what runs in parallel", () => {
  it("when actions are listed and then an ordering word follows, then the listed ones are independent and the next waits for all", () => {
    expect(shape("Enroll in the course, order a pizza, and then drive to the campus")).toEqual([
      ["Enroll in the course", []],
      ["order a pizza", []],
      ["drive to the campus", [1, 2]]
    ])
    expect(shape("Rent a car and reserve a hotel. Finally, send me the confirmation.")).toEqual([
      ["Rent a car", []],
      ["reserve a hotel", []],
      ["send me the confirmation", [1, 2]]
    ])
  })

  it("when nothing says, then the plan stays a chain in the order written", () => {
    expect(shape("Pay the bill, book a car and buy stocks")).toEqual([
      ["Pay the bill", []],
      ["book a car", [1]],
      ["buy stocks", [2]]
    ])
    expect(shape("Add login. Write tests. Deploy.")).toEqual([
      ["Add login", []],
      ["Write tests", [1]],
      ["Deploy", [2]]
    ])
  })

  it("when a step says 'also', then it needs nothing before it", () => {
    expect(
      shape("Book a table for Friday. Also, I want to pay my credit card bill. And finally, buy insurance.")
    ).toEqual([
      ["Book a table for Friday", []],
      ["pay my credit card bill", []],
      ["buy insurance", [1, 2]]
    ])
  })

  it("when a listed action says 'at the same time', then it runs beside the action before it", () => {
    expect(shape("Find a gym and sign me up, and at the same time order a protein shake.")).toEqual([
      ["Find a gym", []],
      ["sign me up", [1]],
      ["order a protein shake", [1]]
    ])
  })

  it("when a step says 'meanwhile', 'at the same time' or 'in parallel', then it runs beside the step before it", () => {
    for (const word of ["Meanwhile", "At the same time", "In parallel", "Simultaneously"]) {
      expect(shape(`Build the app. Run the linter. ${word}, update the changelog.`), word).toEqual([
        ["Build the app", []],
        ["Run the linter", [1]],
        ["update the changelog", [1]]
      ])
    }
  })
})

describe("given words that order steps", () => {
  it("when 'then', 'after that', 'next', 'finally' join steps, then each waits for the one before", () => {
    expect(
      shape("First, transfer $100 to Anna. Then, play some jazz. Next, buy 10 shares. After that, clean the floor.")
    ).toEqual([
      ["transfer $100 to Anna", []],
      ["play some jazz", [1]],
      ["buy 10 shares", [2]],
      ["clean the floor", [3]]
    ])
  })

  it("when 'after X' names an earlier step, then the step waits for that one and the clause leaves the description", () => {
    expect(
      shape(
        "Submit my tax return, send an SMS to +1-555-123-4567 with the message 'Done, calling you next' and call the accountant after sending the message, then archive the papers"
      )
    ).toEqual([
      ["Submit my tax return", []],
      ["send an SMS to +1-555-123-4567 with the message 'Done, calling you next'", []],
      ["call the accountant", [2]],
      ["archive the papers", [1, 3]]
    ])
    expect(shape("Check the weather. Book a flight. After booking the flight, send me the details.")).toEqual([
      ["Check the weather", []],
      ["Book a flight", [1]],
      ["send me the details", [2]]
    ])
  })

  it("when 'once done' follows, then the step waits for the one just before", () => {
    expect(shape("Install the app. Once done, set an alarm at 8.")).toEqual([
      ["Install the app", []],
      ["set an alarm at 8", [1]]
    ])
  })

  it("when 'before X' or 'but first' says a step comes earlier, then it is planned first", () => {
    expect(shape("Deploy the app. Before you deploy, run the tests.")).toEqual([
      ["run the tests", []],
      ["Deploy the app", [1]]
    ])
    expect(
      shape("I need to attend the meeting, but first I need to install Zoom. After that, book a flight to Rome.")
    ).toEqual([
      ["install Zoom", []],
      ["attend the meeting", [1]],
      ["book a flight to Rome", [2]]
    ])
    expect(shape("Before deploying, run the tests. Then deploy the app.")).toEqual([
      ["run the tests", []],
      ["deploy the app", [1]]
    ])
  })

  it("when 'after' or 'before' names no step, then the words stay as a condition", () => {
    expect(descriptions("Send the notes after the meeting")).toEqual(["Send the notes after the meeting"])
  })
})

describe("given a step that refers back", () => {
  it("when it says 'it', 'them' or 'the results', then it waits for the step before", () => {
    expect(shape("Download the data and clean it, then plot the results")).toEqual([
      ["Download the data", []],
      ["clean it", [1]],
      ["plot the results", [2]]
    ])
  })

  it("when listed steps use the same pronoun, then they refer to the same step and run beside each other", () => {
    expect(shape("Fetch the rows, clean them and count them, then report.")).toEqual([
      ["Fetch the rows", []],
      ["clean them", [1]],
      ["count them", [1]],
      ["report", [2, 3]]
    ])
  })

  it("when it names what an earlier step made, then it waits for that step even in a list", () => {
    expect(
      shape(
        "Book a car for August 15. Also, order flowers for Anna and take a note of the booking details. Then call Anna."
      )
    ).toEqual([
      ["Book a car for August 15", []],
      ["order flowers for Anna", []],
      ["take a note of the booking details", [1]],
      ["call Anna", [2, 3]]
    ])
  })
})

describe("given a conditional", () => {
  it("when 'If X' opens a list of actions, then every action keeps the condition", () => {
    expect(descriptions("If I get the job, book a hotel in Paris and show me the latest technology news")).toEqual([
      "If I get the job, book a hotel in Paris",
      "If I get the job, show me the latest technology news"
    ])
    expect(descriptions("If the weather is good, I want to book a flight to LA")).toEqual([
      "If the weather is good, book a flight to LA"
    ])
  })

  it("when the condition refers to an earlier step, then its actions wait for it", () => {
    expect(shape("Check the weather in Oslo. If the weather is good, book a flight and rent a bike.")).toEqual([
      ["Check the weather in Oslo", []],
      ["If the weather is good, book a flight", [1]],
      ["If the weather is good, rent a bike", [2]]
    ])
  })

  it("when a condition follows an action, then it starts a conditional step that holds for the actions after it", () => {
    expect(
      shape(
        "Check my bank balance; if there is enough money, transfer $500 to Alice and send her a text saying 'Sent'."
      )
    ).toEqual([
      ["Check my bank balance", []],
      ["if there is enough money, transfer $500 to Alice", [1]],
      ["if there is enough money, send her a text saying 'Sent'", [2]]
    ])
    expect(descriptions("Run tests and if they pass, deploy the app")).toEqual([
      "Run tests",
      "if they pass, deploy the app"
    ])
  })

  it("when 'then' answers a condition, then the condition and its answer stay one step", () => {
    expect(descriptions("If the build fails, then roll back")).toEqual(["If the build fails, then roll back"])
    expect(descriptions("Run tests and if they pass, then deploy")).toEqual(["Run tests and if they pass, then deploy"])
  })
})

describe("given text that must never split", () => {
  it("when abbreviations, decimals or initials end in a period, then the task goes on", () => {
    expect(descriptions("Buy 10 shares of Apple Inc. (AAPL) and send me a summary.")).toEqual([
      "Buy 10 shares of Apple Inc. (AAPL)",
      "send me a summary"
    ])
    expect(descriptions("Apply for a U.S. passport and pay the fee of 12.50 dollars")).toEqual([
      "Apply for a U.S. passport",
      "pay the fee of 12.50 dollars"
    ])
    expect(descriptions("Email the draft to J. R. R. Tolkien, e.g. by Gmail, i.e. today")).toEqual([
      "Email the draft to J. R. R. Tolkien, e.g. by Gmail, i.e. today"
    ])
    expect(descriptions("Call Dr. Smith at 3.30 p.m. and tell him the news.")).toEqual([
      "Call Dr. Smith at 3.30 p.m.",
      "tell him the news"
    ])
  })

  it("when text is in single or double quotes, backticks or a URL, then nothing inside splits", () => {
    expect(
      descriptions(
        "I want to send an email to jo@example.com with the content: 'Hello, your task is completed. Please check the file, then reply.'"
      )
    ).toEqual([
      "send an email to jo@example.com with the content: 'Hello, your task is completed. Please check the file, then reply.'"
    ])
    expect(descriptions('Post "Saved, done. Then relax" and book a car')).toEqual([
      'Post "Saved, done. Then relax"',
      "book a car"
    ])
    expect(descriptions("Run `npm test, npm build` and deploy the site")).toEqual([
      "Run `npm test, npm build`",
      "deploy the site"
    ])
    expect(descriptions("Read https://example.com/a,b.html and summarize it")).toEqual([
      "Read https://example.com/a,b.html",
      "summarize it"
    ])
  })

  it("when an apostrophe is part of a word, then it opens no quote", () => {
    expect(descriptions("Transfer $100 to my friend's account, and then play Bob's song")).toEqual([
      "Transfer $100 to my friend's account",
      "play Bob's song"
    ])
  })
})

describe("given connectors and filler", () => {
  it("when a step opens with them, then its description reads as a command", () => {
    expect(
      descriptions(
        "Please install the app. Also, I want to set an alarm. Kindly help me book a taxi. After that, I would like to order a pizza. I'd like to rent a car, please assist me."
      )
    ).toEqual(["install the app", "set an alarm", "book a taxi", "order a pizza", "rent a car"])
  })

  it("when a polite question asks for actions, then they are commands, not questions", () => {
    expect(plan("Can you help me find a recipe for lasagna and then order the ingredients online?")).toMatchObject([
      { description: "find a recipe for lasagna", kind: "Processing" },
      { description: "order the ingredients online", kind: "Processing" }
    ])
    expect(plan("Is the cookie secure?")).toMatchObject([
      { description: "Is the cookie secure?", kind: "Clarification" }
    ])
  })

  it("when what follows the filler is not an action, then the text stays as written", () => {
    expect(descriptions("Just one more thing")).toEqual(["Just one more thing"])
    expect(descriptions("I want a pizza")).toEqual(["I want a pizza"])
  })

  it("when a sentence only sets the scene, then it is not a task, unless it is all there is", () => {
    expect(descriptions("I am planning a trip to Oslo. Book a car at the airport. Thank you.")).toEqual([
      "Book a car at the airport"
    ])
    expect(descriptions("I need your assistance in a series of tasks. First, renew my passport.")).toEqual([
      "renew my passport"
    ])
    expect(descriptions("Thank you.")).toEqual(["Thank you"])
    // One that names a file or a link is kept: the attachment belongs to the plan.
    expect(plan("Here is the spec: ./docs/spec.md. Summarize it.")).toMatchObject([
      { description: "Here is the spec: ./docs/spec.md", attachments: [{ kind: "FileRef", value: "./docs/spec.md" }] },
      { description: "Summarize it", dependsOn: [1] }
    ])
  })
})

// --- Properties ---------------------------------------------------------------------------------------------------

/** Requests made of the words the dependency rules react to, so the graph code is exercised, not only noise. */
const pieceArb = fc.constantFrom(
  "book a car",
  "pay the bill",
  "send it to Bob",
  "plot the results",
  "buy apples",
  "take a note of the booking details",
  "If it rains",
  "after booking the car",
  "Before you pay the bill",
  "but first",
  "Also",
  "Meanwhile",
  "then",
  "and then",
  "finally",
  "once done",
  "I want to",
  "Please",
  "Thank you",
  "I am planning a trip",
  "and",
  "as well as",
  ", ",
  "; ",
  ". ",
  "'quoted, text. here'",
  "U.S.",
  "Inc.",
  "e.g.",
  "\n",
  "- ",
  "1. ",
  "  "
)
const requestArb = fc.array(pieceArb, { maxLength: 30 }).map((pieces) => pieces.join(" "))

describe("Parser properties (dependencies)", () => {
  it.prop("every plan is a valid acyclic graph whose dependencies come first", [requestArb], ([text]) => {
    const parsed = Parser.parse(text)
    if (Either.isLeft(parsed)) {
      expect(parsed.left._tag).toBe("EmptyRequest")
      return
    }
    expect(Either.isRight(Graph.validate(parsed.right))).toBe(true)
    for (const task of parsed.right) {
      for (const dep of task.dependsOn) expect(dep).toBeLessThan(task.id)
      expect([...task.dependsOn]).toEqual([...task.dependsOn].sort((a, b) => a - b))
    }
  })

  it.prop("parsing is deterministic", [requestArb], ([text]) => {
    expect(Parser.parse(text)).toEqual(Parser.parse(`${text}`))
  })

  it.prop("the width of whitespace does not change the plan", [requestArb], ([text]) => {
    expect(Parser.parse(text.replace(/ /g, "   ").replace(/\n/g, "\r\n"))).toEqual(Parser.parse(text))
  })
})

describe("given scene-setting that names a place or date the steps refer to", () => {
  it("when a step says 'that day' or 'the destination', then the dropped context's date and place replace them", () => {
    expect(
      descriptions(
        "I am planning a trip to New York on October 30th, 2022. I need to know the weather for that day, buy a travel insurance from Top Insure Inc., and book a car at the destination."
      )
    ).toEqual([
      "know the weather in New York on October 30th, 2022",
      "buy a travel insurance from Top Insure Inc.",
      "book a car in New York"
    ])
  })

  it("when a step ends with 'there' or says 'on the same day', then the referent is named", () => {
    expect(
      descriptions("We are traveling to Paris on 2024-05-01. Book a hotel there, then reserve a table on the same day.")
    ).toEqual(["Book a hotel in Paris", "reserve a table on 2024-05-01"])
  })

  it("when the context is kept as a step itself, then nothing is substituted", () => {
    expect(descriptions("I want to know the weather in Boston on March 3rd. Then book a car for that day.")).toEqual([
      "know the weather in Boston on March 3rd",
      "book a car for that day"
    ])
  })

  it("when the dropped context names no place or date, then 'there' and 'that day' stay as written", () => {
    expect(descriptions("I am planning a trip. Book a hotel there and pack for that day.")).toEqual([
      "Book a hotel there",
      "pack for that day"
    ])
  })
})
