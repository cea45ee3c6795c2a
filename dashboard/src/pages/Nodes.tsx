import { useEffect, useRef, useState } from "react";
import { Alert, Button, Card, Checkbox, Code, Drawer, Group, Modal, NumberInput, ScrollArea, SimpleGrid, Stack, Text, TextInput, Title } from "@mantine/core";
import { modals } from "@mantine/modals";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { logsSocketUrl } from "../api/client";
import { nodeApi, useNodeUsageByDay, useNodes } from "../api/hooks";
import type { CreatedNode, Node } from "../api/types";
import { formatBytes, formatDate } from "../format";
import { useI18n, type MessageKey } from "../i18n";
import { Copy } from "../components/Copy";
import { StatusBadge } from "../components/StatusBadge";
import { UsageChart } from "../components/UsageChart";
import { errorMessage, notifyError, notifySaved } from "../components/errors";

const MAX_LINES = 500;

function NodeLogs({ node }: { node: Node }) {
  const { t } = useI18n();
  const [lines, setLines] = useState<string[]>([]);
  const [closed, setClosed] = useState<string | null>(null);
  const viewport = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const socket = new WebSocket(logsSocketUrl(`/node/${node.id}/logs`));
    socket.onmessage = (e: MessageEvent<string>) =>
      setLines((prev) => [...prev, ...String(e.data).split("\n").filter(Boolean)].slice(-MAX_LINES));
    socket.onclose = (e) => setClosed(e.code === 1000 || e.code === 1005 ? null : `${e.code} ${e.reason}`);
    return () => socket.close();
  }, [node.id]);
  useEffect(() => {
    viewport.current?.scrollTo({ top: viewport.current.scrollHeight });
  }, [lines]);
  return (
    <Stack>
      {closed && <Alert color="red">{closed}</Alert>}
      <ScrollArea h="75vh" viewportRef={viewport} type="auto">
        <Code block dir="ltr" data-testid="node-logs" style={{ whiteSpace: "pre-wrap", wordBreak: "break-all", minHeight: 200 }}>
          {lines.length ? lines.join("\n") : t("nodes.noLogs")}
        </Code>
      </ScrollArea>
    </Stack>
  );
}

function AddNode({ onClose }: { onClose: () => void }) {
  const { t, lang } = useI18n();
  const client = useQueryClient();
  const [form, setForm] = useState({ name: "", address: "", port: 62050, api_port: 62050, usage_coefficient: 1, add_as_new_host: true });
  const [created, setCreated] = useState<CreatedNode | null>(null);
  const create = useMutation({
    mutationFn: nodeApi.create,
    onSuccess: (node) => {
      setCreated(node);
      void client.invalidateQueries({ queryKey: ["nodes"] });
    },
  });
  if (created)
    return (
      <Stack>
        <Text size="sm">{t("nodes.enroll")}</Text>
        <Group wrap="nowrap" align="start">
          <Code block dir="ltr" style={{ flex: 1, wordBreak: "break-all", whiteSpace: "pre-wrap" }} data-testid="enrollment-command">{created.enrollment_command}</Code>
          <Copy value={created.enrollment_command} />
        </Group>
        <Text size="xs" c="dimmed">{t("nodes.expires", { at: formatDate(created.enrollment_expires_at, lang) })}</Text>
        <Button onClick={onClose}>{t("common.close")}</Button>
      </Stack>
    );
  return (
    <Stack component="form" onSubmit={(e) => { e.preventDefault(); create.mutate(form); }}>
      {create.isError && <Alert color="red">{errorMessage(create.error, t)}</Alert>}
      <TextInput label={t("common.name")} required value={form.name} onChange={(e) => setForm({ ...form, name: e.currentTarget.value })} />
      <TextInput label={t("nodes.address")} required value={form.address} onChange={(e) => setForm({ ...form, address: e.currentTarget.value })} />
      <SimpleGrid cols={2}>
        <NumberInput label={t("nodes.port")} min={1} max={65535} value={form.port} onChange={(n) => setForm({ ...form, port: Number(n), api_port: Number(n) })} />
        <NumberInput label={t("nodes.coefficient")} min={0.01} step={0.1} decimalScale={2} value={form.usage_coefficient} onChange={(n) => setForm({ ...form, usage_coefficient: Number(n) })} />
      </SimpleGrid>
      <Checkbox label={t("nodes.addAsHost")} checked={form.add_as_new_host} onChange={(e) => setForm({ ...form, add_as_new_host: e.currentTarget.checked })} />
      <Button type="submit" loading={create.isPending}>{t("common.create")}</Button>
    </Stack>
  );
}

