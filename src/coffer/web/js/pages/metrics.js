// An instance's metrics over time: charts of what GET /instances/{id}/metrics returns,
// redrawn every few seconds while the page is open.

import { api, ApiError, q } from "../api.js";
import { bytes, lineChart, niceBytes, number } from "../charts.js";
import { errorBox, fill, h, options, showError } from "../dom.js";

const WINDOWS = [
  ["5", "Last 5 minutes"],
  ["15", "Last 15 minutes"],
  ["60", "Last hour"],
  ["360", "Last 6 hours"],
  ["1440", "Last 24 hours"],
];
const REFRESH_MS = 5000;
const RATE_TITLES = {
  transactions: "Transactions/s",
  queries: "Queries/s",
  commands: "Commands/s",
};

function series(samples, key) {
  return samples.map((s) => [Date.parse(s.at), s[key] ?? null]);
}

function charts(data) {
  const samples = data.samples;
  const since = Date.parse(data.since);
  const until = Date.parse(data.until);
  const sizes = samples.map((s) => s.volume_size_bytes).filter((v) => v !== null);
  const common = { since, until };
  const out = [
    lineChart({ ...common, id: "chart-connections", title: "Connections", points: series(samples, "connections"), format: (v) => number(v, 0) }),
    lineChart({
      ...common,
      id: "chart-rate",
      title: RATE_TITLES[data.rate_kind] || "Operations/s",
      points: series(samples, "rate_per_s"),
      format: (v) => number(v, 1),
    }),
    lineChart({ ...common, id: "chart-cpu", title: "CPU % (of one CPU)", points: series(samples, "cpu_percent"), format: (v) => `${number(v, 1)}%` }),
    lineChart({ ...common, id: "chart-memory", title: "Memory", points: series(samples, "memory_bytes"), format: bytes, nice: niceBytes }),
    lineChart({
      ...common,
      id: "chart-volume",
      title: "Volume used",
      points: series(samples, "volume_used_bytes"),
      format: bytes,
      ceiling: sizes.length ? sizes.at(-1) : undefined,
    }),
  ];
  if (samples.some((s) => s.replication_lag_s !== null)) {
    out.push(
      lineChart({ ...common, id: "chart-lag", title: "Replication lag (s)", points: series(samples, "replication_lag_s"), format: (v) => number(v, 1) }),
    );
  }
  return out;
}

/** The metrics panel of instance `id`; it polls in `scope` until the page is left. */
export function metricsPanel(id, scope) {
  const choice = h("select", { id: "metrics-window", "aria-label": "Time window" });
  options(choice, WINDOWS, "60");
  const note = h("p", { class: "notice", id: "metrics-note" });
  const grid = h("div", { class: "charts", id: "metrics-charts" });
  const box = errorBox("metrics-error");
  const el = h(
    "section",
    { class: "panel metrics", id: "metrics-panel" },
    h("div", { class: "panel-head" }, h("h2", {}, "Metrics"), choice),
    box,
    grid,
    note,
  );
  const load = async () => {
    let data;
    try {
      data = (await api.get(`/instances/${q(id)}/metrics?minutes=${q(choice.value)}&points=240`)).metrics;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return false; // gone: the page says so
      throw err;
    }
    if (!scope.alive) return false;
    fill(grid, charts(data));
    const step = data.step_s ? `, ${number(data.step_s, 0)} s averaged per point` : "";
    note.textContent =
      `${data.samples.length} points${step}; a sample every ${number(data.sample_interval_s, 0)} s at most, ` +
      `kept ${number(data.retention_s / 3600, 0)} h. Times in UTC.`;
    return true;
  };
  choice.addEventListener("change", () => load().catch((err) => showError(box, err)));
  scope.poll(load, REFRESH_MS, box);
  return { el };
}
