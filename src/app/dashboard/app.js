/** The dashboard's entry: `/` is the session list, `/sessions/<id>` one session. */
import { h } from "./dom.js"
import { mountSession } from "./session.js"
import { mountSessions } from "./sessions.js"

const root = document.getElementById("app")
const match = /^\/sessions\/([^/]+)\/?$/.exec(location.pathname)
if (root === null) {
  throw new Error("the page has no #app element")
} else if (match !== null) {
  mountSession(root, decodeURIComponent(match[1]))
} else if (location.pathname === "/") {
  mountSessions(root)
} else {
  root.replaceChildren(
    h("p", { class: "empty" }, "There is no such page. ", h("a", { href: "/" }, "See the sessions."))
  )
}
