// Clusters (Galera, Redis Cluster): list, create, and one cluster's members with grow,
// shrink and delete; the cluster's task is polled every 2 s while it works.

import { api, q } from "../api.js";
import { datastorePicker, fillFlavors, loadCatalog, sizeValue } from "../catalog.js";
import { errorBox, field, fill, h, instanceLink, options, progress, setRows, status, submitting, table, text } from "../dom.js";

/** `count` alike members for a create or grow body. */
function members(count, flavor, size, type) {
  const n = Number(count);
  if (!Number.isInteger(n) || n < 1) throw new Error("The number of members must be a whole number of at least 1.");
  return Array.from({ length: n }, () => {
    const m = { flavorRef: flavor, volume: { size: sizeValue(size) } };
    if (type) m.type = type;
    return m;
  });
}

function taskCell(c) {
  const busy = c.task && c.task.name !== "NONE";
  return [status(c.task ? c.task.name : ""), busy ? progress(`cluster ${c.name} in progress`) : null, " ", text(c.task && c.task.description)];
}

async function renderList(root, scope) {
  const catalog = await loadCatalog();
  if (!scope.alive) return;
  const box = errorBox("clusters-error");
  const list = table("clusters", ["Name", "Task", "Datastore", "Members"], [], "Loading…");
  const name = h("input", { id: "cluster-name", required: true });
  const dsSelect = h("select", { id: "cluster-datastore" });
  const versionSelect = h("select", { id: "cluster-version" });
  const flavor = h("select", { id: "cluster-flavor" });
  const volume = h("input", { id: "cluster-volume", value: "1", size: 6 });
  const count = h("input", { id: "cluster-count", value: "3", size: 4 });
  const createBox = errorBox("cluster-create-error");
  const picker = datastorePicker(dsSelect, versionSelect, catalog.datastores);
  fillFlavors(flavor, catalog.flavors);
  const form = h(
    "form",
    { id: "cluster-form", class: "stack" },
    field("Name", name),
    field("Datastore", dsSelect),
    field("Version", versionSelect),
    field("Flavor (every member)", flavor),
    field("Volume size (GB, every member)", volume),
    field("Members", count),
    h("button", { type: "submit" }, "Create cluster"),
    createBox,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let created = null;
    const ok = await submitting(form, createBox, async () => {
      const cluster = {
        name: name.value,
        datastore: picker.value(),
        instances: members(count.value, flavor.value, volume.value),
      };
      created = (await api.post("/clusters", { cluster })).cluster;
    });
    if (ok) location.hash = `#/clusters/${q(created.id)}`;
  });
  root.append(
    h("h1", {}, "Clusters"),
    box,
    h("section", { class: "panel" }, list),
    h("section", { class: "panel" }, h("h2", {}, "New cluster"), form),
  );
  scope.poll(async () => {
    const data = await api.get("/clusters");
    setRows(
      list,
      data.clusters.map((c) => [
        h("a", { href: `#/clusters/${q(c.id)}` }, c.name),
        taskCell(c),
        `${c.datastore.type} ${c.datastore.version}`,
        String(c.instances.length),
      ]),
      "No clusters.",
    );
  }, 2000, box);
}

async function renderCluster(root, scope, id) {
  const catalog = await loadCatalog();
  if (!scope.alive) return;
  const title = h("h1", { id: "cluster-title" }, id);
  const state = h("p", { id: "cluster-state" });
  const box = errorBox("cluster-error");
  const actionBox = errorBox("cluster-action-error");
  const list = table("cluster-members", ["Member", "Type", "Status", "Address", "Flavor", "Volume", ""], [], "Loading…");
  const flavor = h("select", { id: "grow-flavor" });
  fillFlavors(flavor, catalog.flavors);
  const volume = h("input", { id: "grow-volume", value: "1", size: 6 });
  const count = h("input", { id: "grow-count", value: "1", size: 4 });
  const type = h("select", { id: "grow-type" });
  options(type, [["", "(default)"], ["master", "master"], ["replica", "replica"]], "");
  const form = h(
    "form",
    { id: "grow-form", class: "inline" },
    field("Flavor", flavor),
    field("Volume (GB)", volume),
    field("Members", count),
    field("Type (Redis)", type),
    h("button", { type: "submit" }, "Grow"),
  );
  const act = (body) => submitting(form, actionBox, () => api.post(`/clusters/${q(id)}`, body));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act({ grow: members(count.value, flavor.value, volume.value, type.value) }).catch(() => {});
  });
  const del = h("button", { type: "button", class: "danger", id: "cluster-delete" }, "Delete cluster");
  del.addEventListener("click", async () => {
    const ok = await submitting(form, actionBox, () => api.del(`/clusters/${q(id)}`));
    if (ok) del.disabled = true;
  });
  root.append(
    title,
    state,
    box,
    h("section", { class: "panel" }, list),
    h("section", { class: "panel" }, h("h2", {}, "Grow, shrink, delete"), form, h("p", {}, del), actionBox),
  );
  scope.poll(async () => {
    let c;
    try {
      c = (await api.get(`/clusters/${q(id)}`)).cluster;
    } catch (err) {
      if (err.status === 404) {
        state.replaceChildren(status("DELETED"), " This cluster does not exist (any more).");
        setRows(list, [], "No members.");
        return false;
      }
      throw err;
    }
    title.textContent = `Cluster ${c.name}`;
    fill(
      state,
      "Task ",
      taskCell(c),
      ` · ${c.datastore.type} ${c.datastore.version}`,
      c.fault ? h("span", { class: "error" }, c.fault.message) : null,
    );
    setRows(
      list,
      c.instances.map((m) => [
        instanceLink(m.id, m.name),
        [text(m.type), m.master ? ` of ${m.master}` : ""],
        status(m.status),
        h("code", {}, `${text(m.ip && m.ip[0])}:${text(m.port)}`),
        text(m.flavor && m.flavor.id),
        `${text(m.volume && m.volume.size)} GB`,
        h(
          "button",
          { type: "button", class: "secondary", onclick: () => act({ shrink: [{ id: m.id }] }) },
          "Remove",
        ),
      ]),
      "No members.",
    );
    return true;
  }, 2000, box);
}

export function render(root, scope, params) {
  return params.length ? renderCluster(root, scope, params[0]) : renderList(root, scope);
}
