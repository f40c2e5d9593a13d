// Display helpers: durations, times, ids, option values.

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const parts = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small ? `${big}${bigUnit} ${small}${smallUnit}` : `${big}${bigUnit}`;
  const m = Math.floor(s / 60);
  if (m < 60) return parts(m, "m", Math.round(s - m * 60), "s");
  const h = Math.floor(m / 60);
  if (h < 48) return parts(h, "h", m - h * 60, "m");
  const d = Math.floor(h / 24);
  return parts(d, "d", h - d * 24, "h");
}

export function parseTime(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

export function durationBetween(start: string | null | undefined, end: string | null | undefined, now = Date.now()): number | null {
  const a = parseTime(start);
  if (a === null) return null;
  const b = parseTime(end) ?? now;
  return Math.max(0, b - a);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function formatAbsolute(iso: string | null | undefined): string {
  const t = parseTime(iso);
  if (t === null) return "—";
  const date = new Date(t);
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
}

export function formatFull(iso: string | null | undefined): string {
  const t = parseTime(iso);
  return t === null ? "" : `${fullFormat.format(new Date(t))} (${iso})`;
}

export function formatRelative(iso: string | null | undefined, now = Date.now()): string {
  const t = parseTime(iso);
  if (t === null) return "—";
  const s = Math.round((now - t) / 1000);
  if (s < 0) return `in ${formatMs(-s * 1000)}`;
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return formatAbsolute(iso);
}

export function shortId(id: string | null | undefined): string {
  if (!id) return "";
  return id.length > 12 ? `…${id.slice(-8)}` : id;
}

const DURATION_KEYS = new Set(["period", "timeout"]);

/** `{limit: 2, key: "tenantId"}` → `limit 2 · key tenantId`; durations (ms) shown as durations. */
export function formatOption(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) return value.map(formatOption).join(", ");
  return Object.entries(value as Record<string, unknown>)
    .map(([key, v]) => `${key} ${DURATION_KEYS.has(key) && typeof v === "number" ? formatMs(v) : formatOption(v)}`)
    .join(" · ");
}

export function compactJson(value: unknown, max = 120): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? "undefined";
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function plural(n: number, word: string): string {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}
