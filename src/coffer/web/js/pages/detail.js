// One instance: live status (polled every 2 s), its connection string, actions, and the
// panels for users, databases, backups, point-in-time restore, configuration, replicas,
// events, and charts of its metrics over time.

import { api, ApiError, q } from "../api.js";
import { errorBox, fill, h, progress, status, submitting, text } from "../dom.js";
import { address, BUSY } from "./instances.js";
import { metricsPanel } from "./metrics.js";
import {
  backupsPanel,
  configurationPanel,
  databasesPanel,
  eventsPanel,
  pitrPanel,
  replicasPanel,
  usersPanel,
} from "./panels.js";

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function actions(id, box) {
  const form = h("form", { class: "inline", id: "instance-actions" });
  const restart = h("button", { type: "button", class: "secondary", id: "restart" }, "Restart");
  const remove = h("button", { type: "button", class: "danger", id: "delete" }, "Delete");
  const confirm = h("button", { type: "button", class: "danger", id: "confirm-delete", hidden: true }, "Confirm delete");
  restart.addEventListener("click", () =>
    submitting(form, box, () => api.post(`/instances/${q(id)}/action`, { restart: {} })),
  );
  remove.addEventListener("click", () => {
    remove.hidden = true;
    confirm.hidden = false;
  });
  confirm.addEventListener("click", async () => {
    const ok = await submitting(form, box, () => api.del(`/instances/${q(id)}`));
    confirm.hidden = true;
    remove.hidden = false;
    if (ok) location.hash = "#/instances";
  });
  form.append(restart, remove, confirm);
  return form;
}

export async function render(root, scope, [id]) {
  const title = h("h1", { id: "instance-name" }, id);
  const state = h("p", { id: "instance-state" });
  const summary = h("div", { id: "instance-summary" });
  const box = errorBox("instance-error");
  const actionBox = errorBox("action-error");
  const users = usersPanel(id);
  const databases = databasesPanel(id);
  const backups = backupsPanel(id);
  const pitr = pitrPanel(id);
  const configuration = configurationPanel(id);
  const replicas = replicasPanel(id);
  const events = eventsPanel(id);
  const metrics = metricsPanel(id, scope);
  root.append(
    title,
    state,
    box,
    h("section", { class: "panel", id: "summary-panel" }, summary, actions(id, actionBox), actionBox),
    metrics.el,
    h("div", { class: "grid" }, users.el, databases.el, backups.el, pitr.el, configuration.el, replicas.el),
    h("div", { class: "grid" }, events.el),
  );

  let wasActive = false;
  scope.poll(async () => {
    let inst;
    try {
      inst = (await api.get(`/instances/${q(id)}`)).instance;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        state.replaceChildren(status("DELETED"), " This instance does not exist (any more).");
        summary.replaceChildren();
        return false;
      }
      throw err;
    }
    if (!scope.alive) return false;
    title.textContent = inst.name;
    fill(
      state,
      "Status ",
      status(inst.status),
      BUSY.has(inst.status) ? progress("operation in progress") : null,
      " · operating status ",
      status(inst.operating_status),
      inst.fault ? h("span", { class: "error", id: "instance-fault" }, inst.fault.message) : null,
    );
    const volume = inst.volume
      ? `${inst.volume.size} GB` + (inst.volume.used !== undefined ? ` (${inst.volume.used} GB used, ${inst.volume.used_percent}%)` : "")
      : "";
    summary.replaceChildren(
      facts([
        ["Connect to", h("code", { id: "connection-string" }, address(inst))],
        ["Datastore", `${inst.datastore.type} ${inst.datastore.version}`],
        ["Flavor", text(inst.flavor && inst.flavor.id)],
        ["Volume", volume],
        ["Created", text(inst.created)],
        ["Id", h("code", {}, inst.id)],
        ...(inst.cluster_id
          ? [["Cluster", h("a", { href: `#/clusters/${q(inst.cluster_id)}` }, inst.cluster_id)]]
          : []),
      ]),
    );
    pitr.refresh(inst);
    replicas.refresh(inst);
    await Promise.all([backups.refresh(), events.refresh(), configuration.refresh(inst)]);
    const active = inst.status === "ACTIVE";
    if (active && !wasActive) {
      // lists that ask the engine: on arrival and whenever the instance turns ACTIVE
      await Promise.all([users.load(), databases.load()]);
    }
    wasActive = active;
    return true;
  }, 2000, box);
}
