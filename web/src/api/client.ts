// The one way the UI talks to the hub: same-origin fetch with the session cookies, the CSRF
// header on every change, one silent refresh on an expired access token, and errors that carry
// the hub's message and the offending parameter.
import type { components } from "./schema";

export type Schemas = components["schemas"];

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly parameter?: string,
  ) {
    super(message);
  }
}

/** Thrown when the session is gone: the app sends the person to the login page. */
export class SignedOut extends Error {}

let onSignedOut: () => void = () => {};
export function setSignedOutHandler(f: () => void) {
  onSignedOut = f;
}

function cookie(name: string): string | undefined {
  return document.cookie
    .split("; ")
    .find((c) => c.startsWith(name + "="))
    ?.slice(name.length + 1);
}

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") {
    const csrf = cookie("hub_csrf");
    if (csrf) headers["X-CSRF-Token"] = decodeURIComponent(csrf);
  }
  return fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

let refreshing: Promise<boolean> | null = null;
async function refresh(): Promise<boolean> {
  refreshing ??= send("POST", "/v1/auth/refresh", {})
    .then((r) => r.ok)
    .catch(() => false)
    .finally(() => setTimeout(() => (refreshing = null), 0));
  return refreshing;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res = await send(method, path, body);
  if (res.status === 401 && !path.startsWith("/v1/auth/") && (await refresh())) {
    res = await send(method, path, body);
  }
  // A 401 from signing in or changing a password is a wrong password, not an ended session.
  const asksForPassword = ["/v1/auth/login", "/v1/auth/refresh", "/v1/auth/password", "/v1/auth/invitations/redeem"].some((p) => path.startsWith(p));
  if (res.status === 401 && !asksForPassword) {
    onSignedOut();
    throw new SignedOut("your session ended; sign in again");
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; parameter?: string } })?.error;
    throw new ApiError(
      res.status,
      e?.code ?? "http_" + res.status,
      e?.message ?? `the hub answered ${res.status} ${res.statusText}`,
      e?.parameter,
    );
  }
  return json as T;
}

export const get = <T>(path: string) => api<T>("GET", path);

/** What to tell a person about an error, and what to do next. */
export function explain(e: unknown): string {
  if (e instanceof ApiError) {
    const next =
      e.status === 403
        ? " Ask an admin of this tenant for the right role."
        : e.status === 429
          ? " Wait a moment and try again."
          : e.status >= 500
            ? " The hub had a problem; try again shortly."
            : "";
    return e.message + next;
  }
  if (e instanceof SignedOut) return e.message;
  if (e instanceof TypeError) return "The hub cannot be reached. Check that it is running, then retry.";
  return String(e);
}

export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? "?" + s : "";
}
