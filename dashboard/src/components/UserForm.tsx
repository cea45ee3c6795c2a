import { useEffect, useState } from "react";
import {
  Button, Checkbox, Chip, Divider, Fieldset, Group, Modal, NumberInput, Select, SimpleGrid, Stack, Switch, Text, TextInput, Textarea,
} from "@mantine/core";
import { useMediaQuery } from "@mantine/hooks";
import { ApiError } from "../api/client";
import { useInbounds, useTemplates, useUserMutation, userApi } from "../api/hooks";
import { PROTOCOLS, RESET_STRATEGIES, SS_METHODS, type Protocol, type ResetStrategy, type User } from "../api/types";
import { GB, DAY } from "../format";
import { useI18n, type MessageKey } from "../i18n";
import { notifySaved } from "./errors";
import { emptyValues, toInput, validate, valuesFromUser, type UserFormValues } from "./userForm";

interface Props {
  opened: boolean;
  onClose: () => void;
  user?: User;
  onSaved?: (user: User) => void;
}

export function UserFormModal({ opened, onClose, user, onSaved }: Props) {
  const { t } = useI18n();
  const mobile = useMediaQuery("(max-width: 40em)");
  return (
    <Modal opened={opened} onClose={onClose} title={user ? `${t("common.edit")}: ${user.username}` : t("users.new")} size="lg" fullScreen={mobile}>
      {opened && <UserForm user={user} onDone={(u) => { onClose(); onSaved?.(u); }} onCancel={onClose} />}
    </Modal>
  );
}

