// Instances: the project's instances with their live status (polled every 2 s).

import { api } from "../api.js";
import { errorBox, h, instanceLink, progress, setRows, status, table, text } from "../dom.js";

export const BUSY = new Set([
  "BUILD", "BACKUP", "REBOOT", "RESIZE", "PROMOTE", "EJECT", "UPGRADE", "DETACH", "RESTART_REQUIRED",
]);

export function address(inst) {
  const host = inst.hostname || (inst.ip && inst.ip[0]) || "";
  return host && inst.port ? `${host}:${inst.port}` : host;
}

export function render(root, scope) {
  const box = errorBox("instances-error");
  const list = table(
    "instances",
    ["Name", "Status", "Datastore", "Flavor", "Volume (GB)", "Address", "Role"],
    [],
    "Loading…",
  );
  root.append(
    h("h1", {}, "Instances"),
    h("p", {}, h("a", { class: "button", href: "#/instances/new", id: "new-instance" }, "Create instance")),
    box,
    h("div", { class: "panel" }, list),
  );
  scope.poll(async () => {
    const data = await api.get("/instances?include_clustered=true");
    setRows(
      list,
      data.instances.map((inst) => [
        instanceLink(inst.id, inst.name),
        [status(inst.status), BUSY.has(inst.status) ? progress(`${inst.name} in progress`) : null],
        `${inst.datastore.type} ${inst.datastore.version}`,
        text(inst.flavor && inst.flavor.id),
        text(inst.volume && inst.volume.size),
        h("code", {}, address(inst)),
        inst.cluster_id
          ? h("a", { href: `#/clusters/${encodeURIComponent(inst.cluster_id)}` }, "cluster member")
          : inst.replica_of
            ? "replica"
            : "",
      ]),
      "No instances yet.",
    );
  }, 2000, box);
}
