import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { type App, type AttemptError, type Run, type RunChild, type RetryView, type StepView, api } from "../api";
import { JsonTree } from "../components/json";
import { ActionButton, CopyButton, ErrorBox, Loading, StatusBadge, Time, toast } from "../components/ui";
import { useLiveRefresh, useNow, useResource } from "../hooks";
import { formatAbsolute, formatMs, parseTime } from "../format";
import { setQuery } from "../router";
import { CancelledByNotice, Children, RunLink } from "./run-links";
import { FlowNote } from "./runs";
import { Box, CornerDownRight, CornerLeftUp, Diamond, Ellipsis, Hourglass, type IconNode, Moon, Play, RotateCcw, Send, Square, X } from "lucide";
import { Icon } from "../components/icon";

export function RunDrawer({ runId, app }: { runId: string; app: App }) {
  const run = useResource(() => api.run(runId), [runId]);
  useLiveRefresh(
    (c) => c.appId === app.id && c.kinds.includes("runs") && (!c.runIds || c.runIds.length === 0 || c.runIds.includes(runId)),
    run.reload,
  );
  const close = () => setQuery({ run: null });
  const closeNow = useRef(close);
  closeNow.current = close; // the listener below is added once: it must call this render's close
  useEffect(() => {
    const key = (e: KeyboardEvent) => {
      if (e.key === "Escape" && !document.querySelector(".modal")) closeNow.current();
    };
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, []);

  const data = run.data && run.data.id === runId ? run.data : undefined;
  return (
    <>
      <div class="drawer-backdrop" onClick={close} />
      <aside class="drawer" data-testid="run-drawer" data-run-id={runId} data-status={data?.status ?? ""}>
        {data ? (
          <RunDetail run={data} app={app} onClose={close} reload={run.reload} />
        ) : (
          <>
            <div class="drawer-header">
              <div>
                <div class="drawer-kicker">Run</div>
                <div class="mono small muted">{runId}</div>
              </div>
              <button type="button" class="icon-btn" aria-label="Close" onClick={close}>
                <Icon icon={X} />
              </button>
            </div>
            <div class="drawer-body">{run.error ? <ErrorBox error={(run.error as { status?: number }).status === 404 ? `No run ${runId}` : run.error} /> : <Loading rows={8} />}</div>
          </>
        )}
      </aside>
    </>
  );
}

function RunDetail({ run, app, onClose, reload }: { run: Run; app: App; onClose: () => void; reload: () => void }) {
  const active = run.status === "active";
  const now = useNow(active ? 250 : 60_000);
  const steps = run.steps ?? [];
  const [selected, setSelected] = useState<string | null>(null);
  const [fromStep, setFromStep] = useState<string>("");
  const guarded = app.environment === "prod";
  useEffect(() => {
    setSelected(null);
    setFromStep("");
  }, [run.id]);
  const rerunTarget = fromStep || steps[0]?.id || "";

  // The figures are the bars' sums: durable time counts each sleep, wait and invoke for as long as it
  // parked (growing while it still does) and the round the run waits for now; steps reused from the
  // original run (a rerun from a step) count in neither, as they have no bar.
  const plan = tracePlan(run, now);
  const totalQueued = plan.rows.reduce((sum, r) => sum + (r.queued ? r.queued.end - r.queued.start : 0), 0) + (plan.pending?.kind === "queued" ? plan.pending.segment.end - plan.pending.segment.start : 0);
  const totalApp = plan.rows.reduce((sum, r) => sum + (r.reused ? 0 : r.step.appMs || 0), 0);
  const duration = (parseTime(run.endedAt) ?? now) - (parseTime(run.createdAt) ?? now);

  const rerun = async (step?: string) => {
    const result = await api.rerun(run.id, step);
    toast(step ? `Rerun from step ${step} started` : "Rerun started", "success");
    setQuery({ run: result.runId });
  };
  const cancel = async () => {
    await api.cancel(run.id);
    toast("Run cancelled", "success");
    reload();
  };

  return (
    <>
      <div class="drawer-header">
        <div class="drawer-title">
          <div class="drawer-kicker">Run · {app.name}</div>
          <h2>
            {run.functionId} <StatusBadge status={run.status} activity={run.activity} />
          </h2>
          <div class="id-line">
            <code class="mono small" data-testid="drawer-run-id">
              {run.id}
            </code>
            <CopyButton text={run.id} label="Copy ID" />
          </div>
        </div>
        <button type="button" class="icon-btn" aria-label="Close" onClick={onClose} data-testid="drawer-close">
          <Icon icon={X} />
        </button>
      </div>
      <div class="drawer-actions" data-testid="run-actions">
        <ActionButton guarded={guarded} onAction={() => rerun()} testId="rerun">
          <Icon icon={RotateCcw} /> Rerun
        </ActionButton>
        {steps.length > 0 && (
          <div class="inline-group">
            <select class="select select-sm" value={rerunTarget} onChange={(e) => setFromStep((e.target as HTMLSelectElement).value)} data-testid="rerun-step-select" title="Steps before this one are reused; this step and the rest execute again">
              {steps.map((s) => (
                <option value={s.id} key={s.id}>
                  {s.id}
                </option>
              ))}
            </select>
            <ActionButton guarded={guarded} onAction={() => rerun(rerunTarget)} testId="rerun-from-step">
              Rerun from step
            </ActionButton>
          </div>
        )}
        <div class="spacer" />
        {active && (
          <ActionButton guarded={guarded} variant="danger" onAction={cancel} testId="cancel-run">
            <Icon icon={Square} /> Cancel run
          </ActionButton>
        )}
      </div>
      <div class="drawer-body">
        <div class="stats">
          <Stat label="Created" value={<Time iso={run.createdAt} now={now} />} sub={formatAbsolute(run.createdAt)} />
          <Stat label={active ? "Running for" : "Duration"} value={formatMs(duration)} sub={run.endedAt ? `ended ${formatAbsolute(run.endedAt)}` : run.activity ?? ""} />
          <Stat label="Durable time" value={formatMs(totalQueued)} sub="queue · sleep · wait" tone="queued" testId="stat-durable" ms={totalQueued} />
          <Stat label="App time" testId="stat-app" ms={totalApp} value={formatMs(totalApp)} sub={`${steps.length} step${steps.length === 1 ? "" : "s"}`} tone="app" />
        </div>
        {run.rerunOf && (
          <div class="notice">
            Rerun of{" "}
            <button type="button" class="linkish mono" onClick={() => setQuery({ run: run.rerunOf! })}>
              {run.rerunOf}
            </button>
          </div>
        )}
        {run.parentRunId && (
          <div class="notice notice-link" data-testid="run-parent">
            <span class="link-icon">
              <Icon icon={CornerLeftUp} size={14} />
            </span> Invoked by{" "}
            <RunLink runId={run.parentRunId} testId="run-parent-link" />
          </div>
        )}
        {run.status === "cancelled" && run.cancelledBy && <CancelledByNotice by={run.cancelledBy} />}
        {run.flow && (
          <div class="notice">
            Held by flow control: <FlowNote flow={run.flow} now={now} />
          </div>
        )}
        {run.retry && active && <RetryNotice retry={run.retry} now={now} />}
        {run.error && (
          <ErrorBox>
            <strong>Run failed:</strong> <span data-testid="run-error">{run.error.message}</span>
          </ErrorBox>
        )}
        {(run.errors?.length ?? 0) > 0 && (
          <details class="attempt-history" data-testid="run-attempt-history">
            <summary>
              {run.errors!.length} failed {run.errors!.length === 1 ? "try" : "tries"} not tied to a step (the app answered nothing, or failed outside a step)
            </summary>
            <AttemptList errors={run.errors!} />
          </details>
        )}

        <section class="section">
          <div class="section-head">
            <h3>Trace</h3>
            <div class="legend">
              <span class="legend-item">
                <span class="swatch swatch-queued" />
                Durable: queue, sleep, wait
              </span>
              <span class="legend-item">
                <span class="swatch swatch-app" />
                Your app
              </span>
            </div>
          </div>
          <Waterfall run={run} now={now} selected={selected} onSelect={(id) => setSelected(selected === id ? null : id)} guarded={guarded} onRerunFrom={rerun} />
        </section>

        {(run.children?.length ?? 0) > 0 && <Children items={run.children!} />}

        <section class="section">
          <div class="section-head">
            <h3>Input</h3>
            {run.event?.name && <code class="pill mono">{run.event.name}</code>}
            {run.eventId && <span class="mono small muted">{run.eventId}</span>}
          </div>
          <div class="code-card" data-testid="run-input">
            <JsonTree value={run.event?.data ?? run.event ?? null} openDepth={3} />
          </div>
        </section>

        {run.status === "completed" && (
          <section class="section">
            <div class="section-head">
              <h3>Output</h3>
            </div>
            <div class="code-card" data-testid="run-output">
              <JsonTree value={run.output} openDepth={3} />
            </div>
          </section>
        )}
      </div>
    </>
  );
}

/** Why a run waits: "Waiting: app unreachable: connection refused · next try at 12:00:03". */
function RetryNotice({ retry, now }: { retry: RetryView; now: number }) {
  const next = parseTime(retry.nextAt);
  const since = parseTime(retry.since);
  return (
    <div class="notice notice-warn" data-testid="run-retry" data-unreachable={String(retry.unreachable)}>
      <strong>Waiting:</strong> <span data-testid="run-retry-reason">{retry.reason}</span> · next try at{" "}
      <span data-testid="run-retry-next">{formatAbsolute(retry.nextAt)}</span>
      {next !== null && next > now ? ` (in ${formatMs(next - now)})` : ""}
      <div class="small">
        {retry.unreachable
          ? `The app has been unreachable for ${formatMs(Math.max(0, now - (since ?? now)))}; this uses up no attempt (attempt ${retry.attempt} of ${retry.maxAttempts} comes next).`
          : `Attempt ${retry.attempt} of ${retry.maxAttempts} comes next.`}
      </div>
    </div>
  );
}

function AttemptList({ errors }: { errors: AttemptError[] }) {
  return (
    <ol class="attempt-list" data-testid="attempt-list">
      {errors.map((e, i) => (
        <li key={i} data-testid="attempt-error">
          <span class="mono small muted">{formatAbsolute(e.at)}</span> <span class="pill">attempt {e.attempt}</span> <span>{e.message}</span>
        </li>
      ))}
    </ol>
  );
}

function Stat({ label, value, sub, tone, testId, ms }: { label: string; value: ComponentChildren; sub?: string; tone?: "queued" | "app"; testId?: string; ms?: number }) {
  return (
    <div class={`stat ${tone ? `stat-${tone}` : ""}`} data-testid={testId} data-ms={ms === undefined ? undefined : String(Math.round(ms))}>
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value}</div>
      {sub && <div class="stat-sub">{sub}</div>}
    </div>
  );
}

