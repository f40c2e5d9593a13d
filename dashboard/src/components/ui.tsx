import type { ButtonHTMLAttributes, ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Environment, FunctionPause, RunActivity, RunStatus } from "../api";
import { formatFull, formatRelative } from "../format";
import { onLinkClick } from "../router";
import { CircleDashed, type IconNode, X } from "lucide";
import { Icon } from "./icon";

const ENV_LABEL: Record<Environment, string> = { dev: "DEV", acc: "ACC", prod: "PROD" };
const ENV_TITLE: Record<Environment, string> = {
  dev: "Development workspace",
  acc: "Acceptance workspace",
  prod: "Production workspace: actions ask for a confirming second click",
};

export function EnvBadge({ env, size = "md" }: { env: Environment; size?: "sm" | "md" | "lg" }) {
  return (
    <span class={`env-badge env-${env} env-${size}`} title={ENV_TITLE[env]} data-testid="env-badge" data-env={env}>
      {ENV_LABEL[env] ?? String(env).toUpperCase()}
    </span>
  );
}

export function StatusBadge({ status, activity }: { status: RunStatus | string; activity?: RunActivity | string | null }) {
  const label = status === "active" && activity ? activity : status;
  return (
    <span class={`status status-${status} ${status === "active" && activity ? `activity-${activity}` : ""}`} data-testid="run-status" data-status={status}>
      <span class="status-dot" />
      {label}
    </span>
  );
}

export const PAUSE_LABEL: Record<string, string> = { queue: "Paused (queueing)", skip: "Paused (skipping)" };
const PAUSE_TITLE: Record<string, string> = {
  queue: "New runs are created but held until the function is resumed",
  skip: "New events start no run of this function until it is resumed",
};

/** Two bars, drawn in CSS: the system fonts the dashboard relies on may have no ⏸ glyph. */
export function PauseIcon() {
  return <span class="pause-icon" aria-hidden="true" />;
}

/** The loud mark of a paused function: mode and since when. */
export function PausedBadge({ paused, now }: { paused: FunctionPause; now?: number }) {
  return (
    <div class="paused-line">
      <span class={`paused-badge paused-${paused.mode}`} title={PAUSE_TITLE[paused.mode]} data-testid="paused-badge" data-mode={paused.mode}>
        <PauseIcon />
        {PAUSE_LABEL[paused.mode] ?? `Paused (${paused.mode})`}
      </span>
      <span class="small muted" data-testid="paused-since">
        since <Time iso={paused.since} now={now} />
      </span>
    </div>
  );
}

export function Link({ href, class: className, children, title, testId }: { href: string; class?: string; children: ComponentChildren; title?: string; testId?: string }) {
  return (
    <a href={href} class={className} title={title} data-testid={testId} onClick={(e) => onLinkClick(e, href)}>
      {children}
    </a>
  );
}

export function Time({ iso, now, relative = true }: { iso: string | null | undefined; now?: number; relative?: boolean }) {
  if (!iso) return <span class="muted">—</span>;
  return (
    <time dateTime={iso} title={formatFull(iso)}>
      {relative ? formatRelative(iso, now) : iso}
    </time>
  );
}

type ButtonVariant = "primary" | "secondary" | "danger" | "ghost";

export function Button(
  props: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: ButtonVariant; size?: "sm" | "md"; busy?: boolean; testId?: string },
) {
  const { variant = "secondary", size = "md", busy, testId, class: className, children, disabled, ...rest } = props;
  return (
    <button
      type="button"
      {...rest}
      data-testid={testId}
      disabled={disabled || busy}
      class={`btn btn-${variant} btn-${size} ${busy ? "is-busy" : ""} ${className ?? ""}`}
    >
      {busy && <span class="spinner" />}
      {children}
    </button>
  );
}

/**
 * A mutating action. In a prod workspace the first click only arms it (the button turns red and reads
 * "Click again to confirm"); a second click within 4 s runs it; otherwise it disarms.
 */
export function ActionButton({
  guarded,
  onAction,
  children,
  variant = "secondary",
  size = "md",
  disabled,
  testId,
  title,
}: {
  guarded: boolean;
  onAction: () => Promise<unknown> | unknown;
  children: ComponentChildren;
  variant?: ButtonVariant;
  size?: "sm" | "md";
  disabled?: boolean;
  testId?: string;
  title?: string;
}) {
  const [armed, setArmed] = useState(false);
  const [busy, setBusy] = useState(false);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const mounted = useRef(true);
  useEffect(
    () => () => {
      mounted.current = false;
      if (timer.current) clearTimeout(timer.current);
    },
    [],
  );

  const click = async () => {
    if (busy) return;
    if (guarded && !armed) {
      setArmed(true);
      timer.current = setTimeout(() => setArmed(false), 4000);
      return;
    }
    if (timer.current) clearTimeout(timer.current);
    setArmed(false);
    setBusy(true);
    try {
      await onAction();
    } catch (error) {
      toast((error as Error).message || String(error), "error");
    } finally {
      if (mounted.current) setBusy(false);
    }
  };

  return (
    <button
      type="button"
      data-testid={testId}
      data-armed={armed ? "true" : "false"}
      title={title ?? (guarded ? "Production: click twice to run" : undefined)}
      disabled={disabled || busy}
      onClick={click}
      class={`btn btn-${armed ? "armed" : variant} btn-${size} ${busy ? "is-busy" : ""}`}
    >
      {busy && <span class="spinner" />}
      {armed ? "Click again to confirm" : children}
    </button>
  );
}

