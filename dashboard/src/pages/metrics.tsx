import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";
import { type App, type Metrics, type MetricsRange, api } from "../api";
import { BarList, Legend, type Series, TimeChart } from "../components/charts";
import { Empty, ErrorBox, Loading, PageHeader, Segmented } from "../components/ui";
import { changeTouches, useLiveRefresh, useResource } from "../hooks";
import { formatMs } from "../format";
import { setQuery, useLocation } from "../router";
import { ChartColumn } from "lucide";

const COLORS = {
  started: "#6366f1",
  completed: "#10b981",
  failed: "#ef4444",
  queued: "#94a3b8",
  app: "#22c55e",
  backlog: "#f59e0b",
  rate: "#ef4444",
};

const RANGES: { value: MetricsRange; label: string }[] = [
  { value: "1h", label: "Last hour" },
  { value: "24h", label: "24 hours" },
  { value: "7d", label: "7 days" },
];

export function MetricsPage({ app }: { app: App }) {
  const { query } = useLocation();
  const range = (RANGES.some((r) => r.value === query.get("range")) ? query.get("range") : "1h") as MetricsRange;
  const metrics = useResource(() => api.metrics(app.id, range), [app.id, range]);
  useLiveRefresh((c) => changeTouches(c, app.id, ["runs"]), metrics.reload, 2000);
  useEffect(() => {
    // The engine rolls metrics up every few seconds, after the runs changed: poll a little too.
    const id = setInterval(metrics.reload, 10_000);
    return () => clearInterval(id);
  }, [app.id, range]);

  return (
    <>
      <PageHeader
        title="Metrics"
        subtitle="Throughput, failures, where the time goes, and the backlog."
        actions={<Segmented value={range} options={RANGES} onChange={(value) => setQuery({ range: value === "1h" ? null : value })} testId="metrics-range" />}
      />
      {metrics.error && <ErrorBox error={metrics.error} />}
      {!metrics.data && !metrics.error && <Loading rows={8} />}
      {metrics.data && <MetricsView data={metrics.data} />}
    </>
  );
}

function timeFormatter(bucketSeconds: number, range: MetricsRange): (t: number) => string {
  const f =
    range === "7d"
      ? new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" })
      : new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", ...(bucketSeconds < 60 ? { second: "2-digit" } : {}) });
  return (t) => f.format(new Date(t));
}

function axisMs(v: number): string {
  if (v === 0) return "0";
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60_000) return `${+(v / 1000).toFixed(1)} s`;
  if (v < 3_600_000) return `${+(v / 60_000).toFixed(1)} min`;
  return `${+(v / 3_600_000).toFixed(1)} h`;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + (b || 0), 0);
}

