import { auth } from "./auth.ts";
import "./ide/cohort-editor.ts";
import { connectGatewayToSession } from "./realtime/session.ts";

/**
 * `/embed/projects/{id}?file=main.py&output=false`: one project's editor with Run and output and
 * no site chrome, for an `<iframe>` on a lesson page. The hub serves this page (embed.html) for
 * every `/embed/` path; the session comes from the refresh cookie, as in the app.
 */
const match = /^\/embed\/projects\/(\d+)\/?$/.exec(window.location.pathname);
const root = document.getElementById("embed") ?? document.body;
if (match?.[1]) {
  const query = new URLSearchParams(window.location.search);
  const editor = document.createElement("cohort-editor");
  editor.setAttribute("project", match[1]);
  editor.setAttribute("file", query.get("file") || "main.py");
  if (query.get("output") === "false") editor.setAttribute("output", "false");
  root.append(editor);
  document.title = "Cohort editor";
  connectGatewayToSession();
  void auth.start();
} else {
  const note = document.createElement("p");
  note.textContent = "Nothing to embed here: the address should look like /embed/projects/12.";
  root.append(note);
}
