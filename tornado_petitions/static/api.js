// The HTTP API as the page uses it: JSON in and out, the session cookie for
// authentication, and the `_xsrf` cookie echoed in X-XSRFToken on every change.

/** An error answer of the API: `{"error": {"code", "message", "fields"?, "allowed"?}}`. */
export class ApiError extends Error {
  constructor(status, error, retryAfter) {
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || "error";
    this.fields = error.fields || {};
    this.allowed = error.allowed || null;
    this.retryAfter = retryAfter;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

/**
 * Send one request; resolve with the parsed JSON body (null for 204).
 * Rejects with ApiError on an error status, and with a TypeError when the
 * server cannot be reached at all.
 */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-XSRFToken"] = cookie("_xsrf");
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    const error = (parsed && parsed.error) || { code: "error", message: `${response.status} ${response.statusText}` };
    throw new ApiError(response.status, error, Number(response.headers.get("Retry-After")) || null);
  }
  return parsed;
}

export const api = {
  me: () => request("GET", "/api/me"),
  login: (email, password) => request("POST", "/api/auth/login", { email, password }),
  register: (name, email, password) => request("POST", "/api/auth/register", { name, email, password }),
  requestPasswordReset: (email) => request("POST", "/api/auth/password-reset", { email }),
  logout: () => request("POST", "/api/auth/logout"),
  petition: (id) => request("GET", `/api/petitions/${id}`),
  file: (fields) => request("POST", "/api/petitions", fields),
  myPetitions: () => request("GET", "/api/petitions/my"),
  mySignatures: () => request("GET", "/api/me/signatures"),
  list(status, cursor, limit = 100, q = "") {
    const query = new URLSearchParams({ limit: String(limit) });
    if (status) query.set("status", status);
    if (q) query.set("q", q);
    if (cursor) query.set("cursor", String(cursor));
    return request("GET", `/api/petitions?${query}`);
  },
  similar: (title) => request("GET", `/api/petitions/similar?${new URLSearchParams({ title })}`),
  events: (id) => request("GET", `/api/petitions/${id}/events`),
  timeline: (id, bucket) => request("GET", `/api/petitions/${id}/signatures/timeline?bucket=${bucket}`),
  queues: () => request("GET", "/api/admin/queues"),
  users(q, cursor) {
    const query = new URLSearchParams();
    if (q) query.set("q", q);
    if (cursor) query.set("cursor", String(cursor));
    return request("GET", `/api/admin/users?${query}`);
  },
  setRole: (id, role) => request("PATCH", `/api/admin/users/${id}`, { role }),
  audit: (cursor) => request("GET", `/api/admin/audit${cursor ? `?cursor=${cursor}` : ""}`),
  move(id, status, note, version, reason) {
    const body = { status, version };
    if (note) body.note = note;
    if (reason && status === "rejected") body.reason = reason;
    return request("PATCH", `/api/petitions/${id}/status`, body);
  },
  sign: (id) => request("POST", `/api/petitions/${id}/signatures`),
  // Signed out: {name, email, country, postcode?}; the answer is 202 {state: "pending", message}.
  signByEmail: (id, signer) => request("POST", `/api/petitions/${id}/signatures`, signer),
  withdraw: (id) => request("DELETE", `/api/petitions/${id}/signatures`),
};

/** Every petition of a listing (all pages), for the admins' dashboard. */
export async function listAll(status) {
  const petitions = [];
  let cursor = null;
  do {
    const page = await api.list(status, cursor);
    petitions.push(...page.petitions);
    cursor = page.next_cursor;
  } while (cursor);
  return petitions;
}

/** Whether the session behind the cookie is still good (false on a 401), for a feed deciding how to retry. */
export async function checkSession() {
  try {
    await api.me();
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}