interface Segment {
  start: number;
  end: number;
}

interface StepGeometry {
  step: StepView;
  queued: Segment | null;
  app: Segment | null;
  reused: boolean;
  live: boolean;
}

/** Where a step's two segments lie in time. A `run` (or `send`) step waits in the queue, then the app
 * executes it; a sleep, wait or invoke is answered by the app (app time), then parks (durable time). */
export function stepGeometry(step: StepView, runCreated: number, now: number, runActive: boolean): StepGeometry {
  const started = parseTime(step.startedAt);
  const ended = parseTime(step.endedAt);
  const reused = ended !== null && ended < runCreated;
  if (started === null || reused) return { step, queued: null, app: null, reused, live: false };
  if (step.type === "sleep" || step.type === "wait" || step.type === "invoke") {
    const parked = !ended && runActive && (step.status === "sleeping" || step.status === "waiting");
    const queuedEnd = ended ?? (parked ? now : started + (step.queuedMs || 0));
    return {
      step,
      app: step.appMs > 0 ? { start: started - step.appMs, end: started } : null,
      queued: queuedEnd > started ? { start: started, end: queuedEnd } : null,
      reused,
      live: parked,
    };
  }
  const appEnd = ended ?? started + (step.appMs || 0);
  return {
    step,
    queued: step.queuedMs > 0 ? { start: started - step.queuedMs, end: started } : null,
    app: { start: started, end: Math.max(appEnd, started) },
    reused,
    live: false,
  };
}