function MetricsView({ data }: { data: Metrics }) {
  const buckets = data.buckets ?? [];
  const times = buckets.map((b) => Date.parse(b.t));
  const fmtTime = timeFormatter(data.bucketSeconds, data.range);
  const started = buckets.map((b) => b.started);
  const completed = buckets.map((b) => b.completed);
  const failed = buckets.map((b) => b.failed);
  const queued = buckets.map((b) => b.queuedMs);
  const appMs = buckets.map((b) => b.appMs);
  const backlog = buckets.map((b) => b.backlog);
  const rate = buckets.map((b) => (b.completed + b.failed > 0 ? (b.failed / (b.completed + b.failed)) * 100 : 0));
  const totals = {
    started: sum(started),
    completed: sum(completed),
    failed: sum(failed),
    queued: sum(queued),
    app: sum(appMs),
  };
  const ended = totals.completed + totals.failed;
  const failureRate = ended > 0 ? (totals.failed / ended) * 100 : 0;
  const durableShare = totals.queued + totals.app > 0 ? (totals.queued / (totals.queued + totals.app)) * 100 : 0;
  const backlogNow = backlog.length ? backlog[backlog.length - 1] : 0;
  const backlogPeak = Math.max(0, ...backlog);
  const per = data.bucketSeconds >= 3600 ? `${data.bucketSeconds / 3600} h` : data.bucketSeconds >= 60 ? `${data.bucketSeconds / 60} min` : `${data.bucketSeconds} s`;

  if (buckets.length === 0) {
    return (
      <div class="card">
        <Empty title="No data for this range" icon={ChartColumn} />
      </div>
    );
  }

  const throughput: Series[] = [
    { key: "completed", label: "Completed", color: COLORS.completed, values: completed, kind: "bar", stack: "ended" },
    { key: "failed", label: "Failed", color: COLORS.failed, values: failed, kind: "bar", stack: "ended" },
    { key: "started", label: "Started", color: COLORS.started, values: started, kind: "line" },
  ];
  const time: Series[] = [
    { key: "queued", label: "Durable delay", color: COLORS.queued, values: queued, kind: "bar", stack: "time" },
    { key: "app", label: "App time", color: COLORS.app, values: appMs, kind: "bar", stack: "time" },
  ];
  const functions = [...(data.functions ?? [])].sort((a, b) => (b.p95Ms ?? 0) - (a.p95Ms ?? 0));

  const quiet = totals.started === 0 && ended === 0 && backlogPeak === 0;
  return (
    <div data-testid="metrics">
      {quiet && (
        <div class="notice">
          No runs in this range yet. Metrics are rolled up every few seconds, so a run shows here shortly after it
          starts or ends.
        </div>
      )}
      <div class="kpis">
        <Kpi label="Runs started" value={totals.started.toLocaleString()} sub={`in the ${data.range === "1h" ? "last hour" : data.range === "24h" ? "last 24 hours" : "last 7 days"}`} />
        <Kpi label="Completed" value={totals.completed.toLocaleString()} tone="good" />
        <Kpi label="Failure rate" value={`${failureRate.toFixed(failureRate > 0 && failureRate < 10 ? 1 : 0)}%`} sub={`${totals.failed.toLocaleString()} failed`} tone={totals.failed > 0 ? "bad" : undefined} />
        <Kpi label="Durable share of time" value={`${durableShare.toFixed(0)}%`} sub={`${formatMs(totals.queued)} durable · ${formatMs(totals.app)} app`} />
        <Kpi label="Backlog now" value={backlogNow.toLocaleString()} sub={`peak ${backlogPeak.toLocaleString()}`} tone={backlogNow > 0 ? "warn" : undefined} />
      </div>
      <div class="chart-grid-2">
        <ChartCard title="Throughput" note={`runs per ${per}`} legend={<Legend series={[throughput[2], throughput[0], throughput[1]]} />}>
          <TimeChart times={times} series={throughput} timeFormat={fmtTime} integer testId="chart-throughput" />
        </ChartCard>
        <ChartCard title="Failure rate" note="failed ÷ ended" legend={<Legend series={[{ label: "Failure rate", color: COLORS.rate }]} />}>
          <TimeChart
            times={times}
            series={[{ key: "rate", label: "Failure rate", color: COLORS.rate, values: rate, kind: "area" }]}
            timeFormat={fmtTime}
            format={(v) => `${Math.round(v)}%`}
            yMax={Math.max(...rate) > 0 ? undefined : 100}
            testId="chart-failure-rate"
          />
        </ChartCard>
        <ChartCard title="Durable delay vs app time" note="step time of runs that ended" legend={<Legend series={time} />}>
          <TimeChart times={times} series={time} timeFormat={fmtTime} format={axisMs} minTop={1000} testId="chart-time" />
        </ChartCard>
        <ChartCard title="Backlog depth" note="runs queued or scheduled" legend={<Legend series={[{ label: "Backlog", color: COLORS.backlog }]} />}>
          <TimeChart times={times} series={[{ key: "backlog", label: "Backlog", color: COLORS.backlog, values: backlog, kind: "area" }]} timeFormat={fmtTime} integer testId="chart-backlog" />
        </ChartCard>
      </div>
      <ChartCard title="p95 duration per function" note="runs that ended in this range; from buckets 1.1 % wide, clamped to the exact shortest and longest run">
        {functions.length === 0 ? (
          <Empty title="No run ended in this range" icon={ChartColumn} />
        ) : (
          <BarList
            testId="chart-p95"
            rows={functions.map((f) => ({
              label: f.functionId,
              value: f.p95Ms ?? 0,
              sub: `${f.completed.toLocaleString()} ok · ${f.failed.toLocaleString()} failed${f.maxMs !== null ? ` · max ${formatMs(f.maxMs)}` : ""}`,
            }))}
            format={(v) => formatMs(v)}
          />
        )}
      </ChartCard>
    </div>
  );
}

function Kpi({ label, value, sub, tone }: { label: string; value: string; sub?: string; tone?: "good" | "bad" | "warn" }) {
  return (
    <div class={`kpi ${tone ? `kpi-${tone}` : ""}`}>
      <div class="kpi-label">{label}</div>
      <div class="kpi-value">{value}</div>
      {sub && <div class="kpi-sub">{sub}</div>}
    </div>
  );
}

function ChartCard({ title, note, legend, children }: { title: string; note?: string; legend?: ComponentChildren; children: ComponentChildren }) {
  return (
    <div class="card chart-card">
      <div class="chart-card-head">
        <div>
          <h3>{title}</h3>
          {note && <div class="muted small">{note}</div>}
        </div>
        {legend}
      </div>
      {children}
    </div>
  );
}
