import { describe, expect, it } from "vitest";
import { act, render, screen } from "@testing-library/react";
import { I18nProvider, direction, translate, useI18n } from ".";
import { en } from "./en";
import { fa } from "./fa";
import { ru } from "./ru";
import { zh } from "./zh";

function Probe() {
  const { t, setLang, dir } = useI18n();
  return (
    <div>
      <span data-testid="text">{t("nav.users")}</span>
      <span data-testid="dir">{dir}</span>
      <button onClick={() => setLang("fa")}>fa</button>
    </div>
  );
}

describe("i18n", () => {
  it("lays Persian out right to left and the others left to right", () => {
    expect(direction("fa")).toBe("rtl");
    expect(direction("en")).toBe("ltr");
    expect(direction("ru")).toBe("ltr");
    expect(direction("zh")).toBe("ltr");
  });

  it("sets the document's language and direction when switched", () => {
    render(
      <I18nProvider initial="en">
        <Probe />
      </I18nProvider>,
    );
    expect(document.documentElement.dir).toBe("ltr");
    act(() => screen.getByText("fa").click());
    expect(screen.getByTestId("text").textContent).toBe("کاربران");
    expect(document.documentElement.dir).toBe("rtl");
    expect(document.documentElement.lang).toBe("fa");
    expect(localStorage.getItem("nexpoint.lang")).toBe("fa");
  });

  it("fills variables and falls back to English", () => {
    expect(translate("ru", "users.total", { count: 5 })).toBe("Пользователей: 5");
    expect(translate("zh", "appName")).toBe("Nexpoint");
  });

  it("translates every key into Persian, Russian and Chinese", () => {
    const keys = Object.keys(en).filter((k) => k !== "appName");
    for (const dict of [fa, ru, zh]) {
      expect(keys.filter((k) => !(k in dict))).toEqual([]);
    }
  });
});
