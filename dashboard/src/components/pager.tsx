import { useState } from "preact/hooks";
import { plural } from "../format";
import { ChevronLeft, ChevronRight, ChevronsLeft } from "lucide";
import { Icon } from "./icon";

export interface PagerState {
  page: number;
  cursor: string | null;
  next: (cursor: string) => void;
  previous: () => void;
  first: () => void;
}

/** Cursor pagination: a stack of the cursors of the pages seen (page 0 has none). Resets with `resetKey`. */
export function usePager(resetKey: string): PagerState {
  const [state, setState] = useState<{ key: string; stack: (string | null)[] }>({ key: resetKey, stack: [null] });
  const stack = state.key === resetKey ? state.stack : [null];
  const set = (next: (string | null)[]) => setState({ key: resetKey, stack: next });
  return {
    page: stack.length - 1,
    cursor: stack[stack.length - 1],
    next: (cursor) => set([...stack, cursor]),
    previous: () => set(stack.length > 1 ? stack.slice(0, -1) : stack),
    first: () => set([null]),
  };
}

export function Pager({ pager, nextCursor, count, noun }: { pager: PagerState; nextCursor: string | null; count: number; noun: string }) {
  if (pager.page === 0 && !nextCursor) {
    return count > 0 ? <div class="pager muted small">{plural(count, noun)}</div> : null;
  }
  return (
    <div class="pager" data-testid="pager">
      <span class="muted small">
        Page {pager.page + 1} · {plural(count, noun)}
        {pager.page === 0 ? " · newest first" : ""}
      </span>
      <div class="pager-buttons">
        {pager.page > 1 && (
          <button type="button" class="btn btn-ghost btn-sm" onClick={pager.first}>
            <Icon icon={ChevronsLeft} size={14} /> Newest
          </button>
        )}
        <button type="button" class="btn btn-secondary btn-sm" disabled={pager.page === 0} onClick={pager.previous} data-testid="pager-previous">
          <Icon icon={ChevronLeft} size={14} /> Previous
        </button>
        <button type="button" class="btn btn-secondary btn-sm" disabled={!nextCursor} onClick={() => nextCursor && pager.next(nextCursor)} data-testid="pager-next">
          Next <Icon icon={ChevronRight} size={14} />
        </button>
      </div>
    </div>
  );
}
