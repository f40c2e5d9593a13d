import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { RefObject } from "preact";
import { type Change, type LiveState, live } from "./live";

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  /** Refetch, keeping what is shown until the answer arrives. */
  reload: () => void;
}

/** Fetch on mount and whenever `deps` change; answers of superseded requests are dropped. */
export function useResource<T>(fetcher: () => Promise<T>, deps: unknown[]): Resource<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const seq = useRef(0);
  const latest = useRef(fetcher);
  latest.current = fetcher;

  const run = useCallback(() => {
    const mine = ++seq.current;
    latest
      .current()
      .then((data) => {
        if (mine === seq.current) setState({ data, loading: false });
      })
      .catch((error: Error) => {
        if (mine === seq.current) setState((prev) => ({ data: prev.data, error, loading: false }));
      });
  }, []);

  useEffect(() => {
    setState({ loading: true });
    run();
    return () => {
      seq.current++;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  return { data: state.data, error: state.error, loading: state.loading, reload: run };
}

/**
 * Refetch when a relevant change is pushed: at most once per `delayMs` (a burst of changes costs one
 * fetch, and a steady stream still refreshes), and at once whenever the stream (re)connects.
 */
export function useLiveRefresh(matches: (change: Change) => boolean, refresh: () => void, delayMs = 200): void {
  const matchRef = useRef(matches);
  const refreshRef = useRef(refresh);
  matchRef.current = matches;
  refreshRef.current = refresh;
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const unsubscribe = live.subscribe({
      change(change) {
        if (timer || !matchRef.current(change)) return;
        timer = setTimeout(() => {
          timer = null;
          refreshRef.current();
        }, delayMs);
      },
      connected() {
        if (timer) clearTimeout(timer);
        timer = null;
        refreshRef.current();
      },
    });
    return () => {
      if (timer) clearTimeout(timer);
      unsubscribe();
    };
  }, [delayMs]);
}

export function useLiveState(): LiveState {
  const [state, setState] = useState<LiveState>(live.state);
  useEffect(() => live.watchState(setState), []);
  return state;
}

/** The current time, ticking every `everyMs` (for "3s ago" and running durations). */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(id);
  }, [everyMs]);
  return now;
}

/** The width in CSS pixels of an element, kept current with a ResizeObserver. */
export function useWidth(ref: RefObject<HTMLElement | null>, fallback = 600): number {
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    setWidth(element.clientWidth || fallback);
    const observer = new ResizeObserver((entries) => {
      const w = entries[0]?.contentRect.width;
      if (w) setWidth(w);
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [ref.current]);
  return width;
}

export function changeTouches(change: Change, appId: string, kinds: string[]): boolean {
  return change.appId === appId && change.kinds.some((kind) => kinds.includes(kind));
}
