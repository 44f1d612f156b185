// Configuration groups: list, create, and one group's values edited with the API's
// validation messages shown in place.

import { api, q } from "../api.js";
import { datastorePicker, loadCatalog } from "../catalog.js";
import { errorBox, field, h, instanceLink, options, setRows, submitting, table, text } from "../dom.js";

/** A typed value for the API from what was typed: numbers and booleans by the parameter's
 * type; anything that does not parse goes as typed, for the API to explain. */
export function typedValue(raw, param) {
  const s = raw.trim();
  const type = param ? param.type : "";
  if (type === "integer" && /^-?[0-9]+$/.test(s)) return Number(s);
  if (type === "float" && s !== "" && !Number.isNaN(Number(s))) return Number(s);
  if (type === "boolean" && /^(true|false)$/i.test(s)) return s.toLowerCase() === "true";
  if (!param && /^-?[0-9]+$/.test(s)) return Number(s);
  return s;
}

function paramHint(p) {
  if (!p) return "";
  const range = p.min !== undefined || p.max !== undefined ? ` ${text(p.min)}…${text(p.max)}` : "";
  const choices = p.choices ? ` (${p.choices.join(", ")})` : "";
  return `${p.type}${range}${choices}${p.restart_required ? ", restart required" : ""}`;
}

async function renderList(root, scope) {
  const catalog = await loadCatalog();
  if (!scope.alive) return;
  const box = errorBox("configurations-error");
  const list = table("configurations", ["Name", "Datastore", "Description", "Updated"], [], "Loading…");
  const name = h("input", { id: "config-name", required: true });
  const dsSelect = h("select", { id: "config-datastore" });
  const versionSelect = h("select", { id: "config-version" });
  const description = h("input", { id: "config-description" });
  const values = h("textarea", { id: "config-values", placeholder: '{"maxmemory-policy": "allkeys-lru"}' }, "{}");
  const createBox = errorBox("config-create-error");
  const picker = datastorePicker(dsSelect, versionSelect, catalog.datastores);
  const form = h(
    "form",
    { id: "config-form", class: "stack" },
    field("Name", name),
    field("Datastore", dsSelect),
    field("Version", versionSelect),
    field("Description", description),
    field("Values (JSON object)", values),
    h("button", { type: "submit" }, "Create configuration group"),
    createBox,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let created = null;
    const ok = await submitting(form, createBox, async () => {
      let parsed;
      try {
        parsed = JSON.parse(values.value || "{}");
      } catch (err) {
        throw new Error(`The values are not valid JSON: ${err.message}`);
      }
      const configuration = { name: name.value, values: parsed, datastore: picker.value() };
      if (description.value) configuration.description = description.value;
      created = (await api.post("/configurations", { configuration })).configuration;
    });
    if (ok) location.hash = `#/configurations/${q(created.id)}`;
  });
  root.append(
    h("h1", {}, "Configuration groups"),
    box,
    h("section", { class: "panel" }, list),
    h("section", { class: "panel" }, h("h2", {}, "New group"), form),
  );
  scope.poll(async () => {
    const data = await api.get("/configurations");
    setRows(
      list,
      data.configurations.map((c) => [
        h("a", { href: `#/configurations/${q(c.id)}` }, c.name),
        `${c.datastore_name} ${c.datastore_version_name}`,
        text(c.description),
        text(c.updated),
      ]),
      "No configuration groups.",
    );
  }, 5000, box);
}

async function renderGroup(root, scope, id) {
  const group = (await api.get(`/configurations/${q(id)}`)).configuration;
  const params = (await api.get(`/datastores/versions/${q(group.datastore_version_id)}/parameters`))[
    "configuration-parameters"
  ];
  if (!scope.alive) return;
  const byName = new Map(params.map((p) => [p.name, p]));
  const box = errorBox("config-values-error");
  const note = h("p", { class: "ok-note", id: "config-note", role: "status" });
  const rows = h("tbody", {});
  const addRow = (key, value) => {
    const valueInput = h("input", { class: "config-value", value: text(value), "aria-label": `Value of ${key}` });
    const tr = h(
      "tr",
      { "data-key": key },
      h("td", {}, h("code", {}, key)),
      h("td", {}, valueInput),
      h("td", { class: "notice" }, paramHint(byName.get(key))),
      h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => tr.remove() }, "Remove")),
    );
    rows.append(tr);
  };
  Object.entries(group.values).forEach(([k, v]) => addRow(k, v));
  const newKey = h("select", { id: "config-new-key" });
  options(newKey, params.map((p) => [p.name, p.name]));
  const addForm = h(
    "div",
    { class: "inline" },
    field("Parameter", newKey),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "config-add-parameter",
        onclick: () => {
          if (!rows.querySelector(`tr[data-key="${CSS.escape(newKey.value)}"]`)) addRow(newKey.value, "");
        },
      },
      "Add parameter",
    ),
  );
  const form = h(
    "form",
    { id: "config-values-form" },
    h("table", { id: "config-values-table" }, h("thead", {}, h("tr", {}, ["Parameter", "Value", "Rule", ""].map((t) => h("th", {}, t)))), rows),
    addForm,
    h("p", {}, h("button", { type: "submit", id: "config-save" }, "Save values")),
    box,
    note,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    note.textContent = "";
    const values = {};
    for (const tr of rows.querySelectorAll("tr")) {
      const key = tr.dataset.key;
      values[key] = typedValue(tr.querySelector(".config-value").value, byName.get(key));
    }
    const ok = await submitting(form, box, async () => {
      if (Object.values(values).includes("***")) {
        throw new Error("A secret value is shown masked (***): type its real value before saving.");
      }
      await api.put(`/configurations/${q(id)}`, { configuration: { values } });
    });
    if (ok) note.textContent = "Saved; attached instances get the new values.";
  });
  const deleteBox = errorBox("config-delete-error");
  const del = h("button", { type: "button", class: "danger", id: "config-delete" }, "Delete group");
  const delForm = h("form", { class: "inline" }, del, deleteBox);
  del.addEventListener("click", async () => {
    const ok = await submitting(delForm, deleteBox, () => api.del(`/configurations/${q(id)}`));
    if (ok) location.hash = "#/configurations";
  });
  const attached = table("config-instances", ["Instance"], [], "Loading…");
  root.append(
    h("h1", {}, `Configuration group ${group.name}`),
    h("p", {}, `${group.datastore_name} ${group.datastore_version_name} · ${text(group.description)}`),
    h("section", { class: "panel" }, h("h2", {}, "Values"), form),
    h("section", { class: "panel" }, h("h2", {}, "Attached instances"), attached),
    h("section", { class: "panel" }, delForm),
  );
  const inst = (await api.get(`/configurations/${q(id)}/instances`)).instances;
  setRows(attached, inst.map((i) => [instanceLink(i.id, i.name)]), "Not attached to any instance.");
}

export function render(root, scope, params) {
  return params.length ? renderGroup(root, scope, params[0]) : renderList(root, scope);
}
