/**
 * Editing a live plan (#15): a form over the tasks that have not started (change the text, the kind, what a task
 * waits for, or remove it) and a row to add a task after others. It posts the edits to `POST /api/sessions/:id/edit`,
 * which runs them through the planner's writer as one `EditPlan` (the same edits as `planner edit`); the planner
 * refuses what would break the plan (a cycle, a started task) and the refusal is shown as it is.
 */
import * as api from "./api.js"
import { h } from "./dom.js"

const kinds = [
  "Processing",
  "Analysis",
  "Retrieval",
  "CodeImplementation",
  "Refactor",
  "UnitTest",
  "ToolCall",
  "Clarification"
]

/** "2, 3" -> [2, 3]; undefined when the text is not a list of task numbers. */
export function parseIds(text) {
  const parts = String(text)
    .split(/[\s,]+/)
    .filter((part) => part.length > 0)
  if (!parts.every((part) => /^\d{1,9}$/.test(part) && Number(part) >= 1)) return undefined
  return parts.map(Number)
}

const sameIds = (a, b) => a.length === b.length && [...a].sort().every((id, index) => id === [...b].sort()[index])

const kindSelect = (value, label, id) =>
  h(
    "select",
    { "aria-label": label, id },
    kinds.map((kind) => h("option", { value: kind, selected: kind === value }, kind))
  )

/**
 * @param {{ sessionId: string, onEdited: (view: any, count: number) => void }} options
 * @returns {{ button: HTMLElement, panel: HTMLElement, update: (view: any, mode: string) => void }}
 */
export function mountPlanEditor({ sessionId, onEdited }) {
  const button = h(
    "button",
    {
      type: "button",
      id: "edit-plan",
      hidden: true,
      title: "Change the tasks that have not started, or add one, as `planner edit` does"
    },
    "Edit plan"
  )
  const panel = h("section", { class: "panel edit-panel", id: "edit-panel", hidden: true })
  let state = null
  let editable = false

  function close() {
    panel.hidden = true
    panel.replaceChildren()
  }

  function open() {
    if (state === null) return
    const rows = state.tasks
      .filter((task) => task.status === "Planned" && task.removed !== true)
      .map((task) => ({
        task,
        text: h("input", {
          type: "text",
          value: task.description,
          "aria-label": `Task ${task.id} description`,
          "data-edit-text": task.id
        }),
        kind: kindSelect(task.kind, `Task ${task.id} kind`, `edit-kind-${task.id}`),
        after: h("input", {
          type: "text",
          value: task.dependsOn.join(", "),
          size: 8,
          "aria-label": `Task ${task.id} waits for`,
          "data-edit-after": task.id
        }),
        remove: h("input", { type: "checkbox", "aria-label": `Remove task ${task.id}`, "data-edit-remove": task.id })
      }))
    const addText = h("input", {
      type: "text",
      id: "edit-add-text",
      placeholder: "A new task",
      "aria-label": "New task description"
    })
    const addKind = kindSelect("Processing", "New task kind", "edit-add-kind")
    const addAfter = h("input", {
      type: "text",
      id: "edit-add-after",
      size: 8,
      placeholder: "after 1, 2",
      "aria-label": "New task waits for"
    })
    const message = h("p", { class: "error-text", id: "edit-error", role: "alert", hidden: true })
    const save = h("button", { type: "submit", class: "primary", id: "edit-save" }, "Save edits")
    const cancel = h("button", { type: "button", id: "edit-cancel", onclick: close }, "Close")
    const form = h(
      "form",
      { class: "edit-form", id: "edit-form" },
      h("h2", null, "Edit the plan"),
      rows.length === 0
        ? h("p", { class: "muted" }, "No task is waiting to start: you can only add one.")
        : rows.map((row) =>
            h(
              "div",
              { class: "edit-row", "data-task": row.task.id },
              h("span", null, `#${row.task.id}`),
              row.text,
              row.kind,
              h("label", null, "after ", row.after),
              h("label", null, row.remove, " remove")
            )
          ),
      h(
        "div",
        { class: "edit-row edit-add" },
        h("span", null, "new"),
        addText,
        addKind,
        h("label", null, "after ", addAfter)
      ),
      message,
      h("div", { class: "form-row" }, save, cancel)
    )
    // A refusal shown is about what was sent: changing the form takes it away.
    form.addEventListener("input", () => {
      message.hidden = true
    })
    form.addEventListener("submit", async (event) => {
      event.preventDefault()
      const edits = []
      const fail = (text) => {
        message.textContent = text
        message.hidden = false
      }
      const newText = addText.value.trim()
      if (newText !== "") {
        const dependsOn = parseIds(addAfter.value)
        if (dependsOn === undefined) return fail("“after” takes task numbers, like 1, 2.")
        edits.push({ _tag: "AddTask", description: newText, kind: addKind.value, dependsOn })
      }
      for (const row of rows) {
        if (row.remove.checked) continue
        const text = row.text.value.trim()
        const change = { _tag: "SetTask", taskId: row.task.id }
        if (text === "") return fail(`Task #${row.task.id} needs a description (or tick remove).`)
        if (text !== row.task.description) change.description = text
        if (row.kind.value !== row.task.kind) change.kind = row.kind.value
        if (Object.keys(change).length > 2) edits.push(change)
        const after = parseIds(row.after.value)
        if (after === undefined) return fail(`“after” of task #${row.task.id} takes task numbers, like 1, 2.`)
        if (!sameIds(after, row.task.dependsOn))
          edits.push({ _tag: "SetDependencies", taskId: row.task.id, dependsOn: after })
      }
      for (const row of rows)
        if (row.remove.checked) edits.push({ _tag: "RemoveTask", taskId: row.task.id, rewire: true })
      if (edits.length === 0) return fail("Nothing changed.")
      save.disabled = true
      try {
        const view = await api.editPlan(sessionId, edits)
        close()
        onEdited(view, edits.length)
      } catch (error) {
        fail(error instanceof Error ? error.message : String(error))
      } finally {
        save.disabled = false
      }
    })
    panel.replaceChildren(form)
    panel.hidden = false
    ;(rows[0]?.text ?? addText).focus()
  }

  button.addEventListener("click", () => {
    if (panel.hidden) open()
    else close()
  })

  return {
    button,
    panel,
    /** Called with each view the page shows: the form is offered on a live, running session only. */
    update(view, mode) {
      state = view.state
      editable = mode === "live" && view.state.status === "Running"
      button.hidden = !editable
      if (!editable && !panel.hidden) close()
    }
  }
}
