// Log in with a project token (the "token" of credentials.json).

import { login } from "../api.js";
import { errorBox, field, h, showError, submitting } from "../dom.js";

export function render(root) {
  const token = h("input", {
    id: "login-token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    size: 50,
  });
  const box = errorBox("login-error");
  const form = h(
    "form",
    { id: "login-form", class: "stack" },
    field("Project token", token),
    h("button", { type: "submit" }, "Log in"),
    box,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ok = await submitting(form, box, () => login(token.value));
    if (ok) location.hash = "#/instances";
  });
  root.append(
    h("h1", {}, "Log in"),
    h(
      "div",
      { class: "panel" },
      h(
        "p",
        {},
        "Paste the ",
        h("code", {}, "token"),
        " of your project's credentials.json (written by ",
        h("code", {}, "coffer server"),
        " or ",
        h("code", {}, "coffer project create"),
        "). It is kept in this tab only.",
      ),
      form,
    ),
  );
  const message = sessionStorage.getItem("coffer.loginMessage");
  if (message) {
    sessionStorage.removeItem("coffer.loginMessage");
    showError(box, new Error(`Logged out: ${message}`));
  }
  token.focus();
}
