import { notifications } from "@mantine/notifications";
import { ApiError } from "../api/client";
import type { MessageKey } from "../i18n";

type T = (key: MessageKey, vars?: Record<string, string | number>) => string;

export function errorMessage(error: unknown, t: T): string {
  if (error instanceof ApiError) return error.status === 0 ? t("common.network") : error.message;
  return error instanceof Error ? error.message : String(error);
}

export function notifyError(error: unknown, t: T): void {
  notifications.show({ color: "red", title: t("common.error"), message: errorMessage(error, t) });
}

export function notifySaved(t: T, message?: string): void {
  notifications.show({ color: "teal", message: message ?? t("common.saved") });
}
