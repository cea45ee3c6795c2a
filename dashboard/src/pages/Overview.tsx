import { Card, Group, Progress, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { DonutChart } from "@mantine/charts";
import { useNodes, useSystem } from "../api/hooks";
import { USER_STATUSES } from "../api/types";
import { useAuth } from "../auth";
import { formatBytes } from "../format";
import { useI18n } from "../i18n";
import { StatusBadge, statusColor } from "../components/StatusBadge";

function Stat({ label, value, sub }: { label: string; value: string; sub?: string }) {
  return (
    <Card withBorder padding="md">
      <Text size="xs" c="dimmed" tt="uppercase" fw={600}>
        {label}
      </Text>
      <Text size="xl" fw={700}>
        {value}
      </Text>
      {sub && (
        <Text size="xs" c="dimmed">
          {sub}
        </Text>
      )}
    </Card>
  );
}

export default function Overview() {
  const { t } = useI18n();
  const { isSudo } = useAuth();
  const system = useSystem();
  const nodes = useNodes(isSudo);
  const s = system.data;
  if (!s) return <Text>{t("common.loading")}</Text>;
  const byStatus = USER_STATUSES.map((status) => ({
    name: t(`status.${status}`),
    value: s[`users_${status}` as const],
    color: `${statusColor(status)}.6`,
  }));
  const memory = s.mem_total ? (s.mem_used / s.mem_total) * 100 : 0;
  return (
    <Stack>
      <Title order={2}>{t("nav.overview")}</Title>
      <SimpleGrid cols={{ base: 2, md: 4 }}>
        <Stat label={t("overview.users")} value={s.total_user.toLocaleString()} sub={`${t("overview.online")}: ${s.online_users.toLocaleString()}`} />
        <Stat label={t("overview.incoming")} value={formatBytes(s.incoming_bandwidth)} sub={`${formatBytes(s.incoming_bandwidth_speed)}/s`} />
        <Stat label={t("overview.outgoing")} value={formatBytes(s.outgoing_bandwidth)} sub={`${formatBytes(s.outgoing_bandwidth_speed)}/s`} />
        <Stat label={t("overview.version")} value={s.version} sub={`${s.cpu_cores} × CPU`} />
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Card withBorder>
          <Title order={4} mb="sm">
            {t("overview.byStatus")}
          </Title>
          <Group wrap="nowrap" align="center">
            <DonutChart data={byStatus.filter((d) => d.value > 0).length ? byStatus : [{ name: "—", value: 1, color: "gray.3" }]} size={140} thickness={22} withTooltip={false} />
            <Stack gap={4}>
              {USER_STATUSES.map((status) => (
                <Group key={status} gap="xs" wrap="nowrap">
                  <StatusBadge status={status} />
                  <Text size="sm" fw={600}>
                    {s[`users_${status}` as const].toLocaleString()}
                  </Text>
                </Group>
              ))}
            </Stack>
          </Group>
        </Card>
        <Card withBorder>
          <Title order={4} mb="sm">
            {t("overview.system")}
          </Title>
          <Text size="sm">
            {t("overview.cpu")}: {s.cpu_usage.toFixed(1)}%
          </Text>
          <Progress value={s.cpu_usage} mb="sm" />
          <Text size="sm">
            {t("overview.memory")}: {formatBytes(s.mem_used)} / {formatBytes(s.mem_total)}
          </Text>
          <Progress value={memory} color={memory > 85 ? "red" : "blue"} />
        </Card>
      </SimpleGrid>
      {isSudo && (
        <Card withBorder>
          <Title order={4} mb="sm">
            {t("overview.nodes")}
          </Title>
          {nodes.data?.length ? (
            <Table.ScrollContainer minWidth={300}>
              <Table>
                <Table.Tbody>
                  {nodes.data.map((n) => (
                    <Table.Tr key={n.id}>
                      <Table.Td>{n.name}</Table.Td>
                      <Table.Td>
                        <StatusBadge status={n.status} />
                      </Table.Td>
                      <Table.Td>{n.xray_version ?? "—"}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          ) : (
            <Text c="dimmed">{t("nodes.empty")}</Text>
          )}
        </Card>
      )}
    </Stack>
  );
}
