import { describe, expect, it } from "vitest";
import type { Inbounds, User } from "../api/types";
import { emptyValues, toInput, validate, valuesFromUser } from "./userForm";

const inbounds: Inbounds = {
  vless: [{ tag: "VLESS TCP", protocol: "vless", network: "tcp", tls: "none", port: 1 }],
  vmess: [
    { tag: "VMess TCP", protocol: "vmess", network: "tcp", tls: "none", port: 2 },
    { tag: "VMess WS", protocol: "vmess", network: "ws", tls: "none", port: 3 },
  ],
};

describe("user form validation", () => {
  it("accepts a plain new user with the defaults", () => {
    const v = { ...emptyValues(inbounds), username: "alice_01" };
    expect(validate(v, true)).toEqual({});
  });

  it("refuses bad usernames, no protocol, negative limits and long notes", () => {
    const v = emptyValues(inbounds);
    v.username = "a!";
    v.protocols.vless.enabled = false;
    v.dataLimitGb = -1;
    v.note = "x".repeat(501);
    v.onHold = true;
    v.onHoldDays = 0;
    expect(validate(v, true)).toEqual({
      username: "form.usernameInvalid",
      protocols: "form.protocolsRequired",
      dataLimitGb: "form.dataLimitInvalid",
      note: "form.noteTooLong",
      onHoldDays: "form.onHoldInvalid",
    });
  });

  it("does not check the username of an existing user", () => {
    expect(validate(emptyValues(inbounds), false)).toEqual({});
  });
});

describe("user form conversion", () => {
  it("sends bytes, seconds and the selected inbounds", () => {
    const v = { ...emptyValues(inbounds), username: "bob", dataLimitGb: 1.5, expireDate: "2030-01-02", note: "n" };
    v.protocols.vmess = { ...v.protocols.vmess, enabled: true, tags: ["VMess WS"], credential: " " };
    const input = toInput(v);
    expect(input.data_limit).toBe(Math.round(1.5 * 1024 ** 3));
    expect(input.expire).toBe(Date.UTC(2030, 0, 2, 23, 59, 59) / 1000);
    expect(input.status).toBe("active");
    expect(input.proxies).toEqual({ vless: { id: undefined, flow: "" }, vmess: { id: undefined } });
    expect(input.inbounds).toEqual({ vless: ["VLESS TCP"], vmess: ["VMess WS"] });
    expect(input.next_plan).toBeNull();
  });

  it("turns on hold into a duration and no expiry", () => {
    const v = { ...emptyValues(inbounds), username: "carol", onHold: true, onHoldDays: 10, expireDate: "2030-01-01" };
    const input = toInput(v);
    expect(input.status).toBe("on_hold");
    expect(input.expire).toBeNull();
    expect(input.on_hold_expire_duration).toBe(10 * 86400);
  });

  it("round-trips an existing user", () => {
    const user = {
      username: "dave",
      proxies: { trojan: { password: "secret" } },
      inbounds: { trojan: ["T"] },
      data_limit: 2 * 1024 ** 3,
      data_limit_reset_strategy: "month",
      expire: null,
      status: "disabled",
      note: "vip",
      next_plan: { data_limit: 1024 ** 3, expire: 7 * 86400, add_remaining_traffic: true, fire_on_either: false },
      on_hold_expire_duration: null,
    } as unknown as User;
    const input = toInput(valuesFromUser(user, inbounds));
    expect(input.proxies).toEqual({ trojan: { password: "secret" } });
    expect(input.inbounds).toEqual({ trojan: ["T"] });
    expect(input.data_limit).toBe(2 * 1024 ** 3);
    expect(input.data_limit_reset_strategy).toBe("month");
    expect(input.status).toBe("disabled");
    expect(input.next_plan).toEqual({ data_limit: 1024 ** 3, expire: 7 * 86400, add_remaining_traffic: true, fire_on_either: false });
  });
});
