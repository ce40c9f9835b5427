/** Kinds: what kind of task a description is (see the rules in ../Parser.ts). */
import type { NodeKind } from "../Task.js"
import { extractAttachments, linkSpans } from "./Attachments.js"
import { collapse } from "./Text.js"

const politeLeadIn =
  /^(?:(?:please|pls|plz|kindly|also|now|just|so|ok|okay|and)\b[\s,!]+|(?:can|could|would|will) you (?:please )?|(?:i|we) (?:need|want|would like) (?:you )?to |(?:you|we) (?:should|must|need to|have to) |(?:let'?s|let us|go ahead and|make sure to|try to) )+/iu

const ambiguityMarker =
  /\b(?:tbd|tbc|to be (?:decided|determined|confirmed|clarified)|unclear|not clear|not sure|unsure|clarify|clarification|confirm with|check with (?:the )?(?:user|client|customer|team)|ask (?:the )?(?:user|client|customer|team)|which one|ambiguous)\b|\(\?\)|\?{2,}/iu

const toolVerbs: ReadonlySet<string> = new Set([
  "run",
  "rerun",
  "re-run",
  "execute",
  "exec",
  "install",
  "reinstall",
  "uninstall",
  "invoke",
  "call"
])
const commandLine =
  /^(?:\$\s+\S|(?:npm|npx|pnpm|yarn|bun|deno|git|cargo|rustc|rustup|docker|kubectl|helm|pip|pip3|pipx|poetry|uv|python|python3|node|tsc|vitest|jest|pytest|mvn|gradle|curl|wget|ssh|scp|rsync|psql|sqlite3|terraform|ansible|brew|apt|apt-get|sudo|bash|sh|zsh)(?:\s|$))/u

const testWritingVerbs: ReadonlySet<string> = new Set([
  "write",
  "add",
  "create",
  "implement",
  "update",
  "extend",
  "expand",
  "improve",
  "fix",
  "cover",
  "generate"
])
const aboutTests =
  /\b(?:unit[- ]?tests?|tests|test[- ](?:cases?|suites?|coverage|harness)|tests?\s+(?:for|of|that|to)\b)|\btest\b[.!]?$/iu
const refactorVerbs: ReadonlySet<string> = new Set(["refactor", "restructure", "reorganise", "reorganize"])
const retrievalVerbs: ReadonlySet<string> = new Set([
  "read",
  "fetch",
  "retrieve",
  "download",
  "get",
  "grab",
  "pull",
  "load",
  "open",
  "consult",
  "scrape",
  "crawl",
  "browse",
  "visit"
])
const analysisVerbs: ReadonlySet<string> = new Set([
  "analyse",
  "analyze",
  "review",
  "investigate",
  "inspect",
  "evaluate",
  "assess",
  "audit",
  "examine",
  "diagnose",
  "study",
  "compare",
  "research",
  "triage"
])
const implementationVerbs: ReadonlySet<string> = new Set(["implement", "code", "program"])
const genericBuildVerbs: ReadonlySet<string> = new Set([
  "add",
  "build",
  "create",
  "write",
  "develop",
  "fix",
  "make",
  "wire",
  "integrate",
  "introduce",
  "support",
  "port",
  "update",
  "change",
  "modify",
  "edit",
  "extend",
  "rewrite",
  "set",
  "hook",
  "expose",
  "handle",
  "enable"
])
const codeNouns =
  /\b(?:functions?|methods?|class(?:es)?|interfaces?|enums?|structs?|traits?|modules?|components?|endpoints?|apis?|routes?|routers?|handlers?|controllers?|middlewares?|services?|servers?|backend|frontend|ui|buttons?|screens?|widgets?|login|logout|sign[- ]?up|sign[- ]?in|auth|authentication|authori[sz]ation|oauth|cookies?|databases?|db|schemas?|migrations?|quer(?:y|ies)|cli|commands?|flags?|parsers?|scripts?|librar(?:y|ies)|plugins?|hooks?|features?|bugs?|bugfix|cach(?:e|es|ing)|validation|validators?|logging|loggers?|pipelines?|webhooks?|integrations?|code|algorithms?|regex(?:es)?|sdk|graphql|crud|websockets?|jwt|pagination|seriali[sz](?:er|ation)|encryption|hashing|error handling|retries|retry)\b/iu
const sourceFile =
  /\.(?:ts|tsx|js|jsx|mjs|cjs|rs|py|go|java|kt|rb|php|c|h|cc|cpp|hpp|cs|swift|scala|sql|sh|vue|svelte)$/i

/** `text` with backtick spans and URLs blanked, so markers inside code or links are not read as prose. */
const prose = (text: string): string => {
  let blanked = text.replace(/`[^`]*`/g, (code) => " ".repeat(code.length))
  for (const link of linkSpans(blanked)) {
    blanked = blanked.slice(0, link.start) + " ".repeat(link.end - link.start) + blanked.slice(link.end)
  }
  return blanked
}

/** The kind of task a description is, by the rules in the module comment. */
export const classify = (description: string): NodeKind => {
  const text = collapse(description)
  const plain = prose(text)
  if (/\?[\s)\]"'”’»]*$/u.test(plain) || ambiguityMarker.test(plain)) return "Clarification"
  const lead = text.replace(politeLeadIn, "")
  const lower = lead.toLowerCase()
  const verb = /^\p{L}[\p{L}-]*/u.exec(lower)?.[0] ?? ""
  const rest = lower.slice(verb.length)
  if (/`[^`]*[^`\s][^`]*`/.test(text) || toolVerbs.has(verb) || commandLine.test(lead)) return "ToolCall"
  if ((testWritingVerbs.has(verb) && aboutTests.test(rest)) || /^(?:unit[- ]?tests?|tests for)\b/.test(lower)) {
    return "UnitTest"
  }
  if (refactorVerbs.has(verb) || /\brefactor(?:s|ed|ing)?\b/.test(lower)) return "Refactor"
  const attachments = extractAttachments(text)
  if ((retrievalVerbs.has(verb) || lower.startsWith("look up")) && attachments.length > 0) return "Retrieval"
  if (analysisVerbs.has(verb)) return "Analysis"
  const refersToSource = attachments.some(
    (attachment) => attachment.kind === "FileRef" && sourceFile.test(attachment.value)
  )
  if (implementationVerbs.has(verb) || (genericBuildVerbs.has(verb) && (codeNouns.test(rest) || refersToSource))) {
    return "CodeImplementation"
  }
  return "Processing"
}
