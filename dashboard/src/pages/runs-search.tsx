// The runs page's search (event data and output, as JSON) and its bulk actions on the current filter.
import { useState } from "preact/hooks";
import { type App, type RunFilter, api } from "../api";
import { parseJson } from "../components/json";
import { ActionButton, Button, ErrorBox, toast } from "../components/ui";
import { live } from "../live";
import { plural } from "../format";
import { setQuery } from "../router";
import { type IconNode, RotateCcw, Square } from "lucide";
import { Icon } from "../components/icon";

/** The engine acts on at most this many runs per bulk call. */
const BULK_LIMIT = 10_000;

/** Empty text: no filter; else the JSON, compacted for the URL, or why it is not acceptable. */
function readJson(text: string, object: boolean): { ok: true; value: string | null } | { ok: false; error: string } {
  if (!text.trim()) return { ok: true, value: null };
  const parsed = parseJson(text, object);
  if (!parsed.ok) {
    return { ok: false, error: object && parsed.error.startsWith("The data must") ? 'Enter a JSON object, like {"orderId": "o-1"}' : parsed.error };
  }
  return { ok: true, value: JSON.stringify(parsed.value) };
}

/**
 * Search runs by a subset of their event data (`?match=`, a JSON object) and of their output (`?output=`,
 * any JSON). Invalid JSON is told inline and sends no request; the engine's refusal (400) is shown here too.
 */
export function RunSearch({ match, output, refused }: { match: string | null; output: string | null; refused: string | null }) {
  const [matchText, setMatchText] = useState(match ?? "");
  const [outputText, setOutputText] = useState(output ?? "");
  const [errors, setErrors] = useState<{ match?: string; output?: string }>({});

  const submit = (e?: Event) => {
    e?.preventDefault();
    const m = readJson(matchText, true);
    const o = readJson(outputText, false);
    const next = { match: m.ok ? undefined : m.error, output: o.ok ? undefined : o.error };
    setErrors(next);
    if (!m.ok || !o.ok) return;
    setQuery({ match: m.value, output: o.value });
  };
  const clear = () => {
    setMatchText("");
    setOutputText("");
    setErrors({});
    setQuery({ match: null, output: null });
  };

  return (
    <form class="run-search" onSubmit={submit} data-testid="run-search" noValidate>
      <label class={`search-field ${errors.match ? "has-error" : ""}`}>
        <span class="select-label">Event data contains</span>
        <input
          class="input mono"
          value={matchText}
          placeholder='{"orderId": "o-1"}'
          spellcheck={false}
          aria-invalid={!!errors.match}
          data-testid="search-match"
          onInput={(e) => setMatchText((e.target as HTMLInputElement).value)}
        />
        {errors.match && (
          <span class="field-error" role="alert" data-testid="search-match-error">
            {errors.match}
          </span>
        )}
      </label>
      <label class={`search-field ${errors.output ? "has-error" : ""}`}>
        <span class="select-label">Output contains</span>
        <input
          class="input mono"
          value={outputText}
          placeholder='{"charged": true}'
          spellcheck={false}
          aria-invalid={!!errors.output}
          data-testid="search-output"
          onInput={(e) => setOutputText((e.target as HTMLInputElement).value)}
        />
        {errors.output && (
          <span class="field-error" role="alert" data-testid="search-output-error">
            {errors.output}
          </span>
        )}
      </label>
      <div class="search-buttons">
        <span class="select-label search-spacer" aria-hidden="true">
          &nbsp;
        </span>
        <div class="search-button-row">
          <button type="submit" class="btn btn-primary btn-md" data-testid="search-submit">
            Search
          </button>
          {(match || output || matchText || outputText) && (
            <Button variant="ghost" onClick={clear} testId="search-clear">
              Clear
            </Button>
          )}
        </div>
      </div>
      {refused && (
        <div class="search-refused">
          <ErrorBox>
            <strong>The engine refused this search:</strong> <span data-testid="search-refused">{refused}</span>
          </ErrorBox>
        </div>
      )}
    </form>
  );
}

type BulkKind = "cancel" | "rerun";

interface BulkState {
  key: string;
  kind: BulkKind;
  phase: "counting" | "counted" | "running" | "done";
  count?: number;
  done?: number;
  error?: string;
}

const BULK_TEXT: Record<BulkKind, { button: string; icon: IconNode; will: string; confirm: (n: number) => string; done: (n: number) => string }> = {
  cancel: {
    button: "Cancel matching runs",
    icon: Square,
    will: "will be cancelled",
    confirm: (n) => `Cancel ${plural(n, "run")}`,
    done: (n) => `Cancelled ${plural(n, "run")}`,
  },
  rerun: {
    button: "Rerun matching runs",
    icon: RotateCcw,
    will: "will be rerun (each as a new run)",
    confirm: (n) => `Rerun ${plural(n, "run")}`,
    done: (n) => `Started ${plural(n, "rerun")}`,
  },
};

/**
 * "Cancel matching runs" and "Rerun matching runs" on the page's filter: the first click only counts
 * (`dryRun`) and says how many runs it would touch; a confirming click acts (in prod it arms first, as
 * every mutating action there does).
 */
