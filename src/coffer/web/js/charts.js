// A small hand-made SVG line chart: one series of [time, value] points over a time
// window, drawn with SVG elements and attributes only (no inline styles, no markup from
// strings), so that it works under the dashboard's strict Content-Security-Policy.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 360;
const HEIGHT = 150;
const PAD = { left: 56, right: 10, top: 10, bottom: 22 };

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** 1 234 567 → "1.2 MiB"; null stays "–". */
export function bytes(value) {
  if (value === null || value === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let amount = value;
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? Math.round(amount) : amount.toFixed(1)} ${units[unit]}`;
}

/** A number with at most `digits` decimals; null stays "–". */
export function number(value, digits = 1) {
  if (value === null || value === undefined) return "–";
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

function clock(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/** A round upper bound for the y axis at or above `max` (1, 2, 5 × 10^n). */
export function niceCeiling(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= max) return step * power;
  }
  return 10 * power;
}

/** A round upper bound for a byte axis: 1, 2 or 5 × a power of 1024 (1 KiB, 2 MiB ...). */
export function niceBytes(max) {
  if (!(max > 0)) return 1024;
  const unit = 1024 ** Math.max(0, Math.floor(Math.log(max) / Math.log(1024)));
  return niceCeiling(max / unit) * unit;
}

/**
 * The path of a series: `M`/`L` commands through the points that have a value, a gap
 * (a new `M`) wherever a value is missing. Pure; `x` and `y` map time and value to
 * pixels. Returns {d, drawn} with the number of points drawn.
 */
export function linePath(points, x, y) {
  const parts = [];
  let pen = "M";
  let drawn = 0;
  for (const [t, v] of points) {
    if (v === null || v === undefined) {
      pen = "M";
      continue;
    }
    parts.push(`${pen}${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    pen = "L";
    drawn += 1;
  }
  return { d: parts.join(" "), drawn };
}

/**
 * A chart as a <figure>: `spec` = {id, title, points: [[ms, value|null]], since, until
 * (ms), format(value) → text, ceiling (optional: a fixed top, drawn dashed, e.g. a
 * volume's size), nice (optional: max → the axis top; niceCeiling by default)}. The <svg> carries data-points (how many points are drawn).
 */
export function lineChart(spec) {
  const { id, title, points, since, until, format } = spec;
  const values = points.map(([, v]) => v).filter((v) => v !== null && v !== undefined);
  const nice = spec.nice || niceCeiling;
  const top = spec.ceiling ? Math.max(spec.ceiling, ...values) : nice(Math.max(0, ...values));
  const span = Math.max(until - since, 1);
  const x = (t) => PAD.left + ((t - since) / span) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
  const { d, drawn } = linePath(points, x, y);

  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart-svg",
    role: "img",
    "aria-label": title,
    "data-points": drawn,
  });
  chart.append(
    svg("line", { class: "axis", x1: PAD.left, y1: y(0), x2: WIDTH - PAD.right, y2: y(0) }),
    svg("line", { class: "grid-line", x1: PAD.left, y1: y(top), x2: WIDTH - PAD.right, y2: y(top) }),
    svg("text", { class: "tick", x: PAD.left - 4, y: y(top) + 4, "text-anchor": "end" }, format(top)),
    svg("text", { class: "tick", x: PAD.left - 4, y: y(0) + 4, "text-anchor": "end" }, format(0)),
    svg("text", { class: "tick", x: PAD.left, y: HEIGHT - 6 }, clock(since)),
    svg("text", { class: "tick", x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end" }, clock(until)),
  );
  if (spec.ceiling) {
    chart.append(
      svg("line", { class: "ceiling", x1: PAD.left, y1: y(spec.ceiling), x2: WIDTH - PAD.right, y2: y(spec.ceiling) }),
    );
  }
  if (drawn) {
    chart.append(svg("path", { class: "line", d, fill: "none" }));
    const [lastT, lastV] = points.filter(([, v]) => v !== null && v !== undefined).at(-1);
    chart.append(svg("circle", { class: "last", cx: x(lastT).toFixed(1), cy: y(lastV).toFixed(1), r: 2.5 }));
  } else {
    chart.append(
      svg("text", { class: "empty", x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle" }, "No samples yet"),
    );
  }
  const latest = values.length ? format(values.at(-1)) : "–";
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.id = id;
  const caption = document.createElement("figcaption");
  const value = document.createElement("span");
  value.className = "chart-latest";
  value.textContent = latest;
  caption.append(title, " ", value);
  figure.append(caption, chart);
  return figure;
}
