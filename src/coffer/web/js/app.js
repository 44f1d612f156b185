// The dashboard's shell: hash routes → pages, the top bar, logging out.

import { clearSession, session } from "./api.js";
import { h } from "./dom.js";
import { Scope } from "./scope.js";
import * as admin from "./pages/admin.js";
import * as backups from "./pages/backups.js";
import * as clusters from "./pages/clusters.js";
import * as configurations from "./pages/configurations.js";
import * as create from "./pages/create.js";
import * as detail from "./pages/detail.js";
import * as instances from "./pages/instances.js";
import * as login from "./pages/login.js";

// [pattern, page]; a page's render(root, scope, params, query) may be async.
const ROUTES = [
  [/^\/login$/, login],
  [/^\/instances$/, instances],
  [/^\/instances\/new$/, create],
  [/^\/instances\/([^/]+)$/, detail],
  [/^\/backups$/, backups],
  [/^\/configurations$/, configurations],
  [/^\/configurations\/([^/]+)$/, configurations],
  [/^\/clusters$/, clusters],
  [/^\/clusters\/([^/]+)$/, clusters],
  [/^\/admin$/, admin],
];

let current = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/instances";
  const [path, query = ""] = raw.split("?");
  return { path, query: new URLSearchParams(query) };
}

function showSession() {
  const s = session();
  document.getElementById("nav").hidden = !s;
  document.getElementById("who").hidden = !s;
  document.getElementById("nav-admin").hidden = !(s && s.is_admin);
  document.getElementById("who-admin").hidden = !(s && s.is_admin);
  document.getElementById("who-project").textContent = s
    ? `Project ${s.project_name} (${s.project_id})`
    : "";
}

async function route() {
  if (current) current.dispose();
  current = new Scope();
  const scope = current;
  const { path, query } = parseHash();
  const main = document.getElementById("main");
  main.replaceChildren();
  showSession();
  if (!session() && path !== "/login") {
    location.hash = "#/login";
    return;
  }
  for (const [pattern, page] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      const params = match.slice(1).map(decodeURIComponent);
      try {
        await page.render(main, scope, params, query);
      } catch (err) {
        if (scope.alive) main.append(h("p", { class: "error", role: "alert" }, err.message));
      }
      return;
    }
  }
  main.append(h("h1", {}, "Not found"), h("p", {}, "No page at ", h("code", {}, path), "."));
}

window.addEventListener("hashchange", route);
window.addEventListener("coffer:unauthorized", (event) => {
  clearSession();
  sessionStorage.setItem("coffer.loginMessage", event.detail);
  if (location.hash !== "#/login") location.hash = "#/login";
  else route();
});
document.getElementById("logout").addEventListener("click", () => {
  clearSession();
  location.hash = "#/login";
});
route();