export function UserForm({ user, onDone, onCancel }: { user?: User; onDone: (u: User) => void; onCancel: () => void }) {
  const { t } = useI18n();
  const inbounds = useInbounds();
  const templates = useTemplates();
  const [values, setValues] = useState<UserFormValues>(() => (user ? valuesFromUser(user, inbounds.data) : emptyValues(inbounds.data)));
  const [errors, setErrors] = useState<Partial<Record<string, string>>>({});
  const [touched, setTouched] = useState(false);
  useEffect(() => {
    // Inbounds may arrive after the form opened: fill the default tag lists then.
    if (inbounds.data && !touched) setValues(user ? valuesFromUser(user, inbounds.data) : emptyValues(inbounds.data));
  }, [inbounds.data, user, touched]);

  const set = <K extends keyof UserFormValues>(key: K, value: UserFormValues[K]) => {
    setTouched(true);
    setValues((v) => ({ ...v, [key]: value }));
  };
  const setProtocol = (p: Protocol, patch: Partial<UserFormValues["protocols"][Protocol]>) => {
    setTouched(true);
    setValues((v) => ({ ...v, protocols: { ...v.protocols, [p]: { ...v.protocols[p], ...patch } } }));
  };

  const save = useUserMutation(async (input: ReturnType<typeof toInput>) => (user ? userApi.modify(user.username, input) : userApi.create(input)));

  function submit(e: React.FormEvent) {
    e.preventDefault();
    const found = validate(values, !user);
    const messages = Object.fromEntries(Object.entries(found).map(([k, key]) => [k, t(key as MessageKey)]));
    setErrors(messages);
    if (Object.keys(messages).length) return;
    save.mutate(toInput(values), {
      onSuccess: (saved) => {
        notifySaved(t);
        onDone(saved as User);
      },
      onError: (err) => {
        if (err instanceof ApiError && Object.keys(err.fieldErrors).length) setErrors(err.fieldErrors);
        else setErrors({ form: err instanceof ApiError && err.status === 0 ? t("common.network") : err.message });
      },
    });
  }

  function applyTemplate(id: string | null) {
    const tpl = templates.data?.find((x) => String(x.id) === id);
    if (!tpl) return;
    setTouched(true);
    setValues((v) => ({
      ...v,
      username: !user && (tpl.username_prefix || tpl.username_suffix) ? `${tpl.username_prefix ?? ""}${v.username}${tpl.username_suffix ?? ""}` : v.username,
      dataLimitGb: tpl.data_limit ? +(tpl.data_limit / GB).toFixed(3) : 0,
      expireDate: tpl.expire_duration ? new Date(Date.now() + tpl.expire_duration * 1000).toISOString().slice(0, 10) : "",
      onHoldDays: tpl.expire_duration ? Math.max(1, Math.round(tpl.expire_duration / DAY)) : v.onHoldDays,
      protocols: Object.fromEntries(
        PROTOCOLS.map((p) => [p, tpl.inbounds[p] ? { ...v.protocols[p], enabled: true, tags: tpl.inbounds[p] } : Object.keys(tpl.inbounds).length ? { ...v.protocols[p], enabled: false } : v.protocols[p]]),
      ) as UserFormValues["protocols"],
    }));
  }

  return (
    <form onSubmit={submit} noValidate data-testid="user-form">
      <Stack gap="sm">
        {errors.form && <Text c="red" role="alert">{errors.form}</Text>}
        {!user && !!templates.data?.length && (
          <Select label={t("form.template")} data={templates.data.map((x) => ({ value: String(x.id), label: x.name }))} onChange={applyTemplate} clearable />
        )}
        <TextInput label={t("form.username")} name="username" value={values.username} disabled={!!user} onChange={(e) => set("username", e.currentTarget.value)} error={errors.username} required />
        <Fieldset legend={t("form.protocols")}>
          {errors.protocols && <Text c="red" size="sm">{errors.protocols}</Text>}
          <Stack gap="xs">
            {PROTOCOLS.map((p) => {
              const v = values.protocols[p];
              const tags = (inbounds.data?.[p] ?? []).map((i) => i.tag);
              return (
                <Stack key={p} gap={4}>
                  <Switch label={p} checked={v.enabled} onChange={(e) => setProtocol(p, { enabled: e.currentTarget.checked })} data-testid={`protocol-${p}`} />
                  {v.enabled && (
                    <Stack gap={4} ps="lg">
                      <SimpleGrid cols={{ base: 1, sm: p === "vless" || p === "shadowsocks" ? 2 : 1 }}>
                        <TextInput size="xs" label={t("form.credential")} value={v.credential} onChange={(e) => setProtocol(p, { credential: e.currentTarget.value })} />
                        {p === "vless" && (
                          <Select size="xs" label={t("form.flow")} data={[{ value: "", label: "—" }, { value: "xtls-rprx-vision", label: "xtls-rprx-vision" }]} value={v.flow} onChange={(f) => setProtocol(p, { flow: f ?? "" })} allowDeselect={false} />
                        )}
                        {p === "shadowsocks" && (
                          <Select size="xs" label={t("form.method")} data={[...SS_METHODS]} value={v.method} onChange={(m) => m && setProtocol(p, { method: m })} allowDeselect={false} />
                        )}
                      </SimpleGrid>
                      {tags.length > 0 && (
                        <Chip.Group multiple value={v.tags} onChange={(next) => setProtocol(p, { tags: next })}>
                          <Group gap={4}>
                            <Text size="xs" c="dimmed">{t("form.inbounds")}:</Text>
                            {tags.map((tag) => <Chip key={tag} value={tag} size="xs">{tag}</Chip>)}
                          </Group>
                        </Chip.Group>
                      )}
                    </Stack>
                  )}
                </Stack>
              );
            })}
          </Stack>
        </Fieldset>
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <NumberInput label={t("form.dataLimit")} name="data_limit" min={0} decimalScale={3} value={values.dataLimitGb} onChange={(n) => set("dataLimitGb", typeof n === "number" ? n : Number(n))} error={errors.dataLimitGb ?? errors.data_limit} />
          <Select label={t("form.resetStrategy")} data={RESET_STRATEGIES.map((s) => ({ value: s, label: t(`reset.${s}`) }))} value={values.resetStrategy} onChange={(s) => s && set("resetStrategy", s as ResetStrategy)} allowDeselect={false} />
        </SimpleGrid>
        <Switch label={t("form.onHold")} checked={values.onHold} onChange={(e) => set("onHold", e.currentTarget.checked)} />
        {values.onHold ? (
          <NumberInput label={t("form.onHoldDuration")} min={1} value={values.onHoldDays} onChange={(n) => set("onHoldDays", Number(n))} error={errors.onHoldDays ?? errors.on_hold_expire_duration} />
        ) : (
          <TextInput type="date" label={t("form.expire")} name="expire" value={values.expireDate} onChange={(e) => set("expireDate", e.currentTarget.value)} error={errors.expire} />
        )}
        {user && !values.onHold && <Checkbox label={t("status.disabled")} checked={values.disabled} onChange={(e) => set("disabled", e.currentTarget.checked)} />}
        <Textarea label={t("form.note")} name="note" autosize minRows={2} value={values.note} onChange={(e) => set("note", e.currentTarget.value)} error={errors.note} />
        <Divider label={t("form.nextPlan")} labelPosition="left" />
        <Switch label={t("form.nextPlanEnable")} checked={values.nextPlan} onChange={(e) => set("nextPlan", e.currentTarget.checked)} />
        {values.nextPlan && (
          <SimpleGrid cols={{ base: 1, sm: 2 }}>
            <NumberInput label={t("form.dataLimit")} min={0} value={values.nextDataLimitGb} onChange={(n) => set("nextDataLimitGb", Number(n))} error={errors.nextDataLimitGb} />
            <NumberInput label={t("form.nextPlanDays")} min={1} value={values.nextExpireDays} onChange={(n) => set("nextExpireDays", Number(n))} />
            <Checkbox label={t("form.addRemaining")} checked={values.addRemaining} onChange={(e) => set("addRemaining", e.currentTarget.checked)} />
            <Checkbox label={t("form.fireOnEither")} checked={values.fireOnEither} onChange={(e) => set("fireOnEither", e.currentTarget.checked)} />
          </SimpleGrid>
        )}
        <Group justify="flex-end" mt="sm">
          <Button variant="default" onClick={onCancel}>{t("common.cancel")}</Button>
          <Button type="submit" loading={save.isPending} data-testid="save-user">{user ? t("common.save") : t("common.create")}</Button>
        </Group>
      </Stack>
    </form>
  );
}
