import { useState } from "react";
import { Button, Card, Group, Modal, NumberInput, SimpleGrid, Stack, Text, TextInput, Title } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { request } from "../api/client";
import { useTemplates } from "../api/hooks";
import type { UserTemplate } from "../api/types";
import { useAuth } from "../auth";
import { DAY, GB, formatBytes } from "../format";
import { useI18n } from "../i18n";
import { errorMessage, notifyError, notifySaved } from "../components/errors";

type Draft = { name: string; dataLimitGb: number; expireDays: number; prefix: string; suffix: string };

function TemplateForm({ template, onDone }: { template?: UserTemplate; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [d, setD] = useState<Draft>({
    name: template?.name ?? "",
    dataLimitGb: template?.data_limit ? template.data_limit / GB : 0,
    expireDays: template?.expire_duration ? template.expire_duration / DAY : 0,
    prefix: template?.username_prefix ?? "",
    suffix: template?.username_suffix ?? "",
  });
  const save = useMutation({
    mutationFn: () => {
      const body = { name: d.name, data_limit: Math.round(d.dataLimitGb * GB), expire_duration: Math.round(d.expireDays * DAY), username_prefix: d.prefix || null, username_suffix: d.suffix || null, inbounds: template?.inbounds ?? {} };
      return template ? request(`/user_template/${template.id}`, { method: "PUT", json: body }) : request("/user_template", { json: body });
    },
    onSuccess: () => { notifySaved(t); void client.invalidateQueries({ queryKey: ["templates"] }); onDone(); },
  });
  return (
    <Stack component="form" onSubmit={(e) => { e.preventDefault(); save.mutate(); }}>
      {save.isError && <Text c="red">{errorMessage(save.error, t)}</Text>}
      <TextInput label={t("common.name")} required value={d.name} onChange={(e) => setD({ ...d, name: e.currentTarget.value })} />
      <SimpleGrid cols={2}>
        <NumberInput label={t("form.dataLimit")} min={0} value={d.dataLimitGb} onChange={(n) => setD({ ...d, dataLimitGb: Number(n) })} />
        <NumberInput label={t("templates.expireDays")} min={0} value={d.expireDays} onChange={(n) => setD({ ...d, expireDays: Number(n) })} />
        <TextInput label={t("templates.prefix")} value={d.prefix} onChange={(e) => setD({ ...d, prefix: e.currentTarget.value })} />
        <TextInput label={t("templates.suffix")} value={d.suffix} onChange={(e) => setD({ ...d, suffix: e.currentTarget.value })} />
      </SimpleGrid>
      <Button type="submit" loading={save.isPending}>{t("common.save")}</Button>
    </Stack>
  );
}

export default function Templates() {
  const { t } = useI18n();
  const { isSudo } = useAuth();
  const templates = useTemplates();
  const client = useQueryClient();
  const [editing, setEditing] = useState<UserTemplate | "new" | null>(null);
  const remove = useMutation({
    mutationFn: (id: number) => request(`/user_template/${id}`, { method: "DELETE" }),
    onSuccess: () => void client.invalidateQueries({ queryKey: ["templates"] }),
    onError: (e) => notifyError(e, t),
  });
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t("nav.templates")}</Title>
        {isSudo && <Button onClick={() => setEditing("new")}>{t("templates.new")}</Button>}
      </Group>
      <SimpleGrid cols={{ base: 1, sm: 2, lg: 3 }}>
        {templates.data?.map((tpl) => (
          <Card withBorder key={tpl.id}>
            <Text fw={600}>{tpl.name}</Text>
            <Text size="sm">{tpl.data_limit ? formatBytes(tpl.data_limit) : t("common.unlimited")} · {tpl.expire_duration ? `${Math.round(tpl.expire_duration / DAY)} d` : t("common.never")}</Text>
            <Text size="xs" c="dimmed">{Object.entries(tpl.inbounds).map(([p, tags]) => `${p}: ${tags.join(", ")}`).join("; ") || t("common.all")}</Text>
            {isSudo && (
              <Group gap="xs" mt="xs">
                <Button size="xs" variant="light" onClick={() => setEditing(tpl)}>{t("common.edit")}</Button>
                <Button size="xs" variant="light" color="red" onClick={() => remove.mutate(tpl.id)}>{t("common.delete")}</Button>
              </Group>
            )}
          </Card>
        ))}
      </SimpleGrid>
      <Modal opened={editing !== null} onClose={() => setEditing(null)} title={editing === "new" ? t("templates.new") : t("common.edit")}>
        {editing !== null && <TemplateForm template={editing === "new" ? undefined : editing} onDone={() => setEditing(null)} />}
      </Modal>
    </Stack>
  );
}
