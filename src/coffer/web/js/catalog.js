// Choices for forms, loaded from the API: datastores with their versions, flavors.

import { api } from "./api.js";
import { options } from "./dom.js";

/** {datastores, flavors} from GET /datastores and GET /flavors. */
export async function loadCatalog() {
  const [ds, fl] = await Promise.all([api.get("/datastores"), api.get("/flavors")]);
  return { datastores: ds.datastores, flavors: fl.flavors };
}

/** The flavor reference the API takes (Coffer's string id, Trove's int id otherwise). */
export function flavorRef(flavor) {
  return flavor.str_id ?? String(flavor.id);
}

export function fillFlavors(select, flavors, selected) {
  options(
    select,
    flavors.map((f) => [flavorRef(f), `${f.name} (${f.ram} MB RAM, ${f.vcpus} vCPU)`]),
    selected,
  );
}

/**
 * Wire a datastore <select> and a version <select>: versions follow the datastore, the
 * datastore's default version preselected. `onChange(datastore, version)` after each.
 */
export function datastorePicker(dsSelect, versionSelect, datastores, onChange = () => {}) {
  const fillVersions = (versionId) => {
    const ds = datastores.find((d) => d.name === dsSelect.value);
    const versions = ds ? ds.versions : [];
    options(
      versionSelect,
      versions.map((v) => [v.id, v.name === v.version ? v.name : `${v.name} (${v.version})`]),
      versionId || (ds && ds.default_version),
    );
    onChange(ds, versions.find((v) => v.id === versionSelect.value));
  };
  options(dsSelect, datastores.map((d) => [d.name, d.name]), datastores[0] && datastores[0].name);
  dsSelect.addEventListener("change", () => fillVersions());
  versionSelect.addEventListener("change", () => {
    const ds = datastores.find((d) => d.name === dsSelect.value);
    onChange(ds, ds && ds.versions.find((v) => v.id === versionSelect.value));
  });
  fillVersions();
  return {
    /** Select a datastore by name and a version by id (e.g. a backup's). */
    select(name, versionId) {
      dsSelect.value = name;
      fillVersions(versionId);
    },
    /** {type, version} for a request body, the version by name as Trove clients send it. */
    value() {
      const ds = datastores.find((d) => d.name === dsSelect.value);
      const v = ds && ds.versions.find((x) => x.id === versionSelect.value);
      return { type: dsSelect.value, version: v ? v.name : versionSelect.value };
    },
  };
}

/** A volume size as the API takes it: digits become a number, anything else goes as
 * typed so that the API's validation message explains what is wrong. */
export function sizeValue(raw) {
  const s = String(raw).trim();
  return /^[0-9]+$/.test(s) ? Number(s) : s;
}