interface Pending {
  kind: "app" | "queued";
  segment: Segment;
  label: string;
}

/** The trace's bars: each step's segments, and the round in flight (the app executing the next step,
 * not stored until it answers, or the run waiting its turn). The stat cards sum the same bars. */
export function tracePlan(run: Run, now: number): { rows: StepGeometry[]; pending: Pending | null } {
  const created = parseTime(run.createdAt) ?? now;
  const active = run.status === "active";
  const rows = (run.steps ?? []).map((s) => stepGeometry(s, created, now, active));
  const lastEnd = rows.reduce((m, r) => Math.max(m, r.app?.end ?? 0, r.queued?.end ?? 0), parseTime(run.startedAt) ?? created);
  const pending: Pending | null =
    active && (run.activity === "executing" || run.activity === "queued" || run.activity === "scheduled")
      ? {
          kind: run.activity === "executing" ? "app" : "queued",
          segment: { start: lastEnd, end: Math.max(now, lastEnd) },
          label: run.activity === "executing" ? "executing next step…" : run.activity === "scheduled" ? "scheduled…" : "queued…",
        }
      : null;
  return { rows, pending };
}

function niceStep(span: number): number {
  const target = span / 5;
  const base = 10 ** Math.floor(Math.log10(Math.max(target, 1)));
  for (const m of [1, 2, 5, 10]) if (base * m >= target) return base * m;
  return base * 10;
}

