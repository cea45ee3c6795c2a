// The API's shapes (Marzban's, with Nexpoint's additions), as the dashboard uses them.

export const USER_STATUSES = ["active", "on_hold", "disabled", "limited", "expired"] as const;
export type UserStatus = (typeof USER_STATUSES)[number];
export const RESET_STRATEGIES = ["no_reset", "day", "week", "month", "year"] as const;
export type ResetStrategy = (typeof RESET_STRATEGIES)[number];
export const PROTOCOLS = ["vmess", "vless", "trojan", "shadowsocks"] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const SS_METHODS = ["chacha20-ietf-poly1305", "aes-128-gcm", "aes-256-gcm"] as const;

export interface Proxies {
  vmess?: { id?: string };
  vless?: { id?: string; flow?: string };
  trojan?: { password?: string };
  shadowsocks?: { password?: string; method?: string };
}

export interface NextPlan {
  user_template_id?: number | null;
  data_limit: number | null;
  expire: number | null;
  add_remaining_traffic: boolean;
  fire_on_either: boolean;
}

export interface User {
  username: string;
  proxies: Proxies;
  expire: number | null;
  data_limit: number | null;
  data_limit_reset_strategy: ResetStrategy;
  inbounds: Record<string, string[]>;
  note: string | null;
  sub_updated_at: string | null;
  sub_last_user_agent: string | null;
  online_at: string | null;
  on_hold_expire_duration: number | null;
  on_hold_timeout: string | null;
  auto_delete_in_days: number | null;
  next_plan: NextPlan | null;
  status: UserStatus;
  used_traffic: number;
  lifetime_used_traffic: number;
  created_at: string;
  edit_at: string | null;
  links: string[];
  subscription_url: string;
  excluded_inbounds: Record<string, string[]>;
  admin: { username: string } | null;
}

export interface UserInput {
  username?: string;
  proxies: Proxies;
  inbounds: Record<string, string[]>;
  expire: number | null;
  data_limit: number | null;
  data_limit_reset_strategy: ResetStrategy;
  status: "active" | "on_hold" | "disabled";
  note: string;
  on_hold_expire_duration: number | null;
  on_hold_timeout?: string | null;
  next_plan: NextPlan | null;
}

export interface UsersPage {
  users: User[];
  total: number;
}

export interface Admin {
  username: string;
  is_sudo: boolean;
  telegram_id: number | null;
  discord_webhook: string | null;
  users_usage: number;
}

export interface SystemStats {
  version: string;
  mem_total: number;
  mem_used: number;
  cpu_cores: number;
  cpu_usage: number;
  total_user: number;
  online_users: number;
  users_active: number;
  users_on_hold: number;
  users_disabled: number;
  users_expired: number;
  users_limited: number;
  incoming_bandwidth: number;
  outgoing_bandwidth: number;
  incoming_bandwidth_speed: number;
  outgoing_bandwidth_speed: number;
}

export interface Inbound {
  tag: string;
  protocol: Protocol;
  network: string;
  tls: string;
  port: number;
}
export type Inbounds = Partial<Record<Protocol, Inbound[]>>;

export type NodeStatus = "connecting" | "connected" | "error" | "disabled";
export interface Node {
  id: number;
  name: string;
  address: string;
  port: number;
  api_port: number;
  usage_coefficient: number;
  xray_version: string | null;
  status: NodeStatus;
  message: string | null;
  core_kind?: string | null;
  agent_version?: string | null;
  last_seen_at?: string | null;
  enrolled?: boolean;
  certificate_expires_at?: string | null;
  core_restarts?: number;
  uplink?: number;
  downlink?: number;
}

export interface CreatedNode extends Node {
  enrollment_token: string;
  enrollment_expires_at: string;
  enrollment_command: string;
}

export interface UsageEntry {
  node_id: number | null;
  node_name: string;
  used_traffic: number;
}

export interface NodeUsage {
  node_id: number | null;
  node_name: string;
  uplink: number;
  downlink: number;
}

export interface UserTemplate {
  id: number;
  name: string;
  data_limit: number | null;
  expire_duration: number | null;
  username_prefix: string | null;
  username_suffix: string | null;
  inbounds: Record<string, string[]>;
}

export interface Host {
  remark: string;
  address: string;
  port: number | null;
  sni: string | null;
  host: string | null;
  path: string | null;
  security: string;
  alpn: string;
  fingerprint: string;
  allowinsecure: boolean | null;
  is_disabled: boolean;
  mux_enable: boolean;
  fragment_setting: string | null;
  noise_setting: string | null;
  random_user_agent: boolean;
  use_sni_as_host: boolean;
}