export function CopyButton({ text, label = "Copy", testId }: { text: string; label?: string; testId?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <button type="button" class={`btn btn-secondary btn-sm copy-btn ${copied ? "is-copied" : ""}`} onClick={copy} data-testid={testId}>
      {copied ? "Copied" : label}
    </button>
  );
}

export function Empty({ title, children, icon = CircleDashed }: { title: string; children?: ComponentChildren; icon?: IconNode }) {
  return (
    <div class="empty" data-testid="empty">
      <div class="empty-icon">
        <Icon icon={icon} size={28} />
      </div>
      <div class="empty-title">{title}</div>
      {children && <div class="empty-body">{children}</div>}
    </div>
  );
}

export function ErrorBox({ error, children }: { error?: Error | string; children?: ComponentChildren }) {
  if (!error && !children) return null;
  return (
    <div class="error-box" role="alert">
      <span class="error-icon">!</span>
      <div>{children ?? (typeof error === "string" ? error : error?.message)}</div>
    </div>
  );
}

export function Loading({ rows = 4 }: { rows?: number }) {
  return (
    <div class="skeleton" aria-busy="true">
      {Array.from({ length: rows }, (_, i) => (
        <div class="skeleton-row" key={i} style={{ width: `${92 - ((i * 17) % 30)}%` }} />
      ))}
    </div>
  );
}

export function PageHeader({ title, subtitle, actions }: { title: ComponentChildren; subtitle?: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <div class="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle && <p class="page-subtitle">{subtitle}</p>}
      </div>
      {actions && <div class="page-actions">{actions}</div>}
    </div>
  );
}

export function Segmented<T extends string>({
  value,
  options,
  onChange,
  testId,
}: {
  value: T;
  options: { value: T; label: ComponentChildren }[];
  onChange: (value: T) => void;
  testId?: string;
}) {
  return (
    <div class="segmented" role="radiogroup" data-testid={testId}>
      {options.map((option) => (
        <button
          type="button"
          role="radio"
          aria-checked={option.value === value}
          class={option.value === value ? "is-active" : ""}
          onClick={() => onChange(option.value)}
          key={option.value}
          data-value={option.value}
        >
          {option.label}
        </button>
      ))}
    </div>
  );
}

export function Modal({ title, onClose, children, footer, width = 560, testId }: { title: ComponentChildren; onClose: () => void; children: ComponentChildren; footer?: ComponentChildren; width?: number; testId?: string }) {
  useEffect(() => {
    const key = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, [onClose]);
  return (
    <div class="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div class="modal" role="dialog" aria-modal="true" style={{ width: `min(${width}px, 94vw)` }} data-testid={testId}>
        <div class="modal-header">
          <h2>{title}</h2>
          <button type="button" class="icon-btn" aria-label="Close" onClick={onClose}>
            <Icon icon={X} />
          </button>
        </div>
        <div class="modal-body">{children}</div>
        {footer && <div class="modal-footer">{footer}</div>}
      </div>
    </div>
  );
}

// Toasts: a small global stack, bottom right.
interface ToastItem {
  id: number;
  text: string;
  kind: "info" | "success" | "error";
}
let toastId = 0;
let toasts: ToastItem[] = [];
const toastListeners = new Set<(items: ToastItem[]) => void>();

export function toast(text: string, kind: ToastItem["kind"] = "info"): void {
  const item = { id: ++toastId, text, kind };
  toasts = [...toasts, item].slice(-4);
  toastListeners.forEach((l) => l(toasts));
  setTimeout(() => {
    toasts = toasts.filter((t) => t.id !== item.id);
    toastListeners.forEach((l) => l(toasts));
  }, kind === "error" ? 8000 : 4000);
}

export function Toasts() {
  const [items, setItems] = useState<ToastItem[]>(toasts);
  useEffect(() => {
    toastListeners.add(setItems);
    return () => {
      toastListeners.delete(setItems);
    };
  }, []);
  return (
    <div class="toasts" aria-live="polite">
      {items.map((t) => (
        <div class={`toast toast-${t.kind}`} key={t.id} data-testid="toast">
          {t.text}
        </div>
      ))}
    </div>
  );
}

export function Field({ label, hint, children, error }: { label: string; hint?: ComponentChildren; children: ComponentChildren; error?: string | null }) {
  return (
    <label class={`field ${error ? "has-error" : ""}`}>
      <span class="field-label">{label}</span>
      {children}
      {error ? <span class="field-error">{error}</span> : hint ? <span class="field-hint">{hint}</span> : null}
    </label>
  );
}
