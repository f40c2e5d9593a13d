import { useState } from "preact/hooks";
import { type App, type DurableFunction, api } from "../api";
import { JsonEditor, parseJson } from "../components/json";
import { ActionButton, Button, Empty, ErrorBox, Loading, Modal, PageHeader, toast } from "../components/ui";
import { changeTouches, useLiveRefresh, useResource } from "../hooks";
import { formatMs, formatOption } from "../format";
import { navigate } from "../router";

const OPTION_ORDER = ["concurrency", "throttle", "rateLimit", "debounce", "batch", "priority", "retries"];
const OPTION_LABEL: Record<string, string> = {
  concurrency: "Concurrency",
  throttle: "Throttle",
  rateLimit: "Rate limit",
  debounce: "Debounce",
  batch: "Batch",
  priority: "Priority",
  retries: "Retries",
};

export function functionOptions(fn: DurableFunction): { key: string; label: string; text: string }[] {
  const keys = Object.keys(fn).filter((k) => !["id", "name", "trigger"].includes(k) && fn[k] !== null && fn[k] !== undefined);
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
    default:
      return formatOption(value);
  }
}

export function FunctionsPage({ app }: { app: App }) {
  const functions = useResource(() => api.functions(app.id), [app.id]);
  useLiveRefresh((c) => changeTouches(c, app.id, ["functions", "apps"]), functions.reload);
  const [running, setRunning] = useState<DurableFunction | null>(null);
  const items = functions.data?.items ?? [];

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
          <Empty title="No functions yet" icon="ƒ">
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
                return (
                  <tr key={fn.id} data-testid="function-row" data-function-id={fn.id}>
                    <td>
                      <div class="strong">{fn.name}</div>
                      {fn.name !== fn.id && <div class="mono small muted">{fn.id}</div>}
                    </td>
                    <td>
                      {fn.trigger.cron ? (
                        <span class="trigger trigger-cron" title="Cron schedule">
                          <span class="trigger-kind">cron</span>
                          <code>{fn.trigger.cron}</code>
                        </span>
                      ) : (
                        <span class="trigger trigger-event" title="Runs on each event of this name">
                          <span class="trigger-kind">event</span>
                          <code>{fn.trigger.event}</code>
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
                        <Button size="sm" onClick={() => setRunning(fn)} testId="run-function">
                          ▶ Run
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
    </>
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
        {fn.trigger.cron ? (
          <>
            Starts one run now with a <code>$cron</code> event, as the schedule <code>{fn.trigger.cron}</code> would.
          </>
        ) : (
          <>
            Starts one run of this function now with a <code>{fn.trigger.event}</code> event carrying this data. Other
            functions on that event are not started.
          </>
        )}
      </p>
      <div class="field">
        <span class="field-label">Event data</span>
        <JsonEditor value={text} onInput={setText} rows={7} testId="run-function-data" />
      </div>
    </Modal>
  );
}
