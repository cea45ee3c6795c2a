import { Badge } from "@mantine/core";
import type { NodeStatus, UserStatus } from "../api/types";
import { useI18n } from "../i18n";

const COLORS: Record<UserStatus | NodeStatus, string> = {
  active: "teal",
  on_hold: "violet",
  disabled: "gray",
  limited: "orange",
  expired: "red",
  connected: "teal",
  connecting: "yellow",
  error: "red",
};

export function statusColor(status: UserStatus | NodeStatus): string {
  return COLORS[status] ?? "gray";
}

export function StatusBadge({ status }: { status: UserStatus | NodeStatus }) {
  const { t } = useI18n();
  return (
    <Badge color={statusColor(status)} variant="light" data-status={status}>
      {t(`status.${status}`)}
    </Badge>
  );
}
