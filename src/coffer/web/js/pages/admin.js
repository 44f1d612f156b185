// Admin view (admin tokens only): every project's instances, the database hosts and their
// capacity, quotas, datastore versions. All from the mgmt API.

import { api, q, session } from "../api.js";
import {
  errorBox,
  field,
  h,
  instanceLink,
  options,
  progress,
  setRows,
  showError,
  status,
  submitting,
  table,
  text,
} from "../dom.js";
import { address, BUSY } from "./instances.js";

function section(id, title, ...children) {
  return h("section", { class: "panel", id }, h("h2", {}, title), ...children);
}

function quotasSection(projects) {
  const box = errorBox("quota-error");
  const project = h("select", { id: "quota-project" });
  options(project, projects.map((p) => [p.id, `${p.name} (${p.id})`]), session().project_id);
  const list = table("quotas", ["Resource", "In use", "Limit"], [], "Loading…");
  const resource = h("select", { id: "quota-resource" });
  const limit = h("input", { id: "quota-limit", size: 6, placeholder: "-1 = unlimited" });
  const form = h(
    "form",
    { id: "quota-form", class: "inline" },
    field("Resource", resource),
    field("Limit", limit),
    h("button", { type: "submit" }, "Set quota"),
  );
  const load = async () => {
    const data = await api.get(`/mgmt/quotas/${q(project.value)}`);
    setRows(list, data.quotas.map((x) => [x.resource, text(x.in_use), String(x.limit)]));
    options(resource, data.quotas.map((x) => [x.resource, x.resource]), resource.value);
  };
  project.addEventListener("change", () => load().catch((err) => showError(box, err)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const s = limit.value.trim();
    const value = /^-?[0-9]+$/.test(s) ? Number(s) : s;
    const ok = await submitting(form, box, () =>
      api.put(`/mgmt/quotas/${q(project.value)}`, { quotas: { [resource.value]: value } }),
    );
    if (ok) await load();
  });
  return { el: section("quotas-panel", "Quotas", field("Project", project), list, form, box), load };
}

function versionsSection() {
  const box = errorBox("versions-error");
  const list = table("datastore-versions", ["Datastore", "Name", "Version", "Manager", "Active", ""], [], "Loading…");
  const form = h("form", {}, list, box);
  const load = async () => {
    const data = await api.get("/mgmt/datastore-versions");
    const ds = (await api.get("/datastores")).datastores;
    const names = new Map(ds.map((d) => [d.id, d.name]));
    setRows(
      list,
      data.versions.map((v) => [
        names.get(v.datastore) || v.datastore,
        v.name,
        v.version,
        text(v.datastore_manager),
        v.active ? "yes" : "no",
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () =>
              submitting(form, box, () =>
                api.patch(`/mgmt/datastore-versions/${q(v.id)}`, { active: !v.active }).then(load),
              ),
          },
          v.active ? "Deactivate" : "Activate",
        ),
      ]),
    );
  };
  return { el: section("versions-panel", "Datastore versions", form), load };
}

export async function render(root, scope) {
  root.append(h("h1", {}, "Admin"));
  if (!session().is_admin) {
    root.append(h("p", { class: "error" }, "This view needs an admin token."));
    return;
  }
  const box = errorBox("admin-error");
  const hosts = table("hosts", ["Host", "Address", "Alive", "Last heartbeat", "Instances", "Ports", "Engines", "Facts"], [], "Loading…");
  const all = table("all-instances", ["Name", "Project", "Status", "Datastore", "Address"], [], "Loading…");
  const projects = (await api.get("/mgmt/projects")).projects;
  if (!scope.alive) return;
  const quotas = quotasSection(projects);
  const versions = versionsSection();
  root.append(
    box,
    section("hosts-panel", "Database hosts", hosts),
    section("all-instances-panel", "Instances of all projects", all),
    h("div", { class: "grid" }, quotas.el, versions.el),
  );
  const names = new Map(projects.map((p) => [p.id, p.name]));
  scope.poll(async () => {
    const [h1, i1] = await Promise.all([api.get("/mgmt/hosts"), api.get("/mgmt/instances")]);
    setRows(
      hosts,
      h1.hosts.map((x) => [
        x.name,
        h("code", {}, x.address),
        status(x.alive ? "ALIVE" : "LOST"),
        text(x.last_heartbeat),
        String(x.instances),
        x.ports,
        Object.entries(x.engines || {})
          .map(([engine, versions]) => `${engine} ${[].concat(versions).join("/")}`)
          .join(", "),
        Object.entries(x.facts || {})
          .map(([k, v]) => `${k}: ${v}`)
          .join("; "),
      ]),
      "No hosts registered.",
    );
    setRows(
      all,
      i1.instances.map((inst) => [
        instanceLink(inst.id, inst.name),
        names.get(inst.tenant_id) || text(inst.tenant_id),
        [status(inst.status), BUSY.has(inst.status) ? progress(inst.name) : null],
        `${inst.datastore.type} ${inst.datastore.version}`,
        h("code", {}, address(inst)),
      ]),
      "No instances.",
    );
  }, 2000, box);
  await Promise.all([quotas.load(), versions.load()]).catch((err) => showError(box, err));
}
