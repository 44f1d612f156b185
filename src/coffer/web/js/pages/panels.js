// The panels of an instance's page. Each returns {el, refresh(inst)}: `el` is placed once,
// `refresh` is called with the latest instance view (its own polling is the page's).

import { api, ApiError, q } from "../api.js";
import {
  clearError,
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
  words,
} from "../dom.js";

const panel = (id, title, ...children) =>
  h("section", { class: "panel", id }, h("h2", {}, title), ...children);

/** A list read from the engine, which may not support it: on failure (e.g. the API's 501
 * for a datastore without databases) the message shows in `box`. {items|null, status}. */
async function listOrMessage(path, key, box) {
  try {
    const data = await api.get(path);
    clearError(box);
    return { items: data[key], status: 200 };
  } catch (err) {
    showError(box, err);
    return { items: null, status: err.status };
  }
}

export function usersPanel(id) {
  const box = errorBox("users-error");
  const list = table("users", ["Name", "Host", "Databases"], [], "Loading…");
  const listBox = errorBox("users-list-error");
  const name = h("input", { id: "user-name", required: true });
  const password = h("input", { id: "user-password", type: "password", autocomplete: "new-password" });
  const host = h("input", { id: "user-host", placeholder: "% (any)", size: 10 });
  const dbs = h("input", { id: "user-databases", placeholder: "comma-separated" });
  const form = h(
    "form",
    { id: "user-form", class: "inline" },
    field("Name", name),
    field("Password", password),
    field("Host", host),
    field("Databases", dbs),
    h("button", { type: "submit" }, "Add user"),
  );
  const load = async () => {
    const { items: users } = await listOrMessage(`/instances/${q(id)}/users`, "users", listBox);
    if (users === null) return;
    setRows(
      list,
      users.map((u) => [u.name, text(u.host), (u.databases || []).map((d) => d.name).join(", ")]),
      "No users.",
    );
  };
  const note = h("p", { class: "ok-note", id: "user-note", role: "status" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = { name: name.value.trim(), password: password.value };
    if (host.value.trim()) user.host = host.value.trim();
    const names = words(dbs.value);
    if (names.length) user.databases = names.map((n) => ({ name: n }));
    note.textContent = "";
    const ok = await submitting(form, box, () => api.post(`/instances/${q(id)}/users`, { users: [user] }));
    if (ok) {
      note.textContent = `User ${user.name} added.`;
      form.reset();
      await load().catch((err) => showError(listBox, err));
    }
  });
  return {
    el: panel("users-panel", "Users", listBox, list, form, box, note),
    load,
  };
}

export function databasesPanel(id) {
  const box = errorBox("databases-error");
  const listBox = errorBox("databases-list-error");
  const list = table("databases", ["Name"], [], "Loading…");
  const name = h("input", { id: "database-name", required: true });
  const form = h(
    "form",
    { id: "database-form", class: "inline" },
    field("Name", name),
    h("button", { type: "submit" }, "Add database"),
  );
  const load = async () => {
    const got = await listOrMessage(`/instances/${q(id)}/databases`, "databases", listBox);
    list.hidden = form.hidden = got.status === 501; // this datastore has no databases
    if (got.items === null) return;
    const dbs = got.items;
    setRows(list, dbs.map((d) => [d.name]), "No databases.");
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { databases: [{ name: name.value.trim() }] };
    const ok = await submitting(form, box, () => api.post(`/instances/${q(id)}/databases`, body));
    if (ok) {
      form.reset();
      await load().catch((err) => showError(listBox, err));
    }
  });
  return { el: panel("databases-panel", "Databases", listBox, list, form, box), load };
}

function backupRows(backups) {
  return backups.map((b) => [
    b.name,
    [
      status(b.status),
      b.status === "BUILDING" || b.status === "NEW"
        ? [progress(`backup ${b.name}`), b.progress_bytes ? ` ${b.progress_bytes} bytes` : ""]
        : null,
      b.fail_reason ? h("div", { class: "error" }, b.fail_reason) : null,
    ],
    text(b.created),
    b.size === null || b.size === undefined ? "" : `${b.size} GB`,
    b.parent_id ? "incremental" : "full",
    b.verification ? [status(b.verification.status), " ", text(b.verification.detail)] : "",
    b.status === "COMPLETED"
      ? h("a", { href: `#/instances/new?backup=${q(b.id)}`, class: "button restore-backup" }, "Restore")
      : "",
  ]);
}

export const BACKUP_HEADINGS = ["Name", "Status", "Created", "Size", "Kind", "Verification", ""];
export { backupRows };

export function backupsPanel(id) {
  const box = errorBox("backup-error");
  const list = table("instance-backups", BACKUP_HEADINGS, [], "Loading…");
  const name = h("input", { id: "backup-name", required: true });
  const incremental = h("input", { id: "backup-incremental", type: "checkbox" });
  const form = h(
    "form",
    { id: "backup-form", class: "inline" },
    field("Name", name),
    h("label", { class: "check" }, incremental, "incremental"),
    h("button", { type: "submit" }, "Take backup"),
  );
  const refresh = async () => {
    const data = await api.get(`/instances/${q(id)}/backups`);
    setRows(list, backupRows(data.backups), "No backups.");
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const backup = { name: name.value, instance: id };
    if (incremental.checked) backup.incremental = 1;
    const ok = await submitting(form, box, () => api.post("/backups", { backup }));
    if (ok) {
      form.reset();
      await refresh().catch((err) => showError(box, err));
    }
  });
  return { el: panel("backups-panel", "Backups", list, form, box), refresh };
}