function Waterfall({
  run,
  now,
  selected,
  onSelect,
  guarded,
  onRerunFrom,
}: {
  run: Run;
  now: number;
  selected: string | null;
  onSelect: (id: string) => void;
  guarded: boolean;
  onRerunFrom: (step: string) => Promise<void>;
}) {
  const childOf = (stepId: string) => (run.children ?? []).find((c) => c.stepId === stepId);
  const created = parseTime(run.createdAt) ?? now;
  const active = run.status === "active";
  const { rows, pending } = tracePlan(run, now);
  const ends = [parseTime(run.endedAt) ?? (active ? now : created), pending?.segment.end ?? 0, ...rows.flatMap((r) => [r.app?.end ?? 0, r.queued?.end ?? 0])];
  const starts = rows.flatMap((r) => [r.app?.start ?? created, r.queued?.start ?? created]);
  const t0 = Math.min(created, ...starts);
  const t1 = Math.max(...ends, t0 + 1);
  const span = t1 - t0;
  const tick = niceStep(span);
  const ticks: number[] = [];
  for (let t = 0; t <= span + 0.5; t += tick) ticks.push(t);
  const pct = (t: number) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
  const width = (s: Segment) => `max(${(((s.end - s.start) / span) * 100).toFixed(3)}%, 2px)`;

  if (rows.length === 0 && !pending) {
    return (
      <div class="waterfall-empty muted" data-testid="waterfall">
        {active ? "No step has run yet." : "This run stored no steps."}
      </div>
    );
  }

  return (
    <div class="waterfall" data-testid="waterfall">
      <div class="wf-row wf-axis-row">
        <div class="wf-label" />
        <div class="wf-track wf-axis">
          {ticks.map((t) => (
            <span class="wf-tick" style={{ left: `${((t / span) * 100).toFixed(3)}%` }} key={t}>
              {t === 0 ? "0" : formatMs(t)}
            </span>
          ))}
        </div>
        <div class="wf-dur" />
      </div>
      <div class="wf-row wf-run-row">
        <div class="wf-label">
          <span class="wf-icon">
            <Icon icon={Play} size={13} />
          </span>
          <span class="wf-name">run</span>
        </div>
        <div class="wf-track">
          <Grid ticks={ticks} span={span} />
          <div class={`wf-runbar status-${run.status}`} style={{ left: pct(created), width: width({ start: created, end: parseTime(run.endedAt) ?? t1 }) }} />
        </div>
        <div class="wf-dur">{formatMs((parseTime(run.endedAt) ?? now) - created)}</div>
      </div>
      {rows.map((row) => {
        const s = row.step;
        const isOpen = selected === s.id;
        return (
          <div class={`wf-step ${isOpen ? "is-open" : ""}`} key={s.id}>
            <div class={`wf-row clickable step-${s.status}`} onClick={() => onSelect(s.id)} data-testid="step-row" data-step-id={s.id} data-step-status={s.status}>
              <div class="wf-label" title={`${STEP_KIND[s.type] ?? s.type} step ${s.id}`}>
                <span class={`wf-icon wf-icon-${s.type}`} data-testid="step-icon">
                  <Icon icon={STEP_ICON[s.type] ?? Diamond} size={13} />
                </span>
                <span class="wf-name">{s.id}</span>
                {(s.type === "invoke" || s.type === "send") && (
                  <span class={`step-kind step-kind-${s.type}`} data-testid="step-kind">
                    {s.type}
                  </span>
                )}
                {s.status !== "completed" && <span class={`mini-status mini-${s.status}`}>{s.status}</span>}
                {s.attempts > 1 && <span class="mini-status">×{s.attempts}</span>}
                {s.errors.length > 0 && (
                  <span class="mini-status mini-failed" data-testid="step-failed-attempts" title={s.errors.map((e) => `attempt ${e.attempt}: ${e.message}`).join("\n")}>
                    {s.errors.length} failed {s.errors.length === 1 ? "attempt" : "attempts"}
                  </span>
                )}
              </div>
              <div class="wf-track">
                <Grid ticks={ticks} span={span} />
                {row.reused ? (
                  <span class="wf-reused">reused from the original run</span>
                ) : (
                  <>
                    {row.queued && (
                      <div
                        class={`seg seg-queued ${row.live ? "is-live" : ""}`}
                        data-testid="seg-queued"
                        style={{ left: pct(row.queued.start), width: width(row.queued) }}
                        title={`Durable (${s.type === "run" ? "queue" : s.type}): ${formatMs(row.queued.end - row.queued.start)}`}
                      />
                    )}
                    {row.app && (
                      <div
                        class={`seg seg-app ${s.status === "failed" || s.status === "retrying" ? "is-failed" : ""}`}
                        data-testid="seg-app"
                        style={{ left: pct(row.app.start), width: width(row.app) }}
                        title={`Your app: ${formatMs(row.app.end - row.app.start)}`}
                      />
                    )}
                  </>
                )}
              </div>
              <div class="wf-dur">
                <span class="dur-queued" title="durable time">
                  {formatMs(row.queued ? row.queued.end - row.queued.start : s.queuedMs)}
                </span>
                <span class="dur-app" title="app time">
                  {formatMs(s.appMs)}
                </span>
              </div>
            </div>
            {isOpen && <StepDetail step={s} child={s.type === "invoke" ? childOf(s.id) : undefined} guarded={guarded} onRerunFrom={onRerunFrom} />}
          </div>
        );
      })}
      {pending && (
        <div class="wf-row wf-pending" data-testid="step-pending">
          <div class="wf-label">
            <span class="wf-icon">
            <Icon icon={Ellipsis} size={13} />
          </span>
            <span class="wf-name muted">{pending.label}</span>
          </div>
          <div class="wf-track">
            <Grid ticks={ticks} span={span} />
            <div class={`seg seg-${pending.kind} is-live`} style={{ left: pct(pending.segment.start), width: width(pending.segment) }} />
          </div>
          <div class="wf-dur muted">{formatMs(pending.segment.end - pending.segment.start)}</div>
        </div>
      )}
    </div>
  );
}

