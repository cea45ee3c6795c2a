import { useState } from "react";
import { Button, Checkbox, Group, Menu, Modal, PasswordInput, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { request } from "../api/client";
import { useAdmins } from "../api/hooks";
import type { Admin } from "../api/types";
import { formatBytes } from "../format";
import { useI18n } from "../i18n";
import { errorMessage, notifyError, notifySaved } from "../components/errors";

function AdminForm({ admin, onDone }: { admin?: Admin; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [username, setUsername] = useState(admin?.username ?? "");
  const [password, setPassword] = useState("");
  const [sudo, setSudo] = useState(admin?.is_sudo ?? false);
  const save = useMutation({
    mutationFn: () =>
      admin
        ? request(`/admin/${encodeURIComponent(admin.username)}`, { method: "PUT", json: { is_sudo: sudo, ...(password ? { password } : {}) } })
        : request("/admin", { json: { username, password, is_sudo: sudo } }),
    onSuccess: () => { notifySaved(t); void client.invalidateQueries({ queryKey: ["admins"] }); onDone(); },
  });
  return (
    <Stack component="form" onSubmit={(e) => { e.preventDefault(); save.mutate(); }}>
      {save.isError && <Text c="red">{errorMessage(save.error, t)}</Text>}
      <TextInput label={t("login.username")} required disabled={!!admin} value={username} onChange={(e) => setUsername(e.currentTarget.value)} />
      <PasswordInput label={admin ? t("admins.passwordKeep") : t("admins.password")} required={!admin} value={password} onChange={(e) => setPassword(e.currentTarget.value)} />
      <Checkbox label={t("admins.sudo")} checked={sudo} onChange={(e) => setSudo(e.currentTarget.checked)} />
      <Button type="submit" loading={save.isPending}>{t("common.save")}</Button>
    </Stack>
  );
}

export default function Admins() {
  const { t } = useI18n();
  const admins = useAdmins(true);
  const client = useQueryClient();
  const [editing, setEditing] = useState<Admin | "new" | null>(null);
  const act = useMutation({
    mutationFn: (args: { path: string; method: string }) => request(args.path, { method: args.method }),
    onSuccess: () => { notifySaved(t); void client.invalidateQueries(); },
    onError: (e) => notifyError(e, t),
  });
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t("nav.admins")}</Title>
        <Button onClick={() => setEditing("new")}>{t("admins.new")}</Button>
      </Group>
      <Table.ScrollContainer minWidth={320}>
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>{t("login.username")}</Table.Th>
              <Table.Th>{t("admins.sudo")}</Table.Th>
              <Table.Th>{t("admins.usage")}</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {admins.data?.map((a) => {
              const name = encodeURIComponent(a.username);
              return (
                <Table.Tr key={a.username}>
                  <Table.Td>{a.username}</Table.Td>
                  <Table.Td>{a.is_sudo ? "✓" : ""}</Table.Td>
                  <Table.Td>{formatBytes(a.users_usage)}</Table.Td>
                  <Table.Td>
                    <Menu position="bottom-end">
                      <Menu.Target><Button size="compact-xs" variant="subtle">⋯</Button></Menu.Target>
                      <Menu.Dropdown>
                        <Menu.Item onClick={() => setEditing(a)}>{t("common.edit")}</Menu.Item>
                        <Menu.Item onClick={() => act.mutate({ path: `/admin/${name}/users/disable`, method: "POST" })}>{t("admins.disableUsers")}</Menu.Item>
                        <Menu.Item onClick={() => act.mutate({ path: `/admin/${name}/users/activate`, method: "POST" })}>{t("admins.activateUsers")}</Menu.Item>
                        <Menu.Item onClick={() => act.mutate({ path: `/admin/usage/reset/${name}`, method: "POST" })}>{t("admins.resetUsage")}</Menu.Item>
                        <Menu.Item color="red" onClick={() => act.mutate({ path: `/admin/${name}`, method: "DELETE" })}>{t("common.delete")}</Menu.Item>
                      </Menu.Dropdown>
                    </Menu>
                  </Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <Modal opened={editing !== null} onClose={() => setEditing(null)} title={editing === "new" ? t("admins.new") : t("common.edit")}>
        {editing !== null && <AdminForm admin={editing === "new" ? undefined : editing} onDone={() => setEditing(null)} />}
      </Modal>
    </Stack>
  );
}
