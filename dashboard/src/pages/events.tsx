import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { type App, type DurableEvent, type DurableFunction, api } from "../api";
import { JsonEditor, JsonTree, parseJson } from "../components/json";
import { Pager, usePager } from "../components/pager";
import { ActionButton, Button, Empty, ErrorBox, Field, Loading, Modal, PageHeader, StatusBadge, Time, toast } from "../components/ui";
import { changeTouches, useLiveRefresh, useNow, useResource } from "../hooks";
import { compactJson, shortId } from "../format";
import { Ban, Layers, Play, SkipForward, Timer, Zap } from "lucide";
import { Icon } from "../components/icon";
import { setQuery } from "../router";

export function EventsPage({ app }: { app: App }) {
  const pager = usePager(app.id);
  const events = useResource(() => api.events(app.id, pager.cursor, 50), [app.id, pager.cursor]);
  useLiveRefresh((c) => changeTouches(c, app.id, ["events", "runs"]), events.reload);
  const [firing, setFiring] = useState(false);
  const [open, setOpen] = useState<string | null>(null);
  const now = useNow(5000);
  const items = events.data?.items ?? [];

  return (
    <>
      <PageHeader
        title="Events"
        subtitle="Every event received, newest first, with the runs it started, or why it started none."
        actions={
          <Button variant="primary" onClick={() => setFiring(true)} testId="fire-event">
            <Icon icon={Zap} /> Fire event
          </Button>
        }
      />
      {events.error && !events.data && <ErrorBox error={events.error} />}
      {!events.data && !events.error && <Loading />}
      {events.data && items.length === 0 && (
        <div class="card">
          <Empty title={pager.page > 0 ? "No more events" : "No events yet"} icon={Zap}>
            Send one from your app (<code>client.send(name, data)</code>) or use <strong>Fire event</strong>.
          </Empty>
        </div>
      )}
      {items.length > 0 && (
        <div class="card">
          <table class="table" data-testid="events-table">
            <thead>
              <tr>
                <th style={{ width: "24%" }}>Event</th>
                <th style={{ width: "12%" }}>Received</th>
                <th>Data</th>
                <th style={{ width: "36%" }}>Runs</th>
              </tr>
            </thead>
            <tbody>
              {items.map((event) => (
                <Fragment key={event.id}>
                  <tr class={`clickable ${open === event.id ? "is-selected" : ""}`} onClick={(e) => !(e.target as HTMLElement).closest("a,button") && setOpen(open === event.id ? null : event.id)} data-testid="event-row" data-event-id={event.id}>
                    <td>
                      <div class="strong mono-name">{event.name}</div>
                      <div class="mono small muted" title={event.id}>
                        {event.id}
                      </div>
                    </td>
                    <td class="muted">
                      <Time iso={event.receivedAt} now={now} />
                    </td>
                    <td class="mono small data-preview">{compactJson(event.data, 90)}</td>
                    <td>
                      <EventOutcomes event={event} />
                    </td>
                  </tr>
                  {open === event.id && (
                    <tr class="detail-row">
                      <td colSpan={4}>
                        <div class="detail-grid">
                          <div>
                            <div class="section-label">Data</div>
                            <JsonTree value={event.data} openDepth={3} />
                          </div>
                          <div>
                            <div class="section-label">Details</div>
                            <dl class="meta">
                              <dt>ID</dt>
                              <dd class="mono">{event.id}</dd>
                              <dt>Timestamp</dt>
                              <dd>{event.ts ? new Date(event.ts).toISOString() : "—"}</dd>
                              <dt>Received</dt>
                              <dd>{event.receivedAt ?? "—"}</dd>
                            </dl>
                          </div>
                        </div>
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager pager={pager} nextCursor={events.data?.nextCursor ?? null} count={items.length} noun="event" />
      {firing && <FireEvent app={app} onClose={() => setFiring(false)} onFired={events.reload} />}
    </>
  );
}

function openRun(runId: string) {
  setQuery({ run: runId });
}

/** Why an event started no run of a function (the events list's `skipped: <reason>`). */
const SKIP_REASON: Record<string, string> = {
  rateLimit: "The function's rate limit was full",
  idempotency: "A run for this idempotency key already exists (within 24 h)",
  singleton: "A run for this singleton key is still active",
  paused: "The function is paused (skipping new events)",
};

/** What an event did to a run it did not start. */
const OUTCOME_LABEL: Record<string, string> = {
  debounced: "debounced into",
  batched: "batched into",
  resumed: "resumed",
  cancelled: "cancelled",
};
const OUTCOME_TITLE: Record<string, string> = {
  debounced: "The event replaced the pending run's event (debounce)",
  batched: "The event joined the run's batch",
  resumed: "The event matched a step.waitForEvent of this run, which goes on with it",
  cancelled: "The event cancelled this run (its cancelOn matched)",
};

function OutcomeIcon({ outcome }: { outcome: string }) {
  const icon = { skipped: SkipForward, debounced: Timer, batched: Layers, resumed: Play, cancelled: Ban }[outcome];
  return icon ? <Icon icon={icon} size={13} /> : null;
}

export function EventOutcomes({ event }: { event: DurableEvent }) {
  const runs = event.runs ?? [];
  const outcomes = event.outcomes ?? [];
  if (runs.length === 0 && outcomes.length === 0) {
    return <span class="muted small">No function is triggered by this event</span>;
  }
  return (
    <div class="outcomes" data-testid="event-outcomes">
      {runs.map((run) => (
        <button type="button" class="outcome outcome-run" key={run.runId} onClick={() => openRun(run.runId)} title={`Open run ${run.runId}`}>
          <StatusBadge status={run.status} />
          <span class="outcome-fn">{run.functionId}</span>
          <span class="mono small muted">{shortId(run.runId)}</span>
        </button>
      ))}
      {outcomes.map((o, i) => {
        const label =
          o.outcome === "skipped"
            ? `skipped: ${o.reason ?? "flow control"}`
            : (OUTCOME_LABEL[o.outcome] ?? (o.reason ? `${o.outcome}: ${o.reason}` : o.outcome));
        return (
          <span
            class={`outcome outcome-${o.outcome}`}
            key={`${o.functionId}-${i}`}
            data-testid="event-outcome"
            data-reason={o.reason ?? ""}
            data-outcome={o.outcome}
            title={o.outcome === "skipped" ? SKIP_REASON[o.reason ?? ""] : OUTCOME_TITLE[o.outcome]}
          >
            <OutcomeIcon outcome={o.outcome} />
            {o.functionId && <span class="outcome-fn">{o.functionId}</span>}
            <span class="outcome-text">{label}</span>
            {o.runId && o.outcome !== "skipped" && (
              <button type="button" class="linkish mono small" onClick={() => openRun(o.runId!)} title={o.runId}>
                {shortId(o.runId)}
              </button>
            )}
          </span>
        );
      })}
    </div>
  );
}

const EXAMPLE = '{\n  "userId": "u_123"\n}';

export function FireEvent({ app, onClose, onFired, functions }: { app: App; onClose: () => void; onFired?: () => void; functions?: DurableFunction[] }) {
  const [name, setName] = useState("");
  const [text, setText] = useState(EXAMPLE);
  const [error, setError] = useState<string | null>(null);
  const fns = useResource(() => (functions ? Promise.resolve({ items: functions, nextCursor: null }) : api.functions(app.id)), [app.id]);
  const names = [...new Set((fns.data?.items ?? []).map((f) => f.trigger?.event).filter((n): n is string => !!n))];
  const parsed = parseJson(text);
  const prod = app.environment === "prod";
  const nameError = name.trim() ? null : "Required";

  const fire = async () => {
    if (!parsed.ok || !name.trim()) return;
    setError(null);
    try {
      const result = await api.fireEvent(app.id, name.trim(), parsed.value as Record<string, unknown>);
      toast(`Event ${name.trim()} sent (${shortId(result.ids[0])})`, "success");
      onFired?.();
      onClose();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <Modal
      title="Fire event"
      onClose={onClose}
      testId="fire-event-modal"
      width={620}
      footer={
        <>
          <Button variant="ghost" onClick={onClose}>
            Cancel
          </Button>
          <ActionButton guarded={prod} variant="primary" onAction={fire} disabled={!parsed.ok || !!nameError} testId="fire-event-send">
            Send event
          </ActionButton>
        </>
      }
    >
      <div class="form">
        <Field label="Event name" hint={names.length ? "Events your functions listen to are suggested." : undefined}>
          <input
            class="input mono"
            list="event-names"
            value={name}
            autofocus
            placeholder={names[0] ?? "user.created"}
            data-testid="fire-event-name"
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
          <datalist id="event-names">
            {names.map((n) => (
              <option value={n} key={n} />
            ))}
          </datalist>
        </Field>
        {names.length > 0 && (
          <div class="chips">
            {names.map((n) => (
              <button type="button" class="chip chip-button mono" key={n} onClick={() => setName(n)}>
                {n}
              </button>
            ))}
          </div>
        )}
        <div class="field">
          <span class="field-label">Data (JSON object)</span>
          <JsonEditor value={text} onInput={setText} rows={9} testId="fire-event-data" />
        </div>
        <ErrorBox error={error ?? undefined} />
      </div>
    </Modal>
  );
}
