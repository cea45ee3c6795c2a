import { useState, type FormEvent } from "react";
import { Alert, Button, Center, Group, Paper, PasswordInput, Stack, TextInput, Title } from "@mantine/core";
import { Navigate, useLocation, useNavigate } from "react-router-dom";
import { ApiError } from "../api/client";
import { useAuth } from "../auth";
import { useI18n } from "../i18n";
import { LanguagePicker, ThemeToggle } from "../components/Layout";

export function loginErrorMessage(error: unknown, t: ReturnType<typeof useI18n>["t"]): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return t("login.wrong");
    if (error.status === 429) return t("login.limited", { seconds: error.retryAfter ?? 60 });
    if (error.status === 0) return t("common.network");
    return error.message;
  }
  return String(error);
}

export function LoginPage() {
  const { t } = useI18n();
  const { token, login } = useAuth();
  const navigate = useNavigate();
  const location = useLocation();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const from = (location.state as { from?: string } | null)?.from ?? "/";
  if (token) return <Navigate to={from} replace />;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
      navigate(from, { replace: true });
    } catch (err) {
      setError(loginErrorMessage(err, t));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="lg" w="100%" maw={380} component="form" onSubmit={submit}>
        <Stack>
          <Group justify="space-between" wrap="nowrap">
            <Title order={3}>{t("login.title")}</Title>
          </Group>
          <Group gap="xs">
            <LanguagePicker />
            <ThemeToggle />
          </Group>
          {error && (
            <Alert color="red" role="alert" data-testid="login-error">
              {error}
            </Alert>
          )}
          <TextInput label={t("login.username")} name="username" autoComplete="username" required value={username} onChange={(e) => setUsername(e.currentTarget.value)} />
          <PasswordInput label={t("login.password")} name="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.currentTarget.value)} />
          <Button type="submit" loading={busy} fullWidth>
            {t("login.submit")}
          </Button>
        </Stack>
      </Paper>
    </Center>
  );
}
