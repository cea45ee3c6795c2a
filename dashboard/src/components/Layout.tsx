import { ActionIcon, AppShell, Burger, Group, NavLink, ScrollArea, Select, Text, Tooltip, useMantineColorScheme } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { NavLink as RouterLink, Outlet, useLocation } from "react-router-dom";
import { useAuth } from "../auth";
import { ThemeIcon } from "./icons";
import { LANGUAGES, isLanguage, useI18n, type MessageKey } from "../i18n";

const LINKS: { to: string; key: MessageKey; sudo: boolean }[] = [
  { to: "/", key: "nav.overview", sudo: false },
  { to: "/users", key: "nav.users", sudo: false },
  { to: "/templates", key: "nav.templates", sudo: false },
  { to: "/nodes", key: "nav.nodes", sudo: true },
  { to: "/hosts", key: "nav.hosts", sudo: true },
  { to: "/core", key: "nav.core", sudo: true },
  { to: "/admins", key: "nav.admins", sudo: true },
];

export function LanguagePicker() {
  const { lang, setLang, t } = useI18n();
  return (
    <Select
      aria-label={t("language")}
      data-testid="language"
      w={110}
      size="xs"
      value={lang}
      allowDeselect={false}
      data={LANGUAGES.map((l) => ({ value: l.code, label: l.label }))}
      onChange={(v) => isLanguage(v) && setLang(v)}
      comboboxProps={{ withinPortal: true }}
    />
  );
}

export function ThemeToggle() {
  const { t } = useI18n();
  const { toggleColorScheme } = useMantineColorScheme();
  return (
    <Tooltip label={t("theme.toggle")}>
      <ActionIcon variant="default" size="lg" onClick={toggleColorScheme} aria-label={t("theme.toggle")}>
        <ThemeIcon />
      </ActionIcon>
    </Tooltip>
  );
}

export function Layout() {
  const [opened, { toggle, close }] = useDisclosure();
  const { t } = useI18n();
  const { admin, isSudo, logout } = useAuth();
  const location = useLocation();
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 220, breakpoint: "sm", collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="xs" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="menu" />
            <Text fw={700} size="lg">
              {t("appName")}
            </Text>
          </Group>
          <Group gap="xs" wrap="nowrap">
            <LanguagePicker />
            <ThemeToggle />
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs">
        <AppShell.Section grow component={ScrollArea}>
          {LINKS.filter((l) => !l.sudo || isSudo).map((l) => (
            <NavLink
              key={l.to}
              component={RouterLink}
              to={l.to}
              label={t(l.key)}
              active={l.to === "/" ? location.pathname === "/" : location.pathname.startsWith(l.to)}
              onClick={close}
            />
          ))}
        </AppShell.Section>
        <AppShell.Section>
          <Text size="xs" c="dimmed" px="sm">
            {admin?.username}
            {isSudo ? " (sudo)" : ""}
          </Text>
          <NavLink label={t("nav.logout")} onClick={logout} component="button" />
        </AppShell.Section>
      </AppShell.Navbar>
      <AppShell.Main>
        <Outlet />
      </AppShell.Main>
    </AppShell>
  );
}
