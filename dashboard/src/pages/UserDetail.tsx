import { useState } from "react";
import { Anchor, Button, Card, Code, Group, Modal, Progress, Select, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import { modals } from "@mantine/modals";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useAdmins, useUser, useUserMutation, useUserUsageByDay, userApi } from "../api/hooks";
import type { User } from "../api/types";
import { useAuth } from "../auth";
import { formatBytes, formatDate } from "../format";
import { useI18n, type MessageKey } from "../i18n";
import { Copy } from "../components/Copy";
import { QrCode } from "../components/QrCode";
import { StatusBadge } from "../components/StatusBadge";
import { UsageChart } from "../components/UsageChart";
import { UserFormModal } from "../components/UserForm";
import { notifyError, notifySaved } from "../components/errors";

/** The subscription URL as a subscriber's app fetches it (absolute). */
export function absoluteUrl(url: string): string {
  return new URL(url, window.location.origin).toString();
}

function linkName(link: string): string {
  const hash = link.indexOf("#");
  return hash >= 0 ? decodeURIComponent(link.slice(hash + 1)) : link.split("://")[0] ?? link;
}

function Actions({ user }: { user: User }) {
  const { t } = useI18n();
  const navigate = useNavigate();
  const [editing, setEditing] = useState(false);
  const act = useUserMutation((fn: () => Promise<unknown>) => fn());
  const confirm = (key: MessageKey, fn: () => Promise<unknown>, danger = false, after?: () => void) =>
    modals.openConfirmModal({
      title: t(key),
      children: <Text size="sm">{t("common.confirm")}</Text>,
      labels: { confirm: t(key), cancel: t("common.cancel") },
      confirmProps: { color: danger ? "red" : "blue", "data-testid": "confirm" } as Record<string, string>,
      onConfirm: () => act.mutate(fn, { onSuccess: () => { notifySaved(t); after?.(); }, onError: (e) => notifyError(e, t) }),
    });
  return (
    <Group gap="xs">
      <Button size="xs" onClick={() => setEditing(true)} data-testid="edit-user">{t("common.edit")}</Button>
      <Button size="xs" variant="light" onClick={() => confirm("users.reset", () => userApi.reset(user.username))}>{t("users.reset")}</Button>
      <Button size="xs" variant="light" onClick={() => confirm("users.revoke", () => userApi.revoke(user.username))}>{t("users.revoke")}</Button>
      {user.next_plan && <Button size="xs" variant="light" onClick={() => confirm("users.activeNext", () => userApi.activeNext(user.username))}>{t("users.activeNext")}</Button>}
      <Button size="xs" variant="light" color="red" onClick={() => confirm("common.delete", () => userApi.remove(user.username), true, () => navigate("/users"))}>{t("common.delete")}</Button>
      <UserFormModal opened={editing} onClose={() => setEditing(false)} user={user} />
    </Group>
  );
}

function Owner({ user }: { user: User }) {
  const { t } = useI18n();
  const admins = useAdmins(true);
  const change = useUserMutation((admin: string) => userApi.setOwner(user.username, admin));
  return (
    <Select
      size="xs"
      label={t("form.owner")}
      data={(admins.data ?? []).map((a) => a.username)}
      value={user.admin?.username ?? null}
      onChange={(v) => v && change.mutate(v, { onSuccess: () => notifySaved(t), onError: (e) => notifyError(e, t) })}
      allowDeselect={false}
      w={180}
    />
  );
}