export function BulkActions({
  app,
  filterKey,
  functionId,
  status,
  match,
  blockedBy: blockedByFilters,
  onDone,
}: {
  app: App;
  filterKey: string;
  functionId: string | null;
  status: string | null;
  match: string | null;
  blockedBy: string[];
  onDone: () => void;
}) {
  const [state, setState] = useState<BulkState | null>(null);
  let blockedBy = blockedByFilters;
  const current = state && state.key === filterKey ? state : null;
  const prod = app.environment === "prod";

  const filter: RunFilter = {};
  if (functionId) filter.functionId = functionId;
  if (status) filter.status = status;
  const parsedMatch = match ? parseJson(match) : null;
  if (parsedMatch?.ok) filter.match = parsedMatch.value as Record<string, unknown>;
  // A match in the URL that is not a JSON object (edited by hand) must not widen a bulk action to every run.
  if (parsedMatch && !parsedMatch.ok) blockedBy = [...blockedBy, "an invalid event-data search"];
  const scope = [
    functionId ? `function ${functionId}` : "every function",
    status ? `status ${status}` : null,
    match ? `event data ⊇ ${match}` : null,
  ].filter(Boolean);
  const call = (kind: BulkKind, dryRun: boolean) => (kind === "cancel" ? api.cancelRuns : api.rerunRuns)(app.id, filter, dryRun);

  const count = async (kind: BulkKind) => {
    const key = filterKey;
    setState({ key, kind, phase: "counting" });
    try {
      const result = await call(kind, true);
      setState({ key, kind, phase: "counted", count: result.count });
    } catch (e) {
      setState({ key, kind, phase: "counted", error: (e as Error).message });
    }
  };
  const act = async () => {
    if (!current) return;
    const { key, kind, count: expected } = current;
    setState({ key, kind, phase: "running", count: expected });
    try {
      const result = await call(kind, false);
      setState({ key, kind, phase: "done", count: expected, done: result.count });
      toast(BULK_TEXT[kind].done(result.count), "success");
    } catch (e) {
      setState({ key, kind, phase: "counted", count: expected, error: (e as Error).message });
    }
    live.local({ appId: app.id, kinds: ["runs"] });
    onDone();
  };

  const blocked = blockedBy.length > 0;
  const busy = current?.phase === "counting" || current?.phase === "running";
  return (
    <div class="bulk" data-testid="bulk-actions">
      <div class="bulk-bar">
        <span class="small muted" data-testid="bulk-scope">
          {blocked ? `Bulk actions cannot use ${blockedBy.join(" or ")}: clear ${blockedBy.length > 1 ? "them" : "it"} first.` : <>Bulk actions act on: {scope.join(" · ")}</>}
        </span>
        <div class="spacer" />
        {(["cancel", "rerun"] as const).map((kind) => (
          <Button
            key={kind}
            size="sm"
            variant={kind === "cancel" ? "danger" : "secondary"}
            disabled={blocked || busy}
            busy={current?.kind === kind && current.phase === "counting"}
            onClick={() => void count(kind)}
            testId={`bulk-${kind}`}
            title="Counts the runs first; nothing changes until you confirm"
          >
            <Icon icon={BULK_TEXT[kind].icon} /> {BULK_TEXT[kind].button}
          </Button>
        ))}
      </div>
      {current && current.phase !== "counting" && (
        <div
          class={`bulk-panel notice ${current.phase === "done" ? "" : "notice-warn"}`}
          data-testid={current.phase === "done" ? "bulk-done" : "bulk-preview"}
          data-kind={current.kind}
          data-count={current.phase === "done" ? current.done : current.count}
        >
          {current.phase === "done" ? (
            <span>
              <strong>{BULK_TEXT[current.kind].done(current.done ?? 0)}.</strong>
            </span>
          ) : current.count === undefined ? null : current.count === 0 ? (
            <span>
              <strong>No run matches</strong>: nothing to {current.kind}.
            </span>
          ) : (
            <span>
              <strong data-testid="bulk-count">
                {plural(current.count, "run")} {BULK_TEXT[current.kind].will}
              </strong>
              {current.count >= BULK_LIMIT && ` (at most ${BULK_LIMIT.toLocaleString()} per call: repeat for the rest)`}
              {prod && " · production: the confirming button arms first"}
            </span>
          )}
          <div class="spacer" />
          {current.phase !== "done" && (current.count ?? 0) > 0 && (
            <ActionButton guarded={prod} size="sm" variant="danger" onAction={act} disabled={current.phase === "running"} testId="bulk-confirm">
              {BULK_TEXT[current.kind].confirm(current.count ?? 0)}
            </ActionButton>
          )}
          <Button size="sm" variant="ghost" onClick={() => setState(null)} disabled={current.phase === "running"} testId="bulk-dismiss">
            {current.phase === "done" ? "Dismiss" : "Never mind"}
          </Button>
          {current.error && (
            <div class="bulk-error">
              <ErrorBox error={current.error} />
            </div>
          )}
        </div>
      )}
    </div>
  );
}
