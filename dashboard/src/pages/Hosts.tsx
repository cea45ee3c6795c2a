import { useEffect, useState } from "react";
import { Accordion, Alert, Button, Card, Group, NumberInput, Select, SimpleGrid, Stack, Switch, Text, TextInput, Title } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { request } from "../api/client";
import { useHosts } from "../api/hooks";
import type { Host } from "../api/types";
import { useI18n } from "../i18n";
import { errorMessage, notifySaved } from "../components/errors";

const NEW_HOST: Host = {
  remark: "🚀 {USERNAME}", address: "", port: null, sni: null, host: null, path: null, security: "inbound_default", alpn: "", fingerprint: "",
  allowinsecure: null, is_disabled: false, mux_enable: false, fragment_setting: null, noise_setting: null, random_user_agent: false, use_sni_as_host: false,
};

function HostEditor({ host, onChange, onRemove }: { host: Host; onChange: (h: Host) => void; onRemove: () => void }) {
  const { t } = useI18n();
  const text = (key: "remark" | "address" | "sni" | "host" | "path" | "alpn" | "fingerprint", label: string) => (
    <TextInput size="xs" label={label} value={host[key] ?? ""} onChange={(e) => onChange({ ...host, [key]: e.currentTarget.value || (key === "remark" || key === "address" || key === "alpn" || key === "fingerprint" ? "" : null) })} />
  );
  return (
    <Card withBorder p="sm">
      <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="xs">
        {text("remark", t("hosts.remark"))}
        {text("address", t("hosts.address"))}
        <NumberInput size="xs" label={t("hosts.port")} value={host.port ?? ""} min={1} max={65535} onChange={(n) => onChange({ ...host, port: n === "" ? null : Number(n) })} />
        {text("sni", "SNI")}
        {text("host", "Host")}
        {text("path", "Path")}
        <Select size="xs" label={t("hosts.security")} data={["inbound_default", "none", "tls"]} value={host.security} onChange={(v) => v && onChange({ ...host, security: v })} allowDeselect={false} />
        {text("alpn", "ALPN")}
        {text("fingerprint", "Fingerprint")}
      </SimpleGrid>
      <Group mt="xs" gap="md">
        <Switch size="xs" label={t("hosts.disabled")} checked={host.is_disabled} onChange={(e) => onChange({ ...host, is_disabled: e.currentTarget.checked })} />
        <Switch size="xs" label="allowInsecure" checked={!!host.allowinsecure} onChange={(e) => onChange({ ...host, allowinsecure: e.currentTarget.checked })} />
        <Switch size="xs" label="mux" checked={host.mux_enable} onChange={(e) => onChange({ ...host, mux_enable: e.currentTarget.checked })} />
        <Button size="compact-xs" color="red" variant="subtle" onClick={onRemove}>{t("common.remove")}</Button>
      </Group>
    </Card>
  );
}

export default function Hosts() {
  const { t } = useI18n();
  const hosts = useHosts();
  const client = useQueryClient();
  const [draft, setDraft] = useState<Record<string, Host[]>>({});
  const [open, setOpen] = useState<string[]>([]);
  useEffect(() => {
    if (!hosts.data) return;
    setDraft(hosts.data);
    setOpen((prev) => (prev.length ? prev : Object.keys(hosts.data).slice(0, 1)));
  }, [hosts.data]);
  const save = useMutation({
    mutationFn: () => request("/hosts", { method: "PUT", json: draft }),
    onSuccess: () => { notifySaved(t); void client.invalidateQueries({ queryKey: ["hosts"] }); },
  });
  const update = (tag: string, list: Host[]) => setDraft((d) => ({ ...d, [tag]: list }));
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t("nav.hosts")}</Title>
        <Button onClick={() => save.mutate()} loading={save.isPending}>{t("common.save")}</Button>
      </Group>
      {save.isError && <Alert color="red">{errorMessage(save.error, t)}</Alert>}
      <Accordion variant="separated" multiple value={open} onChange={setOpen}>
        {Object.entries(draft).map(([tag, list]) => (
          <Accordion.Item key={tag} value={tag}>
            <Accordion.Control>
              <Text fw={600}>{tag} <Text span c="dimmed" size="sm">({list.length})</Text></Text>
            </Accordion.Control>
            <Accordion.Panel>
              <Stack gap="xs">
                {list.map((h, i) => (
                  <HostEditor key={i} host={h} onChange={(next) => update(tag, list.map((x, j) => (j === i ? next : x)))} onRemove={() => update(tag, list.filter((_, j) => j !== i))} />
                ))}
                <Button size="xs" variant="light" onClick={() => update(tag, [...list, NEW_HOST])}>{t("hosts.addHost")}</Button>
              </Stack>
            </Accordion.Panel>
          </Accordion.Item>
        ))}
      </Accordion>
    </Stack>
  );
}
