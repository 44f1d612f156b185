// Small DOM helpers. Text always goes in as text nodes (never HTML), so nothing the API
// returns can become markup or script.

/** h("tag", {attr: value, onclick: fn}, ...children) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "value") {
      el.value = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Replace an element's children, skipping null/undefined/false and flattening arrays. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** A table with a header row; `rows` are arrays of cells (nodes or text). */
export function table(id, headings, rows, emptyText = "None.") {
  const body = h("tbody", {});
  fillRows(body, headings.length, rows, emptyText);
  return h("table", { id }, h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))), body);
}

/** Replace a table's body rows in place (keeps the rest of the page as it is). */
export function setRows(tableEl, rows, emptyText = "None.") {
  const cols = tableEl.tHead.rows[0].cells.length;
  fillRows(tableEl.tBodies[0], cols, rows, emptyText);
}

function fillRows(body, cols, rows, emptyText) {
  if (!rows.length) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: cols, class: "empty" }, emptyText)));
    return;
  }
  body.replaceChildren(...rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c)))));
}

/** The status of a resource, coloured by class; data-status holds the raw value. */
export function status(value) {
  const text = value || "UNKNOWN";
  return h("span", { class: `status status-${text.toLowerCase()}`, "data-status": text }, text);
}

/** An indeterminate progress bar, for a long operation whose status is being polled. */
export function progress(label) {
  return h("span", { class: "progress", role: "progressbar", "aria-label": label });
}

/** The place next to a form where the API's error message appears. */
export function errorBox(id) {
  return h("p", { id, class: "error", role: "alert", hidden: true });
}

export function showError(box, err) {
  box.textContent = err && err.message ? err.message : String(err);
  box.hidden = false;
}

export function clearError(box) {
  box.textContent = "";
  box.hidden = true;
}

/**
 * Run `action` for a form submit: the submit button is disabled meanwhile, the error box
 * cleared first and filled with the API's message if the action fails. Returns whether
 * it succeeded.
 */
export async function submitting(form, box, action) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  clearError(box);
  try {
    await action();
    return true;
  } catch (err) {
    showError(box, err);
    return false;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

/** <select> options from [value, label] pairs. */
export function options(select, pairs, selected) {
  select.replaceChildren(
    ...pairs.map(([value, label]) =>
      h("option", { value, selected: String(value) === String(selected) }, label),
    ),
  );
}

/** A labelled control. */
export function field(label, control) {
  return h("label", {}, label, control);
}

/** "a, b ,c" → ["a", "b", "c"] */
export function words(text) {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A link to an instance's page. */
export function instanceLink(id, label) {
  return h("a", { href: `#/instances/${encodeURIComponent(id)}` }, label || id);
}

/** "" for null, else the value as text. */
export function text(value) {
  return value === null || value === undefined ? "" : String(value);
}
