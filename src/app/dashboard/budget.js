/**
 * The budget (#16) in the dashboard: a session's spend on models and its limit among the facts of its page, and the
 * lines of the budget's events in its timeline. The figures are the state's (`PlannerState.budget`, the sum of the
 * session's usage events, folded on the server), so the page shows what `planner show` prints. A budget question is
 * a clarification like any other: the page's answer form answers it.
 */
import { h } from "./dom.js"

/** 48200 as "48,200", whatever the browser's locale, as the CLI writes it. */
export const formatTokens = (value) => String(Math.round(value)).replace(/\B(?=(\d{3})+(?!\d))/g, ",")

const formatUsd = (value) => `$${value < 1 ? value.toFixed(4) : value.toFixed(2)}`

/**
 * The spend fact: "spent 4,674 of 25,000 tokens" (with dollars when priced), its share of the limit as a small bar,
 * and the full figures in its title. Null when the session has neither a limit nor a recorded call.
 */
export function budgetFact(state) {
  const budget = state.budget
  if (budget === undefined) return null
  const spent = budget.spent.inputTokens + budget.spent.outputTokens
  const parts = [
    budget.tokens === undefined
      ? `spent ${formatTokens(spent)} tokens`
      : `spent ${formatTokens(spent)} of ${formatTokens(budget.tokens)} tokens`
  ]
  if (budget.spent.usd !== undefined || budget.usd !== undefined) {
    const dollars = formatUsd(budget.spent.usd ?? 0)
    parts.push(budget.usd === undefined ? dollars : `${dollars} of ${formatUsd(budget.usd)}`)
  }
  const title = [
    `${formatTokens(budget.spent.inputTokens)} in, ${formatTokens(budget.spent.outputTokens)} out, ${budget.spent.calls} model call${budget.spent.calls === 1 ? "" : "s"}`,
    ...(budget.questions.length > 0
      ? [`waiting for ${budget.questions.length === 1 ? "an answer" : "answers"} to raise the budget`]
      : [])
  ].join("; ")
  const share = budget.tokens === undefined ? undefined : Math.min(1, spent / budget.tokens)
  return h(
    "span",
    { class: "budget-fact", "data-testid": "budget", title },
    parts.join(", "),
    share === undefined
      ? null
      : h(
          "span",
          {
            class: `budget-meter${share >= 0.9 ? " budget-high" : ""}`,
            role: "meter",
            "aria-label": "share of the token budget spent",
            "aria-valuemin": "0",
            "aria-valuemax": String(budget.tokens),
            "aria-valuenow": String(spent)
          },
          h("span", { class: "budget-used", style: { width: `${Math.round(share * 100)}%` } })
        )
  )
}

/** A timeline line for the budget's events; undefined for any other event. */
export function budgetEventText(record) {
  const data = record.data
  switch (record.type) {
    case "ModelUsageRecorded": {
      const calls = data.usage
      const tokens = calls.reduce((total, call) => total + call.inputTokens + call.outputTokens, 0)
      const purposes = [...new Set(calls.map((call) => call.purpose))].join(", ")
      const task = calls[0]?.taskId === undefined ? "" : ` for #${calls[0].taskId}`
      return `${formatTokens(tokens)} tokens spent on ${purposes}${task}`
    }
    case "BudgetRaised": {
      const amount = (value) => (data.unit === "tokens" ? `${formatTokens(value)} tokens` : formatUsd(value))
      return `Budget raised by ${amount(data.by)} to ${amount(data.limit)}${data.taskId === undefined ? "" : ` for #${data.taskId}`}`
    }
    default:
      return undefined
  }
}

export const budgetEventLabels = { ModelUsageRecorded: "usage", BudgetRaised: "budget" }
