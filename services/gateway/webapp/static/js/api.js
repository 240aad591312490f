// The public API, as any client calls it: JSON over fetch, server-sent events read from a
// fetch stream (so the Authorization header goes along), errors as ApiError with the API's
// `detail`. The access token lives in this module's memory only; the refresh token is an
// HttpOnly cookie this code never sees, spent through /api/v1/auth/cookie/* with the CSRF
// token from the readable `llmnet_csrf` cookie.

const CSRF_COOKIE = "llmnet_csrf";
const CSRF_HEADER = "X-CSRF-Token";
const COOKIE_AUTH = "/api/v1/auth/cookie";

let accessToken = null;
let currentUser = null;
let refreshing = null;
let refreshTimer = null;
const sessionListeners = new Set();

export class ApiError extends Error {
  constructor(status, code, detail, requestId = null) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.requestId = requestId;
    this.fields = [];
  }
}

async function errorFrom(response) {
  const requestId = response.headers.get("x-request-id");
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy in front of the platform answered
  }
  if (body && typeof body.detail === "string") {
    const error = new ApiError(response.status, body.code || "error", body.detail, body.request_id || requestId);
    // A 422's per-field problems ([{field, message}]), e.g. a dataset's bad lines.
    error.fields = Array.isArray(body.fields) ? body.fields : [];
    return error;
  }
  const detail = `The server answered ${response.status} ${response.statusText || ""}`.trim();
  return new ApiError(response.status, "http_error", detail, requestId);
}

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

function forgetCsrf() {
  document.cookie = `${CSRF_COOKIE}=; Max-Age=0; path=/; SameSite=Strict`;
}

// ---- session ------------------------------------------------------------------------------

export function user() {
  return currentUser;
}

export function onSessionChange(listener) {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

function setSession(token, expiresIn) {
  accessToken = token;
  clearTimeout(refreshTimer);
  if (token && expiresIn) {
    // A minute before the access token expires, so open streams never see it lapse.
    const delay = Math.max(10, expiresIn - 60) * 1000;
    refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
  }
}

async function loadUser() {
  currentUser = await api("GET", "/api/v1/users/me");
  for (const listener of sessionListeners) listener(currentUser);
}

function signedOut() {
  setSession(null);
  currentUser = null;
  for (const listener of sessionListeners) listener(null);
}

/** Back into the session a reload left (via the login cookie); false when there is none. */
export async function restore() {
  if (!readCookie(CSRF_COOKIE)) return false;
  if (!(await refresh())) return false;
  await loadUser();
  return true;
}

export async function login(username, password) {
  const response = await raw("POST", `${COOKIE_AUTH}/login`, { body: { username, password } });
  const session = await response.json();
  setSession(session.access_token, session.expires_in);
  await loadUser();
}

export async function register(username, email, password) {
  await api("POST", "/api/v1/auth/register", { body: { username, email, password } });
  await login(username, password);
}

export async function logout() {
  const csrf = readCookie(CSRF_COOKIE) || "";
  try {
    await raw("POST", `${COOKIE_AUTH}/logout`, { headers: { [CSRF_HEADER]: csrf } });
  } finally {
    forgetCsrf();
    signedOut();
  }
}

/** A new access token from the login cookie; one at a time, across tabs too (the refresh
 * token rotates: two tabs spending the same one would end the login). */
export function refresh() {
  if (!refreshing) {
    const run = () => spendRefreshCookie();
    const locked = navigator.locks ? navigator.locks.request("llmnet-refresh", run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function spendRefreshCookie() {
  const csrf = readCookie(CSRF_COOKIE);
  if (!csrf) {
    signedOut();
    return false;
  }
  const response = await fetch(`${COOKIE_AUTH}/refresh`, {
    method: "POST",
    headers: { [CSRF_HEADER]: csrf },
    credentials: "same-origin",
  });
  if (!response.ok) {
    const error = await errorFrom(response);
    forgetCsrf();
    signedOut();
    if (response.status === 401) return false;
    throw error;
  }
  const session = await response.json();
  setSession(session.access_token, session.expires_in);
  return true;
}

// ---- requests -----------------------------------------------------------------------------

async function raw(method, path, { body, headers = {}, signal, form } = {}, retry = true) {
  const init = { method, headers: { ...headers }, signal, credentials: "same-origin" };
  if (form !== undefined) {
    init.body = form;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", `The server could not be reached (${error.message}).`);
  }
  if (response.status === 401 && accessToken && retry && (await refresh())) {
    return raw(method, path, { body, headers, signal, form }, false);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/** One API call: the parsed JSON answer (null for 204), or an ApiError. */
export async function api(method, path, options = {}) {
  const response = await raw(method, path, options);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** The access token, for requests made outside fetch (XMLHttpRequest uploads). */
export function authorization() {
  return accessToken ? `Bearer ${accessToken}` : null;
}

/**
 * Server-sent events of `path`, each handed to `onEvent({id, event, data})` as it arrives;
 * resolves when the server ends the stream. `lastEventId` resumes after that event.
 */
export async function streamEvents(method, path, { body, lastEventId, signal, onEvent }) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await raw(method, path, { body, headers, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: null, event: null, data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (;;) {
      const end = buffer.search(/\r\n|\r|\n/);
      // A lone "\r" at the end may be the first half of "\r\n": wait for the next chunk.
      if (end < 0 || (buffer[end] === "\r" && end === buffer.length - 1)) break;
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (event.data.length) {
          onEvent({ id: event.id, event: event.event || "message", data: event.data.join("\n") });
        }
        event = { id: null, event: null, data: [] };
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let fieldValue = colon < 0 ? "" : line.slice(colon + 1);
        if (fieldValue.startsWith(" ")) fieldValue = fieldValue.slice(1);
        if (name === "data") event.data.push(fieldValue);
        else if (name === "event") event.event = fieldValue;
        else if (name === "id") event.id = fieldValue;
      }
    }
  }
}

/** One API call's raw Response (for downloads: read it as a Blob, with its headers). */
/**
 * Follow a job's event stream (GET `path`) until `finished()`: a dropped connection is resumed
 * after the last event seen (Last-Event-ID), waiting 1 s, then twice as long each time (at most
 * 15 s); a refusal (a 4xx other than 429: gone, not yours) ends it. `onState(text)` gets what
 * to tell the person ("" once a connection ended well); `afterEach()` runs after each
 * connection (say, to read the stored record).
 */
export async function followEvents(path, { signal, onEvent, onState, finished, afterEach = null }) {
  let lastEventId = null;
  let delay = 1000;
  while (!signal.aborted && !finished()) {
    try {
      await streamEvents("GET", path, {
        signal,
        lastEventId,
        onEvent: (event) => {
          if (event.id) lastEventId = event.id;
          onEvent(event);
        },
      });
      onState("");
      delay = 1000;
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
        onState(`Live updates stopped: ${error.detail}`);
        return;
      }
      onState(`Live updates interrupted (${error.message}); reconnecting…`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
    if (signal.aborted) return;
    if (afterEach) await afterEach();
  }
}

export function response(method, path, options = {}) {
  return raw(method, path, options);
}
