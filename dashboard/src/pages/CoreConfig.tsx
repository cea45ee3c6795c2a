import { useEffect, useState } from "react";
import { Alert, Button, Code, Group, Stack, Text, Textarea, Title } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { request } from "../api/client";
import { useCoreConfig } from "../api/hooks";
import { useI18n } from "../i18n";
import { errorMessage, notifyError, notifySaved } from "../components/errors";

/** The JSON error of `text`, or null when it parses to an object. */
export function jsonError(text: string): string | null {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? null : "expected a JSON object";
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

export default function CoreConfig() {
  const { t } = useI18n();
  const config = useCoreConfig();
  const client = useQueryClient();
  const [text, setText] = useState("");
  useEffect(() => { if (config.data) setText(JSON.stringify(config.data, null, 2)); }, [config.data]);
  const invalid = text ? jsonError(text) : null;
  const save = useMutation({
    mutationFn: () => request("/core/config", { method: "PUT", json: JSON.parse(text) as unknown }),
    onSuccess: () => { notifySaved(t); void client.invalidateQueries({ queryKey: ["core-config"] }); },
  });
  const restart = useMutation({ mutationFn: () => request("/core/restart", { method: "POST" }), onSuccess: () => notifySaved(t), onError: (e) => notifyError(e, t) });
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t("core.title")}</Title>
        <Group gap="xs">
          <Button variant="default" disabled={!!invalid} onClick={() => setText(JSON.stringify(JSON.parse(text), null, 2))}>{t("core.format")}</Button>
          <Button variant="light" onClick={() => restart.mutate()} loading={restart.isPending}>{t("core.restart")}</Button>
          <Button onClick={() => save.mutate()} disabled={!!invalid} loading={save.isPending} data-testid="save-core">{t("common.save")}</Button>
        </Group>
      </Group>
      {invalid && <Text c="red" size="sm" role="alert">{t("core.invalidJson", { message: invalid })}</Text>}
      {save.isError && (
        <Alert color="red" title={t("core.refused")} data-testid="core-error">
          <Code block style={{ whiteSpace: "pre-wrap" }}>{errorMessage(save.error, t)}</Code>
        </Alert>
      )}
      <Textarea
        value={text}
        onChange={(e) => setText(e.currentTarget.value)}
        autosize
        minRows={20}
        maxRows={40}
        spellCheck={false}
        dir="ltr"
        styles={{ input: { fontFamily: "ui-monospace, monospace", fontSize: 12 } }}
        aria-label={t("core.title")}
        error={!!invalid}
      />
    </Stack>
  );
}
