import { type App, ApiError, RUN_ACTIVITIES, RUN_STATUSES, type RunSummary, api } from "../api";
import { Pager, usePager } from "../components/pager";
import { Empty, ErrorBox, Loading, PageHeader, Segmented, StatusBadge, Time } from "../components/ui";
import { changeTouches, useLiveRefresh, useNow, useResource } from "../hooks";
import { compactJson, durationBetween, formatMs, parseTime } from "../format";
import { setQuery, useLocation } from "../router";
import { BulkActions, RunSearch } from "./runs-search";
import { Play } from "lucide";

export function RunsPage({ app }: { app: App }) {
  const { query } = useLocation();
  const status = query.get("status");
  const activity = query.get("activity");
  const functionId = query.get("fn");
  const match = query.get("match");
  const output = query.get("output");
  const selected = query.get("run");
  const filterKey = `${app.id}|${status}|${activity}|${functionId}|${match}|${output}`;
  const pager = usePager(filterKey);
  const runs = useResource(
    () => api.runs(app.id, { status, activity, functionId, match, output }, pager.cursor, 50),
    [filterKey, pager.cursor],
  );
  const functions = useResource(() => api.functions(app.id), [app.id]);
  useLiveRefresh((c) => changeTouches(c, app.id, ["runs"]), runs.reload);
  const now = useNow(1000);
  const items = runs.data?.items ?? [];
  const filtered = !!(status || activity || functionId || match || output);
  // A search the engine refused (400) is told beside the search fields, not as a page error.
  const refused = runs.error instanceof ApiError && runs.error.status === 400 ? runs.error.message : null;

  return (
    <>
      <PageHeader title="Runs" subtitle="Every execution of a function, newest first. Click a run for its trace." />
      <div class="filters" data-testid="run-filters">
        <Segmented
          value={status ?? ""}
          testId="filter-status"
          options={[{ value: "", label: "All" }, ...RUN_STATUSES.map((s) => ({ value: s, label: s[0].toUpperCase() + s.slice(1) }))]}
          onChange={(value) => setQuery({ status: value || null, activity: value && value !== "active" ? null : activity })}
        />
        <label class="select-wrap">
          <span class="select-label">Activity</span>
          <select
            class="select"
            value={activity ?? ""}
            data-testid="filter-activity"
            onChange={(e) => {
              const value = (e.target as HTMLSelectElement).value;
              setQuery({ activity: value || null, status: value ? "active" : status });
            }}
          >
            <option value="">Any</option>
            {RUN_ACTIVITIES.map((a) => (
              <option value={a} key={a}>
                {a}
              </option>
            ))}
          </select>
        </label>
        <label class="select-wrap">
          <span class="select-label">Function</span>
          <select class="select" value={functionId ?? ""} data-testid="filter-function" onChange={(e) => setQuery({ fn: (e.target as HTMLSelectElement).value || null })}>
            <option value="">All functions</option>
            {(functions.data?.items ?? []).map((f) => (
              <option value={f.id} key={f.id}>
                {f.name}
              </option>
            ))}
            {functionId && !(functions.data?.items ?? []).some((f) => f.id === functionId) && <option value={functionId}>{functionId}</option>}
          </select>
        </label>
        {filtered && (
          <button type="button" class="btn btn-ghost btn-sm" onClick={() => setQuery({ status: null, activity: null, fn: null, match: null, output: null })}>
            Clear filters
          </button>
        )}
      </div>
      <RunSearch key={`${app.id}|${match}|${output}`} match={match} output={output} refused={refused} />
      <BulkActions
        app={app}
        filterKey={filterKey}
        functionId={functionId}
        status={status}
        match={match}
        blockedBy={[activity ? "the activity filter" : null, output ? "the output search" : null].filter((x): x is string => x !== null)}
        onDone={runs.reload}
      />
      {runs.error && !refused && <ErrorBox error={runs.error} />}
      {!runs.data && !runs.error && <Loading rows={6} />}
      {runs.data && !refused && items.length === 0 && (
        <div class="card">
          <Empty title={filtered ? "No runs match these filters" : pager.page > 0 ? "No more runs" : "No runs yet"} icon={Play}>
            {filtered ? "Try another status, activity, function or search." : "Runs appear here the moment an event starts a function."}
          </Empty>
        </div>
      )}
      {items.length > 0 && !refused && (
        <div class="card">
          <table class="table" data-testid="runs-table">
            <thead>
              <tr>
                <th style={{ width: "15%" }}>Status</th>
                <th>Function</th>
                <th>Run</th>
                <th style={{ width: "22%" }}>Output</th>
                <th style={{ width: "12%" }}>Created</th>
                <th class="num" style={{ width: "11%" }}>
                  Duration
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((run) => (
                <RunRow run={run} now={now} selected={run.id === selected} key={run.id} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager pager={pager} nextCursor={runs.data?.nextCursor ?? null} count={items.length} noun="run" />
    </>
  );
}

/** The run's output in one line: the whole value (the list carries it when its JSON text has at most
 * 2048 characters), or the list's preview of a longer one, marked as cut. */
export function OutputCell({ run }: { run: RunSummary }) {
  if (run.status !== "completed") return <span class="muted small">—</span>;
  if (run.outputTruncated) {
    return (
      <span class="mono small data-preview" data-testid="run-output-preview" data-truncated="true" title="Output cut to its first 2048 characters: open the run for all of it">
        {(run.outputPreview ?? "").slice(0, 80)}… <span class="pill">truncated</span>
      </span>
    );
  }
  return (
    <span class="mono small data-preview" data-testid="run-output-preview" data-truncated="false" title={compactJson(run.output, 2048)}>
      {compactJson(run.output, 80)}
    </span>
  );
}

function RunRow({ run, now, selected }: { run: RunSummary; now: number; selected: boolean }) {
  const duration = durationBetween(run.createdAt, run.endedAt, now);
  return (
    <tr
      class={`clickable ${selected ? "is-selected" : ""}`}
      onClick={() => setQuery({ run: run.id })}
      data-testid="run-row"
      data-run-id={run.id}
      data-status={run.status}
    >
      <td>
        <StatusBadge status={run.status} activity={run.activity} />
      </td>
      <td>
        <span class="strong">{run.functionId}</span>
        {run.flow && <FlowNote flow={run.flow} now={now} />}
      </td>
      <td class="mono small muted">{run.id}</td>
      <td>
        <OutputCell run={run} />
      </td>
      <td class="muted">
        <Time iso={run.createdAt} now={now} />
      </td>
      <td class={`num ${run.endedAt ? "" : "muted"}`}>{formatMs(duration)}</td>
    </tr>
  );
}

export function FlowNote({ flow, now }: { flow: Record<string, Record<string, unknown>>; now: number }) {
  const parts = Object.entries(flow).map(([option, info]) => {
    const until = typeof info.until === "string" ? parseTime(info.until) : null;
    const when = until !== null ? (until > now ? ` · starts in ${formatMs(until - now)}` : " · due") : "";
    if (option === "concurrency") return `concurrency full (${info.running}/${info.limit})`;
    const size = typeof info.size === "number" ? ` · ${info.size} events` : "";
    return `${option}${size}${when}`;
  });
  return <div class="flow-note small">{parts.join(" · ")}</div>;
}
