import { BarChart } from "@mantine/charts";
import { Text } from "@mantine/core";
import { formatBytes } from "../format";

const PALETTE = ["blue.6", "teal.6", "orange.6", "grape.6", "red.6", "cyan.6", "lime.6", "pink.6"];

/** Stacked bars: one per day, one colour per node. */
export function UsageChart({ days, empty }: { days: { label: string; byNode: Record<string, number> }[]; empty: string }) {
  const nodes = [...new Set(days.flatMap((d) => Object.keys(d.byNode)))];
  if (!nodes.length || days.every((d) => Object.values(d.byNode).every((v) => !v))) return <Text c="dimmed" size="sm">{empty}</Text>;
  const data = days.map((d) => ({ day: d.label, ...Object.fromEntries(nodes.map((n) => [n, d.byNode[n] ?? 0])) }));
  return (
    <BarChart
      h={220}
      data={data}
      dataKey="day"
      type="stacked"
      withLegend
      series={nodes.map((n, i) => ({ name: n, color: PALETTE[i % PALETTE.length] ?? "blue.6" }))}
      valueFormatter={(v) => formatBytes(v)}
      yAxisProps={{ width: 70 }}
    />
  );
}