const STEP_ICON: Record<string, IconNode> = { run: Box, sleep: Moon, wait: Hourglass, invoke: CornerDownRight, send: Send };
const STEP_KIND: Record<string, string> = { run: "Run", sleep: "Sleep", wait: "Wait", invoke: "Invoke", send: "Send" };

function Grid({ ticks, span }: { ticks: number[]; span: number }) {
  return (
    <>
      {ticks.map((t) => (
        <span class="wf-grid" style={{ left: `${((t / span) * 100).toFixed(3)}%` }} key={t} />
      ))}
    </>
  );
}

function StepDetail({ step, child, guarded, onRerunFrom }: { step: StepView; child?: RunChild; guarded: boolean; onRerunFrom: (step: string) => Promise<void> }) {
  // The child run an invoke step started: from the run's children, else from the step's error.
  const childRunId = child?.runId ?? (step.type === "invoke" ? step.error?.runId ?? null : null);
  return (
    <div class="step-detail" data-testid="step-detail">
      <div class="step-detail-head">
        <dl class="meta meta-inline">
          <dt>Type</dt>
          <dd>{STEP_KIND[step.type] ?? step.type}</dd>
          <dt>Status</dt>
          <dd>{step.status}</dd>
          <dt>Attempts</dt>
          <dd data-testid="step-attempts">{step.attempts}</dd>
          <dt>Durable</dt>
          <dd class="dur-queued">{formatMs(step.queuedMs)}</dd>
          <dt>App</dt>
          <dd class="dur-app">{formatMs(step.appMs)}</dd>
          <dt>Time</dt>
          <dd title={`${step.startedAt ?? ""} → ${step.endedAt ?? ""}`}>
            {formatAbsolute(step.startedAt)}
            {step.endedAt && step.endedAt !== step.startedAt ? ` → ${formatAbsolute(step.endedAt)}` : ""}
          </dd>
        </dl>
        <ActionButton guarded={guarded} size="sm" onAction={() => onRerunFrom(step.id)} testId="rerun-from-this-step" title="Rerun: the steps before this one are reused, this one and the rest execute again">
          <Icon icon={RotateCcw} size={14} /> Rerun from here
        </ActionButton>
      </div>
      {step.type === "invoke" && (
        <div class="notice notice-link" data-testid="step-child">
          <span class="link-icon">
            <Icon icon={CornerDownRight} size={14} />
          </span> Invoked{" "}
          <span class="strong">{child?.functionId ?? step.error?.functionId ?? "a function"}</span>
          {childRunId ? (
            <>
              {" "}
              as run <RunLink runId={childRunId} testId="step-child-link" />
              {child && (
                <>
                  {" "}
                  <StatusBadge status={child.status} />
                </>
              )}
            </>
          ) : (
            <span class="muted"> (no child run)</span>
          )}
        </div>
      )}
      {step.error && (
        <ErrorBox>
          {step.type === "invoke" && step.error.reason && <strong>{INVOKE_REASON[step.error.reason] ?? step.error.reason}: </strong>}
          <span data-testid="step-error">{step.error.message}</span>
        </ErrorBox>
      )}
      {step.errors.length > 0 && (
        <div data-testid="step-attempt-history">
          <div class="section-label">Attempt history</div>
          <AttemptList errors={step.errors} />
          <div class="small muted" data-testid="step-attempt-last">
            {step.status === "completed"
              ? `attempt ${step.attempts}: completed`
              : step.status === "retrying"
                ? `attempt ${step.attempts} comes next`
                : `attempt ${step.attempts}: ${step.status}`}
          </div>
        </div>
      )}
      <div class="section-label">{OUTPUT_LABEL[step.type] ?? "Output"}</div>
      <div class="code-card">
        {step.output === undefined || (step.output === null && step.type === "sleep") ? <span class="muted small">none</span> : <JsonTree value={step.output} openDepth={2} />}
      </div>
    </div>
  );
}

const OUTPUT_LABEL: Record<string, string> = { wait: "Event received", sleep: "Result", invoke: "Child output", send: "Sent event ids" };
const INVOKE_REASON: Record<string, string> = {
  failed: "The child run failed",
  timeout: "Timed out before the child ended",
  cancelled: "The child run was cancelled",
  not_found: "No such function",
};
