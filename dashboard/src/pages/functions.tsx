import { useState } from "preact/hooks";
import { type App, type DurableFunction, type PauseMode, api } from "../api";
import { JsonEditor, parseJson } from "../components/json";
import { ActionButton, Button, Empty, ErrorBox, Loading, Modal, PageHeader, PauseIcon, PausedBadge, toast } from "../components/ui";
import { changeTouches, useLiveRefresh, useNow, useResource } from "../hooks";
import { live } from "../live";
import { formatMs, formatOption } from "../format";
import { navigate } from "../router";
import { Play, SquareFunction } from "lucide";
import { Icon } from "../components/icon";

const OPTION_ORDER = [
  "concurrency",
  "throttle",
  "rateLimit",
  "debounce",
  "batch",
  "priority",
  "idempotency",
  "singleton",
  "cancelOn",
  "onFailure",
  "retries",
];
const OPTION_LABEL: Record<string, string> = {
  concurrency: "Concurrency",
  throttle: "Throttle",
  rateLimit: "Rate limit",
  debounce: "Debounce",
  batch: "Batch",
  priority: "Priority",
  idempotency: "Idempotency",
  singleton: "Singleton",
  cancelOn: "Cancel on",
  onFailure: "On failure",
  retries: "Retries",
};
/** Keys of a function view that are not options. */
const NOT_OPTIONS = ["id", "name", "trigger", "paused"];

export function functionOptions(fn: DurableFunction): { key: string; label: string; text: string }[] {
  const keys = Object.keys(fn).filter((k) => !NOT_OPTIONS.includes(k) && fn[k] !== null && fn[k] !== undefined);
  keys.sort((a, b) => (OPTION_ORDER.indexOf(a) + 1 || 99) - (OPTION_ORDER.indexOf(b) + 1 || 99));
  return keys.map((key) => ({ key, label: OPTION_LABEL[key] ?? key, text: describeOption(key, fn[key]) }));
}

function describeOption(key: string, value: unknown): string {
  const v = (value ?? {}) as Record<string, unknown>;
  const per = typeof v.key === "string" ? ` per ${v.key}` : "";
  const ms = (x: unknown) => (typeof x === "number" ? formatMs(x) : String(x));
  switch (key) {
    case "concurrency":
      return `${v.limit} at once${per}`;
    case "throttle":
    case "rateLimit":
      return `${v.limit} per ${ms(v.period)}${per}`;
    case "debounce":
      return `${ms(v.period)}${per}${v.timeout !== undefined ? `, at most ${ms(v.timeout)}` : ""}`;
    case "batch":
      return `up to ${v.maxSize} events or ${ms(v.timeout)}${per}`;
    case "priority":
      return typeof value === "number" ? String(value) : typeof v.key === "string" ? `from event.data.${v.key}` : formatOption(value);
    case "idempotency":
      return typeof value === "string" ? `one run per ${value} per 24h` : formatOption(value);
    case "singleton":
      return `one active run${per}, ${v.mode === "cancel" ? "a new one cancels it" : "new ones skipped"}`;
    case "cancelOn":
      return Array.isArray(value)
        ? value
            .map((c) => {
              const rule = (c ?? {}) as Record<string, unknown>;
              const on = typeof rule.match === "string" ? ` on the same ${rule.match}` : "";
              const within = rule.timeout !== undefined && rule.timeout !== null ? ` within ${ms(rule.timeout)}` : "";
              return `${String(rule.event)}${on}${within}`;
            })
            .join(", ")
        : formatOption(value);
    default:
      return formatOption(value);
  }
}

