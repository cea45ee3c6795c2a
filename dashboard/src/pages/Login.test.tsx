import { describe, expect, it } from "vitest";
import { ApiError } from "../api/client";
import { translate } from "../i18n";
import { loginErrorMessage } from "./Login";

const t = (key: Parameters<typeof translate>[1], vars?: Record<string, string | number>) => translate("en", key, vars);

describe("login errors", () => {
  it("says clearly when the credentials are wrong", () => {
    expect(loginErrorMessage(new ApiError(401, "Incorrect username or password"), t)).toBe("Wrong username or password.");
  });
  it("says how long to wait when rate limited", () => {
    expect(loginErrorMessage(new ApiError(429, "Too many", 12), t)).toBe("Too many failed attempts. Try again in 12 s.");
  });
  it("says when the server is unreachable", () => {
    expect(loginErrorMessage(new ApiError(0, "network"), t)).toBe("The server cannot be reached.");
  });
});
