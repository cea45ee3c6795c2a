import { describe, expect, it } from "vitest";
import { screen } from "@testing-library/react";
import { renderWith } from "../test/render";
import { StatusBadge, statusColor } from "./StatusBadge";

describe("StatusBadge", () => {
  it("shows each status in the current language", () => {
    renderWith(<StatusBadge status="on_hold" />);
    expect(screen.getByText("On hold").closest("[data-status]")).toHaveAttribute("data-status", "on_hold");
  });

  it("speaks Persian", () => {
    renderWith(<StatusBadge status="expired" />, "fa");
    expect(screen.getByText("منقضی")).toBeInTheDocument();
  });

  it("gives problems warning colours", () => {
    expect(statusColor("active")).toBe("teal");
    expect(statusColor("limited")).toBe("orange");
    expect(statusColor("expired")).toBe("red");
    expect(statusColor("error")).toBe("red");
  });
});
