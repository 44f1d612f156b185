// Backups of the project: list with live status and verification, take one, restore one
// into a new instance, delete; backup schedules.

import { api, q } from "../api.js";
import { errorBox, field, h, instanceLink, options, setRows, submitting, table, text } from "../dom.js";
import { BACKUP_HEADINGS, backupRows } from "./panels.js";

function schedulesSection(scope, instances) {
  const box = errorBox("schedule-error");
  const listBox = errorBox("schedules-list-error");
  const list = table("schedules", ["Name", "Instance", "Full", "Incremental", "Retention", "Last run", ""], [], "Loading…");
  const instance = h("select", { id: "schedule-instance" });
  options(instance, instances.map((i) => [i.id, i.name]));
  const name = h("input", { id: "schedule-name" });
  const full = h("input", { id: "schedule-full", placeholder: "0 3 * * *", required: true });
  const incremental = h("input", { id: "schedule-incremental", placeholder: "0 * * * *" });
  const retention = h("input", { id: "schedule-retention", value: "7d", size: 6 });
  const form = h(
    "form",
    { id: "schedule-form", class: "inline" },
    field("Instance", instance),
    field("Name", name),
    field("Full (cron, UTC)", full),
    field("Incremental (cron)", incremental),
    field("Retention", retention),
    h("button", { type: "submit" }, "Add schedule"),
  );
  const load = async () => {
    const data = await api.get("/backup_schedules");
    setRows(
      list,
      data.backup_schedules.map((s) => [
        text(s.name),
        instanceLink(s.instance_id),
        h("code", {}, s.full),
        h("code", {}, text(s.incremental)),
        s.retention,
        `${text(s.last_run)} ${text(s.last_run_at)}`,
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () => submitting(form, listBox, () => api.del(`/backup_schedules/${q(s.id)}`).then(load)),
          },
          "Delete",
        ),
      ]),
      "No schedules.",
    );
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const s = { instance_id: instance.value, full: full.value, retention: retention.value };
    if (name.value) s.name = name.value;
    if (incremental.value) s.incremental = incremental.value;
    const ok = await submitting(form, box, () => api.post("/backup_schedules", { backup_schedule: s }));
    if (ok) await load();
  });
  scope.poll(load, 10000, listBox);
  return h("section", { class: "panel" }, h("h2", {}, "Schedules"), listBox, list, form, box);
}

export async function render(root, scope) {
  const instances = (await api.get("/instances")).instances;
  if (!scope.alive) return;
  const box = errorBox("backups-error");
  const createBox = errorBox("backup-create-error");
  const list = table("backups", ["Instance", ...BACKUP_HEADINGS, ""], [], "Loading…");
  const instance = h("select", { id: "backups-instance" });
  options(instance, instances.map((i) => [i.id, i.name]));
  const name = h("input", { id: "backups-name", required: true });
  const incremental = h("input", { id: "backups-incremental", type: "checkbox" });
  const form = h(
    "form",
    { id: "backups-form", class: "inline" },
    field("Instance", instance),
    field("Name", name),
    h("label", { class: "check" }, incremental, "incremental"),
    h("button", { type: "submit" }, "Take backup"),
  );
  const refresh = async () => {
    const data = await api.get("/backups");
    const rows = backupRows(data.backups);
    setRows(
      list,
      data.backups.map((b, i) => [
        instanceLink(b.instance_id),
        ...rows[i],
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () => submitting(form, box, () => api.del(`/backups/${q(b.id)}`).then(refresh)),
          },
          "Delete",
        ),
      ]),
      "No backups.",
    );
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const backup = { name: name.value, instance: instance.value };
    if (incremental.checked) backup.incremental = 1;
    const ok = await submitting(form, createBox, () => api.post("/backups", { backup }));
    if (ok) {
      form.reset();
      await refresh();
    }
  });
  root.append(
    h("h1", {}, "Backups"),
    h("section", { class: "panel" }, h("h2", {}, "Take a backup"), form, createBox),
    box,
    h("section", { class: "panel" }, list),
    schedulesSection(scope, instances),
  );
  scope.poll(refresh, 2000, box);
}
