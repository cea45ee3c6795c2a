import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, onUnauthorized, queryString, request, setToken } from "./client";

function reply(status: number, body: unknown, headers: Record<string, string> = {}) {
  return vi.fn().mockResolvedValue(new Response(body === undefined ? "" : JSON.stringify(body), { status, headers }));
}

afterEach(() => {
  vi.unstubAllGlobals();
  setToken(null);
  onUnauthorized(null);
});

describe("api client", () => {
  it("sends the bearer token and parses JSON", async () => {
    const fetch = reply(200, { total: 1 });
    vi.stubGlobal("fetch", fetch);
    setToken("T");
    await expect(request("/users", { query: { offset: 0, status: null, admin: ["a", "b"] } })).resolves.toEqual({ total: 1 });
    const [url, init] = fetch.mock.calls[0] as [string, RequestInit];
    expect(url).toMatch(/\/api\/users\?offset=0&admin=a&admin=b$/);
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer T");
  });

  it("keeps a 422's messages by field", async () => {
    vi.stubGlobal("fetch", reply(422, { detail: { username: "taken" } }));
    const error = await request("/user", { json: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(422);
    expect((error as ApiError).fieldErrors).toEqual({ username: "taken" });
    expect((error as ApiError).message).toBe("username: taken");
  });

  it("reads Retry-After of a 429", async () => {
    vi.stubGlobal("fetch", reply(429, { detail: "Too many" }, { "Retry-After": "7" }));
    const error = (await request("/admin/token", { form: { username: "a", password: "b" } }).catch((e: unknown) => e)) as ApiError;
    expect(error.status).toBe(429);
    expect(error.retryAfter).toBe(7);
  });

  it("logs out on a 401 with a token", async () => {
    vi.stubGlobal("fetch", reply(401, { detail: "Could not validate credentials" }));
    const handler = vi.fn();
    onUnauthorized(handler);
    setToken("old");
    await expect(request("/admin")).rejects.toMatchObject({ status: 401, message: "Could not validate credentials" });
    expect(handler).toHaveBeenCalledOnce();
  });

  it("turns a failed connection into status 0", async () => {
    vi.stubGlobal("fetch", vi.fn().mockRejectedValue(new TypeError("Failed to fetch")));
    await expect(request("/system")).rejects.toMatchObject({ status: 0 });
  });

  it("leaves empty parameters out", () => {
    expect(queryString({ a: "", b: undefined, c: null, d: 0 })).toBe("?d=0");
  });
});
