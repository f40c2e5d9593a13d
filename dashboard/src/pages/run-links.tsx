// The trace drawer's links between runs: the parent that invoked a run, its children, and who cancelled it.
import type { ComponentChildren } from "preact";
import type { CancelledBy, RunChild } from "../api";
import { StatusBadge } from "../components/ui";
import { shortId } from "../format";
import { setQuery } from "../router";

/** A run id that opens that run in this drawer. */
export function RunLink({ runId, testId }: { runId: string; testId?: string }) {
  return (
    <button type="button" class="linkish mono" onClick={() => setQuery({ run: runId })} title={`Open run ${runId}`} data-testid={testId} data-run-id={runId}>
      {runId}
    </button>
  );
}

/** Who cancelled a run: an event (cancelOn), its parent, a newer run (singleton), a bulk action or a user. */
export function CancelledByNotice({ by }: { by: CancelledBy }) {
  let text: ComponentChildren;
  switch (by.kind) {
    case "event":
      text = (
        <>
          Cancelled by event <code class="mono">{by.eventName ?? "?"}</code>
          {by.eventId && (
            <>
              {" "}
              (id <span class="mono" title={by.eventId}>{by.eventId}</span>)
            </>
          )}
        </>
      );
      break;
    case "parent":
      text = <>Cancelled by its parent run {by.runId ? <RunLink runId={by.runId} /> : null}</>;
      break;
    case "singleton":
      text = <>Cancelled by a newer run (singleton){by.runId ? <> <RunLink runId={by.runId} /></> : null}</>;
      break;
    case "bulk":
      text = <>Cancelled in bulk (Cancel matching runs)</>;
      break;
    case "user":
      text = <>Cancelled by a user</>;
      break;
    default:
      text = <>Cancelled ({by.kind})</>;
  }
  return (
    <div class="notice" data-testid="run-cancelled-by" data-kind={by.kind}>
      {text}
    </div>
  );
}

/** The runs this run started with `invoke`. */
export function Children({ items }: { items: RunChild[] }) {
  return (
    <section class="section" data-testid="run-children">
      <div class="section-head">
        <h3>Children</h3>
        <span class="muted small">{items.length === 1 ? "1 run" : `${items.length} runs`} started by invoke</span>
      </div>
      <div class="children">
        {items.map((child) => (
          <button
            type="button"
            class="child-run"
            key={child.runId}
            onClick={() => setQuery({ run: child.runId })}
            title={`Open run ${child.runId}`}
            data-testid="child-run"
            data-run-id={child.runId}
            data-status={child.status}
          >
            <StatusBadge status={child.status} />
            <span class="strong">{child.functionId}</span>
            <span class="muted small">
              from step <code class="mono">{child.stepId}</code>
            </span>
            <span class="spacer" />
            <span class="mono small muted">{shortId(child.runId)}</span>
          </button>
        ))}
      </div>
    </section>
  );
}
