// A small fetch wrapper for the Marzban-compatible API: bearer token,
// JSON bodies, and every failure turned into an ApiError carrying the
// server's `detail` (a string, or a field -> message map for 422).

export type Detail = string | Record<string, string>;

export class ApiError extends Error {
  readonly status: number;
  readonly detail: Detail;
  readonly retryAfter: number | null;

  constructor(status: number, detail: Detail, retryAfter: number | null = null) {
    super(typeof detail === "string" ? detail : Object.entries(detail).map(([f, m]) => `${f}: ${m}`).join("; "));
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }

  /** Messages by field for a 422, else empty. */
  get fieldErrors(): Record<string, string> {
    return typeof this.detail === "object" ? this.detail : {};
  }
}

const TOKEN_KEY = "nexpoint.token";
let unauthorizedHandler: (() => void) | null = null;

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** Called once when any request is refused with 401 (expired or revoked token). */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorizedHandler = handler;
}

/** The API root: relative to the page's <base>, which the server sets to the dashboard path. */
export function apiUrl(path: string): string {
  return new URL(`/api${path}`, window.location.origin).toString();
}

function parseDetail(body: unknown, fallback: string): Detail {
  if (body && typeof body === "object" && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === "string") return detail;
    if (detail && typeof detail === "object" && !Array.isArray(detail)) {
      return Object.fromEntries(Object.entries(detail).map(([k, v]) => [k, String(v)]));
    }
    if (detail !== undefined) return JSON.stringify(detail);
  }
  return fallback;
}

export interface RequestOptions {
  method?: string;
  json?: unknown;
  form?: Record<string, string>;
  query?: Record<string, string | number | string[] | undefined | null>;
  signal?: AbortSignal;
  /** Return the Response's headers too. */
  raw?: boolean;
}

export function queryString(query: RequestOptions["query"]): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => params.append(key, v));
    else params.append(key, String(value));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(options.form).toString();
  }
  let response: Response;
  try {
    response = await fetch(apiUrl(path) + queryString(options.query), {
      method: options.method ?? (body ? "POST" : "GET"),
      headers,
      body,
      signal: options.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "network");
  }
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && token && unauthorizedHandler) unauthorizedHandler();
    const retry = response.headers.get("Retry-After");
    throw new ApiError(response.status, parseDetail(parsed, response.statusText || `HTTP ${response.status}`), retry ? Number(retry) : null);
  }
  return parsed as T;
}

/** The WebSocket URL of a log stream, token in the query as Marzban does it. */
export function logsSocketUrl(path: string): string {
  const url = new URL(apiUrl(path));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", getToken() ?? "");
  url.searchParams.set("interval", "0.5");
  return url.toString();
}