export default function UserDetail() {
  const { username = "" } = useParams();
  const { t, lang, dir } = useI18n();
  const { isSudo } = useAuth();
  const user = useUser(username);
  const usage = useUserUsageByDay(username);
  const [qr, setQr] = useState<string | null>(null);
  if (user.isError) return <Text c="red">{user.error.message}</Text>;
  const u = user.data;
  if (!u) return <Text>{t("common.loading")}</Text>;
  const sub = absoluteUrl(u.subscription_url);
  const limit = u.data_limit ?? 0;
  return (
    <Stack>
      <Anchor component={Link} to="/users" size="sm">{dir === "rtl" ? "→" : "←"} {t("nav.users")}</Anchor>
      <Group justify="space-between" align="center">
        <Group gap="sm">
          <Title order={2} style={{ wordBreak: "break-all" }} data-testid="user-title">{u.username}</Title>
          <StatusBadge status={u.status} />
        </Group>
        <Actions user={u} />
      </Group>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Card withBorder>
          <Stack gap={6}>
            <Text size="sm">{t("users.usage")}: <bdi><b>{formatBytes(u.used_traffic)}</b> / {limit > 0 ? formatBytes(limit) : t("common.unlimited")}</bdi> ({t(`reset.${u.data_limit_reset_strategy}`)})</Text>
            {limit > 0 && <Progress value={Math.min(100, (u.used_traffic / limit) * 100)} />}
            <Text size="sm">{t("users.expire")}: {u.status === "on_hold" ? `${t("status.on_hold")} (${Math.round((u.on_hold_expire_duration ?? 0) / 86400)} d)` : u.expire ? formatDate(u.expire, lang) : t("common.never")}</Text>
            <Text size="sm">{t("users.created")}: {formatDate(u.created_at, lang)}</Text>
            <Text size="sm">{t("users.lifetime")}: <bdi>{formatBytes(u.lifetime_used_traffic)}</bdi></Text>
            {u.sub_last_user_agent && <Text size="xs" c="dimmed">{u.sub_last_user_agent} · {formatDate(u.sub_updated_at, lang)}</Text>}
            {u.note && <Text size="sm">{t("form.note")}: {u.note}</Text>}
            {u.next_plan && <Text size="sm">{t("form.nextPlan")}: {formatBytes(u.next_plan.data_limit ?? 0)}, {Math.round((u.next_plan.expire ?? 0) / 86400)} d</Text>}
            {isSudo ? <Owner user={u} /> : <Text size="sm">{t("users.owner")}: {u.admin?.username ?? "—"}</Text>}
          </Stack>
        </Card>
        <Card withBorder>
          <Title order={5} mb="xs">{t("users.subscription")}</Title>
          <Group gap="xs" wrap="nowrap" align="start">
            <Code style={{ wordBreak: "break-all", flex: 1 }} data-testid="subscription-url">{sub}</Code>
            <Copy value={sub} />
          </Group>
          <Group justify="center" mt="sm">
            <QrCode value={sub} label={t("users.subscription")} />
          </Group>
        </Card>
      </SimpleGrid>
      <Card withBorder>
        <Title order={5} mb="xs">{t("users.links")}</Title>
        <Stack gap={4}>
          {u.links.map((link) => (
            <Group key={link} gap="xs" wrap="nowrap" justify="space-between">
              <Text size="sm" truncate="end" style={{ flex: 1, minWidth: 0 }} dir="ltr">{linkName(link)}</Text>
              <Group gap={2} wrap="nowrap">
                <Button size="compact-xs" variant="subtle" onClick={() => setQr(link)}>QR</Button>
                <Copy value={link} />
              </Group>
            </Group>
          ))}
        </Stack>
      </Card>
      <Card withBorder>
        <Title order={5} mb="xs">{t("users.usageChart")}</Title>
        {usage.data ? <UsageChart days={usage.data} empty={t("common.none")} /> : <Text size="sm">{t("common.loading")}</Text>}
      </Card>
      <Modal opened={!!qr} onClose={() => setQr(null)} title={qr ? linkName(qr) : ""} centered>
        {qr && (
          <Stack align="center">
            <QrCode value={qr} size={260} label={linkName(qr)} />
            <Code style={{ wordBreak: "break-all" }} dir="ltr">{qr}</Code>
          </Stack>
        )}
      </Modal>
    </Stack>
  );
}