/** Point-in-time restore, shown while the instance reports a restorable window. */
export function pitrPanel(id) {
  const box = errorBox("pitr-error");
  const windowText = h("p", { id: "pitr-window" });
  const name = h("input", { id: "pitr-name", required: true });
  const when = h("input", { id: "pitr-time", size: 24 });
  const form = h(
    "form",
    { id: "pitr-form", class: "inline" },
    field("New instance name", name),
    field("Restore to (UTC)", when),
    h("button", { type: "submit" }, "Restore to this time"),
  );
  const el = panel("pitr-panel", "Point-in-time restore", windowText, form, box);
  el.hidden = true;
  let inst = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: name.value,
      flavorRef: inst.flavor.id,
      volume: { size: inst.volume.size },
      datastore: { type: inst.datastore.type, version: inst.datastore.version },
      restorePoint: { instanceRef: id, restore_time: when.value.trim() },
    };
    let created = null;
    const ok = await submitting(form, box, async () => {
      created = (await api.post("/instances", { instance: body })).instance;
    });
    if (ok) location.hash = `#/instances/${q(created.id)}`;
  });
  return {
    el,
    refresh(latest) {
      inst = latest;
      const from = latest.earliest_restorable_time;
      const until = latest.latest_restorable_time;
      el.hidden = !(from && until);
      if (el.hidden) return;
      windowText.textContent = `Restorable from ${from} to ${until} (UTC).`;
      if (!when.value) when.value = until;
    },
  };
}

export function configurationPanel(id) {
  const box = errorBox("instance-configuration-error");
  const current = h("p", { id: "instance-configuration" });
  const select = h("select", { id: "attach-configuration" });
  const form = h(
    "form",
    { class: "inline", id: "attach-form" },
    field("Configuration group", select),
    h("button", { type: "submit" }, "Attach"),
    h("button", { type: "button", class: "secondary", id: "detach-configuration" }, "Detach"),
  );
  let loadedFor = null;
  const update = (configuration) =>
    submitting(form, box, () => api.put(`/instances/${q(id)}`, { instance: { configuration } }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (select.value) update(select.value);
  });
  form.querySelector("#detach-configuration").addEventListener("click", () => update(null));
  return {
    el: panel("configuration-panel", "Configuration group", current, form, box),
    async refresh(inst) {
      current.replaceChildren(
        inst.configuration
          ? h("a", { href: `#/configurations/${q(inst.configuration.id)}` }, inst.configuration.name)
          : "None attached.",
      );
      const version = `${inst.datastore.type}/${inst.datastore.version}`;
      if (loadedFor === version) return;
      loadedFor = version;
      const groups = (await api.get("/configurations")).configurations.filter(
        (c) => c.datastore_name === inst.datastore.type && c.datastore_version_name === inst.datastore.version,
      );
      options(select, groups.map((c) => [c.id, c.name]), inst.configuration && inst.configuration.id);
    },
  };
}

export function replicasPanel(id) {
  const body = h("div", { id: "replicas" });
  const box = errorBox("replica-error");
  const name = h("input", { id: "replica-name", required: true });
  const form = h(
    "form",
    { class: "inline", id: "replica-form" },
    field("New replica name", name),
    h("button", { type: "submit" }, "Add replica"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ok = await submitting(form, box, () =>
      api.post("/instances", { instance: { name: name.value, replica_of: id } }),
    );
    if (ok) form.reset();
  });
  return {
    el: panel("replicas-panel", "Replication", body, form, box),
    refresh(inst) {
      const parts = [];
      if (inst.replica_of) parts.push(h("p", {}, "Replica of ", instanceLink(inst.replica_of.id)));
      if (inst.replicas && inst.replicas.length) {
        parts.push(h("p", {}, "Replicas: ", inst.replicas.map((r) => [instanceLink(r.id), " "])));
      }
      if (inst.replication) {
        const r = inst.replication;
        parts.push(
          h("p", {}, `Role ${text(r.role)}, streaming ${text(r.streaming)}, lag ${text(r.lag_seconds)} s`),
        );
      }
      if (!parts.length) parts.push(h("p", { class: "notice" }, "No replicas."));
      body.replaceChildren(...parts);
      form.hidden = Boolean(inst.replica_of || inst.cluster_id);
    },
  };
}

/** The audit trail of this instance, when the server has the events API (else hidden). */
export function eventsPanel(id) {
  const list = table("events", ["When", "Who", "Action", "Outcome", "Detail"], [], "Loading…");
  const el = panel("events-panel", "Events", list);
  let missing = false;
  return {
    el,
    async refresh() {
      if (missing) return;
      try {
        const data = await api.get(`/events?resource_id=${q(id)}&limit=20`);
        setRows(
          list,
          data.events.map((e) => [text(e.created), text(e.actor), text(e.action), text(e.outcome), text(e.detail)]),
          "No events.",
        );
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          missing = true;
          el.hidden = true;
          return;
        }
        throw err;
      }
    },
  };
}

