import { ActionIcon, CopyButton, Tooltip } from "@mantine/core";
import { useI18n } from "../i18n";
import { CheckIcon, CopyIcon } from "./icons";

export function Copy({ value }: { value: string }) {
  const { t } = useI18n();
  return (
    <CopyButton value={value} timeout={1500}>
      {({ copied, copy }) => (
        <Tooltip label={copied ? t("common.copied") : t("common.copy")} withArrow>
          <ActionIcon variant="subtle" color={copied ? "teal" : "gray"} onClick={copy} aria-label={t("common.copy")}>
            {copied ? <CheckIcon /> : <CopyIcon />}
          </ActionIcon>
        </Tooltip>
      )}
    </CopyButton>
  );
}
