const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

export function formatBytes(bytes: number | null | undefined, digits = 1): string {
  if (bytes === null || bytes === undefined) return "—";
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(digits)} ${UNITS[unit]}`;
}

export const GB = 1024 ** 3;
export const DAY = 86_400;

export function formatDate(value: number | string | null | undefined, lang: string): string {
  if (value === null || value === undefined || value === 0 || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return "—";
  return date.toLocaleString(lang === "fa" ? "fa-IR" : lang, { dateStyle: "medium", timeStyle: "short" });
}

/** Whole days from now until a unix time (negative when past). */
export function daysUntil(unix: number, now = Date.now()): number {
  return Math.ceil((unix * 1000 - now) / (DAY * 1000));
}

/** The last `days` whole days as [start, end) ISO pairs, oldest first. */
export function lastDays(days: number, now = new Date()): { label: string; start: string; end: string }[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Array.from({ length: days }, (_, i) => {
    const start = new Date(today - (days - 1 - i) * DAY * 1000);
    const end = new Date(start.getTime() + DAY * 1000);
    return { label: start.toISOString().slice(5, 10), start: iso(start), end: iso(end) };
  });
}

function iso(d: Date): string {
  return d.toISOString().slice(0, 19);
}
