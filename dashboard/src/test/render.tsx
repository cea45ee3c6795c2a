import type { ReactNode } from "react";
import { render } from "@testing-library/react";
import { MantineProvider } from "@mantine/core";
import { I18nProvider, type Language } from "../i18n";

export function renderWith(ui: ReactNode, lang: Language = "en") {
  return render(
    <I18nProvider initial={lang}>
      <MantineProvider>{ui}</MantineProvider>
    </I18nProvider>,
  );
}