function NodeCard({ node, onLogs }: { node: Node; onLogs: () => void }) {
  const { t, lang } = useI18n();
  const client = useQueryClient();
  const act = useMutation({
    mutationFn: (fn: () => Promise<unknown>) => fn(),
    onSuccess: () => { notifySaved(t); void client.invalidateQueries({ queryKey: ["nodes"] }); },
    onError: (e) => notifyError(e, t),
  });
  const confirm = (key: MessageKey, fn: () => Promise<unknown>) =>
    modals.openConfirmModal({ title: `${t(key)}: ${node.name}`, children: <Text size="sm">{t("common.confirm")}</Text>, labels: { confirm: t(key), cancel: t("common.cancel") }, confirmProps: { color: "red" }, onConfirm: () => act.mutate(fn) });
  const [coefficient, setCoefficient] = useState<number>(node.usage_coefficient);
  return (
    <Card withBorder data-testid="node-card" data-node={node.name}>
      <Group justify="space-between" mb="xs">
        <Text fw={600}>{node.name}</Text>
        <StatusBadge status={node.status} />
      </Group>
      <Stack gap={2}>
        <Text size="sm" dir="ltr" ta="start">{node.address}:{node.port}</Text>
        <Text size="sm">{t("nodes.coreVersion")}: <span data-testid="node-core-version">{node.xray_version ?? "—"}</span>{node.core_kind ? ` (${node.core_kind})` : ""}</Text>
        <Text size="sm">{t("nodes.agentVersion")}: {node.agent_version ?? "—"}</Text>
        <Text size="sm">{formatBytes((node.uplink ?? 0) + (node.downlink ?? 0))} · {formatDate(node.last_seen_at ?? null, lang)}</Text>
        {node.message && <Text size="sm" c="red" style={{ wordBreak: "break-word" }}>{t("nodes.lastError")}: {node.message}</Text>}
        <Group gap="xs" align="end">
          <NumberInput size="xs" w={110} label={t("nodes.coefficient")} min={0.01} step={0.1} decimalScale={2} value={coefficient} onChange={(n) => setCoefficient(Number(n))} />
          <Button size="xs" variant="default" disabled={coefficient === node.usage_coefficient || !(coefficient > 0)} onClick={() => act.mutate(() => nodeApi.modify(node.id, { usage_coefficient: coefficient }))}>{t("common.save")}</Button>
        </Group>
      </Stack>
      <Group gap="xs" mt="sm">
        <Button size="xs" variant="light" onClick={onLogs} data-testid="node-logs-button">{t("nodes.logs")}</Button>
        <Button size="xs" variant="light" onClick={() => act.mutate(() => nodeApi.reconnect(node.id))}>{t("nodes.reconnect")}</Button>
        {node.status === "disabled" ? (
          <Button size="xs" variant="light" onClick={() => act.mutate(() => nodeApi.modify(node.id, { status: "active" }))}>{t("nodes.enable")}</Button>
        ) : (
          <Button size="xs" variant="light" color="orange" onClick={() => confirm("nodes.disable", () => nodeApi.modify(node.id, { status: "disabled" }))}>{t("nodes.disable")}</Button>
        )}
        <Button size="xs" variant="light" color="red" onClick={() => confirm("common.delete", () => nodeApi.remove(node.id))}>{t("common.delete")}</Button>
      </Group>
    </Card>
  );
}

export default function Nodes() {
  const { t } = useI18n();
  const nodes = useNodes();
  const usage = useNodeUsageByDay(true);
  const [adding, setAdding] = useState(false);
  const [logs, setLogs] = useState<Node | null>(null);
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t("nav.nodes")}</Title>
        <Button onClick={() => setAdding(true)}>{t("nodes.new")}</Button>
      </Group>
      {nodes.data && !nodes.data.length && <Text c="dimmed">{t("nodes.empty")}</Text>}
      <SimpleGrid cols={{ base: 1, sm: 2, lg: 3 }}>
        {nodes.data?.map((n) => <NodeCard key={n.id} node={n} onLogs={() => setLogs(n)} />)}
      </SimpleGrid>
      <Card withBorder>
        <Title order={5} mb="xs">{t("nodes.usageChart")}</Title>
        {usage.data ? <UsageChart days={usage.data} empty={t("common.none")} /> : <Text size="sm">{t("common.loading")}</Text>}
      </Card>
      <Modal opened={adding} onClose={() => setAdding(false)} title={t("nodes.new")}>
        {adding && <AddNode onClose={() => setAdding(false)} />}
      </Modal>
      <Drawer opened={!!logs} onClose={() => setLogs(null)} title={logs ? `${t("nodes.logs")}: ${logs.name}` : ""} position="bottom" size="90%">
        {logs && <NodeLogs node={logs} />}
      </Drawer>
    </Stack>
  );
}
