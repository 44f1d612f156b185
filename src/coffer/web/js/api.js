// The dashboard's only way to data: Coffer's REST API on this origin, with the project
// token kept in sessionStorage (gone when the tab closes, never in a cookie).

const SESSION_KEY = "coffer.session";

/** An API call that failed: HTTP status, Trove fault name and the server's message. */
export class ApiError extends Error {
  constructor(status, fault, message) {
    super(message);
    this.status = status;
    this.fault = fault;
  }
}

/** The logged-in session ({token, project_id, project_name, is_admin}) or null. */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** Trove's envelope {"<fault>": {"code", "message"}} → ApiError; anything else too. */
async function failure(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    const entries = Object.entries(body || {});
    if (entries.length === 1 && entries[0][1] && entries[0][1].message) {
      return new ApiError(response.status, entries[0][0], String(entries[0][1].message));
    }
  } catch {
    // not JSON: fall through to the status line
  }
  const detail = text && text.length < 300 ? `: ${text}` : "";
  return new ApiError(response.status, "", `HTTP ${response.status} ${response.statusText}${detail}`);
}

async function send(method, url, token, body, { announce401 = true } = {}) {
  const headers = { Accept: "application/json", "X-Auth-Token": token };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "", `The Coffer server cannot be reached (${err.message}).`);
  }
  if (!response.ok) {
    const err = await failure(response);
    if (response.status === 401 && announce401) {
      window.dispatchEvent(new CustomEvent("coffer:unauthorized", { detail: err.message }));
    }
    throw err;
  }
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** Check a pasted token with GET /v1.0/whoami and keep the session on success. */
export async function login(token) {
  const clean = token.trim();
  if (!clean) throw new ApiError(400, "badRequest", "Paste the token from credentials.json.");
  const data = await send("GET", "/v1.0/whoami", clean, undefined, { announce401: false });
  const who = data.whoami;
  const s = {
    token: clean,
    project_id: who.project_id,
    project_name: who.project_name,
    is_admin: who.is_admin,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  return s;
}

/** A call under /v1.0/<project>; resolves to the parsed body (null when empty). */
export function call(method, path, body) {
  const s = session();
  if (!s) return Promise.reject(new ApiError(401, "unauthorized", "Log in first."));
  return send(method, `/v1.0/${encodeURIComponent(s.project_id)}${path}`, s.token, body);
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body) => call("POST", path, body),
  put: (path, body) => call("PUT", path, body),
  patch: (path, body) => call("PATCH", path, body),
  del: (path) => call("DELETE", path),
};

/** Path segment quoting for ids and names. */
export const q = encodeURIComponent;
