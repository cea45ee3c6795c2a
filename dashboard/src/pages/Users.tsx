import { useEffect, useMemo, useRef, useState } from "react";
import { Button, Checkbox, Group, Loader, Pagination, Progress, Select, Stack, Table, Text, TextInput, Title, UnstyledButton } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { modals } from "@mantine/modals";
import { useNavigate } from "react-router-dom";
import { useAdmins, useUserMutation, useUsers, userApi } from "../api/hooks";
import { USER_STATUSES, type User, type UserStatus } from "../api/types";
import { useAuth } from "../auth";
import { daysUntil, formatBytes } from "../format";
import { useI18n, type MessageKey } from "../i18n";
import { StatusBadge } from "../components/StatusBadge";
import { notifyError, notifySaved } from "../components/errors";
import { UserFormModal } from "../components/UserForm";

const PAGE_SIZES = ["20", "50", "100"];
type SortKey = "username" | "used_traffic" | "data_limit" | "expire" | "created_at";

/** Runs `fn` over `items`, `width` at a time (bulk actions must not flood the server). */
async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (let i = 0; i < items.length; i += width) {
    const results = await Promise.allSettled(items.slice(i, i + width).map(fn));
    results.forEach((r) => r.status === "rejected" && errors.push(r.reason));
  }
  return errors;
}

function UsageCell({ user }: { user: User }) {
  const limit = user.data_limit ?? 0;
  const percent = limit > 0 ? Math.min(100, (user.used_traffic / limit) * 100) : 0;
  return (
    <Stack gap={2} miw={110}>
      <Text size="xs">
        <bdi>
          {formatBytes(user.used_traffic)} / {limit > 0 ? formatBytes(limit) : "∞"}
        </bdi>
      </Text>
      {limit > 0 && <Progress size="xs" value={percent} color={percent > 90 ? "red" : "blue"} />}
    </Stack>
  );
}

function SortHeader({ label, sortKey, sort, onSort }: { label: string; sortKey: SortKey; sort: string; onSort: (s: string) => void }) {
  const active = sort.replace(/^-/, "") === sortKey;
  const desc = sort.startsWith("-");
  return (
    <UnstyledButton onClick={() => onSort(active && !desc ? `-${sortKey}` : sortKey)} fw={600} fz="sm">
      {label} {active ? (desc ? "↓" : "↑") : ""}
    </UnstyledButton>
  );
}

