// The user form's values, validation and conversion to the API's shape, kept
// apart from the component so they can be tested on their own.
import { PROTOCOLS, type Inbounds, type Protocol, type Proxies, type ResetStrategy, type User, type UserInput } from "../api/types";
import { DAY, GB } from "../format";
import type { MessageKey } from "../i18n";

export interface ProtocolValues {
  enabled: boolean;
  credential: string;
  flow: string;
  method: string;
  tags: string[];
}

export interface UserFormValues {
  username: string;
  protocols: Record<Protocol, ProtocolValues>;
  dataLimitGb: number;
  resetStrategy: ResetStrategy;
  onHold: boolean;
  expireDate: string;
  onHoldDays: number;
  disabled: boolean;
  note: string;
  nextPlan: boolean;
  nextDataLimitGb: number;
  nextExpireDays: number;
  addRemaining: boolean;
  fireOnEither: boolean;
}

export const USERNAME_RE = /^[a-zA-Z0-9\-_@.]{3,32}$/;

function tagsOf(inbounds: Inbounds | undefined, protocol: Protocol): string[] {
  return (inbounds?.[protocol] ?? []).map((i) => i.tag);
}

export function emptyValues(inbounds?: Inbounds): UserFormValues {
  const protocols = Object.fromEntries(
    PROTOCOLS.map((p) => [
      p,
      { enabled: p === "vless" || (p === "vmess" && !inbounds?.vless?.length), credential: "", flow: "", method: "chacha20-ietf-poly1305", tags: tagsOf(inbounds, p) },
    ]),
  ) as Record<Protocol, ProtocolValues>;
  return {
    username: "",
    protocols,
    dataLimitGb: 0,
    resetStrategy: "no_reset",
    onHold: false,
    expireDate: "",
    onHoldDays: 30,
    disabled: false,
    note: "",
    nextPlan: false,
    nextDataLimitGb: 0,
    nextExpireDays: 30,
    addRemaining: false,
    fireOnEither: true,
  };
}

function credentialOf(proxies: Proxies, p: Protocol): string {
  switch (p) {
    case "vmess":
      return proxies.vmess?.id ?? "";
    case "vless":
      return proxies.vless?.id ?? "";
    case "trojan":
      return proxies.trojan?.password ?? "";
    case "shadowsocks":
      return proxies.shadowsocks?.password ?? "";
  }
}

export function valuesFromUser(user: User, inbounds?: Inbounds): UserFormValues {
  const base = emptyValues(inbounds);
  for (const p of PROTOCOLS) {
    const enabled = user.proxies[p] !== undefined;
    base.protocols[p] = {
      enabled,
      credential: credentialOf(user.proxies, p),
      flow: user.proxies.vless?.flow ?? "",
      method: user.proxies.shadowsocks?.method ?? "chacha20-ietf-poly1305",
      tags: enabled && user.inbounds[p] ? user.inbounds[p] : tagsOf(inbounds, p),
    };
  }
  return {
    ...base,
    username: user.username,
    dataLimitGb: user.data_limit ? +(user.data_limit / GB).toFixed(3) : 0,
    resetStrategy: user.data_limit_reset_strategy,
    onHold: user.status === "on_hold",
    expireDate: user.expire ? new Date(user.expire * 1000).toISOString().slice(0, 10) : "",
    onHoldDays: user.on_hold_expire_duration ? Math.round(user.on_hold_expire_duration / DAY) : 30,
    disabled: user.status === "disabled",
    note: user.note ?? "",
    nextPlan: !!user.next_plan,
    nextDataLimitGb: user.next_plan?.data_limit ? +(user.next_plan.data_limit / GB).toFixed(3) : 0,
    nextExpireDays: user.next_plan?.expire ? Math.max(1, Math.round(user.next_plan.expire / DAY)) : 30,
    addRemaining: user.next_plan?.add_remaining_traffic ?? false,
    fireOnEither: user.next_plan?.fire_on_either ?? true,
  };
}

/** Messages by field; empty when the values can be sent. */
export function validate(values: UserFormValues, creating: boolean): Partial<Record<string, MessageKey>> {
  const errors: Partial<Record<string, MessageKey>> = {};
  if (creating && !USERNAME_RE.test(values.username)) errors.username = "form.usernameInvalid";
  if (!PROTOCOLS.some((p) => values.protocols[p].enabled)) errors.protocols = "form.protocolsRequired";
  if (!Number.isFinite(values.dataLimitGb) || values.dataLimitGb < 0) errors.dataLimitGb = "form.dataLimitInvalid";
  if (values.onHold && !(values.onHoldDays > 0)) errors.onHoldDays = "form.onHoldInvalid";
  if (values.note.length > 500) errors.note = "form.noteTooLong";
  if (values.nextPlan && (!Number.isFinite(values.nextDataLimitGb) || values.nextDataLimitGb < 0)) errors.nextDataLimitGb = "form.dataLimitInvalid";
  return errors;
}

export function toInput(values: UserFormValues): UserInput {
  const proxies: Proxies = {};
  const inbounds: Record<string, string[]> = {};
  for (const p of PROTOCOLS) {
    const v = values.protocols[p];
    if (!v.enabled) continue;
    const cred = v.credential.trim() || undefined;
    if (p === "vmess") proxies.vmess = { id: cred };
    if (p === "vless") proxies.vless = { id: cred, flow: v.flow };
    if (p === "trojan") proxies.trojan = { password: cred };
    if (p === "shadowsocks") proxies.shadowsocks = { password: cred, method: v.method };
    if (v.tags.length) inbounds[p] = v.tags;
  }
  const expire = values.expireDate ? Math.floor(Date.parse(`${values.expireDate}T23:59:59Z`) / 1000) : 0;
  return {
    ...(values.username ? { username: values.username } : {}),
    proxies,
    inbounds,
    data_limit: values.dataLimitGb > 0 ? Math.round(values.dataLimitGb * GB) : 0,
    data_limit_reset_strategy: values.resetStrategy,
    status: values.onHold ? "on_hold" : values.disabled ? "disabled" : "active",
    expire: values.onHold ? null : expire,
    on_hold_expire_duration: values.onHold ? Math.round(values.onHoldDays * DAY) : null,
    note: values.note,
    next_plan: values.nextPlan
      ? {
          data_limit: Math.round(values.nextDataLimitGb * GB),
          expire: Math.round(values.nextExpireDays * DAY),
          add_remaining_traffic: values.addRemaining,
          fire_on_either: values.fireOnEither,
        }
      : null,
  };
}