export function FunctionsPage({ app }: { app: App }) {
  const functions = useResource(() => api.functions(app.id), [app.id]);
  useLiveRefresh((c) => changeTouches(c, app.id, ["functions", "apps"]), functions.reload);
  const [running, setRunning] = useState<DurableFunction | null>(null);
  const [pausing, setPausing] = useState<DurableFunction | null>(null);
  const now = useNow(5000);
  const items = functions.data?.items ?? [];
  const prod = app.environment === "prod";
  const changed = () => {
    functions.reload();
    // The workspace's paused banner refreshes too, before the engine's own change arrives.
    live.local({ appId: app.id, kinds: ["functions"] });
  };
  const resume = async (fn: DurableFunction) => {
    await api.resumeFunction(app.id, fn.id);
    toast(`Resumed ${fn.id}`, "success");
    changed();
  };

  return (
    <>
      <PageHeader
        title="Functions"
        subtitle={app.url ? <>Registered by the app at <code>{app.url}</code></> : "Registered by your app's sync."}
      />
      {functions.error && !functions.data && <ErrorBox error={functions.error} />}
      {!functions.data && !functions.error && <Loading />}
      {functions.data && items.length === 0 && (
        <div class="card">
          <Empty title="No functions yet" icon={SquareFunction}>
            Functions appear when your app syncs: <code>client.sync([...])</code> registers them with their triggers and
            options.
          </Empty>
        </div>
      )}
      {items.length > 0 && (
        <div class="card">
          <table class="table" data-testid="functions-table">
            <thead>
              <tr>
                <th>Function</th>
                <th>Trigger</th>
                <th>Options</th>
                <th class="actions-col" />
              </tr>
            </thead>
            <tbody>
              {items.map((fn) => {
                const options = functionOptions(fn);
                const paused = fn.paused ?? null;
                return (
                  <tr key={fn.id} class={paused ? "is-paused" : ""} data-testid="function-row" data-function-id={fn.id} data-paused={paused ? paused.mode : ""}>
                    <td>
                      <div class="strong">{fn.name}</div>
                      {fn.name !== fn.id && <div class="mono small muted">{fn.id}</div>}
                      {paused && <PausedBadge paused={paused} now={now} />}
                    </td>
                    <td>
                      {fn.trigger?.cron ? (
                        <span class="trigger trigger-cron" title="Cron schedule">
                          <span class="trigger-kind">cron</span>
                          <code>{fn.trigger.cron}</code>
                        </span>
                      ) : fn.trigger?.event ? (
                        <span class="trigger trigger-event" title="Runs on each event of this name">
                          <span class="trigger-kind">event</span>
                          <code>{fn.trigger.event}</code>
                        </span>
                      ) : (
                        <span class="trigger trigger-none" title="Started only by another function's invoke, as a failure handler, or from the dashboard">
                          <span class="trigger-kind">invoked</span>
                          <span class="muted small">no trigger</span>
                        </span>
                      )}
                    </td>
                    <td>
                      {options.length === 0 ? (
                        <span class="muted">defaults</span>
                      ) : (
                        <div class="chips">
                          {options.map((o) => (
                            <span class="chip" key={o.key}>
                              <span class="chip-label">{o.label}</span> {o.text}
                            </span>
                          ))}
                        </div>
                      )}
                    </td>
                    <td class="actions-col">
                      <div class="row-actions">
                        <Button size="sm" variant="ghost" onClick={() => navigate(`/w/${encodeURIComponent(app.id)}/runs?fn=${encodeURIComponent(fn.id)}`)}>
                          Runs
                        </Button>
                        {paused ? (
                          <ActionButton guarded={prod} size="sm" variant="primary" onAction={() => resume(fn)} testId="resume-function" title={prod ? "Production: click twice to resume" : "Resume: held runs become due at once"}>
                            <Icon icon={Play} /> Resume
                          </ActionButton>
                        ) : (
                          <Button size="sm" variant="secondary" onClick={() => setPausing(fn)} testId="pause-function" title="Pause: hold new runs, or skip new events">
                            <PauseIcon /> Pause
                          </Button>
                        )}
                        <Button size="sm" onClick={() => setRunning(fn)} testId="run-function">
                          <Icon icon={Play} /> Run
                        </Button>
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {running && <RunFunction app={app} fn={running} onClose={() => setRunning(null)} />}
      {pausing && <PauseFunction app={app} fn={pausing} onClose={() => setPausing(null)} onPaused={changed} />}
    </>
  );
}

const PAUSE_MODES: { value: PauseMode; label: string; hint: string }[] = [
  {
    value: "queue",
    label: "Queue new runs",
    hint: "Events still create runs, held until you resume (runs not yet started are held too). Resume starts them all.",
  },
  {
    value: "skip",
    label: "Skip new events",
    hint: "New events start nothing while paused (the events list says skipped: paused). Nothing is caught up on resume.",
  },
];

function PauseFunction({ app, fn, onClose, onPaused }: { app: App; fn: DurableFunction; onClose: () => void; onPaused: () => void }) {
  const [mode, setMode] = useState<PauseMode>("queue");
  const [error, setError] = useState<string | null>(null);
  const prod = app.environment === "prod";
  const pause = async () => {
    setError(null);
    try {
      await api.pauseFunction(app.id, fn.id, mode);
    } catch (e) {
      setError((e as Error).message);
      return;
    }
    toast(`Paused ${fn.id} (${mode === "queue" ? "queueing new runs" : "skipping new events"})`, "success");
    onPaused();
    onClose();
  };
  return (
    <Modal
      title={`Pause ${fn.name}`}
      onClose={onClose}
      testId="pause-function-modal"
      footer={
        <>
          <Button variant="ghost" onClick={onClose}>
            Cancel
          </Button>
          <ActionButton guarded={prod} variant="danger" onAction={pause} testId="pause-function-confirm">
            <PauseIcon /> Pause function
          </ActionButton>
        </>
      }
    >
      <p class="muted">Runs already started go on. Pick what happens to new ones:</p>
      <div class="pause-modes" role="radiogroup" data-testid="pause-mode">
        {PAUSE_MODES.map((m) => (
          <button
            type="button"
            role="radio"
            aria-checked={mode === m.value}
            class={`env-option ${mode === m.value ? "is-active" : ""}`}
            onClick={() => setMode(m.value)}
            key={m.value}
            data-value={m.value}
            data-testid={`pause-mode-${m.value}`}
          >
            <span class="strong">{m.label}</span>
            <span class="env-option-hint">{m.hint}</span>
          </button>
        ))}
      </div>
      <ErrorBox error={error ?? undefined} />
    </Modal>
  );
}

function RunFunction({ app, fn, onClose }: { app: App; fn: DurableFunction; onClose: () => void }) {
  const [text, setText] = useState("{}");
  const parsed = parseJson(text);
  const prod = app.environment === "prod";
  const run = async () => {
    if (!parsed.ok) return;
    await api.runFunction(app.id, fn.id, parsed.value as Record<string, unknown>);
    toast(`Started ${fn.id}`, "success");
    onClose();
    navigate(`/w/${encodeURIComponent(app.id)}/runs?fn=${encodeURIComponent(fn.id)}`);
  };
  return (
    <Modal
      title={`Run ${fn.name}`}
      onClose={onClose}
      testId="run-function-modal"
      footer={
        <>
          <Button variant="ghost" onClick={onClose}>
            Cancel
          </Button>
          <ActionButton guarded={prod} variant="primary" onAction={run} disabled={!parsed.ok} testId="run-function-confirm">
            Run now
          </ActionButton>
        </>
      }
    >
      <p class="muted">
        {fn.trigger?.cron ? (
          <>
            Starts one run now with a <code>$cron</code> event, as the schedule <code>{fn.trigger.cron}</code> would.
          </>
        ) : fn.trigger?.event ? (
          <>
            Starts one run of this function now with a <code>{fn.trigger.event}</code> event carrying this data. Other
            functions on that event are not started.
          </>
        ) : (
          <>Starts one run of this function now with this data as its event data.</>
        )}
      </p>
      <div class="field">
        <span class="field-label">Event data</span>
        <JsonEditor value={text} onInput={setText} rows={7} testId="run-function-data" />
      </div>
    </Modal>
  );
}