export default function Users() {
  const { t, lang } = useI18n();
  const { isSudo } = useAuth();
  const navigate = useNavigate();
  const [searchInput, setSearchInput] = useState("");
  const [search] = useDebouncedValue(searchInput.trim(), 300);
  const [status, setStatus] = useState<UserStatus | null>(null);
  const [owner, setOwner] = useState<string | null>(null);
  const [sort, setSort] = useState("-created_at");
  const [page, setPage] = useState(1);
  const [pageSize, setPageSize] = useState("20");
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [creating, setCreating] = useState(false);
  const limit = Number(pageSize);
  useEffect(() => setPage(1), [search, status, owner, sort, limit]);
  useEffect(() => setSelected(new Set()), [search, status, owner, page]);

  const users = useUsers({ offset: (page - 1) * limit, limit, search, status, admin: owner, sort });
  const admins = useAdmins(isSudo);
  const rows = users.data?.users ?? [];
  const total = users.data?.total ?? 0;

  // The speed check reads when the first page of rows reached the screen.
  const marked = useRef(false);
  useEffect(() => {
    if (!marked.current && rows.length > 0) {
      marked.current = true;
      performance.mark("nexpoint:users-first-rows");
    }
  }, [rows.length]);

  const bulk = useUserMutation(async (action: "disabled" | "active" | "reset" | "delete") => {
    const names = [...selected];
    const errors = await inBatches(names, 8, (name) =>
      action === "reset" ? userApi.reset(name) : action === "delete" ? userApi.remove(name) : userApi.setStatus(name, action),
    );
    setSelected(new Set());
    if (errors.length) throw errors[0];
  });
  const runBulk = (action: "disabled" | "active" | "reset" | "delete", key: MessageKey) =>
    modals.openConfirmModal({
      title: t(key),
      children: <Text size="sm">{t("common.confirm")} ({t("users.selected", { count: selected.size })})</Text>,
      labels: { confirm: t(key), cancel: t("common.cancel") },
      confirmProps: { color: action === "delete" ? "red" : "blue" },
      onConfirm: () => bulk.mutate(action, { onSuccess: () => notifySaved(t), onError: (e) => notifyError(e, t) }),
    });

  const allOnPage = rows.length > 0 && rows.every((u) => selected.has(u.username));
  const toggleAll = () => setSelected(allOnPage ? new Set() : new Set(rows.map((u) => u.username)));
  const toggle = (name: string) =>
    setSelected((prev) => {
      const next = new Set(prev);
      if (next.has(name)) next.delete(name);
      else next.add(name);
      return next;
    });

  const statusOptions = useMemo(() => USER_STATUSES.map((s) => ({ value: s, label: t(`status.${s}`) })), [t]);

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t("nav.users")}</Title>
        <Button onClick={() => setCreating(true)} data-testid="new-user">
          {t("users.new")}
        </Button>
      </Group>
      <Group gap="xs" align="end" wrap="wrap">
        <TextInput
          placeholder={t("common.search")}
          aria-label={t("common.search")}
          value={searchInput}
          onChange={(e) => setSearchInput(e.currentTarget.value)}
          rightSection={users.isFetching ? <Loader size="xs" /> : null}
          style={{ flex: "1 1 180px" }}
          data-testid="user-search"
        />
        <Select placeholder={t("users.filterStatus")} aria-label={t("users.filterStatus")} data={statusOptions} value={status} onChange={(v) => setStatus(v as UserStatus | null)} clearable w={140} />
        {isSudo && (
          <Select
            placeholder={t("users.filterOwner")}
            aria-label={t("users.filterOwner")}
            data={(admins.data ?? []).map((a) => a.username)}
            value={owner}
            onChange={setOwner}
            clearable
            searchable
            w={140}
          />
        )}
      </Group>
      {selected.size > 0 && (
        <Group gap="xs" data-testid="bulk-actions">
          <Text size="sm">{t("users.selected", { count: selected.size })}</Text>
          <Button size="xs" variant="light" onClick={() => runBulk("active", "users.bulkActivate")}>{t("users.bulkActivate")}</Button>
          <Button size="xs" variant="light" onClick={() => runBulk("disabled", "users.bulkDisable")}>{t("users.bulkDisable")}</Button>
          <Button size="xs" variant="light" onClick={() => runBulk("reset", "users.bulkReset")}>{t("users.bulkReset")}</Button>
          <Button size="xs" variant="light" color="red" onClick={() => runBulk("delete", "users.bulkDelete")}>{t("users.bulkDelete")}</Button>
        </Group>
      )}
      <Table.ScrollContainer minWidth={320}>
        <Table highlightOnHover verticalSpacing="xs" style={{ opacity: users.isPlaceholderData ? 0.6 : 1 }} data-testid="users-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th w={36}>
                <Checkbox aria-label="select all" checked={allOnPage} onChange={toggleAll} />
              </Table.Th>
              <Table.Th><SortHeader label={t("users.username")} sortKey="username" sort={sort} onSort={setSort} /></Table.Th>
              <Table.Th visibleFrom="sm">{t("users.status")}</Table.Th>
              <Table.Th><SortHeader label={t("users.usage")} sortKey="used_traffic" sort={sort} onSort={setSort} /></Table.Th>
              <Table.Th visibleFrom="sm"><SortHeader label={t("users.expire")} sortKey="expire" sort={sort} onSort={setSort} /></Table.Th>
              {isSudo && <Table.Th visibleFrom="md">{t("users.owner")}</Table.Th>}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((u) => (
              <Table.Tr key={u.username} style={{ cursor: "pointer" }} onClick={() => navigate(`/users/${encodeURIComponent(u.username)}`)} data-testid="user-row">
                <Table.Td onClick={(e) => e.stopPropagation()}>
                  <Checkbox aria-label={u.username} checked={selected.has(u.username)} onChange={() => toggle(u.username)} />
                </Table.Td>
                <Table.Td>
                  <Text size="sm" fw={500} style={{ overflowWrap: "anywhere" }}>{u.username}</Text>
                  <Group hiddenFrom="sm" gap={4} mt={2}><StatusBadge status={u.status} /></Group>
                  {u.note && <Text size="xs" c="dimmed" lineClamp={1}>{u.note}</Text>}
                </Table.Td>
                <Table.Td visibleFrom="sm"><StatusBadge status={u.status} /></Table.Td>
                <Table.Td><UsageCell user={u} /></Table.Td>
                <Table.Td visibleFrom="sm">
                  <Text size="xs">{u.expire ? (daysUntil(u.expire) >= 0 ? t("users.daysLeft", { days: daysUntil(u.expire) }) : new Date(u.expire * 1000).toLocaleDateString(lang)) : "∞"}</Text>
                </Table.Td>
                {isSudo && <Table.Td visibleFrom="md"><Text size="xs">{u.admin?.username ?? "—"}</Text></Table.Td>}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {users.isSuccess && rows.length === 0 && <Text c="dimmed">{t("users.empty")}</Text>}
      {users.isPending && <Loader />}
      <Group justify="space-between" wrap="wrap">
        <Text size="sm" c="dimmed" data-testid="users-total">{t("users.total", { count: total.toLocaleString(lang) })}</Text>
        <Group gap="xs">
          <Pagination total={Math.max(1, Math.ceil(total / limit))} value={page} onChange={setPage} size="sm" siblings={1} boundaries={1} />
          <Select data={PAGE_SIZES} value={pageSize} onChange={(v) => v && setPageSize(v)} w={80} size="xs" aria-label="page size" allowDeselect={false} />
        </Group>
      </Group>
      <UserFormModal opened={creating} onClose={() => setCreating(false)} onSaved={(u) => navigate(`/users/${encodeURIComponent(u.username)}`)} />
    </Stack>
  );
}
