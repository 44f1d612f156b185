// Create an instance: datastore, version, flavor, volume, configuration group, databases,
// users; or restore a backup into a new instance (restorePoint), optionally to a point in
// time (restore_time). Options come from the API; its error shows next to the form.

import { api, q } from "../api.js";
import { datastorePicker, fillFlavors, loadCatalog, sizeValue } from "../catalog.js";
import { errorBox, field, h, options, submitting, words } from "../dom.js";

function userRow() {
  const row = h(
    "div",
    { class: "user-row" },
    h("input", { class: "user-name", placeholder: "user name", "aria-label": "User name" }),
    h("input", {
      class: "user-password",
      type: "password",
      autocomplete: "new-password",
      placeholder: "password",
      "aria-label": "User password",
    }),
    h("input", {
      class: "user-databases",
      placeholder: "databases (comma-separated)",
      "aria-label": "User databases",
    }),
  );
  return row;
}

function usersFrom(container) {
  const users = [];
  for (const row of container.querySelectorAll(".user-row")) {
    const name = row.querySelector(".user-name").value.trim();
    const password = row.querySelector(".user-password").value;
    if (!name && !password) continue;
    const user = { name, password };
    const dbs = words(row.querySelector(".user-databases").value);
    if (dbs.length) user.databases = dbs.map((d) => ({ name: d }));
    users.push(user);
  }
  return users;
}

export async function render(root, scope, _params, query) {
  root.append(h("h1", {}, "Create instance"));
  const [catalog, configs, backups] = await Promise.all([
    loadCatalog(),
    api.get("/configurations"),
    api.get("/backups"),
  ]);
  if (!scope.alive) return;

  const name = h("input", { id: "create-name", name: "name", required: true });
  const dsSelect = h("select", { id: "create-datastore" });
  const versionSelect = h("select", { id: "create-version" });
  const flavor = h("select", { id: "create-flavor" });
  const volume = h("input", { id: "create-volume", inputmode: "numeric", value: "1", size: 6 });
  const configuration = h("select", { id: "create-configuration" });
  const databases = h("input", { id: "create-databases", placeholder: "shop, audit" });
  const users = h("div", { id: "create-users" }, userRow());
  const backup = h("select", { id: "create-backup" });
  const restoreTime = h("input", {
    id: "create-restore-time",
    placeholder: "2026-01-31T12:00:00 (UTC; empty: the backup as taken)",
    size: 40,
  });
  const box = errorBox("create-error");

  const fillConfigurations = (_ds, version) => {
    const usable = configs.configurations.filter(
      (c) => version && c.datastore_version_id === version.id,
    );
    options(configuration, [["", "(none)"], ...usable.map((c) => [c.id, c.name])], "");
  };
  const picker = datastorePicker(dsSelect, versionSelect, catalog.datastores, fillConfigurations);
  fillFlavors(flavor, catalog.flavors, catalog.flavors[0] && catalog.flavors[0].str_id);

  const restorable = backups.backups.filter((b) => b.status === "COMPLETED");
  options(
    backup,
    [["", "(none: a new, empty instance)"], ...restorable.map((b) => [b.id, `${b.name} (${b.id})`])],
    query.get("backup") || "",
  );
  const followBackup = () => {
    const b = restorable.find((x) => x.id === backup.value);
    if (b && b.datastore) picker.select(b.datastore.type, b.datastore.version_id);
  };
  backup.addEventListener("change", followBackup);
  followBackup();

  const form = h(
    "form",
    { id: "create-form", class: "stack" },
    field("Name", name),
    field("Datastore", dsSelect),
    field("Version", versionSelect),
    field("Flavor", flavor),
    field("Volume size (GB)", volume),
    field("Configuration group", configuration),
    field("Databases (comma-separated)", databases),
    h(
      "fieldset",
      {},
      h("legend", {}, "Users"),
      users,
      h("button", { type: "button", class: "secondary", onclick: () => users.append(userRow()) }, "Add another user"),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Restore"),
      field("From backup", backup),
      field("Point in time (optional)", restoreTime),
    ),
    h("button", { type: "submit", id: "create-submit" }, "Create instance"),
    box,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: name.value,
      flavorRef: flavor.value,
      volume: { size: sizeValue(volume.value) },
      datastore: picker.value(),
    };
    const dbs = words(databases.value);
    if (dbs.length) body.databases = dbs.map((d) => ({ name: d }));
    const us = usersFrom(users);
    if (us.length) body.users = us;
    if (configuration.value) body.configuration = configuration.value;
    if (backup.value) {
      body.restorePoint = { backupRef: backup.value };
      if (restoreTime.value.trim()) body.restorePoint.restore_time = restoreTime.value.trim();
    }
    let created = null;
    const ok = await submitting(form, box, async () => {
      created = (await api.post("/instances", { instance: body })).instance;
    });
    if (ok && scope.alive) location.hash = `#/instances/${q(created.id)}`;
  });
  root.append(h("div", { class: "panel" }, form));
}
