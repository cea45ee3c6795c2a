import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { request } from "./client";
import type {
  Admin, CreatedNode, Host, Inbounds, Node, NodeUsage, SystemStats, User, UserInput, UsersPage, UsageEntry, UserStatus, UserTemplate,
} from "./types";
import { lastDays } from "../format";

export interface UserListParams {
  offset: number;
  limit: number;
  search: string;
  status: UserStatus | null;
  admin: string | null;
  sort: string;
}

export function useUsers(params: UserListParams) {
  return useQuery({
    queryKey: ["users", params],
    queryFn: ({ signal }) =>
      request<UsersPage>("/users", {
        signal,
        query: {
          offset: params.offset,
          limit: params.limit,
          search: params.search,
          status: params.status,
          admin: params.admin ? [params.admin] : undefined,
          sort: params.sort,
        },
      }),
    // Paging and filtering keep the old rows on screen until the new ones arrive.
    placeholderData: keepPreviousData,
    staleTime: 5_000,
  });
}

export function useUser(username: string | null) {
  return useQuery({
    queryKey: ["user", username],
    queryFn: ({ signal }) => request<User>(`/user/${encodeURIComponent(username ?? "")}`, { signal }),
    enabled: !!username,
  });
}

export function useCurrentAdmin(enabled: boolean) {
  return useQuery({ queryKey: ["admin"], queryFn: () => request<Admin>("/admin"), enabled, staleTime: 60_000, retry: false });
}

export function useSystem() {
  return useQuery({ queryKey: ["system"], queryFn: () => request<SystemStats>("/system"), refetchInterval: 5_000 });
}

export function useInbounds() {
  return useQuery({ queryKey: ["inbounds"], queryFn: () => request<Inbounds>("/inbounds"), staleTime: 60_000 });
}

export function useAdmins(enabled: boolean) {
  return useQuery({ queryKey: ["admins"], queryFn: () => request<Admin[]>("/admins"), enabled });
}

export function useNodes(enabled = true) {
  return useQuery({ queryKey: ["nodes"], queryFn: () => request<Node[]>("/nodes"), enabled, refetchInterval: 3_000 });
}

export function useTemplates() {
  return useQuery({ queryKey: ["templates"], queryFn: () => request<UserTemplate[]>("/user_template") });
}

export function useHosts() {
  return useQuery({ queryKey: ["hosts"], queryFn: () => request<Record<string, Host[]>>("/hosts") });
}

export function useCoreConfig() {
  return useQuery({ queryKey: ["core-config"], queryFn: () => request<unknown>("/core/config"), staleTime: Infinity });
}

/** Per-node usage of one user for each of the last 7 days. */
export function useUserUsageByDay(username: string) {
  return useQuery({
    queryKey: ["user-usage", username],
    queryFn: async () => {
      const days = lastDays(7);
      const results = await Promise.all(
        days.map((d) =>
          request<{ usages: UsageEntry[] }>(`/user/${encodeURIComponent(username)}/usage`, { query: { start: d.start, end: d.end } }),
        ),
      );
      return days.map((d, i) => ({
        label: d.label,
        byNode: Object.fromEntries((results[i]?.usages ?? []).map((u) => [u.node_name, u.used_traffic])),
      }));
    },
  });
}

/** Billed traffic per node for each of the last 7 days. */
export function useNodeUsageByDay(enabled: boolean) {
  return useQuery({
    queryKey: ["nodes-usage"],
    enabled,
    queryFn: async () => {
      const days = lastDays(7);
      const results = await Promise.all(
        days.map((d) => request<{ usages: NodeUsage[] }>("/nodes/usage", { query: { start: d.start, end: d.end } })),
      );
      return days.map((d, i) => ({
        label: d.label,
        byNode: Object.fromEntries((results[i]?.usages ?? []).map((u) => [u.node_name, u.uplink + u.downlink])),
      }));
    },
  });
}

/** Mutations that change users refresh the list, the open user and the stats. */
export function useUserMutation<TArgs>(fn: (args: TArgs) => Promise<unknown>) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["users"] });
      void client.invalidateQueries({ queryKey: ["user"] });
      void client.invalidateQueries({ queryKey: ["system"] });
    },
  });
}

export const userApi = {
  create: (input: UserInput) => request<User>("/user", { json: input }),
  modify: (username: string, input: UserInput) =>
    request<User>(`/user/${encodeURIComponent(username)}`, { method: "PUT", json: input }),
  remove: (username: string) => request<unknown>(`/user/${encodeURIComponent(username)}`, { method: "DELETE" }),
  reset: (username: string) => request<User>(`/user/${encodeURIComponent(username)}/reset`, { method: "POST" }),
  revoke: (username: string) => request<User>(`/user/${encodeURIComponent(username)}/revoke_sub`, { method: "POST" }),
  activeNext: (username: string) => request<User>(`/user/${encodeURIComponent(username)}/active-next`, { method: "POST" }),
  setOwner: (username: string, admin: string) =>
    request<User>(`/user/${encodeURIComponent(username)}/set-owner`, { method: "PUT", query: { admin_username: admin } }),
  setStatus: (username: string, status: "active" | "disabled") =>
    request<User>(`/user/${encodeURIComponent(username)}`, { method: "PUT", json: { status } }),
};

export const nodeApi = {
  create: (body: { name: string; address: string; port: number; api_port: number; usage_coefficient: number; add_as_new_host: boolean }) =>
    request<CreatedNode>("/node", { json: body }),
  modify: (id: number, body: Partial<Pick<Node, "name" | "address" | "port" | "api_port" | "usage_coefficient">> & { status?: "active" | "disabled" }) =>
    request<Node>(`/node/${id}`, { method: "PUT", json: body }),
  reconnect: (id: number) => request<unknown>(`/node/${id}/reconnect`, { method: "POST" }),
  remove: (id: number) => request<unknown>(`/node/${id}`, { method: "DELETE" }),
};
